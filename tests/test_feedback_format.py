"""The feedback file: the Algorithm Map renderer's "提交反馈" Markdown (as server.py writes it) and the old
``[node:<id>]`` notes, parsed and routed to nodes, regions or the flow chart."""

from __future__ import annotations

from typing import Any

import pytest

from foreman_tui.engine.feedback import FeedbackNote, Route, parse_feedback, parse_feedback_file, route_notes
from foreman_tui.engine.graph import build_graph
from foreman_tui.map.load import load_map

from .conftest import BPC_MAP

# The pricing node's first <pre> block, as the renderer keeps it: textContent cut at 60 UTF-16 units, then "...".
PRE_ANCHOR = "function PricingESPPRC(N, c, q, Q, pi):\n    c_bar[i][j] = c["

BPC_FEEDBACK = """\
# Feedback: BPC 算法地图
- Date: 2026-02-28T09:15:42
- Source: ../examples/bpc-phase1.json
- Annotations: 12

## Flow
- [edge:04_pricing->05_column_check] 这条边上标一下新列的数量
- [node:08_branch] 分支后回到 RMP，不是回到初始化
- [region:cg_loop] 循环出口缺少 max_iter 保护

## Column Generation Loop
- [概述] "收敛保证：每次加入负 RC 列后 LP 目标严格改善（或不变），有限列 → 有限步收敛。" → 退化时目标可能不变

## 2. 求解 RMP
- [实现] "solve_rmp(columns)" → 两处问题：
1. 对偶要从 Gurobi 的 Pi 属性取
2. 列数超过 5000 时要清理
- [概述] 写明 RMP 是 set covering 形式

## 4. 定价 ESPPRC
- [实现] "function PricingESPPRC(N, c, q, Q, pi):
    c_bar[i][j] = c["... → 伪代码里 "dominated" 的定义没给 → 需要写清楚
- [验证] "返回 "empty" → 收敛" → 这里的 "empty" 应为 "无负 RC 列"，另见 [node:05_column_check]

## 分支 (Branch)
- [实现] 选分数最接近 0.5 的边来分支

## 01_initialize
- [概述] 初始列用单客户往返路径

## 有负 RC 列？
- [验证] 收敛判据要带容差 1e-6

## 5. 列管理
- [实现] 列池需要去重
"""


@pytest.fixture(scope="module")
def bpc() -> dict[str, Any]:
    doc = load_map(BPC_MAP)
    graph = build_graph(doc.model)
    return {
        "labels": graph.labels,
        "titles": {node: content.title for node, content in doc.model.contents.items()},
        "types": graph.types,
        "regions": [(r.key, r.label, r.process_nodes) for r in graph.regions],
    }


def routed(text: str, names: dict[str, Any]) -> list[Route]:
    return route_notes(parse_feedback(text), **names)


def test_the_header_is_metadata_and_its_count_is_kept() -> None:
    parsed = parse_feedback_file(BPC_FEEDBACK)
    assert (parsed.title, parsed.source, parsed.date) == (
        "BPC 算法地图",
        "../examples/bpc-phase1.json",
        "2026-02-28T09:15:42",
    )
    assert parsed.declared == 12 and len(parsed.notes) == 12 and not parsed.count_differs
    assert all(not n.text.startswith(("Date", "Source", "Annotations")) for n in parsed.notes)
    short = parse_feedback_file(BPC_FEEDBACK.replace("- Annotations: 12", "- Annotations: 14"))
    assert short.declared == 14 and short.count_differs


def test_flow_notes_name_their_edge_node_or_region(bpc: dict[str, Any]) -> None:
    edge, node, region = routed(BPC_FEEDBACK, bpc)[:3]
    assert edge.note.edge == ("04_pricing", "05_column_check") and edge.note.section == "Flow"
    assert (edge.kind, edge.targets) == ("flow", ())
    assert (node.kind, node.targets, node.reason) == ("node", ("08_branch",), "")
    assert node.note.for_worker() == "[flow chart] 分支后回到 RMP，不是回到初始化"
    assert (region.kind, region.region, region.targets) == (
        "region",
        "cg_loop",
        ("02_solve_rmp", "03_extract_duals", "04_pricing"),
    )
    assert edge.note.for_worker() == "[edge 04_pricing -> 05_column_check] 这条边上标一下新列的数量"


