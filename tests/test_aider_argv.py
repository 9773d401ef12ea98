"""The `aider` preset's argv, run by the real aider (aider-chat 0.86.2, in the venv of its own `.ci/install-agents`
makes): every worker profile and the reviewer. Each run goes all the way: aider parses the argv, starts in a git
repository, adds the node's files, reads the prompt from ``--message-file`` and sends it to a model: a stub of the
OpenAI chat completions API on loopback (``OPENAI_API_BASE``), which answers "ok" without an edit. Nothing leaves
the machine: the model list aider would download (litellm's prices, from GitHub) is already in its cache, naming the
test model; litellm uses its local copy (``LITELLM_LOCAL_MODEL_COST_MAP``); analytics are off; the browser aider
offers to open is ``true``."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from foreman_tui.agents.presets import AgentContext, make_agent
from foreman_tui.config import AgentSettings

from .claude_support import aider_bin
from .engine_support import init_repo

MODEL = "openai/foreman-test"
OWNED = "kmeans/points.py"
PROMPT = "# Task: implement node `n1` — load the points\nMARKER-7f3a: read the points file.\n"


@contextmanager
def chat_stub() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An OpenAI chat completions endpoint on loopback that answers every request "ok": (its base URL, the
    request bodies it got)."""
    bodies: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))) or b"{}")
            bodies.append(body)
            answer = {
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 1, "total_tokens": 101},
            }
            raw = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", bodies
    finally:
        server.shutdown()
        server.server_close()


MODEL_INFO = {
    MODEL.split("/", 1)[1]: {
        "litellm_provider": "openai",
        "mode": "chat",
        "max_input_tokens": 128000,
        "max_output_tokens": 4096,
        "input_cost_per_token": 1e-06,
        "output_cost_per_token": 1e-05,
    }
}
"""aider's cache of litellm's model list (``~/.aider/caches``, fresh for 24 hours): while it is there and not
empty aider fetches nothing."""


def run_aider(argv: list[str], tree: Path, home: Path, url: str) -> subprocess.CompletedProcess[str]:
    caches = home / ".aider" / "caches"
    caches.mkdir(parents=True, exist_ok=True)
    (caches / "model_prices_and_context_window.json").write_text(json.dumps(MODEL_INFO))
    env = {
        "PATH": f"{aider_bin().parent}:/usr/bin:/bin",
        "HOME": str(home),
        "OPENAI_API_KEY": "sk-test-dummy",
        "OPENAI_API_BASE": url,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "AIDER_ANALYTICS_DISABLE": "true",
        "BROWSER": "true",
        "NO_PROXY": "127.0.0.1,localhost",
        "GIT_CONFIG_GLOBAL": "/dev/null",
    }
    return subprocess.run(
        [str(aider_bin()), *argv[1:]], cwd=tree, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def tree_with_points(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    (tree / "kmeans").mkdir(parents=True)
    (tree / OWNED).write_text("POINTS = [(0.0, 0.0), (1.0, 1.0)]  # MARKER-owned-file\n")
    return init_repo(tree, "start")


@pytest.mark.parametrize(
    ("role", "permissions"), [("worker", "edit"), ("worker", None), ("worker", "full"), ("reviewer", None)]
)
def test_aider_runs_each_argv_the_preset_builds(tmp_path: Path, role: str, permissions: str | None) -> None:
    tree = tree_with_points(tmp_path)
    prompt = tmp_path / "prompt-1.md"
    prompt.write_text(PROMPT)
    agent = make_agent(AgentSettings.model_validate({"preset": "aider", "model": MODEL, "permissions": permissions}))
    ctx = AgentContext("n1", role, 1, tmp_path / "map.json", tree, prompt, files=(OWNED,))
    argv = agent.command(ctx).argv
    with chat_stub() as (url, bodies):
        done = run_aider(argv, tree, tmp_path / "home", url)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "unrecognized arguments" not in output and "usage:" not in output
    assert "raw.githubusercontent.com" not in output and "Unknown context window" not in output  # fetched nothing
    assert f"Model: {MODEL} with {'ask' if role == 'reviewer' else 'whole'} edit format" in output, output[-3000:]
    assert f"Added {OWNED} to the chat" in output
    # The prompt file and the node's file reached the model, which answered once.
    assert len(bodies) == 1 and bodies[0]["model"] == MODEL.split("/", 1)[1] and not bodies[0].get("stream")
    sent = json.dumps(bodies[0]["messages"])
    assert "MARKER-7f3a" in sent and "MARKER-owned-file" in sent
    log = subprocess.run(["git", "log", "--format=%s"], cwd=tree, capture_output=True, text=True, check=True)
    assert log.stdout.splitlines() == ["start"]  # an answer without an edit commits nothing


def test_an_argv_aider_does_not_know_fails(tmp_path: Path) -> None:
    """What the test above would see if the preset passed a flag aider 0.86 does not have."""
    tree = tree_with_points(tmp_path)
    (tmp_path / "p.md").write_text(PROMPT)
    agent = make_agent(AgentSettings(preset="aider", model=MODEL, args=["--no-such-flag"]))
    argv = agent.command(AgentContext("n1", "worker", 1, tmp_path / "m.json", tree, tmp_path / "p.md")).argv
    with chat_stub() as (url, bodies):
        done = run_aider(argv, tree, tmp_path / "home", url)
    assert done.returncode == 2 and "unrecognized arguments: --no-such-flag" in done.stderr
    assert bodies == []
