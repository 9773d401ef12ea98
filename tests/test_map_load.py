"""Loading real maps: the BPC reference map and the protocol's variations."""

from __future__ import annotations

from pathlib import Path

import pytest

from foreman_tui.map.errors import MapError
from foreman_tui.map.load import load_map, parse_map

from .conftest import BPC_MAP, minimal_map, write_map


def test_bpc_map_loads_with_its_chinese_text_and_extra_fields() -> None:
    doc = load_map(BPC_MAP)
    model = doc.model
    assert model.meta.title == "BPC 算法地图"
    assert model.meta.benchmark is not None and model.meta.benchmark.known_optimal == 290
    assert [n.id for n in model.graph.nodes if n.type == "decision"] == [
        "05_column_check",
        "06_integrality_check",
        "07_bound_check",
    ]
    cg = model.graph.regions[0]
    assert cg.id == "cg_loop" and cg.semantic and cg.verify is not None
    assert cg.verify.core[0].level == "L2"
    assert model.contents["01_initialize"].verify.core[0].model_extra == {"category": "correctness"}


def test_unknown_fields_are_reported_once_per_field_with_a_count() -> None:
    warnings = load_map(BPC_MAP).warnings
    category = [w for w in warnings if "'category'" in w.message]
    assert len(category) == 1
    assert "(71 places)" in category[0].message
    assert category[0].path.endswith(".category")


def test_unknown_top_level_and_node_fields_are_kept_and_warned(tmp_path: Path) -> None:
    doc = minimal_map()
    doc["x_tool"] = {"keep": [1, 2]}
    doc["graph"]["nodes"][1]["colour"] = "red"
    loaded = load_map(write_map(tmp_path, doc))
    paths = {w.path for w in loaded.warnings}
    assert {"x_tool", "graph.nodes[1].colour"} <= paths
    assert loaded.raw["x_tool"] == {"keep": [1, 2]}


def test_how_is_read_when_implementation_is_absent() -> None:
    doc = minimal_map()
    doc["contents"]["a"] = {"title": "A", "overview": "o", "how": "Files: `src/a.py`"}
    loaded = parse_map(__import__("json").dumps(doc))
    content = loaded.content("a")
    assert content is not None and content.how_text == "Files: `src/a.py`" and content.how_field == "how"


def test_other_schema_version_is_a_warning_not_an_error() -> None:
    doc = minimal_map()
    doc["version"] = "0.2.0"
    loaded = parse_map(__import__("json").dumps(doc))
    assert any(w.path == "version" for w in loaded.warnings)


def test_a_missing_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(MapError) as info:
        load_map(tmp_path / "nope.json")
    assert "no such file" in str(info.value)


def test_a_folder_means_its_algorithm_map(tmp_path: Path) -> None:
    write_map(tmp_path, minimal_map())
    assert load_map(tmp_path).model.meta.title == "T"


def test_process_node_without_contents_is_a_warning(tmp_path: Path) -> None:
    doc = minimal_map()
    del doc["contents"]["b"]
    loaded = load_map(write_map(tmp_path, doc))
    assert any("process node 'b' has no contents" in w.message for w in loaded.warnings)
