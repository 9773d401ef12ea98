"""The data behind ``foreman validate``, ``plan`` and ``status``, as JSON-ready dicts.

The CLI prints these either as JSON (``--json``; documented in docs/json-output.md) or rendered for a
person, so the two can never disagree.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..config import Settings
from ..map._gc import gc_paused
from ..map.model import LEVELS, NODE_TYPES
from ..map.store import FOREMAN_DIR
from .project import CheckRef, Project, checkpoint_path
from .runstate import RUN_PHASE_NAMES, RunState, RunStore, run_is_live
from .scheduler import DEFAULT_MAX_PARALLEL, simulate, waiting_on


def _files_json(project: Project, node_id: str) -> dict[str, Any]:
    owned = project.owned[node_id]
    return {"files": list(owned.files), "source": owned.source, "detail": owned.detail}


def _check_counts(checks: list[CheckRef]) -> dict[str, dict[str, int]]:
    counts = {level: {"with_cmd": 0, "without_cmd": 0} for level in LEVELS}
    for check in checks:
        counts[check.level]["with_cmd" if check.runnable else "without_cmd"] += 1
    return counts


def validate_report(project: Project) -> dict[str, Any]:
    graph = project.graph
    by_type = Counter(graph.types.values())
    all_checks = [c for n in graph.node_ids for c in project.node_checks(n)]
    all_checks += [c for r in graph.regions for c in project.region_own_checks(r.index)]
    return {
        "ok": True,
        "map": project.doc.source,
        "title": project.doc.model.meta.title,
        "nodes": {t: by_type.get(t, 0) for t in NODE_TYPES},
        "edges": len(project.doc.model.graph.edges),
        "back_edges": [_back_edge_json(e) for e in graph.back_edges],
        "regions": [
            {"key": r.key, "label": r.label, "nodes": len(r.nodes), "process_nodes": len(r.process_nodes)}
            for r in graph.regions
        ],
        "checks": _check_counts(all_checks),
        "files": {n: _files_json(project, n) for n in graph.process_order},
        "commands": commands_report(project),
        **agents_report(project),
        "warnings": [w.to_json() for w in project.warnings],
    }


def commands_report(project: Project) -> list[dict[str, Any]]:
    """Every command of the map (checks with a ``cmd``, the benchmark), with its JSON path and when it runs."""
    out = []
    region_index: dict[str, int] = {}  # owner → the first region with that key, as a scan of the regions finds it
    for r in project.graph.regions:
        region_index.setdefault(f"region:{r.key}", r.index)
    for check, when in project.check_schedule():
        if not check.runnable:
            continue
        if check.owner.startswith("region:"):
            source = f"graph.regions[{region_index[check.owner]}].verify.{check.phase}[{check.index}].cmd"
        else:
            source = f"contents.{check.owner}.verify.{check.phase}[{check.index}].cmd"
        out.append({"cmd": check.item.cmd, "source": source, "level": check.level, "when": when})
    bench = project.doc.model.meta.benchmark
    if bench is not None and bench.cmd:
        out.append(
            {"cmd": bench.cmd, "source": "meta.benchmark.cmd", "level": "L3", "when": "at the end, after the L3 checks"}
        )
    return out


def agents_report(project: Project, settings: Settings | None = None) -> dict[str, Any]:
    """What else runs: each agent role with its preset, permissions and the commands foreman.toml adds; the
    settings map commands run with."""
    from ..agents.presets import make_agent, permission_profile
    from .trust import agent_config_items, agent_items, setting_items

    settings = settings or project.settings
    added = agent_items(settings, project.doc.project_dir)
    agents = []
    for role in ("worker", "reviewer"):
        agent = make_agent(getattr(settings, role))
        agents.append(
            {
                "role": role,
                "preset": agent.preset,
                "permissions": permission_profile(agent, role),
                "sandbox": getattr(settings, role).sandbox,
                "commands": [i.to_json() for i in added if f"{role}." in i.source],
            }
        )
    return {
        "agents": agents,
        "settings": [i.to_json() for i in setting_items(settings, project.doc.project_dir)],
        "checks_sandbox": settings.checks.sandbox,
        "agent_files": [i.to_json() for i in agent_config_items(project.doc.project_dir)],
    }


def _back_edge_json(edge: Any) -> dict[str, Any]:
    return {"from": edge.source, "to": edge.target, "label": edge.label, "edge_index": edge.index}


def plan_report(project: Project, max_parallel: int | None = None) -> dict[str, Any]:
    with gc_paused():
        return _plan_report(project, max_parallel)


def _plan_report(project: Project, max_parallel: int | None) -> dict[str, Any]:
    graph = project.graph
    parallel = max_parallel or project.settings.max_parallel or DEFAULT_MAX_PARALLEL
    verified = project.verified()
    batches = simulate(graph, project.files, verified, parallel)
    overlaps: dict[tuple[str, str], list[str]] = {}
    holders: dict[str, list[str]] = {}
    for node in graph.process_order:
        for path in project.owned[node].files:
            for other in holders.get(path, ()):
                overlaps.setdefault((other, node), []).append(path)
            holders.setdefault(path, []).append(node)
    nodes = {}
    for node in graph.process_order:
        upstream = list(graph.upstream[node])
        nodes[node] = {
            "label": graph.labels[node],
            "status": project.status_of(node),
            **_files_json(project, node),
            "upstream": upstream,
            "upstream_checkpoints": [checkpoint_path(u) for u in upstream],
            "checks": [c.to_json() for c in project.node_checks(node)],
        }
    return {
        "map": project.doc.source,
        "max_parallel": parallel,
        "already_verified": sorted(n for n in verified if graph.types[n] == "process"),
        "order": graph.process_order,
        "back_edges": [_back_edge_json(e) for e in graph.back_edges],
        "batches": [
            {"index": i, "nodes": b.start, "waits": [w.to_json() for w in b.waits]}
            for i, b in enumerate(batches, start=1)
        ],
        "overlaps": [{"nodes": list(pair), "files": files} for pair, files in overlaps.items()],
        "nodes": nodes,
        "regions": [
            {
                "key": r.key,
                "label": r.label,
                "process_nodes": list(r.process_nodes),
                "checks": [c.to_json() for c in project.region_checks(r.index)],
            }
            for r in graph.regions
        ],
        "end_checks": [c.to_json() for c in project.end_checks()],
        "benchmark": _benchmark(project),
        "commands": commands_report(project),
        **agents_report(project),
        "warnings": [w.to_json() for w in project.warnings],
    }


def _benchmark(project: Project) -> dict[str, Any] | None:
    meta = project.doc.raw.get("meta", {})
    return meta.get("benchmark")


def _stale(project: Project, run: RunState | None) -> dict[str, str]:
    """Verified nodes whose contract changed since (``fingerprint.py``): what the next run re-verifies."""
    from .fingerprint import find_stale

    if run is None:
        return {}
    verified = {n: r.fingerprint for n, r in run.nodes.items() if r.phase == "verified" and r.fingerprint is not None}
    return find_stale(project, verified)


def _spend(project: Project, run: RunState | None) -> dict[str, Any]:
    """What the run spent (every call that reported or priced its cost) against its budgets."""
    settings = project.settings
    raised = run.budget_raised if run else 0.0
    return {
        "total_usd": round(run.spent(), 6) if run else 0.0,
        "budget_usd": settings.budget_usd + raised if settings.budget_usd is not None else None,
        "node_budget_usd": settings.node_budget_usd,
    }


def status_report(project: Project) -> dict[str, Any]:
    graph = project.graph
    verified = project.verified()
    run = RunStore(project.doc.project_dir / FOREMAN_DIR).load()
    live = run_is_live(project.doc.project_dir)
    stale = _stale(project, run)
    nodes = []
    for node in graph.order:
        entry: dict[str, Any] = {
            "id": node,
            "label": graph.labels[node],
            "type": graph.types[node],
            "status": project.status_of(node),
        }
        if graph.types[node] == "process":
            entry["waiting_on"] = waiting_on(graph, node, verified) if node not in verified else []
            entry["regions"] = [r.key for r in graph.regions_of(node)]
            nr = run.nodes.get(node) if run else None
            phase = RUN_PHASE_NAMES.get(nr.phase) if nr is not None and node not in verified else None
            if nr is not None and phase is not None:
                interrupted = not live and phase in ("running", "checking", "reviewing", "merging")
                entry["phase"] = f"interrupted while {phase}" if interrupted else phase
                entry["attempt"] = nr.attempt
            entry["stale"] = stale.get(node) or (nr.stale if nr is not None else "")
            entry["cost_usd"] = round(nr.cost_usd, 6) if nr is not None else 0.0
            entry["rate_limited"] = nr.rate_limited if nr is not None and live else ""
            entry["retry_at"] = nr.retry_at if nr is not None and live else None
        elif graph.types[node] == "decision":
            entry["feeders_verified"] = graph.decision_verified(node, verified)
        nodes.append(entry)
    process = graph.process_order
    regions = []
    for r in graph.regions:
        done = sum(n in verified for n in r.process_nodes)
        regions.append(
            {
                "key": r.key,
                "label": r.label,
                "verified": done,
                "total": len(r.process_nodes),
                "complete": graph.region_complete(r, verified),
                "line": f'Region "{r.label}": {done}/{len(r.process_nodes)} verified',
            }
        )
    counts = Counter(project.status_of(n) for n in process)
    done = counts.get("verified", 0)
    pauses = [
        {
            "node": n,
            "id": r.pause.id,
            "trigger": r.pause.trigger,
            "problem": r.pause.problem,
            "tried": r.pause.tried,
            "options": [o.model_dump() for o in r.pause.options],
            "source": r.pause.source,
            "suspect": r.pause.suspect,
        }
        for n, r in (run.nodes.items() if run else [])
        if r.phase == "paused" and r.pause is not None
    ]
    failed = sorted(n for n, r in (run.nodes.items() if run else []) if r.phase == "failed")
    return {
        "map": project.doc.source,
        "title": project.doc.model.meta.title,
        "live": live,
        "nodes": nodes,
        "regions": regions,
        "pauses": pauses,
        "failed": failed,
        "feedback_unmatched": [m.model_dump() for m in run.feedback_unmatched] if run else [],
        "spend": _spend(project, run),
        "totals": {
            "process_nodes": len(process),
            "verified": done,
            "by_status": dict(counts),
            "complete": bool(process) and done == len(process) and not stale,
            "stale": sum(1 for n in nodes if n.get("stale")),
        },
    }
