"""What foreman says matches what is so: the phases of a live run in `foreman status`, attempt numbers after a
decision, a reviewer that cannot start, a decision node whose checks fail."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from foreman_tui.engine.runstate import NodeRun

from .engine_support import demo_repo, events, foreman, kinds, start_foreman, trust_map, wait_for

DEMO = Path(__file__).parent.parent / "maps" / "demo"
SCRIPT = json.loads((DEMO / "script.json").read_text())["nodes"]


def test_status_shows_the_phases_of_a_live_run_and_an_interrupted_one(tmp_path: Path) -> None:
    slow = {**SCRIPT["01_load_points"], "sleep": 30}
    map_path = demo_repo(tmp_path, {"01_load_points": slow}, settings="poll = 0.5\nstop_grace = 1\nmax_parallel = 1\n")
    run = start_foreman("run", str(map_path), "--headless")
    try:
        wait_for(lambda: bool(kinds(events(map_path), "WorkerStarted", "01_load_points")), 60, "01's worker")
        live = json.loads(foreman("status", str(map_path), "--json").stdout)
        nodes = {n["id"]: n for n in live["nodes"]}
        assert live["live"] is True
        assert (nodes["01_load_points"]["phase"], nodes["01_load_points"]["attempt"]) == ("running", 1)
        assert nodes["01_load_points"]["status"] == "not_started"  # the map's own status is unchanged
        assert "phase" not in nodes["02_vector_math"]
        text = foreman("status", str(map_path)).stdout
        assert "A run is going on now" in text and "running (attempt 1)" in text
        run.send_signal(signal.SIGTERM)
        run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    after = json.loads(foreman("status", str(map_path), "--json").stdout)
    assert after["live"] is False
    assert {n["id"]: n for n in after["nodes"]}["01_load_points"]["phase"] == "interrupted while running"


def test_attempts_count_from_the_last_decision(tmp_path: Path) -> None:
    fails = {"commit": False, "files": {}}
    map_path = demo_repo(
        tmp_path,
        {"02_vector_math": {"attempts": [fails, fails, fails, SCRIPT["02_vector_math"]]}},
        settings="retries = 2\n",
    )
    assert foreman("run", str(map_path), "--headless").returncode == 3
    assert foreman("decide", str(map_path), "02_vector_math", "A").returncode == 0
    assert foreman("run", str(map_path), "--headless").returncode == 0
    hops = foreman("report", str(map_path)).stdout.split("## Node `02_vector_math`")[1].split("\n## ")[0]
    dispatches = [line.split("dispatch ")[1] for line in hops.splitlines() if "dispatch (" in line]
    assert dispatches == ["(attempt 1)", "(attempt 2/3)", "(attempt 3/3)", "(attempt 1)"], hops
    assert "4/3" not in hops
    # The TUI's number: the attempt within the round, its bound only while within it.
    assert NodeRun(attempt=4, round_start=3).round_attempt == 1


def test_a_reviewer_that_cannot_start_is_said_and_a_re_review_needs_no_worker(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path, settings="max_parallel = 1\n")
    project = map_path.parent
    reviewer = tmp_path / "reviewer.sh"
    reviewer.write_text("#!/no/such/interpreter\n")  # there and executable, but it cannot start
    reviewer.chmod(0o755)
    toml = project / "foreman.toml"
    worker = toml.read_text().split("[reviewer]")[0]
    toml.write_text(worker + f'[reviewer]\npreset = "command"\nargv = ["{reviewer}"]\n')
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "commit", "-qm", "a broken reviewer"], cwd=project, check=True)
    first = foreman("run", str(trust_map(map_path)), "--headless")
    assert first.returncode == 3, first.stdout + first.stderr
    evs = events(map_path)
    pause = kinds(evs, "NodePaused", "01_load_points")[0]["detail"]
    assert pause["trigger"] == "review failed" and "the reviewer could not start" in pause["problem"]
    assert not kinds(evs, "ReviewFinished")  # never a silent "no verdict"
    assert [e["detail"]["role"] for e in kinds(evs, "AttemptFailed", "01_load_points")] == ["reviewer"]
    assert pause["options"][0] == {
        "key": "A",
        "label": "review again (the worker is not run)",
        "action": "rereview",
        "target": None,
        "amount": None,
    }
    reviewer.write_text(f"#!{sys.executable}\nprint('CLEAN — fine')\n")  # fixed by hand, then: review again
    assert foreman("decide", str(map_path), "01_load_points", "A").returncode == 0
    second = foreman("run", str(map_path), "--headless", "--max-parallel", "1")
    verified = kinds(events(map_path), "NodeVerified", "01_load_points")
    assert verified, second.stdout[-2000:]
    starts = [e for e in kinds(events(map_path), "WorkerStarted", "01_load_points") if e["detail"]["role"] == "worker"]
    assert len(starts) == 1  # the worker was not run again


def test_a_decision_nodes_failing_check_pauses_it_and_holds_what_comes_after(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path, settings="max_parallel = 1\n")
    project = map_path.parent
    raw = json.loads(map_path.read_text(encoding="utf-8"))
    flag = project / "converged.ok"
    raw["contents"]["06_converged"]["verify"] = {
        "core": [{"desc": "converges", "level": "L1", "cmd": f"test -f {flag}"}]
    }
    map_path.write_text(json.dumps(raw, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    subprocess.run(["git", "commit", "-qam", "a check on the decision"], cwd=project, check=True)
    first = foreman("run", str(trust_map(map_path)), "--headless")
    assert first.returncode == 3, first.stdout[-3000:] + first.stderr
    evs = events(map_path)
    pause = kinds(evs, "NodePaused", "decision:06_converged")[0]["detail"]
    assert pause["trigger"] == "decision check failed" and "suspect: 05_update" in pause["problem"]
    assert [o["label"] for o in pause["options"]] == [
        "re-run the checks",
        "reset 05_update (a suspect) and redo it",
        "accept and go on",
    ]
    assert not kinds(evs, "WorkerStarted", "07_inertia")  # after the decision: held
    assert kinds(evs, "NodeVerified", "05_update")
    assert json.loads(map_path.read_text())["state"]["nodes"].get("06_converged", {}).get("status") != "verified"
    flag.write_text("")
    assert foreman("decide", str(map_path), "decision:06_converged", "A").returncode == 0
    second = foreman("run", str(map_path), "--headless")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr
    evs = events(map_path)
    checked = [e["ts"] for e in kinds(evs, "CheckFinished", "decision:06_converged") if e["detail"]["status"] == "pass"]
    assert checked and min(checked) < kinds(evs, "WorkerStarted", "07_inertia")[0]["ts"]
    assert json.loads(map_path.read_text())["state"]["nodes"]["06_converged"]["status"] == "verified"
