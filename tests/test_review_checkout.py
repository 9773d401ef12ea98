"""The reviewer works in a throwaway checkout of the node's commit (SPEC §10): whatever it does there, the node's
tree and the merged code are not touched, and no checkout is left behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .engine_support import demo_repo, events, foreman, git, kinds, trust_map

REVIEWER = """
import os, pathlib, sys
target = pathlib.Path("kmeans/points.py")
if target.exists():
    target.write_text("HACKED BY THE REVIEWER\\n")
pathlib.Path(sys.argv[1]).write_text(os.getcwd())
print("CLEAN")
"""


def test_a_reviewer_that_writes_cannot_change_the_nodes_tree(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path, settings="max_parallel = 1\nkeep_worktrees = true\n")
    seen = tmp_path / "reviewer-cwd"
    script = tmp_path / "reviewer.py"
    script.write_text(REVIEWER)
    toml = map_path.parent / "foreman.toml"
    text = toml.read_text()
    start = text.index("[reviewer]")
    end = text.index("[checks]")
    argv = json.dumps([sys.executable, str(script), str(seen)])
    toml.write_text(text[:start] + f'[reviewer]\npreset = "command"\nargv = {argv}\n\n' + text[end:])
    subprocess.run(["git", "commit", "-qam", "a reviewer that writes"], cwd=map_path.parent, check=True)
    trust_map(map_path)

    ran = foreman("run", str(map_path), "--headless")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    evs = events(map_path)
    assert kinds(evs, "ReviewFinished", "01_load_points")[0]["detail"]["verdict"] == "CLEAN"
    node_tree = map_path.parent / ".foreman" / "worktrees" / "01_load_points"  # kept, to look at
    assert "HACKED" not in (node_tree / "kmeans" / "points.py").read_text()
    assert git(node_tree / "x", "status", "--porcelain") == ""
    reviewer_cwd = Path(seen.read_text())
    assert ".foreman/reviews/" in reviewer_cwd.as_posix()
    assert not reviewer_cwd.exists()  # removed once the review was done
    assert "HACKED" not in (map_path.parent / "kmeans" / "points.py").read_text()
    assert "HACKED" not in git(map_path, "log", "-p", "--all")
    worktrees = git(map_path, "worktree", "list")
    assert "reviews" not in worktrees
