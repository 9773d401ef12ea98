"""Load + validate + plan time for a synthetic map of N nodes (default 10,000).

    python bench/plan_scale.py [--nodes 10000] [--repeat 7] [--shape regions|chain] [--commands validate,plan,status]

``--shape regions`` (the default) is shaped like real maps, scaled up: chains of process nodes grouped in
regions of 20, a decision closing a loop in every region, fan-in between neighbouring chains, owned files with
some sharing, and L1/L2 checks with commands. ``--shape chain`` is one long chain, start → n1 → … → end, every
node a process node with contents and an L1 check with a cmd (no regions).

Each run is a fresh process per command, doing what the CLI does: ``foreman validate MAP``, ``foreman plan MAP``
and ``foreman status MAP`` each load the project, build their report, and write it both as the rendered text
(to a null sink, as when piped) and as ``--json``. Prints one line per phase (median of the repeats).
"""

from __future__ import annotations

import argparse
import itertools
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

from foreman_tui.cli import load_project, render
from foreman_tui.engine.reports import plan_report, status_report, validate_report

REPORTS = {
    "validate": (validate_report, render.validate),
    "plan": (plan_report, render.plan),
    "status": (status_report, render.status),
}


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
        members: list[str] = []
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


def chain_map(total: int) -> dict[str, Any]:
    """start → n00001 → … → end: every node between the terminals a process node with contents and one L1
    check with a cmd."""
    ids = [f"n{i:05d}" for i in range(1, total - 1)]
    nodes = [{"id": "start", "label": "Start", "type": "terminal"}]
    nodes += [{"id": node_id, "label": f"Node {i}", "type": "process"} for i, node_id in enumerate(ids, start=1)]
    nodes.append({"id": "end", "label": "End", "type": "terminal"})
    chain = ["start", *ids, "end"]
    edges = [{"from": a, "to": b} for a, b in itertools.pairwise(chain)]
    contents = {
        node_id: {
            "title": f"Node {i}",
            "overview": "Synthetic step.",
            "implementation": f"Files: `pkg/own_{i}.py`",
            "verify": {"core": [{"desc": "unit", "level": "L1", "cmd": f"pytest tests/test_{i}.py"}]},
        }
        for i, node_id in enumerate(ids, start=1)
    }
    return {
        "version": "0.1.0",
        "meta": {"title": f"synthetic chain {total}"},
        "graph": {"nodes": nodes, "edges": edges, "regions": []},
        "contents": contents,
    }


SHAPES = {"regions": synthetic_map, "chain": chain_map}


def child(path: str, command: str) -> None:
    """One cold run of ``foreman COMMAND MAP`` and of ``--json``: prints the phase timings as JSON on stderr."""
    build, rendered = REPORTS[command]
    t0 = time.perf_counter()
    project = load_project(path)  # exactly what the CLI does
    t1 = time.perf_counter()
    report = build(project)
    t2 = time.perf_counter()
    stdout = sys.stdout
    with open(os.devnull, "w", encoding="utf-8") as sink:
        sys.stdout = sink  # the renderer writes to sys.stdout; a file, so plain text as when piped
        try:
            rendered(report)
        finally:
            sys.stdout = stdout
        t3 = time.perf_counter()
        sink.write(json.dumps(report, ensure_ascii=False, indent=2) + "\n")  # as the CLI writes --json
    t4 = time.perf_counter()
    shape = {
        "process": len(project.graph.process_order),
        "edges": len(project.doc.model.graph.edges),
        "back_edges": len(project.graph.back_edges),
        "batches": len(report.get("batches", ())),
    }
    timings = {"load": t1 - t0, "report": t2 - t1, "text": t3 - t2, "json": t4 - t3}
    print(json.dumps({**timings, **shape}), file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="regions")
    parser.add_argument(
        "--commands", default=",".join(REPORTS), help=f"which of {', '.join(REPORTS)} to time (default: all)"
    )
    parser.add_argument("--child", metavar="MAP", help=argparse.SUPPRESS)
    parser.add_argument("--command", choices=sorted(REPORTS), default="plan", help=argparse.SUPPRESS)
    args = parser.parse_args()
    commands = [c for c in args.commands.split(",") if c]
    if not commands or not set(commands) <= set(REPORTS):
        parser.error(f"--commands: a comma-separated list of {', '.join(REPORTS)}")
    if args.child:
        child(args.child, args.command)
        return 0
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "algorithm-map.json"
        path.write_text(json.dumps(SHAPES[args.shape](args.nodes), indent=2), encoding="utf-8")
        runs: dict[str, list[dict[str, Any]]] = {command: [] for command in commands}
        walls: dict[str, list[float]] = {command: [] for command in commands}
        for _ in range(args.repeat):
            for command in commands:
                t0 = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, __file__, "--child", str(path), "--command", command],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                walls[command].append(time.perf_counter() - t0)
                runs[command].append(json.loads(done.stderr.strip().splitlines()[-1]))

        def ms(values: list[float]) -> str:
            return f"{statistics.median(values) * 1000:.0f} ms"

        def median(command: str, *keys: str) -> str:
            return ms([sum(r[k] for k in keys) for r in runs[command]])

        first = runs[commands[0]][0]
        print(
            f"map ({args.shape}): {args.nodes} nodes ({first['process']} process), {first['edges']} edges, "
            f"{first['back_edges']} back edges, {path.stat().st_size / 1e6:.1f} MB; "
            f"medians of {args.repeat} cold runs, Python {sys.version.split()[0]}"
        )
        if "plan" in runs:
            print(f"batches: {runs['plan'][0]['batches']}")
            print(f"load + validate (load_project):  {median('plan', 'load')}")
            print(f"plan (plan_report):              {median('plan', 'report')}")
            totals = [r["load"] + r["report"] for r in runs["plan"]]
            print(f"load + validate + plan:          {ms(totals)} (max {max(totals) * 1000:.0f} ms)")
        for command in commands:
            print(
                f"foreman {command}: report {median(command, 'report')}, text {median(command, 'text')}, "
                f"--json {median(command, 'json')}; load + report + text {median(command, 'load', 'report', 'text')}"
                f", + --json {median(command, 'load', 'report', 'json')}; whole process (interpreter, imports, "
                f"text and --json) {ms(walls[command])}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
