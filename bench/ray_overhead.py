"""What running attempts on Ray costs: the same map of N independent nodes whose agent takes a fixed time, run
by foreman with the local executor and with the Ray executor on a local Ray cluster (a head and two worker
nodes started here, in this process; foreman connects to it as it would to any cluster).

    python bench/ray_overhead.py [--nodes 24] [--parallel 8] [--agent-seconds 1.0] [--repeat 2] [--json]

The map, agent and reviewer are bench/overhead.py's (a shell agent that sleeps, writes its file and commits; a
`true` check; a reviewer that prints CLEAN). Every worker and reviewer attempt is a Ray actor on a worker node
(``resources = {agent = 1}``, ``num_cpus = 0``). Reported: the wall time of each run, and per attempt, from the
event log, the median time from its worker's start to its exit beyond the agent's own seconds (with Ray: the
clone, the guard, the polls, the last fetch and the actor's end) and from the exit to the node verified.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import Project, _repo, approve_project, time_run, where_time_went


def run(folder: Path, nodes: int, parallel: int, seconds: float, ray_address: str | None) -> dict[str, Any]:
    repo = _repo(folder, nodes, parallel)
    if ray_address is not None:
        with open(repo / "foreman.toml", "a") as toml:
            toml.write('\n[executor]\nkind = "ray"\nnum_cpus = 0\nresources = { agent = 1 }\n')
        subprocess.run(["git", "commit", "-qam", "on Ray"], cwd=repo, check=True)
        approve_project(Project.load(repo / "algorithm-map.json"), who="bench")  # foreman.toml changed
    env = {"AGENT_SECONDS": str(seconds)}
    if ray_address is not None:
        env |= {"RAY_ADDRESS": ray_address, "RAY_AUTH_MODE": "disabled"}
    wall, events = time_run(repo, env)
    breakdown = where_time_went(events)
    workers = [e for e in events if e["kind"] == "WorkerExited" and e["detail"]["role"] == "worker"]
    attempt = [e["detail"]["duration"] for e in workers]
    return {
        "wall_s": round(wall, 2),
        "attempt_beyond_agent_s": round(statistics.median(attempt) - seconds, 3),
        "attempt_max_s": round(max(attempt), 3),
        "per_node_median_s": {k: round(v, 3) for k, v in breakdown.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=24)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--agent-seconds", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["AGENT_SECONDS"] = str(args.agent_seconds)  # the agents on the Ray nodes get the nodes' environment
    from ray.cluster_utils import Cluster

    checks = {"health_check_period_ms": 500, "health_check_timeout_ms": 500, "health_check_failure_threshold": 3}
    head = {"num_cpus": 0, "resources": {"head": 1}, "include_dashboard": False, "_system_config": checks}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=4, resources={"agent": 8})
        cluster.wait_for_nodes()
        results: dict[str, list[dict[str, Any]]] = {"local": [], "ray": []}
        for _ in range(args.repeat):
            for kind, address in (("local", None), ("ray", cluster.address)):
                with tempfile.TemporaryDirectory(prefix=f"foreman-ray-bench-{kind}-") as tmp:
                    results[kind].append(run(Path(tmp), args.nodes, args.parallel, args.agent_seconds, address))
    finally:
        cluster.shutdown()
    summary = {
        "nodes": args.nodes,
        "parallel": args.parallel,
        "agent_seconds": args.agent_seconds,
        **{
            kind: {
                "wall_s": [r["wall_s"] for r in runs],
                "attempt_beyond_agent_s": statistics.median(r["attempt_beyond_agent_s"] for r in runs),
                "attempt_max_s": max(r["attempt_max_s"] for r in runs),
                "per_node_median_s": runs[-1]["per_node_median_s"],
                "exit_to_verified_s": statistics.median(
                    sum(v for k, v in r["per_node_median_s"].items() if not k.startswith(("worker started", "commit")))
                    for r in runs
                ),
            }
            for kind, runs in results.items()
        },
    }
    local, ray = summary["local"], summary["ray"]
    summary["ray_extra_per_attempt_s"] = round(ray["attempt_beyond_agent_s"] - local["attempt_beyond_agent_s"], 3)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{args.nodes} nodes × {args.agent_seconds:g} s agents, {args.parallel} at once")
        for kind in ("local", "ray"):
            s = summary[kind]
            walls = ", ".join(f"{w:.2f}" for w in s["wall_s"])
            print(
                f"  {kind:5}  wall {walls} s; an attempt takes {s['attempt_beyond_agent_s']:.3f} s beyond the agent "
                f"(max {s['attempt_max_s']:.2f} s); exit → verified {s['exit_to_verified_s']:.2f} s"
            )
        print(f"  Ray adds {summary['ray_extra_per_attempt_s']:.3f} s per attempt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
