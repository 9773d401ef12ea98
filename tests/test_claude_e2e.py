"""The `claude` preset driving the real Claude Code CLI against a scripted model on loopback: a whole run,
an L1 failure fixed through --resume, a reviewer FLAG fixed, a worker's hard pause decided and resumed,
and per-node cost equal to what the CLI reported."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from foreman_tui.testing.model_server import ModelServer

from .claude_support import DEMO, claude_env, demo_steps
from .engine_support import DEMO_PROCESS, demo_repo, events, foreman, kinds, map_state

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
