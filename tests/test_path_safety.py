"""Paths from map content stay inside the project (issue 13, item 3): a region id or label becomes a safe file
name wherever foreman derives one from it; a symbolic link leading outside the project — an owned file, a
folder on its way, ``_checkpoints``, a feedback file, ``.foreman`` itself — is refused by validate and run
(exit 2, named) and never read into a prompt nor written through."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from foreman_tui.engine.project import Project
from foreman_tui.engine.prompts import checkpoint_problem, code_files_text, worker_prompt
from foreman_tui.map.files import LeavesRoot, read_inside, safe_name

from .conftest import DEMO_DIR, minimal_map, write_map
from .engine_support import demo_repo, events, foreman, kinds, trust_map

MARKER = "OUTSIDE-MARKER-7f3a9c"
"""The text of the files outside the project: it must appear in no prompt and no file foreman writes."""


def _outside(tmp_path: Path) -> Path:
    """A folder beside the project with a marked file in it."""
    folder = tmp_path / "outside"
    folder.mkdir(exist_ok=True)
    (folder / "secret.txt").write_text(f"{MARKER}\n", encoding="utf-8")
    return folder


def _files_with_marker(*roots: Path) -> list[Path]:
    """Regular files (not followed through links) under ``roots`` whose bytes contain the marker."""
    found = []
    for root in roots:
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d != ".git"]
            for name in files:
                path = Path(folder) / name
                if not path.is_symlink() and MARKER.encode() in path.read_bytes():
                    found.append(path)
    return found


def _edit_map(map_path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Change the map, commit it, and approve its commands again."""
    doc = json.loads(map_path.read_text(encoding="utf-8"))
    change(doc)
    map_path.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    subprocess.run(["git", "commit", "-qam", "edit the map"], cwd=map_path.parent, check=True)
    trust_map(map_path)


# ------------------------------------------------------------------------------------------- safe names


def test_a_safe_name_is_one_readable_path_component() -> None:
    assert safe_name("prepare") == "prepare"  # a plain id is kept as it is
    assert safe_name("准备阶段") == "准备阶段"  # and so are CJK letters
    for text in ("../../../../tmp/x", "/etc/passwd", "a\\b", "..", ".", "", ".hidden", "a\0b", "x" * 400, "a b"):
        name = safe_name(text)
        assert name and "/" not in name and "\\" not in name and "\0" not in name
        assert not name.startswith(".") and name not in (".", "..")
        assert len(name.encode("utf-8")) <= 120
    assert safe_name("a/b") != safe_name("a_b") != safe_name("a:b")  # a changed key never takes another's name
    assert safe_name("x" * 400) != safe_name("x" * 401)


