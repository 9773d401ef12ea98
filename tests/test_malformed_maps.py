"""Every structural error: exit status 2, a message naming the JSON path, and the file untouched."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from foreman_tui.cli import main

from .conftest import minimal_map, write_map

Doc = dict[str, Any]


def edit(change: Callable[[Doc], None]) -> str:
    doc = copy.deepcopy(minimal_map())
    change(doc)
    return json.dumps(doc, ensure_ascii=False, indent=2)


def _set(path: list[Any], value: Any) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        target = doc
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return change


def _delete(path: list[Any]) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        target = doc
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]

    return change


CASES: list[tuple[str, str, str]] = [
    # (case id, map text, text the message must contain: the JSON path)
    ("invalid-json", '{"version": "0.1.0", "meta": {', "line 1"),
    ("not-an-object", "[1, 2, 3]", "(document)"),
    ("missing-graph", edit(_delete(["graph"])), "graph: required field is missing"),
    ("missing-meta-title", edit(_delete(["meta", "title"])), "meta.title"),
    (
        "duplicate-node-id",
        edit(lambda d: d["graph"]["nodes"].append({"id": "a", "label": "A2", "type": "process"})),
        "graph.nodes[4].id: duplicate node id 'a'",
    ),
    ("bad-id-pattern", edit(_set(["graph", "nodes", 1, "id"], "Solve-RMP")), "graph.nodes[1].id"),
    ("edge-to-unknown", edit(_set(["graph", "edges", 2, "to"], "ed")), "graph.edges[2].to: unknown node 'ed'"),
    ("edge-from-unknown", edit(_set(["graph", "edges", 0, "from"], "strat")), "did you mean 'start'?"),
    ("bad-node-type", edit(_set(["graph", "nodes", 1, "type"], "proccess")), "graph.nodes[1].type"),
    (
        "region-unknown-node",
        edit(_set(["graph", "regions"], [{"label": "R", "nodes": ["a", "zz"]}])),
        "graph.regions[0].nodes[1]",
    ),
    (
        "contents-unknown-node",
        edit(lambda d: d["contents"].update({"c": {"title": "C", "overview": "?"}})),
        "contents.c",
    ),
    (
        "bad-level",
        edit(_set(["contents", "a", "verify"], {"core": [{"desc": "x", "level": "L4"}]})),
        "contents.a.verify.core[0].level",
    ),
    (
        "absolute-owned-file",
        edit(_set(["contents", "a", "code"], {"files": ["/etc/passwd"]})),
        "contents.a.code.files[0]",
    ),
    (
        "owned-file-leaves-project",
        edit(_set(["contents", "b", "code"], {"files": ["src/../../x.py"]})),
        "contents.b.code.files[0]",
    ),
    (
        "declared-file-leaves-project",
        edit(_set(["contents", "a", "implementation"], "**关联文件**：`../../outside.py`")),
        "contents.a.implementation",
    ),
    ("bad-status", edit(_set(["state"], {"nodes": {"a": {"status": "done"}}})), "state.nodes.a.status"),
    ("state-unknown-node", edit(_set(["state"], {"nodes": {"q": {"status": "verified"}}})), "state.nodes.q"),
    (
        "verify-result-not-bool",
        edit(_set(["state"], {"nodes": {"a": {"status": "implemented", "verify_results": {"core": ["yes"]}}}})),
        "state.nodes.a.verify_results.core[0]",
    ),
    ("node-label-not-string", edit(_set(["graph", "nodes", 2, "label"], 7)), "graph.nodes[2].label: expected a string"),
    ("edges-not-array", edit(_set(["graph", "edges"], {"from": "a"})), "graph.edges: expected an array"),
    ("duplicate-json-key", '{"version": "0.1.0", "version": "0.1.0"}', "key 'version' appears twice"),
    ("not-utf8", "", "not UTF-8"),
]


@pytest.mark.parametrize(("text", "needle"), [(t, n) for _, t, n in CASES], ids=[c for c, _, _ in CASES])
@pytest.mark.parametrize("command", ["validate", "plan", "status"])
def test_malformed_map_exits_2_names_the_path_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, text: str, needle: str
) -> None:
    path = tmp_path / "algorithm-map.json"
    data = text.encode("utf-8") if text else b'{"version": "\xff"}'
    path.write_bytes(data)
    before = sorted(p.name for p in tmp_path.iterdir())

    status = main([command, str(path)])

    err = capsys.readouterr().err
    assert status == 2
    assert needle in err, err
    assert path.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_there_are_at_least_fifteen_malformed_cases() -> None:
    assert len(CASES) >= 15


def test_every_problem_is_reported_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = minimal_map()
    doc["graph"]["edges"][0]["to"] = "nope"
    doc["graph"]["edges"][1]["from"] = "nada"
    path = write_map(tmp_path, doc)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "graph.edges[0].to" in err and "graph.edges[1].from" in err


def test_json_mode_reports_errors_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = minimal_map()
    doc["graph"]["edges"][2]["to"] = "ned"
    path = write_map(tmp_path, doc)
    assert main(["plan", str(path), "--json"]) == 2
    payload = json.loads(capsys.readouterr().out)
    assert payload["ok"] is False
    assert payload["errors"][0]["path"] == "graph.edges[2].to"
    assert "did you mean 'end'?" in payload["errors"][0]["message"]
