"""Running the demo with a stand-in agent CLI (``standin_agent.py``) as worker and reviewer."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from .engine_support import demo_repo, trust_map
from .standin_agent import install

NODE = "01_load_points"


WORKER = {
    "claude": 'preset = "claude"',
    "codex": 'preset = "codex"\npermissions = "full"',  # codex's own sandbox would keep it from committing
    "gemini": 'preset = "gemini"',
}
"""How each stand-in CLI is configured as the worker."""


def standin_run(
    tmp_path: Path, plan: dict[str, list[str]], settings: str = "", preset: str = "claude"
) -> tuple[Path, dict[str, str]]:
    """The demo with a stand-in ``preset`` CLI (claude, codex, gemini) as worker and reviewer — or a ``[worker]``
    body of your own (a ``command`` agent) with a stand-in claude reviewing; returns (map, the environment to run
    it in)."""
    map_path = demo_repo(tmp_path, settings="poll = 0.5\nstop_grace = 1\n" + settings)
    toml = map_path.parent / "foreman.toml"
    cli = preset if preset in WORKER else "claude"
    worker = WORKER.get(preset, preset)
    text = re.sub(r'\[worker\]\npreset = "scripted"\nargs = \[.*\]', f"[worker]\n{worker}", toml.read_text())
    text = re.sub(r'\[reviewer\]\npreset = "scripted"\nargs = \[.*\]', f'[reviewer]\npreset = "{cli}"', text)
    toml.write_text(text)
    subprocess.run(["git", "commit", "-qam", f"stand-in {cli}"], cwd=map_path.parent, check=True)
    trust_map(map_path)
    bin_dir = tmp_path / "bin"
    install(bin_dir, cli)
    state = tmp_path / "standin"
    state.mkdir()
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    env = {
        "PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]),
        "STANDIN_PLAN": str(tmp_path / "plan.json"),
        "STANDIN_STATE": str(state),
        "STANDIN_SCRIPT": str(tmp_path / "demo" / "script" / "script.json"),
    }
    return map_path, env


def calls(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "standin" / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
