"""Flowchart analysis: back edges, order, upstream through decisions, regions, decision rule."""

from __future__ import annotations

import json

from foreman_tui.engine.graph import build_graph
from foreman_tui.map.load import load_map, parse_map

from .conftest import BPC_MAP, DEMO_MAP, minimal_map


def test_bpc_back_edges_are_the_two_loop_closers() -> None:
    graph = build_graph(load_map(BPC_MAP).model)
    assert {(e.source, e.target) for e in graph.back_edges} == {
        ("05_column_check", "02_solve_rmp"),
        ("08_branch", "02_solve_rmp"),
    }
    assert graph.warnings == []


def test_bpc_process_order_and_upstream_through_decisions() -> None:
    graph = build_graph(load_map(BPC_MAP).model)
    assert graph.process_order == ["01_initialize", "02_solve_rmp", "03_extract_duals", "04_pricing", "08_branch"]
    assert graph.upstream["02_solve_rmp"] == ("01_initialize",)  # the loop back from 05 and 08 is ignored
    assert graph.upstream["08_branch"] == ("04_pricing",)  # through 05 → 06 → 07, all decisions


def test_decision_feeders_see_through_other_decisions() -> None:
    graph = build_graph(load_map(BPC_MAP).model)
    assert graph.decision_feeders["05_column_check"] == ("04_pricing",)
    assert graph.decision_feeders["07_bound_check"] == ("04_pricing",)
    assert not graph.decision_verified("07_bound_check", {"01_initialize", "02_solve_rmp"})
    assert graph.decision_verified("07_bound_check", {"04_pricing"})


def test_decision_counts_back_edge_feeders_too() -> None:
    doc = minimal_map(
        nodes=[
            {"id": "s", "label": "S", "type": "terminal"},
            {"id": "d", "label": "D?", "type": "decision"},
            {"id": "a", "label": "A", "type": "process"},
            {"id": "b", "label": "B", "type": "process"},
        ],
        edges=[{"from": "s", "to": "d"}, {"from": "d", "to": "a"}, {"from": "a", "to": "b"}, {"from": "b", "to": "d"}],
    )
    graph = build_graph(parse_map(json.dumps(doc)).model)
    assert [(e.source, e.target) for e in graph.back_edges] == [("b", "d")]
    assert graph.decision_feeders["d"] == ("b",)
    assert graph.upstream["a"] == ()


def test_regions_count_process_nodes_only() -> None:
    graph = build_graph(load_map(BPC_MAP).model)
    cg = graph.regions[0]
    assert cg.key == "cg_loop"
    assert cg.process_nodes == ("02_solve_rmp", "03_extract_duals", "04_pricing")
    assert not graph.region_complete(cg, {"02_solve_rmp", "03_extract_duals"})
    assert graph.region_complete(cg, {"02_solve_rmp", "03_extract_duals", "04_pricing"})


def test_a_map_where_every_node_is_on_a_cycle_still_gets_an_order() -> None:
    doc = minimal_map(
        edges=[
            {"from": "start", "to": "a"},
            {"from": "a", "to": "b"},
            {"from": "b", "to": "end"},
            {"from": "end", "to": "start"},
        ]
    )
    graph = build_graph(parse_map(json.dumps(doc)).model)
    assert graph.order == ["start", "a", "b", "end"]
    assert [(e.source, e.target) for e in graph.back_edges] == [("end", "start")]
    assert any("every node is on a cycle" in w.message for w in graph.warnings)


def test_unreachable_cycle_is_ordered_with_a_warning() -> None:
    nodes = [{"id": i, "label": i, "type": "process"} for i in ("a", "x", "y")]
    doc = minimal_map(nodes=nodes, edges=[{"from": "x", "to": "y"}, {"from": "y", "to": "x"}], contents={})
    graph = build_graph(parse_map(json.dumps(doc)).model)
    assert set(graph.order) == {"a", "x", "y"}
    assert len(graph.back_edges) == 1
    assert any("no start reaches 2 node(s)" in w.message for w in graph.warnings)


def test_demo_graph() -> None:
    graph = build_graph(load_map(DEMO_MAP).model)
    assert [(e.source, e.target) for e in graph.back_edges] == [("06_converged", "04_assign")]
    assert graph.upstream["07_inertia"] == ("05_update",)
    assert graph.upstream["03_seed_centroids"] == ("01_load_points", "02_vector_math")
    assert graph.dependants("05_update") == ["07_inertia", "08_summarize", "09_cli"]
    assert [r.process_nodes for r in graph.regions] == [
        ("01_load_points", "02_vector_math", "03_seed_centroids"),
        ("04_assign", "05_update"),
    ]


def test_decision_nodes_checks_run_with_their_region() -> None:
    from foreman_tui.engine.project import Project

    project = Project.load(BPC_MAP)
    cg = next(r for r in project.graph.regions if r.key == "cg_loop")
    owners = [(c.owner, c.phase, c.index) for c in project.region_checks(cg.index)]
    assert ("05_column_check", "core", 1) in owners  # a decision node's L2 check, with a command
    runnable = [c for c in project.region_checks(cg.index) if c.owner == "05_column_check" and c.runnable]
    assert runnable and runnable[0].item.cmd == "pytest src/python/tests/test_cg_convergence.py"
    everywhere = [(c.owner, c.phase, c.index) for r in project.graph.regions for c in project.region_checks(r.index)]
    everywhere += [(c.owner, c.phase, c.index) for c in project.end_checks()]
    l2_items = [
        (n, c.phase, c.index) for n in project.graph.node_ids for c in project.node_checks(n) if c.level == "L2"
    ]
    assert set(l2_items) <= set(everywhere)  # no node's L2 check is dropped
