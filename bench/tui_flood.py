"""The TUI under a flood of output: N workers each printing R lines a second, while keys are pressed.

    python bench/tui_flood.py [--workers 8] [--rate 20000] [--seconds 20] [--line-chars 60] [--non-ascii]

A real repository with an N-node map (no dependencies, no shared files), the `command` preset running a
small Python printer per node (ANSI colours included), and the real App under Textual's headless
driver. Every 0.25 s the bench sends the App a key event for `f` (follow on/off), as the terminal driver
would, and times how long until the log widget shows the change; it also samples the event loop's lag
every 50 ms and the process's RSS every second.
Prints the lines that reached the TUI, key latency (median, p95, max), loop lag and memory over time.
``--line-chars`` sets the length of each line (e.g. 1048576 for lines of a MiB: the "long lines" figures);
``--non-ascii`` puts a ``✓`` in each line (Rich measures such a line character by character).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from textual import events

from foreman_tui.engine.project import Project
from foreman_tui.engine.trust import approve_project
from foreman_tui.tui.app import ForemanApp
from foreman_tui.tui.widgets import AnsiLog

PRINTER = """
import sys, time
rate, seconds, node, chars, mark = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
batch = max(1, rate // 100)
pad = "x" * chars
start = time.monotonic()
n = 0
out = sys.stdout
while time.monotonic() - start < seconds:
    lines = [f"\\x1b[32m{node}\\x1b[0m line {n + i}{mark} " + pad for i in range(batch)]
    out.write("\\n".join(lines) + "\\n")
    out.flush()
    n += batch
    ahead = n / rate - (time.monotonic() - start)
    if ahead > 0:
        time.sleep(ahead)
time.sleep(3600)  # never commits: the bench stops it
"""


def spread(durations: list[float]) -> dict[str, float]:
    """Median, p95 and max of durations in seconds, as milliseconds."""
    ordered = sorted(durations)
    at_p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    return {
        "median": round(statistics.median(ordered) * 1000, 1),
        "p95": round(at_p95 * 1000, 1),
        "max": round(ordered[-1] * 1000, 1),
        "samples": len(ordered),
    }


def key_figures(presses: list[tuple[float, float]]) -> dict[str, object]:
    """The spread of key latencies, and when (seconds into the run) the five slowest presses happened."""
    slowest = sorted(presses, key=lambda press: -press[1])[:5]
    return spread([took for _, took in presses]) | {
        "slowest_at_second": [[round(at, 1), round(took * 1000, 1)] for at, took in slowest]
    }


def arguments(doc: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rate", type=int, default=20000, help="lines per second per worker")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--line-chars", type=int, default=60, help="characters of each line (after its label)")
    parser.add_argument("--non-ascii", action="store_true", help="a ✓ in each line")
    return parser.parse_args()


def rss_mib(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def make_project(
    root: Path, workers: int, rate: int, seconds: float, line_chars: int = 60, non_ascii: bool = False
) -> Path:
    repo = root / "repo"
    repo.mkdir()
    (root / "printer.py").write_text(PRINTER)
    nodes = [{"id": "start", "label": "Start", "type": "terminal"}, {"id": "end", "label": "End", "type": "terminal"}]
    edges = []
    contents = {}
    for i in range(workers):
        node = f"n{i:02d}"
        nodes.insert(-1, {"id": node, "label": node, "type": "process"})
        edges += [{"from": "start", "to": node}, {"from": node, "to": "end"}]
        contents[node] = {"title": node, "overview": "prints", "code": {"files": [f"src/{node}.py"]}}
    doc = {"version": "0.1.0", "meta": {"title": "flood"}, "graph": {"nodes": nodes, "edges": edges}}
    doc["contents"] = contents
    (repo / "algorithm-map.json").write_text(json.dumps(doc))
    mark = " ✓" if non_ascii else ""
    argv = [sys.executable, str(root / "printer.py"), str(rate), str(seconds), "{node_id}", str(line_chars), mark]
    reviewer = [sys.executable, "-c", "print('CLEAN')"]  # never reached; preflight wants a program that exists
    (repo / "foreman.toml").write_text(
        f'max_parallel = {workers}\nstop_grace = 1\n[worker]\npreset = "command"\nargv = {json.dumps(argv)}\n'
        f'[reviewer]\npreset = "command"\nargv = {json.dumps(reviewer)}\n'
    )
    for args in (["init", "-q", "-b", "main"], ["config", "user.email", "b@x"], ["config", "user.name", "b"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "flood"], cwd=repo, check=True)
    map_path = repo / "algorithm-map.json"
    # The bench wrote these commands itself: approved as `foreman trust --yes` would.
    approve_project(Project.load(map_path), who="bench")
    return map_path


async def flood(map_path: Path, workers: int, seconds: float) -> dict[str, object]:
    project = Project.load(map_path)
    app = ForemanApp(project, project.settings)
    presses: list[tuple[float, float]] = []  # (seconds into the flood, latency)
    lags: list[float] = []
    memory: list[tuple[float, float]] = []
    async with app.run_test(size=(150, 44)) as pilot:
        service = app.service
        while len(service.running()) < workers:
            await pilot.pause(0.05)
        start = time.monotonic()
        stop = asyncio.Event()

        async def sample_lag() -> None:  # how late a 50 ms timer fires: the loop's responsiveness
            while not stop.is_set():
                planned = time.monotonic() + 0.05
                await asyncio.sleep(0.05)
                lags.append(max(0.0, time.monotonic() - planned))

        sampler = asyncio.create_task(sample_lag())
        next_mem = start
        while (now := time.monotonic()) - start < seconds:
            if now >= next_mem:
                memory.append((round(now - start, 1), round(rss_mib(), 1)))
                next_mem = now + 1.0
            log = app.screen.query_one(AnsiLog)
            before = log.auto_scroll
            pressed = time.monotonic()
            # What the terminal driver does with a keystroke: a Key event into the App's queue.
            app.post_message(events.Key("f", "f"))
            while log.auto_scroll == before:
                await asyncio.sleep(0.001)
            presses.append((pressed - start, time.monotonic() - pressed))
            await asyncio.sleep(0.25)
        stop.set()
        await sampler
        lines = sum(feed.written for feed in service.feeds.values())
        kept = max(len(feed.lines) for feed in service.feeds.values())
        kept_bytes = max(
            getattr(feed, "bytes", 0) or sum(map(sys.getsizeof, feed.lines)) for feed in service.feeds.values()
        )
        widget = app.screen.query_one(AnsiLog)
        shown = len(widget.lines)
        shown_bytes = sum(map(sys.getsizeof, widget.lines))
        longest = max(len(line) for feed in service.feeds.values() for line in feed.lines)
        service.stop()
        while not service.finished:
            await pilot.pause(0.1)
    return {
        "workers": workers,
        "seconds": seconds,
        "lines_received": lines,
        "lines_per_second": round(lines / seconds),
        "kept_per_node_max": kept,
        "kept_bytes_per_node_max": kept_bytes,
        "longest_line_kept": longest,
        "log_widget_lines": shown,
        "log_widget_bytes": shown_bytes,
        "key_latency_ms": key_figures(presses),
        "loop_lag_ms": spread(lags),
        "rss_mib_over_time": memory,
    }


def main() -> None:
    args = arguments(__doc__)
    with tempfile.TemporaryDirectory(prefix="foreman-flood-") as folder:
        seconds = args.seconds + 30
        map_path = make_project(Path(folder), args.workers, args.rate, seconds, args.line_chars, args.non_ascii)
        result = asyncio.run(flood(map_path, args.workers, args.seconds))
    result["rate_asked_per_worker"] = args.rate
    result["line_chars"] = args.line_chars
    result["non_ascii"] = args.non_ascii
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
