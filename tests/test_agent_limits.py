"""Real CLIs failing the ways long parallel runs see them, with a stand-in ``claude`` that speaks Claude Code's
recorded stream-json (tests/standin_agent.py) driven by the real preset argv through a whole `foreman run`:
a CLI that hangs after its result, a silent agent, a quiet one that is still working, rate limits and
overloads in a row, a ``command`` agent's rate-limit exit status, and the run's and a node's budget."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from .engine_support import events, foreman, kinds, map_state
from .standin_support import NODE, calls, standin_run


@pytest.mark.parametrize("cli", ["claude", "codex", "gemini"])
def test_a_cli_that_hangs_after_its_result_is_stopped_after_the_grace_and_its_work_judged(
    tmp_path: Path, cli: str
) -> None:
    """The worker prints its ``result`` and never exits: it is stopped ``result_grace`` seconds later (not at the
    attempt timeout), its commit is checked and reviewed, the node verified; the reviewer lingering the same way
    still has its CLEAN read."""
    plan = {NODE: ["linger"], f"review:{NODE}": ["linger"]}
    map_path, env = standin_run(tmp_path, plan, "result_grace = 1\ntimeout = 600\n", cli)
    done = foreman("run", str(map_path), "--headless", env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    evs = events(map_path)
    stopped = kinds(evs, "AgentStopped", NODE)
    assert [(e["detail"]["role"], e["detail"]["reason"]) for e in stopped] == [
        ("worker", "lingered"),
        ("reviewer", "lingered"),
    ]
    exits = [e["detail"] for e in kinds(evs, "WorkerExited", NODE)]
    assert all(e["stopped"] and not e["timed_out"] and e["duration"] < 60 for e in exits), exits
    assert not kinds(evs, "AttemptFailed", NODE)
    assert [e["detail"]["verdict"] for e in kinds(evs, "ReviewFinished", NODE)] == ["CLEAN"]
    assert map_state(map_path)[NODE]["status"] == "verified"


def test_a_silent_agent_is_stopped_at_the_stall_timeout_and_counts_as_a_failed_attempt(tmp_path: Path) -> None:
    plan = {NODE: ["silent", "work"]}
    map_path, env = standin_run(tmp_path, plan, "stall_timeout = 2\ntimeout = 600\nretries = 1\n")
    done = foreman("run", str(map_path), "--headless", env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    evs = events(map_path)
    assert [e["detail"]["reason"] for e in kinds(evs, "AgentStopped", NODE)] == ["stalled"]
    failed = kinds(evs, "AttemptFailed", NODE)
    assert len(failed) == 1 and failed[0]["detail"]["reason"].startswith("stalled: no output, file change or commit")
    assert "stalled" in done.stdout
    assert map_state(map_path)[NODE]["status"] == "verified"
    report = foreman("report", str(map_path))
    assert "stalled" in report.stdout, report.stdout


def test_an_agent_that_only_changes_files_is_not_a_stall(tmp_path: Path) -> None:
    """No output for longer than ``stall_timeout``, but its tree keeps changing: it is working, not stalled."""
    plan = {NODE: ["quiet_writer"]}
    map_path, env = standin_run(tmp_path, plan, "stall_timeout = 1\n")
    done = foreman("run", str(map_path), "--headless", env={**env, "STANDIN_QUIET": "4"}, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    evs = events(map_path)
    assert not kinds(evs, "AgentStopped") and not kinds(evs, "AttemptFailed")


def test_four_rate_limits_in_a_row_are_waited_out_resumed_and_never_a_failed_attempt(tmp_path: Path) -> None:
    """Claude Code's recorded 429 (and 529) results, four in a row on one node with ``rate_limit_wait = 1``: the
    run completes with no pause and no failed attempt; each retry resumes the same session with a message that
    repeats the task; the waits double; the number of workers at once is halved."""
    plan = {NODE: ["rate_limit", "overloaded", "rate_limit", "rate_limit", "work"]}
    map_path, env = standin_run(tmp_path, plan, "rate_limit_wait = 1\nmax_parallel = 4\nretries = 0\n")
    done = foreman("run", str(map_path), "--headless", env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    evs = events(map_path)
    assert not kinds(evs, "NodePaused") and not kinds(evs, "AttemptFailed")
    limited = [e["detail"] for e in kinds(evs, "RateLimited", NODE)]
    assert len(limited) == 4
    waits = [d["wait"] for d in limited]
    assert all(0.8 * 2**i - 0.05 <= w <= 1.2 * 2**i + 0.05 for i, w in enumerate(waits)), waits
    assert [d["parallel"] for d in limited] == [2, 1, 1, 1]
    assert "429" in limited[0]["reason"] and "529" in limited[1]["reason"]
    assert "rate limited — retry in" in done.stdout
    worker = [c for c in calls(tmp_path) if c["node"] == NODE and c["role"] == "worker"]
    session = "bafbdbc4-8957-4e2f-a997-5280bbc66c51"  # the recorded 429's session: resumed from then on
    assert [c["argv"][c["argv"].index("--resume") + 1] if "--resume" in c["argv"] else None for c in worker] == [
        None,
        session,
        "1d808ad9-b213-424e-b749-14fc6f006a7e",  # the 529's session
        session,
        session,
    ]
    for c in worker[1:]:  # the task itself, repeated once (not nested in the last continue message)
        assert "Continue where you left off" in c["stdin"] and c["stdin"].count(f"implement node `{NODE}`") == 1
    starts = [e["detail"] for e in kinds(evs, "WorkerStarted", NODE) if e["detail"]["role"] == "worker"]
    assert {s["attempt"] for s in starts} == {1}
    assert map_state(map_path)[NODE]["status"] == "verified"


@pytest.mark.parametrize("cli", ["codex", "gemini"])
def test_codex_and_gemini_rate_limits_as_recorded_are_waited_out_and_resumed(tmp_path: Path, cli: str) -> None:
    """The 429 and the overload recorded from the real Codex and Gemini CLIs, twice on one node: waited out, then
    the same conversation resumed in each CLI's own form; no failed attempt, no pause."""
    plan = {NODE: ["rate_limit", "overloaded", "work"]}
    map_path, env = standin_run(tmp_path, plan, "rate_limit_wait = 1\nretries = 0\n", cli)
    done = foreman("run", str(map_path), "--headless", env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    evs = events(map_path)
    assert len(kinds(evs, "RateLimited", NODE)) == 2
    assert not kinds(evs, "NodePaused") and not kinds(evs, "AttemptFailed")
    worker = [c["argv"] for c in calls(tmp_path) if c["node"] == NODE and c["role"] == "worker"]
    form = "resume" if cli == "codex" else "--resume"
    assert [form in argv for argv in worker] == [False, True, True]
    assert map_state(map_path)[NODE]["status"] == "verified"


def test_a_command_agent_says_rate_limited_by_its_exit_status(tmp_path: Path) -> None:
    agent = tmp_path / "agent.py"
    agent.write_text(
        "import os, pathlib, subprocess, sys\n"
        "count = pathlib.Path(os.environ['STANDIN_STATE']) / ('cmd-' + os.environ['FOREMAN_NODE_ID'])\n"
        "n = int(count.read_text()) if count.exists() else 0\n"
        "count.write_text(str(n + 1))\n"
        "if n < 2:\n    print('429: slow down'); sys.exit(75)\n"
        "agent = [sys.executable, '-m', 'foreman_tui.agents.scripted', '--script', os.environ['STANDIN_SCRIPT']]\n"
        "sys.exit(subprocess.call(agent))\n"
    )
    preset = f'preset = "command"\nargv = ["{sys.executable}", "{agent}"]\nrate_limit_exit = [75]'
    map_path, env = standin_run(tmp_path, {}, "rate_limit_wait = 1\nretries = 0\n", preset=preset)
    done = foreman("run", str(map_path), "--headless", env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    evs = events(map_path)
    assert len(kinds(evs, "RateLimited", NODE)) == 2
    assert not kinds(evs, "AttemptFailed") and not kinds(evs, "NodePaused")


def test_the_run_budget_stops_new_calls_and_pauses_then_a_raise_goes_on(tmp_path: Path) -> None:
    """``budget_usd = 1.0`` and calls of $0.40: two calls start (0.80 spent; a third could pass 1.00), then the
    "budget reached" pause; Claude Code gets its own cap (``--max-budget-usd``, what is left). Raising the budget
    by its option lets the next run go on from where it stopped."""
    map_path, env = standin_run(tmp_path, {}, "budget_usd = 1.0\n")
    first = foreman("run", str(map_path), "--headless", env=env, timeout=300)
    assert first.returncode == 3, first.stdout + first.stderr
    made = calls(tmp_path)
    assert len(made) == 2, made
    assert [c["argv"][c["argv"].index("--max-budget-usd") + 1] for c in made] == ["1.0000", "0.6000"]
    evs = events(map_path)
    pause = kinds(evs, "NodePaused", "budget")[0]["detail"]
    assert pause["trigger"] == "budget reached"
    # $0.40 spent with the other $0.40 call under way, or $0.80 spent: either way a third call could pass $1.00.
    assert re.match(r"the run has spent \$0\.[48]0 of its \$1\.00 budget", pause["problem"]), pause["problem"]
    assert [o["action"] for o in pause["options"]] == ["raise_budget", "stop"]
    status = json.loads(foreman("status", str(map_path), "--json").stdout)
    assert status["spend"]["total_usd"] == 0.8 and status["spend"]["budget_usd"] == 1.0
    assert "foreman decide" in first.stdout and "budget" in first.stdout
    assert foreman("decide", str(map_path), "budget", "A").returncode == 0
    second = foreman("run", str(map_path), "--headless", env=env, timeout=300)
    assert second.returncode == 3, second.stdout + second.stderr
    assert len(calls(tmp_path)) > 2  # $2.00 now: more calls, then the pause again
    raised = kinds(events(map_path), "BudgetRaised", "budget")
    assert raised and raised[0]["detail"]["budget"] == 2.0
    status = json.loads(foreman("status", str(map_path), "--json").stdout)
    assert status["spend"]["total_usd"] <= 2.0 + 1e-9 and status["spend"]["budget_usd"] == 2.0


def test_a_node_budget_pauses_that_node_only_and_a_raise_resumes_it_where_it_was(tmp_path: Path) -> None:
    """``node_budget_usd = 0.5``: 01's worker spent $0.40, its review (up to $0.40 more) would pass it, so 01
    pauses before its review; raising its budget resumes it in review, not from scratch."""
    map_path, env = standin_run(tmp_path, {}, "node_budget_usd = 0.5\n")
    first = foreman("run", str(map_path), "--headless", env=env, timeout=300)
    assert first.returncode == 3, first.stdout + first.stderr
    pause = kinds(events(map_path), "NodePaused", NODE)[0]["detail"]
    assert pause["trigger"] == "budget reached" and "node 01_load_points has spent $0.40" in pause["problem"]
    assert [(c["node"], c["role"]) for c in calls(tmp_path) if c["node"] == NODE] == [(NODE, "worker")]
    assert foreman("decide", str(map_path), NODE, "A").returncode == 0
    second = foreman("run", str(map_path), "--headless", env=env, timeout=300)
    assert [(c["node"], c["role"]) for c in calls(tmp_path) if c["node"] == NODE] == [
        (NODE, "worker"),
        (NODE, "reviewer"),
    ]
    assert map_state(map_path)[NODE]["status"] == "verified", second.stdout
