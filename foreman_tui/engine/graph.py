"""The map's flowchart as a dependency structure: back edges, implementation order, upstream process
nodes (seen through decision and other non-process nodes), regions, and the decision auto-verify rule.

Pure functions over the model, no I/O. Built once per map; everything is precomputed so that the
scheduler's questions are cheap even for maps of thousands of nodes.
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Collection
from dataclasses import dataclass, field

from ..map.errors import Problem
from ..map.model import AlgorithmMap


@dataclass(frozen=True, slots=True)
class BackEdge:
    """An edge that closes a cycle; the scheduler ignores it for ordering."""

    index: int
    source: str
    target: str
    label: str | None = None

    def __str__(self) -> str:
        return f"{self.source}→{self.target}" + (f" ({self.label})" if self.label else "")


@dataclass(frozen=True, slots=True)
class RegionInfo:
    key: str  # region id, or its label when it has none
    label: str
    index: int
    nodes: tuple[str, ...]
    process_nodes: tuple[str, ...]


@dataclass
class FlowGraph:
    node_ids: list[str]
    types: dict[str, str]
    labels: dict[str, str]
    back_edges: list[BackEdge]
    order: list[str]
    """Every node in implementation order (a topological order once back edges are dropped)."""
    upstream: dict[str, tuple[str, ...]]
    """For each process node, the nearest process nodes before it (through non-process nodes)."""
    decision_feeders: dict[str, tuple[str, ...]]
    regions: list[RegionInfo]
    warnings: list[Problem] = field(default_factory=list)
    _rank: dict[str, int] = field(default_factory=dict)
    _downstream: dict[str, list[str]] = field(default_factory=dict)
    _forward: dict[str, list[str]] = field(default_factory=dict)
    _after: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)

    @functools.cached_property
    def process_order(self) -> list[str]:
        """Process nodes only, in implementation order."""
        return [n for n in self.order if self.types[n] == "process"]

    def rank(self, node_id: str) -> int:
        """Position in implementation order; lower runs first."""
        return self._rank[node_id]

    def downstream(self, node_id: str) -> list[str]:
        """Process nodes that list ``node_id`` as a direct upstream."""
        return self._downstream.get(node_id, [])

    def dependants(self, node_id: str) -> list[str]:
        """Every process node that transitively waits on ``node_id``, in implementation order."""
        seen: set[str] = set()
        stack = [node_id]
        while stack:
            for nxt in self.downstream(stack.pop()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return sorted(seen, key=self.rank)

    def after(self, node_id: str) -> list[str]:
        """Every process node that comes after ``node_id`` (any node, e.g. a decision) through forward edges,
        transitively, in implementation order. Computed once per node (the supervisor asks on every turn)."""
        found = self._after.get(node_id)
        if found is None:
            seen: set[str] = set()
            stack = [node_id]
            while stack:
                for nxt in self._forward.get(stack.pop(), ()):
                    if nxt not in seen:
                        seen.add(nxt)
                        stack.append(nxt)
            found = self._after[node_id] = tuple(
                sorted((n for n in seen if self.types[n] == "process"), key=self._rank.__getitem__)
            )
        return list(found)

    @functools.cached_property
    def _regions_by_node(self) -> dict[str, list[RegionInfo]]:
        by_node: dict[str, list[RegionInfo]] = {}
        for region in self.regions:
            for node in region.nodes:
                by_node.setdefault(node, []).append(region)
        return by_node

    def regions_of(self, node_id: str) -> list[RegionInfo]:
        """The regions ``node_id`` belongs to, in map order."""
        return list(self._regions_by_node.get(node_id, ()))

    def decision_verified(self, decision_id: str, verified: Collection[str]) -> bool:
        """SPEC §2: a decision is verified once every process node feeding it is verified."""
        return all(f in verified for f in self.decision_feeders.get(decision_id, ()))

    def region_complete(self, region: RegionInfo, verified: Collection[str]) -> bool:
        """A region completes when all its process nodes are verified (a region without any never does)."""
        return bool(region.process_nodes) and all(n in verified for n in region.process_nodes)


def build_graph(model: AlgorithmMap) -> FlowGraph:
    """Analyse a validated map. Assumes edges name known nodes (the loader guarantees it)."""
    nodes = model.graph.nodes
    ids = [n.id for n in nodes]
    position = {node_id: i for i, node_id in enumerate(ids)}
    types: dict[str, str] = {n.id: n.type for n in nodes}
    edges = model.graph.edges
    ends = [(edge.from_, edge.to) for edge in edges]
    succ: dict[str, list[tuple[str, int]]] = {n: [] for n in ids}
    indegree = dict.fromkeys(ids, 0)
    for i, (source, target) in enumerate(ends):
        succ[source].append((target, i))
        indegree[target] += 1

    warnings: list[Problem] = []
    back_indexes = _back_edges(ids, types, succ, indegree, warnings)
    back_edges = [BackEdge(i, edges[i].from_, edges[i].to, edges[i].label) for i in sorted(back_indexes)]

    forward_pred: dict[str, list[str]] = {n: [] for n in ids}
    forward_succ: dict[str, list[str]] = {n: [] for n in ids}
    all_pred: dict[str, list[str]] = {n: [] for n in ids}
    for i, (source, target) in enumerate(ends):
        all_pred[target].append(source)
        if i not in back_indexes:
            forward_pred[target].append(source)
            forward_succ[source].append(target)

    order = _topological_order(ids, position, forward_succ, forward_pred)
    rank = {n: i for i, n in enumerate(order)}
    upstream, downstream = _upstream_process_nodes(order, rank, types, forward_pred)
    feeders = {n: _feeders(n, types, all_pred) for n in ids if types[n] == "decision"}

    regions = []
    for i, region in enumerate(model.graph.regions):
        members = tuple(dict.fromkeys(region.nodes))
        process = tuple(sorted((n for n in members if types.get(n) == "process"), key=rank.__getitem__))
        if not process:
            warnings.append(
                Problem(
                    f"graph.regions[{i}]", f"region '{region.label}' has no process nodes", "its L2 checks run with L3"
                )
            )
        regions.append(RegionInfo(region.id or region.label, region.label, i, members, process))

    graph = FlowGraph(
        ids, types, {n.id: n.label for n in nodes}, back_edges, order, upstream, feeders, regions, warnings
    )
    graph._rank = rank
    graph._downstream = downstream
    graph._forward = forward_succ
    return graph


def _back_edges(
    ids: list[str],
    types: dict[str, str],
    succ: dict[str, list[tuple[str, int]]],
    indegree: dict[str, int],
    warnings: list[Problem],
) -> set[int]:
    """Iterative DFS from start nodes (terminal sources first, then other sources); an edge into a node
    still on the DFS stack closes a cycle. Nodes no start reaches are walked afterwards, with a warning."""
    sources = [n for n in ids if indegree[n] == 0]
    starts = [n for n in sources if types[n] == "terminal"] + [n for n in sources if types[n] != "terminal"]
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(ids, white)
    back: set[int] = set()

    def walk(root: str) -> None:
        colour[root] = grey
        stack = [(root, iter(succ[root]))]
        while stack:
            node, children = stack[-1]
            for child, edge_index in children:
                if colour[child] == grey:
                    back.add(edge_index)
                elif colour[child] == white:
                    colour[child] = grey
                    stack.append((child, iter(succ[child])))
                    break
            else:
                colour[node] = black
                stack.pop()

    for start in starts:
        if colour[start] == white:
            walk(start)
    unreached = [n for n in ids if colour[n] == white]
    if unreached and not sources:
        warnings.append(
            Problem(
                "graph",
                "no start node: every node is on a cycle",
                f"ordering from '{unreached[0]}'; add a terminal start",
            )
        )
    elif unreached:
        listed = ", ".join(unreached[:5]) + (" …" if len(unreached) > 5 else "")
        warnings.append(
            Problem("graph", f"no start reaches {len(unreached)} node(s): {listed}", "add an edge into them")
        )
    for node in unreached:
        if colour[node] == white:
            walk(node)
    return back


def _topological_order(
    ids: list[str], position: dict[str, int], forward_succ: dict[str, list[str]], forward_pred: dict[str, list[str]]
) -> list[str]:
    """Kahn's algorithm over forward edges; among ready nodes the one declared first goes first."""
    indegree = {n: len(forward_pred[n]) for n in ids}
    heap = [position[n] for n in ids if indegree[n] == 0]
    heapq.heapify(heap)
    order = []
    while heap:
        node = ids[heapq.heappop(heap)]
        order.append(node)
        for child in forward_succ[node]:
            indegree[child] -= 1
            if indegree[child] == 0:
                heapq.heappush(heap, position[child])
    return order


