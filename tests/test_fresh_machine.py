"""foreman on a machine that is not the developer's: no git identity, a missing agent program, a map that is not
committed, a folder that is not a repository, uncommitted edits of the person's, a merge git refuses."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from foreman_tui.engine.gitrepo import Repo
from foreman_tui.map.store import MapStore

from .conftest import DEMO_MAP
from .engine_support import DEMO_PROCESS, demo_repo, events, foreman, git, init_repo, kinds


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def _repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    return init_repo(root)


def test_a_machine_without_a_git_identity_runs_the_demo_to_the_end(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path)
    project = map_path.parent
    _git(project, "config", "--unset", "user.name")
    _git(project, "config", "--unset", "user.email")
    home = tmp_path / "home"  # an empty HOME: no ~/.gitconfig, no identity anywhere
    home.mkdir()
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "GIT_CONFIG_GLOBAL": str(home / ".gitconfig")}
    result = foreman("run", str(map_path), "--headless", env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    notes = [e["detail"]["note"] for e in kinds(events(map_path), "RunNoted")]
    assert any("no user.name/user.email" in n and "foreman <foreman@localhost>" in n for n in notes)
    authors = set(_git(project, "log", "--format=%an <%ae>|%cn <%ce>", "-n", "30").split())
    assert "<foreman@localhost>|foreman" in " ".join(authors)  # foreman's merges and state commits
    assert _git(project, "status", "--porcelain", "--untracked-files=no") == ""
    assert subprocess.run(["git", "config", "user.name"], cwd=project, capture_output=True).returncode == 1
    assert all(kinds(events(map_path), "NodeVerified", n) for n in DEMO_PROCESS)


def test_a_missing_reviewer_program_is_refused_before_any_worker_starts(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path)
    toml = map_path.parent / "foreman.toml"
    toml.write_text(toml.read_text().split("[reviewer]")[0].rstrip() + "\n")  # the default reviewer: claude
    _git(map_path.parent, "commit", "-qam", "no reviewer section")
    result = foreman("run", str(map_path), "--headless", env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "the reviewer's program `claude`" in result.stderr and "the default" in result.stderr
    assert "[reviewer]" in result.stderr and "preset = " in result.stderr and "Traceback" not in result.stderr
    assert not (map_path.parent / ".foreman" / "events.jsonl").exists()  # nothing started, nothing written


def test_a_command_agent_without_argv_is_bad_input(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path)
    (map_path.parent / "foreman.toml").write_text('[worker]\npreset = "command"\n')
    for args in (["run", str(map_path), "--headless"], ["validate", str(map_path)]):
        result = foreman(*args)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "worker" in result.stderr and "needs argv" in result.stderr and "internal error" not in result.stderr
    flag = foreman("run", str(map_path), "--headless", "--reviewer", "command")
    assert flag.returncode == 2 and "needs argv" in flag.stderr


def test_outside_a_repository_or_with_the_map_uncommitted_nothing_is_written(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "algorithm-map.json").write_bytes(DEMO_MAP.read_bytes())
    outside = foreman("run", str(loose / "algorithm-map.json"), "--headless")
    assert outside.returncode == 2 and "is not inside a git repository" in outside.stderr
    assert not (loose / ".foreman").exists()
    root = _repo(tmp_path)
    (root / "algorithm-map.json").write_text((loose / "algorithm-map.json").read_text())
    (root / "README").write_text("x\n")
    _git(root, "add", "README")
    _git(root, "commit", "-qm", "start")
    uncommitted = foreman("run", str(root / "algorithm-map.json"), "--headless", "--worker", "scripted")
    assert uncommitted.returncode == 2, uncommitted.stdout + uncommitted.stderr
    assert (
        "algorithm-map.json is not committed" in uncommitted.stderr
        and "git add algorithm-map.json" in uncommitted.stderr
    )
    assert not (root / ".foreman").exists()


def test_an_uncommitted_edit_of_the_map_stays_out_of_foremans_commits(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path)
    project = map_path.parent
    raw = json.loads(map_path.read_text(encoding="utf-8"))
    raw["meta"]["title"] = "k-means demo, renamed by the person"
    map_path.write_text(json.dumps(raw, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (project / "kmeans" / "__init__.py").write_text("# the person's work in progress\n")
    result = foreman("run", str(map_path), "--headless")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    notes = [e["detail"]["note"] for e in kinds(events(map_path), "RunNoted")]
    assert any("algorithm-map.json has an uncommitted edit of yours" in n for n in notes)
    assert any("uncommitted changes in kmeans/__init__.py" in n and "worktrees" in n for n in notes)
    committed = json.loads(_git(project, "show", "HEAD:algorithm-map.json"))
    assert committed["meta"]["title"] == "k-means demo"  # the person's edit is not in foreman's commits
    assert all(committed["state"]["nodes"][n]["status"] == "verified" for n in DEMO_PROCESS)  # the state is
    on_disk = json.loads(map_path.read_text(encoding="utf-8"))
    assert on_disk["meta"]["title"] == "k-means demo, renamed by the person" and on_disk["state"] == committed["state"]
    assert set(_git(project, "status", "--porcelain", "--untracked-files=no").split()) == {
        "M",
        "algorithm-map.json",
        "kmeans/__init__.py",
    }
    assert _git(project, "diff", "--cached", "--name-only") == ""  # nothing left staged


def test_commit_file_commits_one_path_and_nothing_else(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    map_path = root / "algorithm-map.json"
    map_path.write_text('{"meta": {"title": "T"}, "state": {"nodes": {}}}\n')
    (root / "other.txt").write_text("one\n")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "start")
    map_path.write_text('{"meta": {"title": "edited"}, "state": {"nodes": {"a": {"status": "verified"}}}}\n')
    (root / "other.txt").write_text("two\n")
    _git(root, "add", "other.txt")  # the person's staged change
    repo = Repo(root)
    sha = repo.commit_file(map_path, MapStore(map_path).state_over, "foreman: a verified")
    assert sha is not None and _git(root, "log", "-1", "--format=%s") == "foreman: a verified\n"
    assert json.loads(_git(root, "show", "HEAD:algorithm-map.json")) == {
        "meta": {"title": "T"},
        "state": {"nodes": {"a": {"status": "verified"}}},
    }
    assert _git(root, "show", "HEAD:other.txt") == "one\n"  # not committed
    assert _git(root, "diff", "--cached", "--name-only") == "other.txt\n"  # still staged, as the person left it
    assert repo.commit_file(map_path, MapStore(map_path).state_over, "again") is None  # nothing new


def test_a_merge_git_refuses_is_said_as_git_said_it_and_a_conflict_names_its_files(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    (root / "f.txt").write_text("base\n")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "base")
    _git(root, "checkout", "-qb", "foreman/x")
    (root / "f.txt").write_text("node x\n")
    _git(root, "commit", "-qam", "x")
    _git(root, "checkout", "-q", "main")
    (root / "f.txt").write_text("the person's edit\n")  # uncommitted: git refuses to merge over it
    repo = Repo(root)
    refused = repo.merge("x")
    assert refused.kind == "refused" and not refused.conflicts
    assert "would be overwritten by merge" in refused.message and "f.txt" in refused.message
    assert not (root / ".git" / "MERGE_HEAD").exists() and (root / "f.txt").read_text() == "the person's edit\n"
    _git(root, "commit", "-qam", "the person's commit")
    conflict = repo.merge("x")
    assert conflict.kind == "conflict" and conflict.conflicts == ("f.txt",)
    assert not (root / ".git" / "MERGE_HEAD").exists()
    assert _git(root, "status", "--porcelain") == ""


def test_a_refused_merge_pauses_with_what_git_said(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path, settings="retries = 0\n")
    target = map_path.parent / "kmeans" / "points.py"  # 01_load_points writes it; the person staged their own
    target.write_text("# the person's version\n")
    _git(map_path.parent, "add", "kmeans/points.py")
    result = foreman("run", str(map_path), "--headless")
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr
    pause = kinds(events(map_path), "NodePaused", "01_load_points")[0]["detail"]
    assert pause["trigger"] == "merge failed" and "would be overwritten" in pause["evidence"]
    assert "kmeans/points.py" in pause["evidence"] and not kinds(events(map_path), "MergeConflicted")
    assert [o["action"] for o in pause["options"]] == ["remerge", "reset", "fail"]
    assert git(map_path, "diff", "--cached", "--name-only") == "kmeans/points.py\n"  # the person's, untouched
    assert target.read_text() == "# the person's version\n"