def test_validate_warns_of_a_region_id_shaped_like_a_path(tmp_path: Path) -> None:
    regions = [{"id": "../../../../tmp/x", "label": "R", "nodes": ["a", "b"]}]
    map_path = write_map(tmp_path, minimal_map(regions=regions))
    done = foreman("validate", str(map_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "graph.regions[0].id" in done.stdout + done.stderr
    assert f"region_{safe_name('../../../../tmp/x')}" in done.stdout + done.stderr


def test_a_region_id_with_dot_dot_segments_writes_nothing_outside_the_project(tmp_path: Path) -> None:
    """The region's L2 check log, its diagnosis logs and a decision on its pause all land in .foreman."""
    map_path = demo_repo(tmp_path)
    escape = tmp_path / "escape"
    key = "../" * 40 + str(escape).lstrip("/")

    def change(doc: dict[str, Any]) -> None:
        region = doc["graph"]["regions"][0]
        region["id"] = key
        region["verify"]["core"][0]["cmd"] = "python -c 'import sys; print(\"region check ran\"); sys.exit(1)'"
        pre = doc["contents"]["01_load_points"]["verify"]["pre"][0]  # a condition the diagnosis runs again
        pre["cmd"] = "python -c 'import os; assert os.path.exists(\"data/points.csv\")'"

    _edit_map(map_path, change)
    run = foreman("run", str(map_path), "--headless")
    assert run.returncode == 3, run.stdout + run.stderr  # the region's L2 failed: a pause on it
    assert kinds(events(map_path), "NodePaused", f"region:{key}")
    decided = foreman("decide", str(map_path), f"region:{key}", "C")  # accept and go on
    assert decided.returncode == 0, decided.stdout + decided.stderr

    assert not escape.exists() and not Path(str(escape) + "-core0.log").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["project", "script"]
    home = map_path.parent / ".foreman"
    logs = list((home / "logs" / f"region_{safe_name(key)}").glob("L2-*.log"))
    assert logs and "region check ran" in logs[0].read_text()
    assert list((home / "logs" / "diagnosis").glob(f"region_{safe_name(key)}-01_load_points-pre0.log"))
    assert len(list((home / "decisions").glob("*.json"))) == 1
    resumed = foreman("run", str(map_path), "--headless")  # the decision is taken from inside .foreman
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert [e["detail"]["option"] for e in kinds(events(map_path), "DecisionRecorded", f"region:{key}")] == ["C"]


# ------------------------------------------------------------------------------- symbolic links: at load


def test_an_owned_file_linked_outside_the_project_is_refused_by_validate_and_run(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path)
    secret = _outside(tmp_path) / "secret.txt"
    (map_path.parent / "kmeans" / "points.py").symlink_to(secret)
    subprocess.run(["git", "add", "-A"], cwd=map_path.parent, check=True)
    subprocess.run(["git", "commit", "-qm", "a link out"], cwd=map_path.parent, check=True)

    for args in (("validate", str(map_path)), ("plan", str(map_path)), ("run", str(map_path), "--headless")):
        done = foreman(*args)
        said = done.stdout + done.stderr
        assert done.returncode == 2, said
        assert "01_load_points" in said and "kmeans/points.py" in said and str(secret) in said
    assert not (map_path.parent / ".foreman" / "logs").exists()  # no worker started
    assert not events(map_path) or not kinds(events(map_path), "WorkerStarted")
    assert secret.read_text() == f"{MARKER}\n"
    assert _files_with_marker(map_path.parent) == []


@pytest.mark.parametrize(
    "link",
    [
        "src/a.py",  # an owned file
        "src",  # a folder on an owned file's way
        "_checkpoints",  # where the upstream checkpoints are read from
        "_checkpoints/a.json",
        "algorithm-map.feedback.md",  # a feedback file, read into workers' tasks
    ],
)
def test_a_link_out_of_the_project_on_a_path_foreman_reads_is_a_validate_error(tmp_path: Path, link: str) -> None:
    project = tmp_path / "project"
    project.mkdir()
    map_path = write_map(project, minimal_map())  # a owns src/a.py, b owns src/b.py
    outside = _outside(tmp_path)
    target = outside / "secret.txt" if "." in Path(link).name else outside
    (project / link).parent.mkdir(parents=True, exist_ok=True)
    (project / "inside").mkdir()
    (project / "inside" / "secret.txt").write_text("a file of the project\n")
    (project / link).symlink_to(project / "inside" / target.relative_to(outside))
    kept = foreman("validate", str(map_path))  # a link that stays inside the project is fine
    assert kept.returncode == 0, kept.stdout + kept.stderr
    (project / link).unlink()
    (project / link).symlink_to(target)
    done = foreman("validate", str(map_path))
    said = done.stdout + done.stderr
    assert done.returncode == 2, said
    assert link in said and str(target) in said and "outside the project" in said


def test_a_foreman_folder_linked_outside_the_project_is_refused(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path)
    outside = _outside(tmp_path)
    (map_path.parent / ".foreman").symlink_to(outside, target_is_directory=True)
    done = foreman("run", str(map_path), "--headless")
    assert done.returncode == 2, done.stdout + done.stderr
    assert ".foreman" in done.stderr and str(outside) in done.stderr
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_a_link_inside_the_foreman_folder_leading_out_is_refused(tmp_path: Path) -> None:
    """A repository can commit ``.foreman/logs`` as a link too."""
    map_path = demo_repo(tmp_path)
    outside = _outside(tmp_path)
    (map_path.parent / ".foreman").mkdir()
    (map_path.parent / ".foreman" / "logs").symlink_to(outside, target_is_directory=True)
    done = foreman("run", str(map_path), "--headless")
    assert done.returncode == 2, done.stdout + done.stderr
    assert ".foreman/logs" in done.stderr and str(outside) in done.stderr
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


# ------------------------------------------------------------------------------- symbolic links: at read


def test_read_inside_reads_only_what_really_lies_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "real.txt").write_text("inside\n")
    (root / "near").symlink_to("sub/real.txt")
    (root / "far").symlink_to(_outside(tmp_path) / "secret.txt")
    (root / "way").symlink_to(tmp_path / "outside")
    assert read_inside(root / "sub" / "real.txt", root) == "inside\n"
    assert read_inside(root / "near", root) == "inside\n"
    for path in (root / "far", root / "way" / "secret.txt", root / ".." / "outside" / "secret.txt"):
        with pytest.raises(LeavesRoot):
            read_inside(path, root)
    with pytest.raises(FileNotFoundError):
        read_inside(root / "missing.txt", root)


def test_no_prompt_and_no_check_of_a_checkpoint_reads_through_a_link_out(tmp_path: Path) -> None:
    """The worker's task (upstream checkpoints), the reviewer's (owned files) and the checkpoint check."""
    outside = _outside(tmp_path)
    (outside / "cp.json").write_text(json.dumps({"node_id": "a", "output": {"secret": MARKER}}))
    project = tmp_path / "project"
    (project / "_checkpoints").mkdir(parents=True)
    map_path = write_map(project, minimal_map())
    loaded = Project.load(map_path)  # valid: the links come afterwards, as a worker's commit could bring them
    (project / "_checkpoints" / "a.json").symlink_to(outside / "cp.json")
    (project / "src").mkdir()
    (project / "src" / "b.py").symlink_to(outside / "secret.txt")

    task = worker_prompt(loaded, "b", project)
    assert MARKER not in task and "not read: a symbolic link leading outside the project" in task
    review = code_files_text(project, ["src/b.py"], [])
    assert MARKER not in review and "not read: a symbolic link leading outside the project" in review
    problem = checkpoint_problem(project, "a")
    assert problem is not None and "outside the project" in problem


def test_a_link_out_made_after_validation_is_not_read_into_the_review(tmp_path: Path) -> None:
    """A check turns the node's owned file into a link out of its tree (valid Python with the marker in a
    comment, so the checks pass): the reviewer's prompt does not carry it, nor does any file of foreman's."""
    map_path = demo_repo(tmp_path)
    outside = _outside(tmp_path)
    solution = (DEMO_DIR / "solution" / "01_load_points" / "kmeans" / "points.py").read_text(encoding="utf-8")
    (outside / "points.py").write_text(f"# {MARKER}\n{solution}", encoding="utf-8")

    def change(doc: dict[str, Any]) -> None:
        doc["contents"]["01_load_points"]["verify"]["post"].append(
            {"desc": "a link out", "level": "L1", "cmd": f"ln -sf {outside / 'points.py'} kmeans/points.py"}
        )

    _edit_map(map_path, change)
    run = foreman("run", str(map_path), "--headless")
    assert run.returncode == 0, run.stdout + run.stderr
    review = (map_path.parent / ".foreman" / "runs" / "01_load_points" / "review-1.md").read_text(encoding="utf-8")
    assert MARKER not in review and "not read: a symbolic link leading outside the project" in review
    assert _files_with_marker(map_path.parent) == []


def test_the_change_log_is_not_written_through_a_link_out(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path)
    outside = tmp_path / "someone-elses.md"
    outside.write_text("theirs\n")
    docs = map_path.parent / "docs"
    docs.mkdir(exist_ok=True)
    (docs / "change_log.md").symlink_to(outside)
    assert foreman("run", str(map_path), "--headless").returncode == 0
    refused = foreman("report", str(map_path), "--change-log")
    assert refused.returncode == 2 and "not writing the change log" in refused.stderr
    assert outside.read_text() == "theirs\n"
