"""The command line as a person or a script uses it: real subprocesses of the installed entry point."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from foreman_tui import cli

from .conftest import BPC_MAP, DEMO_MAP, minimal_map, run_cli, write_map


def test_validate_bpc_exits_0_with_warnings() -> None:
    result = run_cli("validate", str(BPC_MAP))
    assert result.returncode == 0, result.stderr
    assert "5 process, 3 decision, 2 terminal" in result.stdout
    assert "05_column_check→02_solve_rmp" in result.stdout
    assert "field 'category' is not in schema 0.1.0 (71 places)" in result.stdout
    assert "\x1b[" not in result.stdout  # piped output is plain


def test_plan_json_on_bpc() -> None:
    result = run_cli("plan", str(BPC_MAP), "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["batches"][0]["nodes"] == ["01_initialize"]
    batched = {n for b in plan["batches"] for n in b["nodes"]}
    assert batched == {"01_initialize", "02_solve_rmp", "03_extract_duals", "04_pricing", "08_branch"}
    assert {(e["from"], e["to"]) for e in plan["back_edges"]} == {
        ("05_column_check", "02_solve_rmp"),
        ("08_branch", "02_solve_rmp"),
    }
    node = plan["nodes"]["02_solve_rmp"]
    assert node["files"] == ["src/python/01_basic_bpc/rmp.py"] and node["source"] == "implementation"
    assert node["upstream_checkpoints"] == ["_checkpoints/01_initialize.json"]
    assert [c["level"] for c in node["checks"]].count("L1") == 9
    assert {"nodes": ["01_initialize", "02_solve_rmp"], "files": ["src/python/01_basic_bpc/rmp.py"]} in plan["overlaps"]


def test_plan_on_the_demo_shows_the_shared_file_wait() -> None:
    result = run_cli("plan", str(DEMO_MAP))
    assert result.returncode == 0, result.stderr
    assert "Batch 1: 01_load_points, 02_vector_math" in result.stdout
    assert "08_summarize waits: shares kmeans/report.py with 07_inertia" in result.stdout
    assert "06_converged→04_assign" in result.stdout


def test_plan_max_parallel_flag(tmp_path: Path) -> None:
    result = run_cli("plan", str(DEMO_MAP), "--max-parallel", "1", "--json")
    plan = json.loads(result.stdout)
    assert plan["max_parallel"] == 1
    assert all(len(b["nodes"]) == 1 for b in plan["batches"])
    bad = run_cli("plan", str(DEMO_MAP), "--max-parallel", "0")
    assert bad.returncode == 2 and "must be at least 1" in bad.stderr


def test_status_lists_regions_and_totals(bpc_copy: Path) -> None:
    result = run_cli("status", str(bpc_copy))
    assert result.returncode == 0, result.stderr
    assert 'Region "Column Generation Loop": 0/3 verified' in result.stdout
    assert "Total: 0/5 process nodes verified (5 implemented)" in result.stdout
    data = json.loads(run_cli("status", str(bpc_copy), "--json").stdout)
    assert data["totals"] == {
        "process_nodes": 5,
        "verified": 0,
        "by_status": {"implemented": 5},
        "complete": False,
        "stale": 0,
    }
    assert [r["line"] for r in data["regions"]] == [
        'Region "Column Generation Loop": 0/3 verified',
        'Region "Branch-and-Bound": 0/4 verified',
    ]


def test_status_after_every_node_is_verified(tmp_path: Path) -> None:
    doc = minimal_map()
    doc["state"] = {"nodes": {"a": {"status": "verified"}, "b": {"status": "verified"}}}
    result = run_cli("status", str(write_map(tmp_path, doc)))
    assert "Total: 2/2 process nodes verified" in result.stdout and "Build complete." in result.stdout


def test_map_defaults_to_algorithm_map_json_in_the_current_folder(tmp_path: Path) -> None:
    shutil.copy(DEMO_MAP, tmp_path / "algorithm-map.json")
    assert run_cli("validate", cwd=tmp_path).returncode == 0
    missing = run_cli("validate", cwd=tmp_path / ".." / "..")
    assert missing.returncode == 2 and "algorithm-map.json" in missing.stderr and "no such file" in missing.stderr


def test_bad_input_exits_2_and_names_the_path(tmp_path: Path) -> None:
    doc = minimal_map()
    doc["graph"]["edges"][1]["to"] = "bb"
    result = run_cli("plan", str(write_map(tmp_path, doc)))
    assert result.returncode == 2
    assert "graph.edges[1].to: unknown node 'bb' — did you mean 'b'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_internal_error_is_one_line_unless_debug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli("validate", str(tmp_path / "missing-dir" / "x.json")).returncode == 2  # bad input, not a crash

    def broken(args: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setitem(cli.HANDLERS, "validate", broken)
    assert cli.main(["validate"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "foreman: internal error: RuntimeError: boom (run with --debug for the traceback)"
    assert cli.main(["--debug", "validate"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_help_everywhere() -> None:
    for args in ((), ("validate",), ("plan",), ("status",)):
        result = run_cli(*args, "--help")
        assert result.returncode == 0 and "usage: foreman" in result.stdout
    assert run_cli().returncode == 2  # no command: usage on stderr, bad input
