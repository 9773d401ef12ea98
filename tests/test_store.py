"""The state store: atomic, locked, re-reading writes that touch nothing but state.nodes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from foreman_tui.map.errors import MapError
from foreman_tui.map.load import load_map
from foreman_tui.map.store import MapStore, dump_map

from .conftest import REPO


def without_state_nodes(doc: dict[str, Any]) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    doc.get("state", {}).pop("nodes", None)
    return doc


def test_bpc_round_trip_changes_only_state_nodes(bpc_copy: Path) -> None:
    before_bytes = bpc_copy.read_bytes()
    before = json.loads(before_bytes)
    MapStore(bpc_copy).set_states(
        {"02_solve_rmp": {"status": "verified", "verify_results": {"core": [True, None, False, True, True]}}}
    )
    after_bytes = bpc_copy.read_bytes()
    after = json.loads(after_bytes)
    assert after["state"]["nodes"]["02_solve_rmp"] == {
        "status": "verified",
        "verify_results": {"pre": [True, True], "core": [True, None, False, True, True], "post": [True, True, True]},
    }
    # Everything else, unknown fields, Chinese text and key order included, is identical, byte for byte.
    assert dump_map(without_state_nodes(after)) == dump_map(without_state_nodes(before))
    assert "BPC 算法地图".encode() in after_bytes and b"\\u" not in after_bytes
    assert list(after) == list(before)
    assert list(after["state"]["nodes"]) == list(before["state"]["nodes"])
    load_map(bpc_copy)  # still a valid map


def test_writing_the_same_state_leaves_the_file_byte_identical(bpc_copy: Path) -> None:
    before = bpc_copy.read_bytes()
    mtime = bpc_copy.stat().st_mtime_ns
    MapStore(bpc_copy).set_status("01_initialize", "implemented")  # already so
    assert bpc_copy.read_bytes() == before
    assert bpc_copy.stat().st_mtime_ns == mtime


def test_state_is_created_when_the_map_has_none(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(
        json.dumps(
            {
                "version": "0.1.0",
                "meta": {"title": "t"},
                "graph": {"nodes": [{"id": "a", "label": "A", "type": "process"}], "edges": []},
                "contents": {},
            }
        )
    )
    MapStore(path).set_status("a", "implemented")
    doc = json.loads(path.read_text())
    assert list(doc) == ["version", "meta", "graph", "contents", "state"]
    assert doc["state"] == {"nodes": {"a": {"status": "implemented"}}}
    assert not path.read_text().endswith("\n")  # the original had no trailing newline; none is added


def test_an_edit_between_two_writes_is_kept(bpc_copy: Path) -> None:
    store = MapStore(bpc_copy)
    store.set_status("01_initialize", "verified")
    doc = json.loads(bpc_copy.read_text(encoding="utf-8"))
    doc["contents"]["04_pricing"]["implementation"] += "\n\n调整：worker edit"
    bpc_copy.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    store.set_status("02_solve_rmp", "verified")
    final = json.loads(bpc_copy.read_text(encoding="utf-8"))
    assert final["contents"]["04_pricing"]["implementation"].endswith("调整：worker edit")
    assert final["state"]["nodes"]["01_initialize"]["status"] == "verified"
    assert final["state"]["nodes"]["02_solve_rmp"]["status"] == "verified"


def test_an_edit_landing_during_a_write_is_not_overwritten(bpc_copy: Path) -> None:
    """Someone writes the file (without our lock) after we read it: we notice before renaming and redo."""
    store = MapStore(bpc_copy)
    calls = 0

    def change(doc: dict[str, Any]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            other = json.loads(bpc_copy.read_text(encoding="utf-8"))
            other["contents"]["08_branch"]["title"] = "分支（已改）"
            bpc_copy.write_text(json.dumps(other, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        doc["state"]["nodes"]["08_branch"]["status"] = "verified"

    store.update(change)
    final = json.loads(bpc_copy.read_text(encoding="utf-8"))
    assert calls == 2
    assert final["contents"]["08_branch"]["title"] == "分支（已改）"
    assert final["state"]["nodes"]["08_branch"]["status"] == "verified"


def test_a_bad_status_is_refused_and_nothing_is_written(bpc_copy: Path) -> None:
    before = bpc_copy.read_bytes()
    with pytest.raises(ValueError, match="status"):
        MapStore(bpc_copy).set_status("01_initialize", "done")
    with pytest.raises(ValueError, match="verify_results"):
        MapStore(bpc_copy).set_states({"01_initialize": {"verify_results": {"core": ["yes"]}}})
    with pytest.raises(MapError, match=r"state\.nodes\.nope"):
        MapStore(bpc_copy).set_status("nope", "verified")
    assert bpc_copy.read_bytes() == before


def test_write_keeps_mode_and_leaves_no_temp_files(bpc_copy: Path) -> None:
    os.chmod(bpc_copy, 0o640)
    MapStore(bpc_copy).set_status("04_pricing", "verified")
    assert stat.S_IMODE(bpc_copy.stat().st_mode) == 0o640
    leftovers = [p.name for p in bpc_copy.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    assert (bpc_copy.parent / ".foreman" / ".gitignore").read_text() == "*\n"


STATE_WRITER = """
import sys
from foreman_tui.map.store import MapStore
store = MapStore(sys.argv[1])
for i in range(int(sys.argv[2])):
    status = "verified" if i % 2 else "implemented"
    store.set_states({"02_solve_rmp": {"status": status, "verify_results": {"core": [bool(i % 2)] * 5}}})
store.set_states({"03_extract_duals": {"status": "verified"}})
"""

CONTENT_EDITOR = """
import sys
from foreman_tui.map.store import MapStore
store = MapStore(sys.argv[1])
for i in range(int(sys.argv[2])):
    def change(doc, i=i):
        doc["contents"]["04_pricing"]["implementation"] += f"\\n<!-- edit {i} -->"
    store.update(change)
"""


def test_two_processes_writing_state_and_contents_lose_neither_edit(bpc_copy: Path) -> None:
    rounds = 60
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(bpc_copy), str(rounds)], env=env, stdin=subprocess.DEVNULL)
        for code in (STATE_WRITER, CONTENT_EDITOR)
    ]
    reads = 0
    while any(p.poll() is None for p in procs):
        json.loads(bpc_copy.read_bytes())  # valid JSON at every moment a reader looks
        reads += 1
        time.sleep(0.002)
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    final = json.loads(bpc_copy.read_text(encoding="utf-8"))
    implementation = final["contents"]["04_pricing"]["implementation"]
    assert [f"<!-- edit {i} -->" in implementation for i in range(rounds)] == [True] * rounds
    assert final["state"]["nodes"]["02_solve_rmp"]["status"] == "verified"  # the last of the writer's toggles
    assert final["state"]["nodes"]["03_extract_duals"]["status"] == "verified"
    assert reads > 0
