"""The real reference map (../shared/reference/bpc-phase1.json: loops, decision nodes, a terminal with checks,
Chinese text) run end to end with the scripted agent and the planner's tests in place: every command in the map
runs, each at its moment (SPEC §4.7; a decision's L1 checks when its feeders are verified, the end node's at the
end)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from foreman_tui.engine.project import Project
from foreman_tui.engine.reports import commands_report

from .conftest import BPC_MAP
from .engine_support import events, foreman, init_repo, kinds, trust_map

# The planner's tests: real pytest files at the paths the map's commands name, each checking code a node owns.
# test_branch.py runs whole as 06_integrality_check's check, when 04_pricing (its feeder) is verified and before
# 08_branch exists; its branch-selection test needs 08's code, so it waits for it (a planner's skip).
PLANNER_TESTS = {
    "test_instance.py": {"instance": "instance.py"},
    "test_rmp.py": {"rmp": "rmp.py", "t3_dual": "rmp.py"},
    "test_pricing.py": {"pricing": "pricing.py", "mip_oracle": "pricing.py"},
    "test_branch.py": {"ub_only_decreases": "pricing.py", "branch_selection": "branch.py?"},
    "test_cg_convergence.py": {"convergence": "rmp.py", "t3_converge": "pricing.py"},
    "test_checker.py": {"objective": "branch.py"},
    "test_e2e.py": {"routes": "branch.py", "pn16k8": "branch.py"},
}


def _planner_test(tests: dict[str, str]) -> str:
    lines = [
        "import pytest",
        "from pathlib import Path",
        "",
        "CODE = Path(__file__).resolve().parents[1] / '01_basic_bpc'",
    ]
    for name, file in tests.items():
        lines += ["", "", f"def test_{name}():", f"    code = CODE / {file.rstrip('?')!r}"]
        if file.endswith("?"):
            lines.append("    if not code.exists():\n        pytest.skip('not written yet')")
        lines.append("    assert 'def solve' in code.read_text()")
    return "\n".join(lines) + "\n"


def _bpc_project(tmp_path: Path) -> Path:
    project = tmp_path / "bpc"
    tests = project / "src" / "python" / "tests"
    tests.mkdir(parents=True)
    for name, functions in PLANNER_TESTS.items():
        (tests / name).write_text(_planner_test(functions))
    raw = json.loads(BPC_MAP.read_text(encoding="utf-8"))
    raw.pop("state")  # the state reset: every process node is built by a worker
    (project / "algorithm-map.json").write_text(json.dumps(raw, ensure_ascii=False, indent=2), encoding="utf-8")
    owned = Project.load(project / "algorithm-map.json").owned
    script = {
        "nodes": {
            node: {"files": {path: f"# {node}\ndef solve():\n    return {i}\n" for path in files.files}}
            for i, (node, files) in enumerate(owned.items())
        },
        "reviews": {},
    }
    (tmp_path / "script.json").write_text(json.dumps(script))
    agent = f'preset = "scripted"\nargs = ["--script", {json.dumps(str(tmp_path / "script.json"))}]\n'
    (project / "foreman.toml").write_text(
        f"poll = 0.5\n[worker]\n{agent}\n[reviewer]\n{agent}\n[checks]\npython = {json.dumps(sys.executable)}\n"
    )
    init_repo(project, "the BPC map and the planner's tests")
    return project / "algorithm-map.json"


def _stage_of(when: str) -> str:
    """The event node a command's CheckFinished carries, from the moment `foreman plan` says it runs at."""
    if when.startswith("with "):
        return when.split()[1]
    if when.startswith("when region"):
        label = when.split('"')[1]
        return {"Column Generation Loop": "region:cg_loop", "Branch-and-Bound": "region:bnb"}[label]
    if when.startswith("when "):
        return "decision:" + when.split()[1].removesuffix("'s")
    return "end"


def test_the_reference_map_runs_every_command_at_its_moment(tmp_path: Path) -> None:
    map_path = trust_map(_bpc_project(tmp_path))
    result = foreman("run", str(map_path), "--headless")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr
    evs = events(map_path)
    ran = [e for e in kinds(evs, "CheckFinished") if e["detail"].get("cmd")]
    assert all(e["detail"]["status"] == "pass" for e in ran), [
        e["detail"] for e in ran if e["detail"]["status"] != "pass"
    ]
    expected = commands_report(Project.load(map_path))
    assert len(expected) == 20
    for command in expected:
        stage = _stage_of(command["when"])
        assert any(e["node"] == stage and e["detail"]["cmd"] == command["cmd"] for e in ran), (command, stage)

    def first(kind: str, node: str, **detail: str) -> float:
        found = [e["ts"] for e in kinds(evs, kind, node) if all(e["detail"].get(k) == v for k, v in detail.items())]
        assert found, (kind, node, detail)
        return min(found)

    # The decision's check ran once its feeder was verified and before the node after it was dispatched.
    decision = first("CheckFinished", "decision:06_integrality_check")
    assert first("NodeVerified", "04_pricing") < decision < first("WorkerStarted", "08_branch", role="worker")
    assert first("DecisionVerified", "06_integrality_check") > decision
    # The end node's checks ran after every process node was verified.
    last_verified = max(e["ts"] for e in kinds(evs, "NodeVerified"))
    assert first("CheckFinished", "end") > last_verified
    state = json.loads(map_path.read_text(encoding="utf-8"))["state"]["nodes"]
    assert state["06_integrality_check"]["verify_results"]["core"] == [None, True, None]
    assert state["09_terminate"]["verify_results"]["core"] == [True, None, True, True]
