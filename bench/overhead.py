"""foreman's own cost: N independent nodes whose agent takes a fixed time, against GNU parallel running the same
agents at the same parallelism.

    python bench/overhead.py [--nodes 24] [--parallel 4] [--agent-seconds 1.0] [--repeat 3] [--json]

Each node's agent is the same small shell script (sleep, write its file and checkpoint, commit with the trailer);
its L1 check is `true` and its reviewer prints CLEAN. foreman runs the map headless (worktrees, commit detection,
checks, review, merges, the map's state); GNU parallel runs the agents alone, each in a ready-made worktree. The
ratio of the wall times is the cost of the orchestration. The event log says where foreman's time went per node:
from the worker's exit to its commit being seen, the checks, the reviewer, the merge and the record.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from foreman_tui.engine.project import Project  # noqa: E402
from foreman_tui.engine.trust import approve_project  # noqa: E402

AGENT = """#!/bin/sh
# One node's agent: work for a while, write the node's file and checkpoint, commit with the trailer.
node="${FOREMAN_NODE_ID:-$1}"
sleep "$AGENT_SECONDS"
mkdir -p pkg _checkpoints
printf 'VALUE = "%s"\\n' "$node" > "pkg/$node.py"
printf '{"node_id": "%s", "input_from": [], "output": {"ok": true}}\\n' "$node" > "_checkpoints/$node.json"
git add -- "pkg/$node.py" "_checkpoints/$node.json"
git commit -q -m "$node" -m "Foreman-Node: $node" -- "pkg/$node.py" "_checkpoints/$node.json"
"""


def _map(nodes: int) -> dict[str, Any]:
    ids = [f"n{i:02d}" for i in range(1, nodes + 1)]
    graph_nodes = [{"id": "start", "label": "Start", "type": "terminal"}]
    graph_nodes += [{"id": n, "label": n, "type": "process"} for n in ids]
    graph_nodes.append({"id": "end", "label": "End", "type": "terminal"})
    edges = [{"from": "start", "to": n} for n in ids] + [{"from": n, "to": "end"} for n in ids]
    contents = {
        n: {
            "title": n,
            "overview": f"node {n}",
            "implementation": f"Files: `pkg/{n}.py`",
            "verify": {"core": [{"desc": "trivial", "level": "L1", "cmd": "true"}]},
        }
        for n in ids
    }
    return {
        "version": "0.1.0",
        "meta": {"title": "overhead"},
        "graph": {"nodes": graph_nodes, "edges": edges},
        "contents": contents,
    }


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def _repo(folder: Path, nodes: int, parallel: int) -> Path:
    repo = folder / "project"
    repo.mkdir(parents=True)
    agent = folder / "agent.sh"
    agent.write_text(AGENT)
    agent.chmod(0o755)
    (repo / "algorithm-map.json").write_text(json.dumps(_map(nodes), indent=2) + "\n")
    (repo / "foreman.toml").write_text(
        f"max_parallel = {parallel}\npoll = 0.5\nnotify = false\nnotify_desktop = false\n"
        f'[worker]\npreset = "command"\nargv = ["{agent}"]\n'
        '[reviewer]\npreset = "command"\nargv = ["sh", "-c", "echo CLEAN"]\n'
        f"[checks]\npython = {json.dumps(sys.executable)}\n"
    )
    for args in (["init", "-q", "-b", "main"], ["config", "user.name", "bench"], ["config", "user.email", "b@b"]):
        _git(repo, *args)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "map")
    # The bench wrote these commands itself: approved as `foreman trust --yes` would.
    approve_project(Project.load(repo / "algorithm-map.json"), who="bench")
    return repo


def run_foreman(folder: Path, nodes: int, parallel: int, seconds: float) -> tuple[float, list[dict[str, Any]]]:
    return time_run(_repo(folder, nodes, parallel), {"AGENT_SECONDS": str(seconds)})


def time_run(repo: Path, extra_env: dict[str, str]) -> tuple[float, list[dict[str, Any]]]:
    """`foreman run --headless --json` on the repository's map: its wall time and its events."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOREMAN_")} | extra_env
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "foreman_tui", "run", str(repo / "algorithm-map.json"), "--headless", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"foreman failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return wall, [json.loads(line) for line in done.stdout.splitlines()]


