"""The `claude` preset driving the real Claude Code CLI against a scripted model on loopback: a whole run,
an L1 failure fixed through --resume, a reviewer FLAG fixed, a worker's hard pause decided and resumed,
per-node cost equal to what the CLI reported; and the permission profiles: a reviewer that only reads (its
shell command refused, its review still recorded), an ``edit`` worker that writes and commits but runs nothing
else, and each profile's tools and mode as the CLI itself reports them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from foreman_tui.agents.presets import AgentContext, make_agent
from foreman_tui.config import AgentSettings
from foreman_tui.testing.model_server import ModelServer

from .claude_support import DEMO, claude_env, demo_steps, run_claude
from .engine_support import DEMO_PROCESS, demo_repo, events, foreman, init_repo, kinds, map_state, trust_map

# As models write it: markdown, the trigger number first without "#", bullets, one option per line.
PAUSE_BLOCK = """I can't finish this node without a decision.

**HARD PAUSE:** [3 upstream post condition must change]
- **Node:** `02_vector_math`
- **Problem:** mean() should return a list, 01's checkpoint holds tuples
- **Tried:** nothing yet
- **Options:**
  - A) change 01's post condition
  - B) keep tuples, convert here
  - C) your instruction
"""

NODES = DEMO_PROCESS


def script() -> dict:
    workers = {node: [demo_steps(node)] for node in NODES}
    workers["02_vector_math"] = [[{"say": PAUSE_BLOCK}], demo_steps("02_vector_math")]
    workers["04_assign"] = [demo_steps("04_assign", 1), demo_steps("04_assign", 2)]  # fails its tie test first
    fixed = demo_steps("05_update")
    update = (DEMO / "solution" / "05_update" / "kmeans" / "update.py").read_text() + "\n# means, not stored values\n"
    fixed[0] = {"write": {**fixed[0]["write"], "kmeans/update.py": update}}
    workers["05_update"] = [demo_steps("05_update"), fixed]
    reviews = {"05_update": ["FLAG — [2] update() looks hard-coded (kmeans/update.py:9)", "CLEAN — fixed"]}
    return {"workers": workers, "reviews": reviews}


def test_the_claude_preset_runs_the_demo_against_the_real_cli(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path)
    (map_path.parent / "foreman.toml").write_text(
        'retries = 0\ntimeout = 180\npoll = 0.5\n\n[worker]\npreset = "claude"\n\n[reviewer]\npreset = "claude"\n'
    )
    subprocess.run(["git", "commit", "-qam", "use claude"], cwd=map_path.parent, check=True)
    record = tmp_path / "requests.jsonl"
    with ModelServer(script(), record) as server:
        env = claude_env(server.url, tmp_path / "home")
        first = foreman("run", str(map_path), "--headless", env=env, timeout=600)
        assert first.returncode == 3, first.stdout + first.stderr
        pause = kinds(events(map_path), "NodePaused", "02_vector_math")[0]["detail"]
        assert pause["source"] == "worker" and pause["trigger"] == "#3 upstream post condition must change"
        assert [o["label"] for o in pause["options"]] == [
            "change 01's post condition",
            "keep tuples, convert here",
            "your instruction",
        ]
        assert foreman("decide", str(map_path), "02_vector_math", "B", "--text", "convert in mean()").returncode == 0
        second = foreman("run", str(map_path), "--headless", env=env, timeout=900)
        assert second.returncode == 0, second.stdout + second.stderr
        requests = server.model.requests
    evs = events(map_path)
    assert all(map_state(map_path)[n]["status"] == "verified" for n in NODES)

    def worker_starts(node: str) -> list[dict]:
        return [e["detail"] for e in kinds(evs, "WorkerStarted", node) if e["detail"]["role"] == "worker"]

    # The decision went back into the same conversation, naming the chosen option.
    assert [w["resume"] for w in worker_starts("02_vector_math")] == [False, True]
    resumed_02 = [r for r in requests if r["node"] == "02_vector_math" and r["episode"] == 2]
    assert resumed_02 and any(
        "option B) keep tuples, convert here" in i and "convert in mean()" in i for i in resumed_02[0]["instructions"]
    )
    # 04's tie test failed; the fix task went through --resume and the model saw the failing output.
    assert [w["resume"] for w in worker_starts("04_assign")] == [False, True]
    assert "--resume" in worker_starts("04_assign")[1]["argv"]
    resumed_04 = [r for r in requests if r["node"] == "04_assign" and r["episode"] == 2]
    assert any("FAIL: test_ties_go_to_the_lower_index" in i for i in resumed_04[0]["instructions"])
    # The reviewer's FLAG led to a fix and a second, CLEAN review.
    assert [e["detail"]["verdict"] for e in kinds(evs, "ReviewFinished", "05_update")] == ["FLAG", "CLEAN"]
    assert [w["resume"] for w in worker_starts("05_update")] == [False, True]
    # Tool steps, session and cost came from the stream-json output.
    reported = kinds(evs, "AgentReported", "01_load_points")[0]["detail"]
    assert reported["session_id"] and reported["cost_usd"] > 0 and reported["role"] == "worker"
    assert [s.split(":")[0] for s in reported["steps"]] == ["Bash", "Bash"]
    assert "git commit" in reported["steps"][1]
    live = [e["detail"]["step"] for e in kinds(evs, "AgentStep", "01_load_points")]
    assert live[:2] == reported["steps"]  # the same steps, announced as they happened
    report = foreman("report", str(map_path)).stdout
    for node in NODES:
        total = 0.0
        for log in (map_path.parent / ".foreman" / "logs" / node).glob("*.log"):  # worker and reviewer runs
            for line in log.read_text().splitlines():
                if line.startswith('{"type":"result"'):
                    total += json.loads(line)["total_cost_usd"]
        section = report.split(f"## Node `{node}`")[1].split("\n## ")[0]
        assert f"cost: ${total:.4f}" in section


def test_a_claude_reviewer_cannot_run_a_shell_command_and_the_review_still_completes(tmp_path: Path) -> None:
    """The reviewer's model asks to run `touch` and to write a file (outside the tree, where nothing else would
    stop it): both are refused as tools it does not have, its reads work, and its CLEAN is recorded."""
    map_path = demo_repo(tmp_path)
    toml = map_path.parent / "foreman.toml"
    head, _, rest = toml.read_text().partition("[reviewer]")
    toml.write_text(head + '[reviewer]\npreset = "claude"\n\n[checks]' + rest.partition("[checks]")[2])
    subprocess.run(["git", "commit", "-qam", "a claude reviewer"], cwd=map_path.parent, check=True)
    trust_map(map_path)
    touched, written = tmp_path / "touched-by-reviewer", tmp_path / "written-by-reviewer"
    node = "01_load_points"
    review = [
        {"tool": "Glob", "input": {"pattern": "**/*.py"}},
        {"bash": f"touch {touched}"},
        {"tool": "Write", "input": {"file_path": str(written), "content": "x\n"}},
        {"say": "CLEAN — read the code; the shell was not needed"},
    ]
    with ModelServer({"reviews": {node: [review]}}) as server:
        env = claude_env(server.url, tmp_path / "home")
        done = foreman("run", str(map_path), "--headless", env=env, timeout=600)
        requests = [r for r in server.model.requests if r["role"] == "reviewer" and r["node"] == node]
    assert done.returncode == 0, done.stdout + done.stderr
    assert not touched.exists() and not written.exists()
    evs = events(map_path)
    assert [e["detail"]["verdict"] for e in kinds(evs, "ReviewFinished", node)] == ["CLEAN"]
    assert map_state(map_path)[node]["status"] == "verified"
    # The model did ask: its calls reached the CLI, which had no Bash and no Write to give it.
    assert requests and all(r["tools"] == ["Glob", "Grep", "Read"] for r in requests)
    results = {r["id"]: r for r in requests[-1]["results"]}
    assert not results[f"toolu_{node}_1_0"]["is_error"] and "kmeans/points.py" in results[f"toolu_{node}_1_0"]["text"]
    for step in (1, 2):
        assert results[f"toolu_{node}_1_{step}"]["is_error"]
        assert "No such tool available" in results[f"toolu_{node}_1_{step}"]["text"]
    reported = [e["detail"] for e in kinds(evs, "AgentReported", node) if e["detail"]["role"] == "reviewer"]
    assert f"Bash: touch {touched}" in reported[0]["steps"]
    # Started read-only, which is what the event log shows.
    started = [e["detail"] for e in kinds(evs, "WorkerStarted", node) if e["detail"]["role"] == "reviewer"]
    argv = started[0]["argv"]
    assert argv[argv.index("--tools") + 1] == "Read,Glob,Grep"
    assert argv[argv.index("--permission-mode") + 1] == "dontAsk"
    assert not any("Bash" in part for part in argv)


def preset_argv(tmp_path: Path, role: str, permissions: str | None = None) -> list[str]:
    agent = make_agent(AgentSettings.model_validate({"preset": "claude", "permissions": permissions}))
    return agent.command(AgentContext("n1", role, 1, tmp_path / "m.json", tmp_path, tmp_path / "p.md")).argv


TASK = "# Task: implement node `n1` — one node\n"


@pytest.mark.parametrize(
    ("role", "permissions", "mode", "tools"),
    [
        ("reviewer", None, "dontAsk", {"Read", "Glob", "Grep"}),
        ("worker", "edit", "dontAsk", {"Read", "Glob", "Grep", "Edit", "Write", "NotebookEdit", "Bash"}),
        ("worker", None, "acceptEdits", {"Read", "Glob", "Grep", "Edit", "Write", "Bash", "WebFetch"}),
        ("worker", "full", "bypassPermissions", {"Read", "Edit", "Write", "Bash", "WebFetch"}),
    ],
)
def test_the_cli_runs_each_profile_with_its_mode_and_tools(
    tmp_path: Path, role: str, permissions: str | None, mode: str, tools: set[str]
) -> None:
    """What the CLI itself says it started with (its `system/init` line), for each profile's argv."""
    # IS_SANDBOX: the CLI refuses to bypass permissions as root unless told it runs in a sandbox.
    lines, _ = run_claude(
        preset_argv(tmp_path, role, permissions),
        init_repo(tmp_path),
        {"workers": {"n1": [[{"say": "nothing to do"}]]}},
        TASK,
        tmp_path / "home",
        IS_SANDBOX="1",
    )
    init = next(line for line in lines if line.get("subtype") == "init")
    assert init["permissionMode"] == mode
    assert tools <= set(init["tools"])
    if role == "reviewer" or permissions == "edit":
        assert set(init["tools"]) == tools


