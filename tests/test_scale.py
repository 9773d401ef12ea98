"""What makes big maps fast must not change what foreman says: the direct writer of the CLI's reports prints what
Rich prints, and the indexes and caches of the graph and project answer as the scans they replace.

Times are measured by ``bench/plan_scale.py`` (see docs/benchmarks.md), not here."""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.text import Text

from foreman_tui.cli import render, writer
from foreman_tui.engine.graph import build_graph
from foreman_tui.engine.project import Project
from foreman_tui.engine.reports import commands_report, plan_report, status_report, validate_report
from foreman_tui.map.errors import Problem
from foreman_tui.map.load import parse_map

from .conftest import BPC_MAP, DEMO_MAP, REPO, write_map

sys.path.insert(0, str(REPO / "bench"))

from plan_scale import chain_map  # bench/ is not a package: imported from its folder; the map the bench times

ANSI = re.compile(r"\x1b\[[0-9;]*m|\x1b\]8;[^\x1b]*\x1b\\")
PIECES = [*"ab c  xyz-_/.,:()[]\\=@#", "日", "本", "é", "→", "✓", "\u200b", "\t", "\x1b", "\r", ":smile:", "[bold]"]
PIECES += ["[/]", "\\[", "[0]", "[link=x]", "contents.n1.verify.core[0].cmd"]
word = st.one_of(st.lists(st.sampled_from(PIECES), max_size=8).map("".join), st.integers(0, 70).map("w".__mul__))
one_line = st.lists(word, max_size=6).map(" ".join)
lines = st.lists(one_line, min_size=1, max_size=3).map("\n".join)
cell = st.one_of(one_line, lines, one_line.map(render._Literal), lines.map(Text))


def _console(width: int, terminal: bool) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    if terminal:
        return Console(file=buffer, force_terminal=True, width=width, highlight=False, color_system="truecolor"), buffer
    return Console(file=buffer, highlight=False, width=width, no_color=True, emoji=False), buffer


def _printed(width: int, terminal: bool, fast: bool, write: Callable[[render._Out], None]) -> str:
    console, buffer = _console(width, terminal)
    try:
        with render._Out(console) as out:
            out.fast = fast
            write(out)
    except Exception as exc:  # Rich's own errors (bad markup) must come out the same
        return buffer.getvalue() + f"\nraised {type(exc).__name__}"
    return buffer.getvalue()


def _same(width: int, terminal: bool, write: Callable[[render._Out], None], inputs: str) -> None:
    direct, rich = _printed(width, terminal, True, write), _printed(width, terminal, False, write)
    if terminal:  # the direct writer leaves out colour and bold; the layout is Rich's
        if "\x1b" in inputs or "raised" in rich:
            return
        direct, rich = ANSI.sub("", direct), ANSI.sub("", rich)
    assert direct == rich


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    width=st.integers(3, 90),
    columns=st.integers(1, 5),
    rows=st.lists(st.lists(cell, min_size=5, max_size=5), max_size=6),
    terminal=st.booleans(),
)
def test_a_table_is_written_as_rich_writes_it(width: int, columns: int, rows: list[list[Any]], terminal: bool) -> None:
    """Column widths (shrunk when too wide), wrapping, padding, multi-line cells, markup, wide characters."""
    names = ["node", "owned files", "from", "upstream (checkpoint each)", "checks L1 / L2 / L3"][:columns]
    rows = [row[:columns] for row in rows]
    _same(width, terminal, lambda out: out.table(names, rows), repr(rows))


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    width=st.integers(3, 60),
    values=st.lists(st.one_of(lines, lines.map(render._Literal), lines.map(Text)), max_size=5),
    terminal=st.booleans(),
)
def test_a_line_is_written_as_rich_writes_it(width: int, values: list[Any], terminal: bool) -> None:
    def write(out: render._Out) -> None:
        for value in values:
            out.line(value)

    _same(width, terminal, write, repr(values))


def _regions(total_regions: int) -> dict[str, Any]:
    """Regions of four process nodes and a decision looping back, region checks with commands, two regions
    sharing a label (so a key), a node in two regions, and a long decision command that makes the table wrap."""
    nodes = [{"id": "start", "label": "Start", "type": "terminal"}]
    edges, regions, contents = [], [], {}
    previous = "start"
    for r in range(total_regions):
        members = [f"r{r}_p{i}" for i in range(4)] + [f"r{r}_d"]
        for i, node in enumerate(members):
            kind = "decision" if node.endswith("_d") else "process"
            nodes.append({"id": node, "label": node, "type": kind})
            edges.append({"from": previous, "to": node})
            previous = node
            verify = {"core": [{"desc": "unit", "level": "L1", "cmd": f"pytest t/{node}.py"}]}
            if kind == "decision":
                verify["core"].append({"desc": "loop", "level": "L2", "cmd": "python -m check " + "x" * 150})
            contents[node] = {"title": node, "overview": "o", "code": {"files": [f"m{r}_{i % 2}.py"]}, "verify": verify}
        edges.append({"from": members[-1], "to": members[0], "label": "again"})
        label = "Same" if r < 2 else f"Region {r}"
        extra = [f"r{r - 1}_p3"] if r else []
        regions.append(
            {
                "label": label,
                "nodes": members + extra,
                "verify": {"core": [{"desc": "region", "level": "L2", "cmd": f"make r{r}"}]},
            }
        )
    nodes.append({"id": "end", "label": "End", "type": "terminal"})
    edges.append({"from": previous, "to": "end"})
    return {
        "version": "0.1.0",
        "meta": {"title": "regions"},
        "graph": {"nodes": nodes, "edges": edges, "regions": regions},
        "contents": contents,
    }


