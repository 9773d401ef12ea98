"""How fast the quick commands answer, and what they import: `foreman --help`, `status` (text and JSON),
`validate` and `decide` on the demo map with its pause open, each started as a person would (a new interpreter).

    python bench/quick_commands.py [--repeat 15]

Prints, per command, the median and the slowest of ``repeat`` runs (wall clock, from exec to exit) and whether
Textual, GitPython or the engine's supervisor was imported (none should be, for these commands). The target
(issue 17): under 300 ms for `--help`, `status` and `decide`.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("textual", "git", "foreman_tui.engine.supervisor", "watchfiles")
TARGET_MS = 300


def demo(folder: Path) -> tuple[Path, str]:
    """The demo run to its pause; returns (the map, the paused node)."""
    subprocess.run(
        [sys.executable, "-m", "foreman_tui", "demo", "--dir", str(folder), "--pause", "--headless"],
        capture_output=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    map_path = folder / "project" / "algorithm-map.json"
    status = subprocess.run(
        [sys.executable, "-m", "foreman_tui", "status", str(map_path), "--json"], capture_output=True, text=True
    )
    return map_path, json.loads(status.stdout)["pauses"][0]["node"]


def timed(argv: list[str], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, check=False)
        times.append((time.perf_counter() - start) * 1000)
    return times


def heavy_imports(argv: list[str]) -> list[str]:
    done = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], capture_output=True, text=True)
    names = {m.group(1).strip() for m in re.finditer(r"\|\s+\d+\s+\|\s*(\S+)\s*$", done.stderr, re.M)}
    return sorted(name for name in names if name in HEAVY)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        map_path, node = demo(Path(tmp) / "demo")
        foreman = [sys.executable, "-m", "foreman_tui"]
        commands = {
            "--help": [*foreman, "--help"],
            "status": [*foreman, "status", str(map_path)],
            "status --json": [*foreman, "status", str(map_path), "--json"],
            "validate": [*foreman, "validate", str(map_path)],
            "decide": [*foreman, "decide", str(map_path), node, "A"],
        }
        start = timed([sys.executable, "-c", "pass"], args.repeat)
        print(f"interpreter alone: median {statistics.median(start):.0f} ms")
        print(f"{'command':<16} {'median':>8} {'slowest':>8}  heavy imports")
        worst = 0.0
        for name, argv in commands.items():
            times = timed(argv, args.repeat)
            heavy = heavy_imports(argv)
            median = statistics.median(times)
            if name in ("--help", "status", "decide"):
                worst = max(worst, median)
            print(f"{name:<16} {median:>6.0f} ms {max(times):>6.0f} ms  {', '.join(heavy) or 'none'}")
    print(f"target: --help, status, decide under {TARGET_MS} ms (median): {'met' if worst < TARGET_MS else 'NOT met'}")
    return 0 if worst < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
