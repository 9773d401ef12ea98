"""Load + validate + plan time for a synthetic map of N nodes (default 10,000).

    python bench/plan_scale.py [--nodes 10000] [--repeat 5]

The map is shaped like real ones, scaled up: chains of process nodes grouped in regions of 20, a decision
closing a loop in every region, fan-in between neighbouring chains, owned files with some sharing, and
L1/L2 checks with commands. Prints one line per phase (median of the repeats) and the total.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from foreman_tui.cli import load_project
from foreman_tui.engine.reports import plan_report


def synthetic_map(total: int, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    nodes: list[dict[str, Any]] = [{"id": "start", "label": "Start", "type": "terminal"}]
    edges: list[dict[str, str]] = []
    regions: list[dict[str, Any]] = []
    contents: dict[str, Any] = {}
    previous_exit = "start"
    exits: list[str] = []
    region_size = 20
    index = 0
    while len(nodes) < total - 1:
        members = []
        entry = None
        last = None
        for _ in range(min(region_size, total - 1 - len(nodes))):
            index += 1
            is_decision = len(members) == region_size - 2
            node_id = f"n{index:05d}"
            nodes.append({"id": node_id, "label": f"Node {index}", "type": "decision" if is_decision else "process"})
            members.append(node_id)
            if last is None:
                edges.append({"from": previous_exit, "to": node_id})
                if exits and rng.random() < 0.5:
                    edges.append({"from": rng.choice(exits[-5:]), "to": node_id})
                entry = node_id
            else:
                edges.append({"from": last, "to": node_id})
            if is_decision and entry is not None:
                edges.append({"from": node_id, "to": entry, "label": "again"})
            if not is_decision:
                module = f"pkg/m{index // 3}.py"  # three consecutive nodes share a module
                contents[node_id] = {
                    "title": f"Node {index}",
                    "overview": "Synthetic step.",
                    "implementation": f"Files: `{module}`, `pkg/own_{index}.py`",
                    "verify": {
                        "pre": [{"desc": "input present", "check": "x is not None"}],
                        "core": [
                            {"desc": "unit", "level": "L1", "cmd": f"pytest tests/test_{index}.py"},
                            {"desc": "integration", "level": "L2", "method": "compare"},
                        ],
                        "post": [{"desc": "output shape", "check": "len(y) > 0"}],
                    },
                }
            last = node_id
        exits.append(last or previous_exit)
        previous_exit = last or previous_exit
        regions.append({"id": f"r{len(regions)}", "label": f"Region {len(regions)}", "nodes": members})
    nodes.append({"id": "end", "label": "End", "type": "terminal"})
    edges.append({"from": previous_exit, "to": "end"})
    return {
        "version": "0.1.0",
        "meta": {"title": f"synthetic {total}"},
        "graph": {"nodes": nodes, "edges": edges, "regions": regions},
        "contents": contents,
    }


def child(path: str) -> None:
    """One cold run, as `foreman plan --json` does it; prints the phase timings as JSON on stderr."""
    t0 = time.perf_counter()
    project = load_project(path)  # exactly what the CLI does
    t1 = time.perf_counter()
    report = plan_report(project)
    t2 = time.perf_counter()
    with open(os.devnull, "w", encoding="utf-8") as sink:
        sink.write(json.dumps(report, ensure_ascii=False, indent=2))  # as the CLI writes it
    t3 = time.perf_counter()
    shape = {
        "process": len(project.graph.process_order),
        "edges": len(project.doc.model.graph.edges),
        "back_edges": len(project.graph.back_edges),
        "batches": len(report["batches"]),
    }
    print(json.dumps({"load": t1 - t0, "plan": t2 - t1, "dump": t3 - t2, **shape}), file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--child", metavar="MAP", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "algorithm-map.json"
        path.write_text(json.dumps(synthetic_map(args.nodes), indent=2), encoding="utf-8")
        runs, walls = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(path)], capture_output=True, text=True, check=True
            )
            walls.append(time.perf_counter() - t0)
            runs.append(json.loads(done.stderr.strip().splitlines()[-1]))

        def median_ms(key: str) -> str:
            return f"{statistics.median(r[key] for r in runs) * 1000:.0f} ms"

        first = runs[0]
        totals = [r["load"] + r["plan"] for r in runs]
        print(
            f"map: {args.nodes} nodes ({first['process']} process), {first['edges']} edges, "
            f"{first['back_edges']} back edges, {path.stat().st_size / 1e6:.1f} MB, {first['batches']} batches"
        )
        print(f"load+validate: median {median_ms('load')}")
        print(f"plan:          median {median_ms('plan')}")
        print(
            f"load+validate+plan: median {statistics.median(totals) * 1000:.0f} ms, "
            f"max {max(totals) * 1000:.0f} ms ({args.repeat} cold runs, Python {sys.version.split()[0]})"
        )
        print(f"JSON output:   median {median_ms('dump')}")
        print(
            f"whole process (interpreter start, imports, all of the above): "
            f"median {statistics.median(walls) * 1000:.0f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
