"""The docs' examples are true: the minimal map in docs/map-format.md is accepted as it is."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import REPO, run_cli


def test_the_minimal_map_in_the_docs_validates(tmp_path: Path) -> None:
    text = (REPO / "docs" / "map-format.md").read_text(encoding="utf-8")
    block = text.split("## A complete minimal map", 1)[1].split("```json\n", 1)[1].split("\n```", 1)[0]
    (tmp_path / "algorithm-map.json").write_text(block, encoding="utf-8")
    result = run_cli("validate", str(tmp_path / "algorithm-map.json"), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["nodes"]["process"] == 3 and report["warnings"] == []
    assert [r["key"] for r in report["regions"]] == ["counting"]
    assert {c["level"] for c in report["commands"]} == {"L1", "L2", "L3"}
