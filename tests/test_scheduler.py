"""Ready sets, batches under max_parallel, and file-overlap serialisation."""

from __future__ import annotations

import json
from collections.abc import Collection

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foreman_tui.engine.graph import FlowGraph, build_graph
from foreman_tui.engine.scheduler import next_batch, ready_nodes, simulate, waiting_on
from foreman_tui.map.load import load_map, parse_map

from .conftest import BPC_MAP, DEMO_MAP, minimal_map


def fan_graph(n: int) -> FlowGraph:
    """start → p1..pn (all ready at once)."""
    nodes = [{"id": "start", "label": "S", "type": "terminal"}]
    nodes += [{"id": f"p{i}", "label": f"P{i}", "type": "process"} for i in range(1, n + 1)]
    edges = [{"from": "start", "to": f"p{i}"} for i in range(1, n + 1)]
    contents = {f"p{i}": {"title": "t", "overview": "o"} for i in range(1, n + 1)}
    return build_graph(parse_map(json.dumps(minimal_map(nodes=nodes, edges=edges, contents=contents))).model)


def assert_no_shared_files(batch: Collection[str], files: dict[str, tuple[str, ...]]) -> None:
    seen: dict[str, str] = {}
    for node in batch:
        for path in files.get(node, ()):
            assert path not in seen, f"{node} and {seen[path]} share {path} in one batch"
            seen[path] = node


def test_four_ready_nodes_sharing_files_pairwise_never_run_together() -> None:
    graph = fan_graph(4)
    files = {"p1": ("f12", "f41"), "p2": ("f12", "f23"), "p3": ("f23", "f34"), "p4": ("f34", "f41")}
    batches = simulate(graph, files, max_parallel=4)
    for batch in batches:
        assert_no_shared_files(batch.start, files)
    assert [b.start for b in batches] == [["p1", "p3"], ["p2", "p4"]]
    waits = {w.node: w for w in batches[0].waits}
    assert waits["p2"].blocker == "p1" and waits["p2"].files == ("f12",)
    assert str(waits["p4"]) == "waits: shares f34 with p3"  # the first of its files already taken


def test_max_parallel_caps_a_batch() -> None:
    batches = simulate(fan_graph(7), {}, max_parallel=3)
    assert [len(b.start) for b in batches] == [3, 3, 1]


def test_next_batch_counts_running_nodes_and_their_files() -> None:
    files = {"a": ("x.py",), "b": ("x.py",), "c": ("y.py",), "d": ("z.py",)}
    batch = next_batch(["b", "c", "d"], files, running=["a"], max_parallel=2)
    assert batch.start == ["c"]
    assert [(w.node, w.kind, w.blocker) for w in batch.waits] == [("b", "files", "a"), ("d", "slot", None)]
    with pytest.raises(ValueError):
        next_batch(["a"], files, max_parallel=0)


def test_bpc_plan_starts_with_initialize_and_serialises_rmp_py() -> None:
    graph = build_graph(load_map(BPC_MAP).model)
    batches = simulate(graph, {}, max_parallel=3)
    assert batches[0].start == ["01_initialize"]
    scheduled = [n for b in batches for n in b.start]
    assert sorted(scheduled) == sorted(graph.process_order)
    assert not set(scheduled) & {"05_column_check", "06_integrality_check", "07_bound_check", "start", "09_terminate"}


def test_ready_set_and_what_a_node_waits_for() -> None:
    graph = build_graph(load_map(DEMO_MAP).model)
    assert ready_nodes(graph, set()) == ["01_load_points", "02_vector_math"]
    assert ready_nodes(graph, {"01_load_points"}) == ["02_vector_math"]
    assert ready_nodes(graph, {"01_load_points"}, exclude={"02_vector_math"}) == []
    assert waiting_on(graph, "03_seed_centroids", {"01_load_points"}) == ["02_vector_math"]
    done = {"01_load_points", "02_vector_math", "03_seed_centroids", "04_assign", "05_update"}
    assert ready_nodes(graph, done) == ["07_inertia", "08_summarize"]


def test_already_verified_nodes_are_not_planned_again() -> None:
    graph = build_graph(load_map(DEMO_MAP).model)
    batches = simulate(graph, {}, verified={"01_load_points", "02_vector_math"})
    assert batches[0].start == ["03_seed_centroids"]


@st.composite
def random_flowcharts(draw: st.DrawFn) -> tuple[FlowGraph, dict[str, tuple[str, ...]], int]:
    n = draw(st.integers(2, 14))
    kinds = draw(st.lists(st.sampled_from(["process", "process", "decision"]), min_size=n, max_size=n))
    ids = [f"n{i}" for i in range(n)]
    nodes = [{"id": "start", "label": "S", "type": "terminal"}]
    nodes += [{"id": i, "label": i, "type": k} for i, k in zip(ids, kinds, strict=True)]
    edges = [{"from": "start", "to": ids[0]}]
    for j in range(1, n):
        for i in draw(st.sets(st.integers(0, j - 1), min_size=1, max_size=3)):
            edges.append({"from": ids[i], "to": ids[j]})
    for _ in range(draw(st.integers(0, 3))):  # loops back
        a, b = sorted(draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True)))
        edges.append({"from": ids[b], "to": ids[a]})
    edges = list({(e["from"], e["to"]): e for e in edges}.values())
    contents = {i: {"title": i, "overview": "o"} for i in ids}
    graph = build_graph(parse_map(json.dumps(minimal_map(nodes=nodes, edges=edges, contents=contents))).model)
    pool = ["f1", "f2", "f3", "f4"]
    files = {i: tuple(draw(st.sets(st.sampled_from(pool), max_size=2))) for i in ids}
    return graph, files, draw(st.integers(1, 4))


@settings(max_examples=200, deadline=None)
@given(random_flowcharts())
def test_simulated_batches_respect_files_parallelism_and_dependencies(
    case: tuple[FlowGraph, dict[str, tuple[str, ...]], int],
) -> None:
    graph, files, max_parallel = case
    batches = simulate(graph, files, max_parallel=max_parallel)
    done: set[str] = set()
    for batch in batches:
        assert 1 <= len(batch.start) <= max_parallel
        assert_no_shared_files(batch.start, files)
        for node in batch.start:
            assert graph.types[node] == "process"
            assert set(graph.upstream[node]) <= done
        done |= set(batch.start)
    assert sorted(done) == sorted(graph.process_order)
