"""``foreman reset MAP NODE [--cascade]``: send a node back to its worker (SPEC §9, §11).

One operation, wherever it comes from: the node goes back to ``not_started`` (its worker is dispatched on the
next run, on the current integration branch); the verified nodes after it become stale (re-checked and
re-reviewed), or with ``--cascade`` are reset too. A live run does it itself: the TUI's reset and a ``foreman
reset`` sent to it from another terminal (a command file it picks up within a second) both end in
``Commands.reset_node``. With no run, this module applies the same plan to the run state and the map under the
repository's run lock.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from ..map.errors import UsageError
from ..map.store import MapStore, atomic_write, foreman_dir, take_records
from .gitrepo import Repo
from .graph import FlowGraph
from .lifecycle import Lifecycle, Phase
from .runstate import NodeRun, RunLock, RunState, RunStore


@dataclass(frozen=True, slots=True)
class ResetPlan:
    """What a reset does: the nodes sent back to their worker, and the verified ones after them made stale."""

    resets: list[str]
    stale: dict[str, str] = field(default_factory=dict)


def plan_reset(graph: FlowGraph, phases: dict[str, Phase], node: str, cascade: bool) -> ResetPlan:
    """The plan for resetting ``node`` given each process node's phase (raises ``UsageError`` for a node that
    is not a process node of the map)."""
    if node not in graph.types:
        raise UsageError(f"{node} is not a node of this map")
    if graph.types[node] != "process":
        raise UsageError(f"{node} is a {graph.types[node]} node; only process nodes have a worker to send back to")
    after = graph.dependants(node)
    if cascade:
        started = [n for n in after if phases.get(n, Phase.PENDING) != Phase.PENDING]
        return ResetPlan([node, *started])
    stale = {n: f"{node} was reset" for n in after if phases.get(n) == Phase.VERIFIED}
    return ResetPlan([node], stale)


def fresh_run(nr: NodeRun, reason: str) -> NodeRun:
    """A node's run record after a reset: its work forgotten, its attempts, cost and history kept."""
    return NodeRun(
        attempt=nr.attempt, round_start=nr.attempt, history=[*nr.history, f"reset: {reason}"], cost_usd=nr.cost_usd
    )


def stale_fields(nr: NodeRun, reason: str) -> dict[str, Any]:
    """The changes to a verified node's run record when it becomes stale: its old tree and commits forgotten (it
    is re-checked where it is merged), a new round."""
    return {
        "stale": reason,
        "base": None,
        "head": None,
        "attempt_from": None,
        "merged": None,
        "check_failures": {},
        "failure_outputs": {},
        "no_commit": 0,
        "review_round": 0,
        "round_start": nr.attempt,
        "pending_message": None,
        "history": [*nr.history, f"stale: {reason}"],
    }


# ------------------------------------------------------------------------------- to a live run


class ResetCommand(BaseModel):
    node: str
    cascade: bool = False
    who: str = "cli"
    at: float = Field(default_factory=time.time)


def commands_dir(home: Path) -> Path:
    return home / "commands"


def send_reset(home: Path, command: ResetCommand) -> Path:
    folder = commands_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{int(command.at * 1000)}-reset-{command.node}-{uuid.uuid4().hex[:6]}.json"
    atomic_write(path, command.model_dump_json().encode())
    return path


def take_resets(home: Path) -> list[ResetCommand]:
    """The reset commands left for the run, oldest first; each file is removed as it is taken."""
    return take_records(commands_dir(home), "*-reset-*.json", ResetCommand)


# ------------------------------------------------------------------------------------ no run


def reset_offline(map_path: Path, graph: FlowGraph, node: str, cascade: bool, who: str) -> ResetPlan:
    """Apply a reset with no run going on: under the run lock, the map's status (committed), then the run state.
    The next run dispatches the reset nodes and re-checks the stale ones."""
    repo = Repo(map_path.parent)
    home = foreman_dir(map_path.parent)
    lock = RunLock(repo.common_dir)
    lock.acquire()
    try:
        runs = RunStore(home)
        state = runs.load() or RunState()
        phases = {n: r.phase for n, r in state.nodes.items()}
        plan = plan_reset(graph, phases, node, cascade)
        # The map first: a crash after it leaves run.json saying verified while the map does not, which the
        # next start reads as what it is (the map's word: dispatch the reset node, re-check the stale ones).
        store = MapStore(map_path)
        changes = {n: {"status": "not_started"} for n in plan.resets}
        changes.update({n: {"status": "implemented"} for n in plan.stale})
        store.set_states(changes)
        repo.commit_file(map_path, store.state_over, f"foreman: {node} reset by {who}")
        for target in plan.resets:
            state.nodes[target] = fresh_run(state.node(target), f"reset by {who}")
            if state.isolation == "worktree":
                repo.remove_worktree(target, home / "worktrees" / target)
        lifecycle = Lifecycle(state, runs)  # the moves of a live run, saved the same way
        for target, reason in plan.stale.items():
            lifecycle.move(target, Phase.STALE, **stale_fields(state.node(target), reason))
        for stage in stages_of(graph, {*plan.resets, *plan.stale}):
            state.stages.pop(stage, None)
        runs.save(state)
    finally:
        lock.release()
    return plan


def stages_of(graph: FlowGraph, nodes: set[str]) -> list[str]:
    """The stages that run again once ``nodes`` are verified again: their regions', decisions' and the end."""
    stages = [f"region:{r.key}" for r in graph.regions if nodes & set(r.nodes)]
    stages += [f"decision:{d}" for d, feeders in graph.decision_feeders.items() if nodes & set(feeders)]
    return [*stages, "end"]


def describe(plan: ResetPlan) -> str:
    text = f"reset: {', '.join(plan.resets)} (dispatched on the next run)"
    if plan.stale:
        text += f"; stale: {', '.join(plan.stale)} (checked and reviewed again)"
    return text
