"""The `codex` preset driving the real Codex CLI (`codex exec --json`) against a scripted model behind the OpenAI
Responses API on loopback (foreman_tui/testing/codex_server.py): the whole demo, an L1 failure fixed through
`codex exec … resume <thread_id>`, a reviewer (in Codex's read-only sandbox) that reads a file and FLAGs, then is
CLEAN after the fix; the shell commands as steps, and each call's tokens and their cost from `[prices]`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from foreman_tui.testing.codex_server import USAGE, CodexServer, provider_args

from .claude_support import DEMO, agent_bin, demo_steps
from .e2e_support import PRICES, check_priced_calls, of_role
from .engine_support import DEMO_PROCESS, demo_repo, events, foreman, kinds, map_state, trust_map

NODES = DEMO_PROCESS
KEY_VAR = "SCRIPTED_MODEL_API_KEY"  # not FOREMAN_*: foreman keeps its own variables from agents
REVIEW_READ = "cat kmeans/update.py"


def script() -> dict[str, Any]:
    workers = {node: [demo_steps(node)] for node in NODES}
    workers["04_assign"] = [demo_steps("04_assign", 1), demo_steps("04_assign", 2)]  # fails its tie test first
    fixed = demo_steps("05_update")
    update = (DEMO / "solution" / "05_update" / "kmeans" / "update.py").read_text() + "\n# means, not stored values\n"
    fixed[0] = {"write": {**fixed[0]["write"], "kmeans/update.py": update}}
    workers["05_update"] = [demo_steps("05_update"), fixed]
    flag = [{"bash": REVIEW_READ}, {"say": "FLAG — [2] update() looks hard-coded (kmeans/update.py:9)"}]
    return {"workers": workers, "reviews": {"05_update": [flag, "CLEAN — fixed"]}}


def settings(url: str) -> str:
    """foreman.toml: codex for both roles, pointed at the server with ``-c`` overrides only. The worker runs in
    foreman's sandbox (the documented setup): Codex 0.171's own workspace-write sandbox makes git's folder (a
    worktree's too) read-only, so a worker there could not commit."""
    args = json.dumps(provider_args(url, KEY_VAR), ensure_ascii=False)
    price = "\n".join(f"{k} = {v}" for k, v in PRICES.items())
    return (
        "retries = 0\ntimeout = 180\npoll = 0.5\n\n"
        f'[worker]\npreset = "codex"\nmodel = "gpt-test"\nsandbox = "bwrap"\nargs = {args}\n\n'
        f'[reviewer]\npreset = "codex"\nmodel = "gpt-test"\nargs = {args}\n\n'
        f"[prices.gpt-test]\n{price}\n"
    )


def codex_env(root: Path) -> dict[str, str]:
    """Codex's config, sessions and helper links in folders of its own; the key is a dummy; nothing leaves the
    machine. TMPDIR is moved so that CODEX_HOME is not under it: Codex refuses to create its sandbox helper
    (`codex-linux-sandbox`) under the temp dir, and without it no sandboxed command runs."""
    folders = {name: root / name for name in ("codex-home", "home", "tmp")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.pathsep.join([str(agent_bin("codex").parent), os.environ.get("PATH", "")]),
        "CODEX_HOME": str(folders["codex-home"]),
        "HOME": str(folders["home"]),
        "TMPDIR": str(folders["tmp"]),
        KEY_VAR: "sk-test-dummy",
        "NO_PROXY": "127.0.0.1,localhost",
        "GIT_CONFIG_GLOBAL": "/dev/null",
    }


def test_the_codex_preset_runs_the_demo_against_the_real_cli(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path)
    with CodexServer(script(), tmp_path / "requests.jsonl") as server:
        (map_path.parent / "foreman.toml").write_text(settings(server.url))
        subprocess.run(["git", "commit", "-qam", "use codex"], cwd=map_path.parent, check=True)
        trust_map(map_path)  # the args are part of what is approved
        done = foreman("run", str(map_path), "--headless", env=codex_env(tmp_path / "codex"), timeout=900)
        requests = server.model.requests
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    evs = events(map_path)
    assert all(map_state(map_path)[n]["status"] == "verified" for n in NODES)

    def started(node: str, role: str = "worker") -> list[dict[str, Any]]:
        return of_role(evs, "WorkerStarted", node, role)

    def reported(node: str, role: str = "worker") -> list[dict[str, Any]]:
        return of_role(evs, "AgentReported", node, role)

    # 04's tie test failed; the fix went back into the same thread with `codex exec … resume <thread_id> -`, and
    # the model saw the failing output in that conversation.
    assert [w["resume"] for w in started("04_assign")] == [False, True]
    argv = started("04_assign")[1]["argv"]
    thread = reported("04_assign")[0]["session_id"]
    assert thread and argv[argv.index("resume") + 1 :] == [thread, "-"]
    assert reported("04_assign")[1]["session_id"] == thread
    resumed = [r for r in requests if r["node"] == "04_assign" and r["role"] == "worker" and r["episode"] == 2]
    assert resumed and any("FAIL: test_ties_go_to_the_lower_index" in i for i in resumed[0]["instructions"])
    assert "# Task: implement node `04_assign`" in resumed[0]["instructions"][0]  # the same conversation
    # The reviewer read a file in its read-only sandbox, FLAGged; the fix was resumed; the second review was CLEAN.
    assert [e["detail"]["verdict"] for e in kinds(evs, "ReviewFinished", "05_update")] == ["FLAG", "CLEAN"]
    assert [w["resume"] for w in started("05_update")] == [False, True]
    assert "read-only" in started("05_update", "reviewer")[0]["argv"]
    review = [r for r in requests if r["node"] == "05_update" and r["role"] == "reviewer" and r["results"]]
    assert review and not review[-1]["results"][0]["is_error"], review[-1]["results"]
    assert "def update" in review[-1]["results"][0]["text"]
    review_steps = [
        e["detail"]["step"] for e in kinds(evs, "AgentStep", "05_update") if e["detail"]["role"] == "reviewer"
    ]
    assert any(REVIEW_READ in step for step in review_steps)
    # The shell commands Codex ran are the steps, announced live and reported at the end.
    first = reported("01_load_points")[0]
    assert first["session_id"] and len(first["steps"]) == 2
    assert first["steps"][0].startswith("run: ") and "<<'FOREMAN_EOF'" in first["steps"][0]  # a write step
    assert "git commit" in first["steps"][1]
    live = [e["detail"]["step"] for e in kinds(evs, "AgentStep", "01_load_points") if e["detail"]["role"] == "worker"]
    assert live == first["steps"]

    usage = {
        "input": USAGE["input_tokens"],
        "cached_input": USAGE["input_tokens_details"]["cached_tokens"],
        "output": USAGE["output_tokens"],
    }
    check_priced_calls(map_path, evs, requests, NODES, usage)