def test_a_region_section_goes_to_its_process_nodes(bpc: dict[str, Any]) -> None:
    route = routed(BPC_FEEDBACK, bpc)[3]
    assert (route.kind, route.region) == ("region", "cg_loop")
    assert route.targets == ("02_solve_rmp", "03_extract_duals", "04_pricing")  # not the decision 05_column_check
    note = route.note
    assert (note.section, note.tab, note.anchor_cut) == ("Column Generation Loop", "概述", False)
    assert note.anchor == "收敛保证：每次加入负 RC 列后 LP 目标严格改善（或不变），有限列 → 有限步收敛。"
    assert note.text == "退化时目标可能不变"
    by_key = routed("## bnb\n- [验证] 剪枝日志要可审计\n", bpc)[0]
    assert (by_key.kind, by_key.region, by_key.targets) == (
        "region",
        "bnb",
        ("02_solve_rmp", "03_extract_duals", "04_pricing", "08_branch"),
    )


def test_node_sections_by_label_title_and_id(bpc: dict[str, Any]) -> None:
    routes = routed(BPC_FEEDBACK, bpc)
    by_section = {r.note.section: r for r in routes}
    assert by_section["2. 求解 RMP"].targets == ("02_solve_rmp",)
    assert by_section["4. 定价 ESPPRC"].targets == ("04_pricing",)
    assert by_section["分支 (Branch)"].targets == ("08_branch",)  # contents.08_branch.title
    assert by_section["01_initialize"].targets == ("01_initialize",)  # the id
    assert all(by_section[s].kind == "node" for s in ("2. 求解 RMP", "分支 (Branch)", "01_initialize"))
    loose = routed(
        "## ４． 定价　ｅｓｐｐｒｃ\n- [实现] 全角也能认出\n\n##   4.   定价 espprc  \n- [实现] 大小写和空白\n", bpc
    )
    assert [(r.kind, r.targets) for r in loose] == [("node", ("04_pricing",))] * 2


def test_a_decision_section_names_the_decision_and_says_so(bpc: dict[str, Any]) -> None:
    route = next(r for r in routed(BPC_FEEDBACK, bpc) if r.note.section == "有负 RC 列？")
    assert (route.kind, route.targets) == ("node", ("05_column_check",))
    assert "decision" in route.reason


def test_anchors_with_quotes_arrows_and_newlines(bpc: dict[str, Any]) -> None:
    assert len(PRE_ANCHOR.encode("utf-16-le")) // 2 == 60  # the fixture is what the renderer would cut
    pricing = [r.note for r in routed(BPC_FEEDBACK, bpc) if r.note.section == "4. 定价 ESPPRC"]
    cut, quoted = pricing
    assert (cut.tab, cut.anchor, cut.anchor_cut) == ("实现", PRE_ANCHOR, True)
    assert cut.text == '伪代码里 "dominated" 的定义没给 → 需要写清楚'
    assert cut.line == BPC_FEEDBACK.splitlines().index("## 4. 定价 ESPPRC") + 2
    assert (quoted.tab, quoted.anchor, quoted.anchor_cut) == ("验证", '返回 "empty" → 收敛', False)
    assert quoted.text == '这里的 "empty" 应为 "无负 RC 列"，另见 [node:05_column_check]'  # a mention, not a target
    assert quoted.node is None
    assert (
        quoted.for_worker()
        == '[验证] "返回 "empty" → 收敛" → 这里的 "empty" 应为 "无负 RC 列"，另见 [node:05_column_check]'
    )
    assert cut.for_worker().startswith(f'[实现] "{PRE_ANCHOR}..." → 伪代码里')


