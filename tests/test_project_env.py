"""Checks run the project's commands in the project's environment: the project's Python (``[checks] python``,
else its ``.venv``, else ``PATH`` as the person has it), never foreman's own packages in the way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

from .engine_support import events, foreman, init_repo, kinds, trust_map

AGENT = r"""
import json, os, subprocess
from pathlib import Path
if os.environ["FOREMAN_ROLE"] == "reviewer":
    print("CLEAN")
    raise SystemExit(0)
node = os.environ["FOREMAN_NODE_ID"]
Path("x.py").write_text("def double(n):\n    return 2 * n\n")
Path("_checkpoints").mkdir(exist_ok=True)
Path(f"_checkpoints/{node}.json").write_text(json.dumps({"node_id": node, "output": {"double(2)": 4}}))
subprocess.run(["git", "add", "x.py", f"_checkpoints/{node}.json"], check=True)
subprocess.run(["git", "commit", "-qm", f"{node}\n\nForeman-Node: {node}"], check=True)
"""

TEST_X = """import unittest

import x


class T(unittest.TestCase):
    def test_double(self):
        self.assertEqual(x.double(2), 4)
"""


def _one_node_repo(tmp_path: Path, cmd: str, checks: str = "") -> Path:
    """A project with its own `tests/` (no __init__.py: a namespace package) and one node checked by ``cmd``."""
    repo = tmp_path / "project"
    (repo / "tests").mkdir(parents=True)
    (repo / "tests" / "test_x.py").write_text(TEST_X)
    doc = {
        "version": "0.1.0",
        "meta": {"title": "doubling"},
        "graph": {
            "nodes": [
                {"id": "start", "label": "Start", "type": "terminal"},
                {"id": "double", "label": "Double", "type": "process"},
            ],
            "edges": [{"from": "start", "to": "double"}],
        },
        "contents": {
            "double": {
                "title": "Double",
                "overview": "Double a number.",
                "implementation": "Files: `x.py`",
                "verify": {"core": [{"desc": "doubles", "level": "L1", "cmd": cmd}]},
            }
        },
    }
    (repo / "algorithm-map.json").write_text(json.dumps(doc, indent=2) + "\n")
    (tmp_path / "agent.py").write_text(AGENT)
    argv = json.dumps([sys.executable, str(tmp_path / "agent.py")])
    (repo / "foreman.toml").write_text(
        f'[worker]\npreset = "command"\nargv = {argv}\n\n[reviewer]\npreset = "command"\nargv = {argv}\n\n{checks}'
    )
    init_repo(repo, "map and tests")
    return trust_map(repo / "algorithm-map.json")


def _check_results(map_path: Path) -> list[tuple[str, int]]:
    return [
        (e["detail"]["status"], e["detail"]["attempt"])
        for e in kinds(events(map_path), "CheckFinished", "double")
        if e["detail"].get("cmd")
    ]


def test_foremans_editable_install_exposes_foreman_tui_alone(tmp_path: Path) -> None:
    for name in ("tests", "maps", "bench"):
        probe = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=tmp_path, capture_output=True, text=True)
        assert probe.returncode == 1 and "No module named" in probe.stderr, (name, probe.stderr)
    assert subprocess.run([sys.executable, "-c", "import foreman_tui.cli"], cwd=tmp_path).returncode == 0


def test_a_projects_tests_folder_passes_its_check_the_first_time(tmp_path: Path) -> None:
    # The project's Python here is the one foreman is installed in (editable, the README's way): its own
    # `tests` package must not shadow the project's namespace package `tests`.
    checks = f"[checks]\npython = {json.dumps(sys.executable)}\n"
    map_path = _one_node_repo(tmp_path, "python3 -m unittest tests.test_x", checks)
    result = foreman("run", str(map_path), "--headless")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert _check_results(map_path) == [("pass", 1)]
    prompt = (map_path.parent / ".foreman" / "runs" / "double" / "prompt-1.md").read_text()
    assert f"`python` is {sys.executable} (foreman.toml [checks] python)" in prompt


def test_checks_run_with_the_projects_venv_when_it_has_one(tmp_path: Path) -> None:
    out = tmp_path / "prefix.txt"
    map_path = _one_node_repo(tmp_path, f"python -c \"import sys; open('{out}', 'w').write(sys.prefix)\"")
    project = map_path.parent
    venv.create(project / ".venv", with_pip=False)  # git-ignored below, as projects do
    (project / ".gitignore").write_text(".venv/\n")
    subprocess.run(["git", "add", ".gitignore"], cwd=project, check=True)
    subprocess.run(["git", "commit", "-qm", "ignore the venv"], cwd=project, check=True)
    result = foreman("run", str(map_path), "--headless")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert Path(out.read_text()).resolve() == (project / ".venv").resolve()
    prompt = (project / ".foreman" / "runs" / "double" / "prompt-1.md").read_text()
    assert "(the project's .venv)" in prompt


def test_without_a_project_python_checks_get_path_as_the_person_has_it(tmp_path: Path) -> None:
    out = tmp_path / "path.txt"
    map_path = _one_node_repo(tmp_path, f"sh -c 'echo \"$PATH\" > {out}'")
    person = os.pathsep.join(["/usr/local/bin", "/usr/bin", "/bin"])
    result = foreman("run", str(map_path), "--headless", env={"PATH": person})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert out.read_text().strip() == person  # foreman's interpreter is not put first
