"""The bundled demo map is correct, and its checks are real: each L1 check fails before its node's code
exists and passes after; the region (L2), end-to-end (L3) checks and the benchmark pass at the end."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from foreman_tui.engine.project import CheckRef, Project

from .conftest import DEMO_DIR, DEMO_MAP, run_cli


def run_check(cmd: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    argv = shlex.split(cmd)
    if argv[0] == "python":  # the interpreter running the tests, whatever `python` is on PATH
        argv[0] = sys.executable
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_demo_validates_without_warnings() -> None:
    result = run_cli("validate", str(DEMO_MAP))
    assert result.returncode == 0, result.stderr
    assert "Warnings" not in result.stdout
    assert "8 process, 1 decision, 2 terminal" in result.stdout


def test_demo_shape_matches_what_later_issues_rely_on() -> None:
    project = Project.load(DEMO_MAP)
    graph = project.graph
    assert 5 <= len(graph.process_order) <= 8
    assert len(graph.regions) == 2 and len(graph.back_edges) == 1
    assert list(graph.types.values()).count("decision") == 1
    shared = [
        (a, b)
        for a in graph.process_order
        for b in graph.process_order
        if a < b and set(project.owned[a].files) & set(project.owned[b].files)
    ]
    assert shared == [("07_inertia", "08_summarize")]
    levels = {c.level for n in graph.process_order for c in project.node_checks(n) if c.runnable}
    assert levels == {"L1", "L3"} and all(project.region_checks(r.index) for r in graph.regions)
    assert project.doc.model.meta.benchmark is not None and project.doc.model.meta.benchmark.cmd


def test_every_check_command_of_the_demo_is_real(tmp_path: Path) -> None:
    project = Project.load(DEMO_MAP)
    work = tmp_path / "demo"
    shutil.copytree(DEMO_DIR / "project", work)

    def runnable(checks: list[CheckRef]) -> list[CheckRef]:
        return [c for c in checks if c.runnable and c.level == "L1"]

    for node in project.graph.process_order:
        checks = runnable(project.node_checks(node))
        for check in checks:
            before = run_check(check.item.cmd or "", work)
            assert before.returncode != 0, f"{node}: {check.item.cmd} passes before the node is implemented"
        solution = DEMO_DIR / "solution" / node
        shutil.copytree(solution, work, dirs_exist_ok=True)
        for check in checks:
            after = run_check(check.item.cmd or "", work)
            assert after.returncode == 0, f"{node}: {check.item.cmd} fails after its solution:\n{after.stderr}"

    later = [c for r in project.graph.regions for c in project.region_checks(r.index)] + project.end_checks()
    for check in later:
        if check.runnable:
            result = run_check(check.item.cmd or "", work)
            assert result.returncode == 0, f"{check.owner}: {check.item.cmd}\n{result.stderr}"
    bench = project.doc.model.meta.benchmark
    assert bench is not None and bench.cmd
    output = run_check(bench.cmd, work)
    assert output.returncode == 0 and output.stdout.strip() == "14.307"  # the objective alone
    assert bench.known_optimal == 14.307