def run_parallel(folder: Path, nodes: int, parallel: int, seconds: float) -> float:
    repo = _repo(folder, nodes, parallel)
    trees = []
    for i in range(1, nodes + 1):
        tree = folder / "trees" / f"n{i:02d}"
        _git(repo, "worktree", "add", "-q", "-b", f"w/n{i:02d}", str(tree))
        trees.append(str(tree))
    env = os.environ | {"AGENT_SECONDS": str(seconds)}
    started = time.perf_counter()
    subprocess.run(
        ["parallel", "--will-cite", "-j", str(parallel), f"cd {{}} && {folder / 'agent.sh'} {{/}}", ":::", *trees],
        check=True,
        env=env,
        capture_output=True,
    )
    return time.perf_counter() - started


def where_time_went(events: list[dict[str, Any]]) -> dict[str, float]:
    """Median seconds per node between the steps of its life, from the event log."""
    marks: dict[str, dict[str, float]] = {}
    for event in events:
        node, kind, d, ts = event["node"], event["kind"], event["detail"], event["ts"]
        if node is None or not node.startswith("n"):
            continue
        m = marks.setdefault(node, {})
        if kind == "WorkerStarted" and d["role"] == "worker":
            m.setdefault("worker started", ts)
        elif kind == "WorkerExited" and d["role"] == "worker":
            m.setdefault("worker exited", ts)
        elif kind == "CommitDetected":
            m.setdefault("commit seen", ts)
        elif kind == "CheckFinished" and d["check"] == "checkpoint":
            m.setdefault("checks done", ts)
        elif kind == "WorkerStarted" and d["role"] == "reviewer":
            m.setdefault("reviewer started", ts)
        elif kind == "ReviewFinished":
            m.setdefault("review done", ts)
        elif kind == "NodeMerged":
            m.setdefault("merged", ts)
        elif kind == "NodeVerified":
            m.setdefault("verified", ts)
    steps = ["worker started", "worker exited", "checks done", "reviewer started", "review done", "merged", "verified"]
    out = {}
    for before, after in itertools.pairwise(steps):
        gaps = [m[after] - m[before] for m in marks.values() if before in m and after in m]
        if gaps:
            out[f"{before} → {after}"] = statistics.median(gaps)
    seen = [m["commit seen"] - m["worker exited"] for m in marks.values() if {"commit seen", "worker exited"} <= set(m)]
    if seen:
        out["commit seen after the worker's exit"] = statistics.median(seen)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=24)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--agent-seconds", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if shutil.which("parallel") is None:
        raise SystemExit("GNU parallel is not installed (apt-get install parallel)")
    foreman_walls, parallel_walls, breakdowns = [], [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="foreman-overhead-") as tmp:
            wall, events = run_foreman(Path(tmp) / "f", args.nodes, args.parallel, args.agent_seconds)
            foreman_walls.append(wall)
            breakdowns.append(where_time_went(events))
            parallel_walls.append(run_parallel(Path(tmp) / "p", args.nodes, args.parallel, args.agent_seconds))
    foreman_wall, parallel_wall = statistics.median(foreman_walls), statistics.median(parallel_walls)
    rounds = args.nodes / args.parallel
    result = {
        "nodes": args.nodes,
        "parallel": args.parallel,
        "agent_seconds": args.agent_seconds,
        "foreman_s": round(foreman_wall, 2),
        "gnu_parallel_s": round(parallel_wall, 2),
        "ratio": round(foreman_wall / parallel_wall, 3),
        "orchestration_per_node_on_critical_path_ms": round(1000 * (foreman_wall - parallel_wall) / rounds),
        "per_node_median_s": {
            k: round(statistics.median(b[k] for b in breakdowns if k in b), 3) for k in breakdowns[0]
        },
        "runs": {"foreman": [round(w, 2) for w in foreman_walls], "parallel": [round(w, 2) for w in parallel_walls]},
    }
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(f"{args.nodes} nodes × {args.agent_seconds:g} s agents, {args.parallel} at once")
        print(f"  GNU parallel  {parallel_wall:6.2f} s")
        per_node = result["orchestration_per_node_on_critical_path_ms"]
        print(f"  foreman       {foreman_wall:6.2f} s   ratio {result['ratio']:.2f}×, {per_node} ms per node")
        print("  per node (median):")
        for step, seconds in result["per_node_median_s"].items():
            print(f"    {step:<40} {1000 * seconds:7.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