def _texts(project: Project, monkeypatch: pytest.MonkeyPatch, direct: bool) -> list[str]:
    outputs = []
    for build, show in (
        (validate_report, render.validate),
        (plan_report, render.plan),
        (status_report, render.status),
    ):
        report = build(project)
        buffer = io.StringIO()
        with monkeypatch.context() as patch:
            patch.setattr("sys.stdout", buffer)
            if not direct:
                patch.setattr(writer, "RE_TAGS", None)  # no direct writer: all of it through Rich
            show(report)
        outputs.append(buffer.getvalue())
    return outputs


@pytest.mark.parametrize("name", ["demo", "bpc", "chain", "regions"])
def test_reports_print_the_same_with_and_without_the_direct_writer(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    maps = {"demo": lambda: DEMO_MAP, "bpc": lambda: BPC_MAP}
    maps["chain"] = lambda: write_map(tmp_path, chain_map(300))
    maps["regions"] = lambda: write_map(tmp_path, _regions(12))
    project = Project.load(maps[name]())
    direct = _texts(project, monkeypatch, direct=True)
    assert direct == _texts(project, monkeypatch, direct=False)
    assert all(text.strip() for text in direct)


def test_problems_print_the_same_with_and_without_the_direct_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    found = [
        Problem(f"graph.edges[{i}].to", f"unknown node 'x{i} [bold]y[/]'" + " long" * (i % 50), "fix" if i % 2 else "")
        for i in range(100)
    ]
    outputs = []
    for direct in (True, False):
        buffer = io.StringIO()
        with monkeypatch.context() as patch:
            patch.setattr("sys.stderr", buffer)
            if not direct:
                patch.setattr(writer, "RE_TAGS", None)
            render.problems("map.json", found, "map")
        outputs.append(buffer.getvalue())
    assert outputs[0] == outputs[1] and outputs[0].count("✗") == 100


def test_a_huge_report_on_a_terminal_keeps_rich_layout_without_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    project = Project.load(BPC_MAP)
    report = plan_report(project)
    outputs = []
    for limit in (10_000, 0):  # Rich; the direct writer (as for more than RICH_ROWS_MAX rows)
        monkeypatch.setattr(writer, "RICH_ROWS_MAX", limit)
        console, buffer = _console(120, terminal=True)
        render.plan(report, console)
        outputs.append(buffer.getvalue())
    rich, direct = outputs
    assert direct.count("\x1b[") < 10 < rich.count("\x1b[")  # only the title keeps its style
    assert "─" * 10 in direct  # the rule under a table's header
    assert ANSI.sub("", direct) == ANSI.sub("", rich)


def test_the_indexes_answer_as_the_scans(tmp_path: Path) -> None:
    project = Project.load(write_map(tmp_path, _regions(6)))
    graph = project.graph
    for node in graph.node_ids:
        assert graph.regions_of(node) == [r for r in graph.regions if node in r.nodes]
        scanned: set[str] = set()
        stack = [node]
        while stack:
            for nxt in graph._forward.get(stack.pop(), ()):
                if nxt not in scanned:
                    scanned.add(nxt)
                    stack.append(nxt)
        expected = sorted((n for n in scanned if graph.types[n] == "process"), key=graph.rank)
        assert graph.after(node) == expected
        graph.after(node).append("mutated")  # callers get their own list
        assert graph.after(node) == expected
    assert len(graph.regions_of("r0_p3")) == 2
    ends = project.end_checks()
    ends.clear()
    assert project.end_checks() == project._find_end_checks()


def test_region_commands_name_the_first_region_with_their_key(tmp_path: Path) -> None:
    """Two regions labelled "Same" (no ids) share a key; their commands point at the first, as before."""
    project = Project.load(write_map(tmp_path, _regions(3)))
    sources = {c["cmd"]: c["source"] for c in commands_report(project) if c["cmd"].startswith("make")}
    assert sources == {
        "make r0": "graph.regions[0].verify.core[0].cmd",
        "make r1": "graph.regions[0].verify.core[0].cmd",
        "make r2": "graph.regions[2].verify.core[0].cmd",
    }


def test_a_chain_of_thousands_of_nodes_plans_one_node_a_batch() -> None:
    doc = parse_map(json.dumps(chain_map(3000)))
    graph = build_graph(doc.model)
    assert graph.order == [n.id for n in doc.model.graph.nodes]
    assert graph.after("start") == graph.process_order
    assert graph.upstream["n00002"] == ("n00001",)