def test_an_edit_worker_writes_its_tree_and_commits_but_runs_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    tree = init_repo(tmp_path / "tree")
    (tree / "a.txt").write_text("hello\n")
    # In its own tree, where an edit-accepting mode would let `touch` through as a file edit.
    outside, touched, chained = tmp_path / "outside.txt", tree / "touched", tree / "chained"
    steps = [
        {"tool": "Read", "input": {"file_path": str(tree / "a.txt")}},
        {"tool": "Write", "input": {"file_path": str(tree / "b.txt"), "content": "written\n"}},
        {"tool": "Write", "input": {"file_path": str(outside), "content": "x\n"}},
        {"bash": "git add a.txt b.txt && git commit -qm 'n1: implemented'"},
        {"bash": f"touch {touched}"},
        {"bash": f"git commit --allow-empty -qm again && touch {chained}"},
        {"bash": "python3 -c 'print(1)'"},
        {"say": "done"},
    ]
    lines, requests = run_claude(
        preset_argv(tmp_path, "worker", "edit"), tree, {"workers": {"n1": [steps]}}, TASK, tmp_path / "home"
    )
    assert (tree / "b.txt").read_text() == "written\n"
    log = subprocess.run(["git", "log", "--format=%s"], cwd=tree, capture_output=True, text=True, check=True)
    assert log.stdout.split("\n")[0] == "n1: implemented"
    assert not outside.exists() and not touched.exists() and not chained.exists()
    results = {r["id"][-1]: r["is_error"] for r in requests[-1]["results"]}
    assert results == {"0": False, "1": False, "2": True, "3": False, "4": True, "5": True, "6": True}
    assert lines[-1]["type"] == "result" and lines[-1]["result"] == "done"
