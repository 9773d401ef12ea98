"""Helpers for end-to-end engine tests: a demo repository with an edited script, a real `foreman run`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from foreman_tui.demo import create_demo
from foreman_tui.engine.events import read_events
from foreman_tui.engine.project import Project
from foreman_tui.engine.trust import approve_project
from foreman_tui.map.store import atomic_write

from .conftest import REPO, run_cli

DEMO_PROCESS = [
    "01_load_points",
    "02_vector_math",
    "03_seed_centroids",
    "04_assign",
    "05_update",
    "07_inertia",
    "08_summarize",
    "09_cli",
]
"""The demo's process nodes, in implementation order."""


def demo_repo(
    tmp_path: Path,
    nodes: dict[str, Any] | None = None,
    reviews: dict[str, list[str]] | None = None,
    settings: str = "poll = 0.5\nstop_grace = 1\n",
    with_pause: bool = False,
) -> Path:
    """The demo in a fresh git repository; ``nodes`` replace entries of the scripted agent's script,
    ``settings`` go at the top of foreman.toml. Returns the map's path."""
    map_path = create_demo(tmp_path / "demo", with_pause=with_pause)
    script_path = tmp_path / "demo" / "script" / "script.json"
    script = json.loads(script_path.read_text())
    script["nodes"].update(nodes or {})
    script["reviews"].update(reviews or {})
    script_path.write_text(json.dumps(script, indent=2))
    toml = map_path.parent / "foreman.toml"
    toml.write_text(settings + toml.read_text())
    subprocess.run(["git", "commit", "-qam", "test settings"], cwd=map_path.parent, check=True)
    return trust_map(map_path)


def trust_map(map_path: Path) -> Path:
    """Approve everything the map and its foreman.toml would run (``foreman trust MAP --yes``), in the tests'
    own state folder; returns the map's path."""
    approve_project(Project.load(map_path), who="tests")
    return map_path


def add_check(map_path: Path, node: str, cmd: str, commit: bool = True) -> str:
    """Append a check to ``node``'s core items; returns its JSON path."""
    doc = json.loads(map_path.read_text(encoding="utf-8"))
    core = doc["contents"][node]["verify"]["core"]
    core.append({"desc": "a check someone added", "cmd": cmd})
    atomic_write(map_path, (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode())
    if commit:
        subprocess.run(["git", "commit", "-qam", "edit a check"], cwd=map_path.parent, check=True)
    return f"contents.{node}.verify.core[{len(core) - 1}].cmd"


def init_repo(folder: Path, message: str | None = None) -> Path:
    """A git repository in ``folder`` on ``main`` with its own identity (tests never lean on a global config);
    with ``message``, everything in the folder committed. Returns the folder."""
    for args in (["init", "-q", "-b", "main"], ["config", "user.name", "t"], ["config", "user.email", "t@t"]):
        subprocess.run(["git", *args], cwd=folder, check=True)
    if message is not None:
        subprocess.run(["git", "add", "-A"], cwd=folder, check=True)
        subprocess.run(["git", "commit", "-qm", message], cwd=folder, check=True)
    return folder


def solution(node: str, path: str) -> str:
    return f"@solution/{node}/{path}"


def foreman(
    *args: str, cwd: Path | None = None, timeout: float = 240, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, timeout=timeout, env=env)


def start_foreman(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``foreman ARGS`` in the background, without the calling environment's ``FOREMAN_*``; ``env`` adds to it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOREMAN_")} | (env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "foreman_tui", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def events(map_path: Path) -> list[dict[str, Any]]:
    return list(read_events(map_path.parent / ".foreman" / "events.jsonl"))


def kinds(evs: list[dict[str, Any]], kind: str, node: str | None = None) -> list[dict[str, Any]]:
    return [e for e in evs if e["kind"] == kind and (node is None or e["node"] == node)]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll a condition on disk until it holds (events are in a file another process writes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def map_state(map_path: Path) -> dict[str, Any]:
    return json.loads(map_path.read_text(encoding="utf-8")).get("state", {}).get("nodes", {})


def git(map_path: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=map_path.parent, capture_output=True, text=True, check=True).stdout


def processes_mentioning(text: str) -> dict[int, str]:
    """Live processes whose command line contains ``text``: pid → command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if text in cmdline and state != "Z":
            found[int(entry.name)] = cmdline
    return found


def nothing_left_mentioning(text: str, timeout: float = 10) -> None:
    """No process (foreman, a worker, a check) names ``text`` any more, within ``timeout``."""
    try:
        wait_for(lambda: not processes_mentioning(text), timeout, f"the processes mentioning {text} to go")
    except AssertionError as exc:
        left = "\n".join(f"{pid}: {cmdline}" for pid, cmdline in processes_mentioning(text).items())
        raise AssertionError(f"left behind:\n{left}") from exc


def slow_first_node(tmp_path: Path, seconds: float) -> Path:
    """The demo with 01_load_points' worker at work for ``seconds`` before it commits, one worker at a time."""
    step = {
        "files": {"kmeans/points.py": solution("01_load_points", "kmeans/points.py")},
        "say": ["working slowly"],
        "sleep": seconds,
        "checkpoint": {"output": {"count": 30}},
    }
    return demo_repo(
        tmp_path, nodes={"01_load_points": step}, settings="poll = 0.5\nstop_grace = 1\nmax_parallel = 1\n"
    )
