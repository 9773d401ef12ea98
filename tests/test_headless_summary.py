"""The headless run ends with what a person reading its log needs: how it ended, what is verified, each open
pause with the `foreman decide` line that answers it, the spend, the wall time, and how to resume — and `--json`
stays one event per line."""

from __future__ import annotations

import json
import signal

from .engine_support import demo_repo, events, foreman, kinds, start_foreman, wait_for

NODE = "01_load_points"


def summary(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("── run "))
    return lines[start:]


def test_a_complete_run_says_so_with_its_time_and_json_stays_events_only(tmp_path) -> None:
    map_path = demo_repo(tmp_path)
    done = foreman("run", str(map_path), "--headless")
    assert done.returncode == 0, done.stderr
    tail = summary(done.stdout)
    assert tail[0].startswith("── run complete: 8/8 verified in ") and tail[0].endswith(" s")
    assert not any("rerun" in line or "decide" in line for line in tail)
    assert "NodeMerged branch=" not in done.stdout  # one sentence per event, short shas
    merged = [line for line in done.stdout.splitlines() if " merged foreman/" in line]
    assert merged and all(len(line.split("(")[-1].rstrip(")")) == 10 for line in merged)
    again = foreman("run", str(map_path), "--headless", "--json")  # --json: events only, no summary
    assert again.stdout and all(json.loads(line)["kind"] for line in again.stdout.splitlines())


def test_a_paused_run_lists_each_pause_with_the_line_that_answers_it(tmp_path) -> None:
    map_path = demo_repo(tmp_path, with_pause=True)
    done = foreman("run", str(map_path), "--headless")
    assert done.returncode == 3, done.stderr
    tail = summary(done.stdout)
    assert tail[0].startswith("── run paused: ")
    pause = kinds(events(map_path), "NodePaused")[0]
    assert "1 pause waiting for you:" in tail[1]
    assert tail[2].startswith(f"   - {pause['node']} [{pause['detail']['trigger']}]")
    assert tail[3].startswith("     options: A) ")
    assert tail[4] == f'     foreman decide {map_path} {pause["node"]} <OPTION> [--text "your instruction"]'
    assert tail[5] == f"   after deciding, rerun `foreman run {map_path} --headless` to resume where it stopped"


def test_a_stopped_run_says_how_to_resume(tmp_path) -> None:
    map_path = demo_repo(tmp_path, nodes={NODE: {"files": {"kmeans/points.py": "x = 1\n"}, "hang": True}})
    proc = start_foreman("run", str(map_path), "--headless")
    wait_for(lambda: bool(kinds(events(map_path), "WorkerStarted", NODE)), 60, "the worker's start")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    tail = summary(out)
    assert tail[0].startswith("── run stopped: 0/8 verified in ")
    assert tail[-1] == f"   rerun `foreman run {map_path} --headless` to resume where it stopped"