def test_a_multi_line_comment_is_kept_whole(bpc: dict[str, Any]) -> None:
    rmp = [r for r in routed(BPC_FEEDBACK, bpc) if r.note.section == "2. 求解 RMP"]
    assert [r.note.tab for r in rmp] == ["实现", "概述"]
    note = rmp[0].note
    assert note.anchor == "solve_rmp(columns)"
    assert note.text == "两处问题：\n1. 对偶要从 Gurobi 的 Pi 属性取\n2. 列数超过 5000 时要清理"
    assert rmp[1].note.text == "写明 RMP 是 set covering 形式" and rmp[1].note.anchor is None


def test_an_unknown_label_is_unmatched_with_a_reason(bpc: dict[str, Any]) -> None:
    route = routed(BPC_FEEDBACK, bpc)[-1]
    assert (route.kind, route.targets, route.note.text) == ("unmatched", (), "列池需要去重")
    assert route.reason == 'no node or region is labelled "5. 列管理"'
    bad = routed("- [node:99_nope] 不存在\n- [region:nowhere] 也不存在\n", bpc)
    assert [(r.kind, r.reason) for r in bad] == [
        ("unmatched", 'no node has the id "99_nope"'),
        ("unmatched", 'no region has the id "nowhere"'),
    ]
    loose = routed("# Notes\n\nsomething without a target\n", bpc)
    assert loose[0].kind == "unmatched" and "names no node" in loose[0].reason


def test_the_old_node_format_still_routes() -> None:
    text = (
        "# Notes\n\n[node:04_assign] keep the tie rule explicit in a comment\n\n[node:nope] this node does not exist\n"
        "[node:01_load_points] also accept TSV files [node:04_assign] and say so\nin the docstring\n"
    )
    parsed = parse_feedback_file(text)
    assert parsed.title == "Notes" and parsed.declared is None and not parsed.count_differs
    assert [(n.node, n.text, n.line) for n in parsed.notes] == [
        ("04_assign", "keep the tie rule explicit in a comment", 3),
        ("nope", "this node does not exist", 5),
        ("01_load_points", "also accept TSV files", 6),
        ("04_assign", "and say so\nin the docstring", 6),
    ]
    routes = route_notes(
        parsed.notes,
        labels={"01_load_points": "Load points", "04_assign": "Assign"},
        titles={},
        types={"01_load_points": "process", "04_assign": "process"},
        regions=[],
    )
    assert [(r.kind, r.targets) for r in routes] == [
        ("node", ("04_assign",)),
        ("unmatched", ()),
        ("node", ("01_load_points",)),
        ("node", ("04_assign",)),
    ]
    assert parsed.notes[0].for_worker() == "keep the tie rule explicit in a comment"


def test_shared_labels_are_ambiguous_unless_an_id_matches() -> None:
    names: dict[str, Any] = {
        "labels": {"01_load": "Load", "02_load": "Load", "load": "load"},
        "titles": {},
        "types": {"01_load": "process", "02_load": "process", "load": "process"},
        "regions": [("Load stage", "Load stage", ("01_load", "02_load"))],
    }
    text = "## Load\n- [实现] x\n## 02_load\n- [实现] y\n## load stage\n- [概述] z\n"
    first, second, third = routed(text, names)
    assert first.kind == "node" and first.targets == ("load",)  # three share the label; "load" is also an id
    assert second.targets == ("02_load",)
    assert (third.kind, third.region, third.targets) == ("region", "Load stage", ("01_load", "02_load"))
    names["labels"] = {"01_load": "Load", "02_load": "Load"}
    (clash,) = routed("## Load\n- [实现] x\n", names)
    assert (clash.kind, clash.reason) == ("unmatched", 'ambiguous: 01_load and 02_load share the label "Load"')


def test_an_empty_file_has_no_notes() -> None:
    for text in ("", "\n\n", "# Feedback: Empty\n- Date: 2026-01-01T00:00:00\n- Source: x.json\n- Annotations: 0\n"):
        parsed = parse_feedback_file(text)
        assert parsed.notes == [] and not parsed.count_differs
        assert route_notes(parsed.notes, labels={}, titles={}, types={}, regions=[]) == []


def test_a_note_is_a_plain_value() -> None:
    note = FeedbackNote("S", "t", None, None, None, None, 1)
    assert note.for_worker() == "t" and note.region is None and not note.anchor_cut