def _upstream_process_nodes(
    order: list[str], rank: dict[str, int], types: dict[str, str], pred: dict[str, list[str]]
) -> tuple[dict[str, tuple[str, ...]], dict[str, list[str]]]:
    """For each node, the process nodes it "sees" upstream. A process node shows itself to its
    successors; any other node passes on what it sees."""
    seen_by: dict[str, frozenset[str]] = {}
    upstream: dict[str, tuple[str, ...]] = {}
    downstream: dict[str, list[str]] = {}
    for node in order:
        parts: set[str] = set()
        for p in pred[node]:
            parts |= seen_by[p]
        if types[node] == "process":
            up = tuple(sorted(parts, key=rank.__getitem__))
            upstream[node] = up
            for u in up:
                downstream.setdefault(u, []).append(node)
            seen_by[node] = frozenset((node,))
        else:
            seen_by[node] = frozenset(parts)
    return upstream, downstream


def _feeders(decision: str, types: dict[str, str], pred: dict[str, list[str]]) -> tuple[str, ...]:
    """Process nodes on a decision's incoming edges (back edges included), seen through non-process nodes."""
    found: list[str] = []
    seen = {decision}
    stack = list(pred[decision])
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if types[node] == "process":
            found.append(node)
        else:
            stack.extend(pred[node])
    return tuple(dict.fromkeys(found))
