"""Running the real Claude Code CLI in tests: where it is, its environment, one run of an argv against a
scripted model, and model-server scripts made from the demo's per-node script."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from foreman_tui.testing.loopback import Loopback
from foreman_tui.testing.model_server import ModelServer

AGENTS_DIR = Path(os.environ.get("FOREMAN_TEST_AGENTS", Path.home() / ".cache" / "foreman-agents"))
DEMO = Path(__file__).parent.parent / "maps" / "demo"


def agent_bin(name: str) -> Path:
    """An agent CLI `.ci/install-agents` installed. Missing is a failure, never a silent skip."""
    found = AGENTS_DIR / "node_modules" / ".bin" / name
    if not found.exists():
        pytest.fail(f"the {name} CLI is not installed at {found}; run `bash .ci/install-agents` (npm)")
    return found


def claude_bin() -> Path:
    return agent_bin("claude")


def claude_env(url: str, home: Path) -> dict[str, str]:
    """Point the CLI at the scripted model on loopback; nothing leaves the machine."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.pathsep.join([str(claude_bin().parent), os.environ.get("PATH", "")]),
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": "sk-ant-test-dummy",
        "HOME": str(home),
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
    }


def run_against(
    server: Loopback, env: dict[str, str], argv: list[str], workdir: Path, prompt: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """Run a real agent CLI ``argv`` in ``workdir`` with ``prompt`` on stdin and ``env``, against a scripted
    ``server`` (not yet started): (the JSON lines it printed, the requests its model got, its stdout)."""
    with server:
        done = subprocess.run(argv, input=prompt, capture_output=True, text=True, cwd=workdir, env=env, timeout=180)
        requests = server.model.requests  # type: ignore[attr-defined]
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")], requests, done.stdout


def run_claude(
    argv: list[str], workdir: Path, script: dict[str, Any], prompt: str, home: Path, **env: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run the real CLI with ``argv`` (as a preset builds it, ``claude`` first) in ``workdir``, ``prompt`` on
    stdin, against ``script``: (the stream-json lines it printed, the requests the model got)."""
    server = ModelServer(script)
    lines, requests, _ = run_against(server, {**claude_env(server.url, home), **env}, argv, workdir, prompt)
    return lines, requests


def demo_steps(node: str, attempt: int = 1) -> list[dict[str, Any]]:
    """One episode for a demo node: what the scripted agent's script does, as the model's tool calls."""
    entry = json.loads((DEMO / "script.json").read_text())["nodes"][node]
    steps = entry.get("attempts") or [entry]
    step = steps[min(attempt, len(steps)) - 1]
    files = {
        path: ((DEMO / value[1:]).read_text() if value.startswith("@") else value)
        for path, value in step["files"].items()
    }
    checkpoint = {"node_id": node, "input_from": [], **step.get("checkpoint", {"output": {}})}
    files[f"_checkpoints/{node}.json"] = json.dumps(checkpoint, indent=2) + "\n"
    paths = " ".join(files)
    commit = f"git add -- {paths} && git commit -q -m '{node}: implemented' -m 'Foreman-Node: {node}' -- {paths}"
    return [{"write": files}, {"bash": commit}, {"say": f"{node} is implemented and committed."}]


# The Gemini CLI (foreman_tui/testing/gemini_server.py) and aider (its own venv), as `.ci/install-agents` installs them.


def gemini_env(url: str, home: Path) -> dict[str, str]:
    """Point the Gemini CLI at the scripted model on loopback: API-key auth (``$HOME/.gemini/settings.json``), a
    dummy key, no usage statistics, no telemetry, no update check; nothing leaves the machine."""
    from foreman_tui.testing.gemini_server import SETTINGS

    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps(SETTINGS))
    return {
        "PATH": os.pathsep.join([str(agent_bin("gemini").parent), os.environ.get("PATH", "")]),
        "GOOGLE_GEMINI_BASE_URL": url,
        "GEMINI_API_KEY": "gemini-test-dummy",
        "HOME": str(home),
        "NO_PROXY": "127.0.0.1,localhost",
        "NO_COLOR": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
    }


def run_gemini(
    argv: list[str], workdir: Path, script: dict[str, Any], prompt: str, home: Path, **env: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """Run the real Gemini CLI with ``argv`` (as a preset builds it, ``gemini`` first) in ``workdir``, ``prompt``
    on stdin, against ``script``: (the stream-json lines it printed, the requests the model got, its stdout)."""
    from foreman_tui.testing.gemini_server import GeminiServer

    server = GeminiServer(script)
    return run_against(server, {**gemini_env(server.url, home), **env}, argv, workdir, prompt)


AIDER_VENV = AGENTS_DIR / "aider-venv"


def aider_bin() -> Path:
    """aider, in the venv of its own `.ci/install-agents` made. Missing is a failure, never a silent skip."""
    found = AIDER_VENV / "bin" / "aider"
    if not found.exists():
        pytest.fail(f"aider is not installed at {found}; run `bash .ci/install-agents` (a venv with aider-chat)")
    return found
