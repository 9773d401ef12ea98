"""What may run next: the ready set, the next batch under ``max_parallel`` and file ownership, and the
dry-run simulation ``foreman plan`` prints. Pure functions; the supervisor calls the same ones."""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from .graph import FlowGraph

DEFAULT_MAX_PARALLEL = 3


@dataclass(frozen=True, slots=True)
class Wait:
    """Why a ready node did not start: it shares files with a running/chosen node, or no slot is free."""

    node: str
    kind: str  # "files" | "slot"
    blocker: str | None = None
    files: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.kind == "files":
            return f"waits: shares {', '.join(self.files)} with {self.blocker}"
        return "waits: no free slot (max_parallel reached)"

    def to_json(self) -> dict[str, object]:
        return {
            "node": self.node,
            "kind": self.kind,
            "blocker": self.blocker,
            "files": list(self.files),
            "reason": str(self),
        }


@dataclass(slots=True)
class Batch:
    start: list[str] = field(default_factory=list)
    waits: list[Wait] = field(default_factory=list)


def ready_nodes(graph: FlowGraph, verified: Collection[str], exclude: Collection[str] = ()) -> list[str]:
    """Process nodes not verified (nor excluded: running, paused, failed) whose upstream is all verified,
    in implementation order."""
    return [
        n
        for n in graph.process_order
        if n not in verified and n not in exclude and all(u in verified for u in graph.upstream[n])
    ]


def waiting_on(graph: FlowGraph, node_id: str, verified: Collection[str]) -> list[str]:
    """The upstream process nodes ``node_id`` still waits for."""
    return [u for u in graph.upstream.get(node_id, ()) if u not in verified]


def next_batch(
    candidates: Iterable[str],
    files: Mapping[str, Collection[str]],
    running: Collection[str] = (),
    max_parallel: int = DEFAULT_MAX_PARALLEL,
    holding: Collection[str] = (),
) -> Batch:
    """Choose which of ``candidates`` (ready nodes, best first) start now, next to ``running`` (nodes whose worker
    runs or is about to: each takes a slot) and ``holding`` (nodes past their worker, being checked, reviewed or
    merged: they take no slot but still own their files).

    A candidate never starts beside a running, holding or chosen node that owns one of its files; it records
    whom it waits for. Candidates are consumed lazily and examination stops once every slot is taken, so a
    caller may pass a generator over a large ready queue."""
    if max_parallel < 1:
        raise ValueError(f"max_parallel must be at least 1, got {max_parallel}")
    batch = Batch()
    holders: dict[str, str] = {}
    for node in [*running, *holding]:
        for path in files.get(node, ()):
            holders.setdefault(path, node)
    slots = max_parallel - len(running)
    for node in candidates:
        if slots <= 0:
            batch.waits.append(Wait(node, "slot"))
            break
        owned = files.get(node, ())
        clash = [path for path in owned if path in holders]
        if clash:
            blocker = holders[clash[0]]
            batch.waits.append(Wait(node, "files", blocker, tuple(p for p in clash if holders[p] == blocker)))
            continue
        batch.start.append(node)
        slots -= 1
        for path in owned:
            holders[path] = node
    return batch


def simulate(
    graph: FlowGraph,
    files: Mapping[str, Collection[str]],
    verified: Collection[str] = (),
    max_parallel: int = DEFAULT_MAX_PARALLEL,
) -> list[Batch]:
    """The batches a run would go through if every node verified: each batch starts what
    :func:`next_batch` allows, all of it verifies, and the next batch starts from the new ready set."""
    done = set(verified)
    pending = {n: sum(u not in done for u in graph.upstream[n]) for n in graph.process_order if n not in done}
    queue = [graph.rank(n) for n, count in pending.items() if count == 0]
    heapq.heapify(queue)
    order = graph.order
    batches: list[Batch] = []

    def candidates(popped: list[int]) -> Iterable[str]:
        while queue:
            popped.append(heapq.heappop(queue))
            yield order[popped[-1]]

    while queue:
        popped: list[int] = []
        batch = next_batch(candidates(popped), files, (), max_parallel)
        started = set(batch.start)
        for rank in popped:
            if order[rank] not in started:
                heapq.heappush(queue, rank)
        batch.waits = [w for w in batch.waits if w.kind == "files"]
        batches.append(batch)
        for node in batch.start:
            for child in graph.downstream(node):
                if child in pending:
                    pending[child] -= 1
                    if pending[child] == 0:
                        heapq.heappush(queue, graph.rank(child))
    return batches
