"""The `gemini` preset driving the real Gemini CLI (`gemini --output-format stream-json`) against a scripted model
behind the Gemini API on loopback (foreman_tui/testing/gemini_server.py, `GOOGLE_GEMINI_BASE_URL`): the whole
demo, an L1 failure fixed through `--resume <session_id>`, a reviewer (approval mode `default`) that reads a file,
is refused a shell command and a write, FLAGs, and is CLEAN after the fix; the tool calls as steps and files, and
each call's tokens (the `result` event's `stats`) and their cost from `[prices]`. Then each permission profile's
argv run by the CLI itself: what it lets through and what it refuses."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from foreman_tui.agents.presets import AgentContext, make_agent
from foreman_tui.config import AgentSettings
from foreman_tui.testing.gemini_server import USAGE, GeminiServer

from .claude_support import DEMO, demo_steps, gemini_env, run_gemini
from .e2e_support import PRICES, check_priced_calls, of_role
from .engine_support import DEMO_PROCESS, demo_repo, events, foreman, init_repo, kinds, map_state, trust_map

NODES = DEMO_PROCESS
MODEL = "gemini-test"
WRITES = {"run_shell_command", "write_file", "replace", "web_fetch"}
"""Tools the CLI does not even offer a headless run in approval mode ``default`` (a call to one: "not found")."""


def script(touched: Path, written: Path) -> dict[str, Any]:
    workers = {node: [demo_steps(node)] for node in NODES}
    workers["04_assign"] = [demo_steps("04_assign", 1), demo_steps("04_assign", 2)]  # fails its tie test first
    fixed = demo_steps("05_update")
    update = (DEMO / "solution" / "05_update" / "kmeans" / "update.py").read_text() + "\n# means, not stored values\n"
    fixed[0] = {"write": {**fixed[0]["write"], "kmeans/update.py": update}}
    workers["05_update"] = [demo_steps("05_update"), fixed]
    flag = [
        {"tool": "read_file", "input": {"file_path": "kmeans/update.py"}},
        {"bash": f"touch {touched}"},
        {"tool": "write_file", "input": {"file_path": str(written), "content": "x\n"}},
        {"say": "FLAG — [2] update() looks hard-coded (kmeans/update.py:9)"},
    ]
    return {"workers": workers, "reviews": {"05_update": [flag, "CLEAN — fixed"]}}


SETTINGS = (
    "retries = 0\ntimeout = 180\npoll = 0.5\n\n"
    f'[worker]\npreset = "gemini"\nmodel = "{MODEL}"\n\n'
    f'[reviewer]\npreset = "gemini"\nmodel = "{MODEL}"\n\n'
    f"[prices.{MODEL}]\n" + "\n".join(f"{k} = {v}" for k, v in PRICES.items()) + "\n"
)


def test_the_gemini_preset_runs_the_demo_against_the_real_cli(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path)
    (map_path.parent / "foreman.toml").write_text(SETTINGS)
    subprocess.run(["git", "commit", "-qam", "use gemini"], cwd=map_path.parent, check=True)
    trust_map(map_path)
    touched, written = tmp_path / "touched-by-reviewer", tmp_path / "written-by-reviewer"
    with GeminiServer(script(touched, written), tmp_path / "requests.jsonl") as server:
        env = gemini_env(server.url, tmp_path / "home")
        done = foreman("run", str(map_path), "--headless", env=env, timeout=900)
        requests = server.model.requests
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    evs = events(map_path)
    assert all(map_state(map_path)[n]["status"] == "verified" for n in NODES)

    def started(node: str, role: str = "worker") -> list[dict[str, Any]]:
        return of_role(evs, "WorkerStarted", node, role)

    def reported(node: str, role: str = "worker") -> list[dict[str, Any]]:
        return of_role(evs, "AgentReported", node, role)

    # 04's tie test failed; the fix went back into the same session with `--resume <session_id>`, and the model
    # saw the failing output in that conversation.
    assert [w["resume"] for w in started("04_assign")] == [False, True]
    argv = started("04_assign")[1]["argv"]
    session = reported("04_assign")[0]["session_id"]
    assert session and argv[argv.index("--resume") + 1] == session
    assert reported("04_assign")[1]["session_id"] == session
    resumed = [r for r in requests if r["node"] == "04_assign" and r["role"] == "worker" and r["episode"] == 2]
    assert resumed and any("FAIL: test_ties_go_to_the_lower_index" in i for i in resumed[0]["instructions"])
    assert "# Task: implement node `04_assign`" in resumed[0]["instructions"][0]  # the same conversation
    # The reviewer read a file; its shell command and its write were refused as tools it does not have (nothing
    # touched, nothing written); it FLAGged; the fix was resumed; the second review was CLEAN.
    assert [e["detail"]["verdict"] for e in kinds(evs, "ReviewFinished", "05_update")] == ["FLAG", "CLEAN"]
    assert [w["resume"] for w in started("05_update")] == [False, True]
    review_argv = started("05_update", "reviewer")[0]["argv"]
    assert review_argv[review_argv.index("--approval-mode") + 1] == "default"
    assert not touched.exists() and not written.exists()
    review = [r for r in requests if r["node"] == "05_update" and r["role"] == "reviewer" and len(r["results"]) == 3]
    read, shell, write = review[0]["results"]
    assert not read["is_error"] and "def update" in read["text"]
    assert shell["is_error"] and 'Tool "run_shell_command" not found' in shell["text"]
    assert write["is_error"] and 'Tool "write_file" not found' in write["text"]
    assert "read_file" in review[0]["tools"] and not WRITES & set(review[0]["tools"])
    assert reported("05_update", "reviewer")[0]["steps"][:2] == [
        'read_file {"file_path": "kmeans/update.py"}',
        f"run_shell_command: touch {touched}",
    ]
    # The tool calls are the steps, announced live and reported at the end; write_file calls name the files.
    first = reported("01_load_points")[0]
    assert first["session_id"] and not first["errors"]
    assert first["steps"][:-1] == [f"write_file {path}" for path in demo_steps("01_load_points")[0]["write"]]
    assert first["steps"][-1].startswith("run_shell_command: git add -- ") and "git commit" in first["steps"][-1]
    assert first["files"] == list(demo_steps("01_load_points")[0]["write"])
    live = [e["detail"]["step"] for e in kinds(evs, "AgentStep", "01_load_points") if e["detail"]["role"] == "worker"]
    assert live == first["steps"]

    usage = {
        "input": USAGE["promptTokenCount"],
        "cached_input": USAGE["cachedContentTokenCount"],
        "output": USAGE["candidatesTokenCount"],
    }
    check_priced_calls(map_path, evs, requests, NODES, usage)


def preset_argv(tmp_path: Path, role: str, permissions: str | None = None) -> list[str]:
    agent = make_agent(AgentSettings.model_validate({"preset": "gemini", "model": MODEL, "permissions": permissions}))
    return agent.command(AgentContext("n1", role, 1, tmp_path / "m.json", tmp_path, tmp_path / "p.md")).argv


TASK = "# Task: implement node `n1` — one node\n"


@pytest.mark.parametrize(
    ("role", "permissions", "allowed"),
    [
        # (what each call does, whether the profile lets it through)
        ("reviewer", None, {"read": True, "write": False, "commit": False, "touch": False, "chained": False}),
        ("worker", "edit", {"read": True, "write": True, "commit": True, "touch": False, "chained": False}),
        ("worker", None, {"read": True, "write": True, "commit": True, "touch": True, "chained": True}),
        ("worker", "full", {"read": True, "write": True, "commit": True, "touch": True, "chained": True}),
    ],
)
def test_the_cli_lets_each_profile_do_what_it_may(
    tmp_path: Path, role: str, permissions: str | None, allowed: dict[str, bool]
) -> None:
    """Each profile's argv, run by the CLI: a read, a write in the tree, `git add && git commit`, `touch`, and a
    `git commit … && touch` chain; what went through is what the profile allows, the rest is refused."""
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "a.txt").write_text("hello\n")
    tree = init_repo(tmp_path / "tree", "start")
    (tree / "c.txt").write_text("to commit\n")
    touched, chained = tree / "touched", tree / "chained"
    calls = {
        "read": {"tool": "read_file", "input": {"file_path": "a.txt"}},
        "write": {"tool": "write_file", "input": {"file_path": "b.txt", "content": "written\n"}},
        "commit": {"bash": "git add -- c.txt && git commit -q -m 'n1: implemented' -- c.txt"},
        "touch": {"bash": f"touch {touched}"},
        "chained": {"bash": f"git commit --allow-empty -qm again && touch {chained}"},
    }
    script = {"workers": {"n1": [[*calls.values(), {"say": "done"}]]}}
    lines, requests, _ = run_gemini(preset_argv(tmp_path, role, permissions), tree, script, TASK, tmp_path / "home")
    results = requests[-1]["results"]
    offered = set(requests[0]["tools"])
    assert "read_file" in offered and (offered >= WRITES) == (role == "worker"), offered
    assert [r["id"] for r in results] == [f"toolu_n1_1_{i}" for i in range(len(calls))]
    went = {name: not r["is_error"] for name, r in zip(calls, results, strict=True)}
    assert went == allowed, results
    assert (tree / "b.txt").exists() == allowed["write"]
    assert touched.exists() == allowed["touch"] and chained.exists() == allowed["chained"]
    log = subprocess.run(["git", "log", "--format=%s"], cwd=tree, capture_output=True, text=True, check=True)
    assert ("n1: implemented" in log.stdout.splitlines()) == allowed["commit"]
    assert lines[0]["type"] == "init" and lines[0]["model"] == MODEL
    assert lines[-1]["type"] == "result" and lines[-1]["status"] == "success"
    assert [line["content"] for line in lines if line["type"] == "message" and line["role"] == "assistant"] == ["done"]
