"""``foreman demo``: the bundled k-means map in a fresh git repository, run by the scripted agent."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DEMO = "demo"


def bundled_maps() -> Path:
    """The bundled maps: inside the installed package, or ``maps/`` of a source checkout."""
    packaged = Path(__file__).parent / "_bundled_maps"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "maps"


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, stdin=subprocess.DEVNULL)


def create_demo(target: Path | None = None, with_pause: bool = False) -> Path:
    """Copy the demo's starting project and map into a new git repository; returns the map's path.

    The scripted agent's script and the per-node solutions stay outside the repository (in
    ``<target>/script/``), so the workers' code really arrives through their commits. ``with_pause``:
    the worker of the node named in the script's ``pause`` section first stops with a hard-pause block
    (a question about the spec) and does the work once a person has answered."""
    source = bundled_maps() / DEMO
    root = Path(tempfile.mkdtemp(prefix="foreman-demo-")) if target is None else target
    repo = root / "project"
    script_dir = root / "script"
    shutil.copytree(source / "project", repo)
    shutil.copy(source / "algorithm-map.json", repo / "algorithm-map.json")
    shutil.copytree(source / "solution", script_dir / "solution")
    script_data = json.loads((source / "script.json").read_text(encoding="utf-8"))
    pause = script_data.pop("pause", None)
    if with_pause and pause:
        node = pause["node"]
        script_data["nodes"][node] = {"attempts": [pause["step"], script_data["nodes"][node]]}
    (script_dir / "script.json").write_text(json.dumps(script_data, indent=1, ensure_ascii=False), encoding="utf-8")
    script = json.dumps(str((script_dir / "script.json").resolve()))  # a valid TOML basic string
    python = json.dumps(sys.executable)
    (repo / "foreman.toml").write_text(
        "# The demo runs the built-in scripted agent; point these at claude, codex, aider, gemini or a command.\n"
        f'[worker]\npreset = "scripted"\nargs = ["--script", {script}]\n\n'
        f'[reviewer]\npreset = "scripted"\nargs = ["--script", {script}]\n\n'
        "# The project's checks (`python -m unittest …`) run with this Python.\n"
        f"[checks]\npython = {python}\n",
        encoding="utf-8",
    )
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.name", "foreman demo")
    _git(repo, "config", "user.email", "demo@foreman.invalid")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "k-means demo: the map, the data and the planner's tests")
    map_path = repo / "algorithm-map.json"
    # foreman wrote this project itself, from its own package: its commands are trusted without asking.
    from .engine.project import Project
    from .engine.trust import approve_project

    approve_project(Project.load(map_path), who="foreman demo")
    return map_path
