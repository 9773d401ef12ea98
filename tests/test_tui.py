"""The TUI driven with Textual's pilot on real demo repositories, the scripted agent as the worker."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from rich.style import Style
from textual.message import Message
from textual.widgets import ProgressBar

from foreman_tui.engine.process import group_alive
from foreman_tui.tui.messages import DecisionSent, PauseShown
from foreman_tui.tui.pause_panel import PausePanel
from foreman_tui.tui.views import QuitScreen
from foreman_tui.tui.widgets import AnsiLog

from .engine_support import DEMO_PROCESS, demo_repo, events, kinds, slow_first_node
from .tui_support import SIZE, cell, make_app, wait_until


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def bar(app: Any, bar_id: str) -> float:
    return app.screen.query_one(f"#{bar_id}", ProgressBar).progress


def test_demo_runs_to_a_pause_and_one_key_plus_an_instruction_finishes_it(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path, with_pause=True)
    messages: list[Message] = []

    async def scenario() -> None:
        app = make_app(map_path)
        async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
            await wait_until(pilot, lambda: any(isinstance(m, PauseShown) for m in messages), what="the pause")
            shown = next(m for m in messages if isinstance(m, PauseShown))
            assert shown.node == "05_update" and shown.waiting == 1
            panel = app.screen.query_one(PausePanel)
            assert panel.display and panel.pause is not None
            assert "#2 implementation departs from the spec" in panel.pause.trigger
            # The table and the bars say what happened so far: Prepare done, 04 verified, 05 paused, rest waiting.
            assert cell(app, "05_update", "status").endswith("PAUSED")
            assert cell(app, "07_inertia", "why") == "waits for 05_update"
            for node in ("01_load_points", "02_vector_math", "03_seed_centroids", "04_assign"):
                assert cell(app, node, "status").endswith("verified"), node
            assert cell(app, "04_assign", "try") == "2/3"  # its tie test failed on the first attempt
            assert bar(app, "bar-0") == 3 and bar(app, "bar-1") == 1 and bar(app, "bar-all") == 4

            await pilot.press("b")
            assert panel.choice == "B"
            await pilot.press("i")
            await pilot.press(*"keep the how's rule")
            await pilot.press("enter")  # keeps the instruction; nothing is sent yet
            assert not any(isinstance(m, DecisionSent) for m in messages)
            staged = panel.staged()
            assert staged is not None and (staged.option, staged.text) == ("B", "keep the how's rule")
            await pilot.press("enter")  # sends
            sent = next(m for m in messages if isinstance(m, DecisionSent))
            assert (sent.decision.node, sent.decision.option) == ("05_update", "B")

            await wait_until(pilot, lambda: app.service.outcome is not None, what="the end of the run")
            assert app.service.outcome is not None and app.service.outcome.status == "complete"
            await pilot.pause(0.2)
            for node in DEMO_PROCESS:
                assert cell(app, node, "status").endswith("verified"), node
            assert bar(app, "bar-all") == 8 and bar(app, "bar-1") == 2
            assert not panel.display

    run(scenario())
    evs = events(map_path)
    decision = kinds(evs, "DecisionRecorded", "05_update")[0]["detail"]
    assert decision["option"] == "B" and decision["text"] == "keep the how's rule"
    assert decision["who"].endswith("(tui)")
    # The worker's second attempt received the decision.
    log = (map_path.parent / ".foreman" / "logs" / "05_update" / "2.log").read_text()
    assert "keep the how's rule" in log and "option B" in log


def test_escape_drops_a_staged_choice_and_nothing_is_sent(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path, with_pause=True)
    messages: list[Message] = []

    async def scenario() -> None:
        app = make_app(map_path)
        async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
            await wait_until(pilot, lambda: app.service.pauses(), what="the pause")
            await pilot.pause(0.2)
            panel = app.screen.query_one(PausePanel)
            await pilot.press("a")
            assert panel.staged() is not None
            await pilot.press("escape")
            assert panel.staged() is None
            await pilot.press("z")  # not an option: nothing happens
            assert panel.staged() is None
            await pilot.pause(1.2)  # more than two input ticks of the engine
            assert app.service.pauses() and not any(isinstance(m, DecisionSent) for m in messages)

    run(scenario())
    assert not kinds(events(map_path), "DecisionRecorded")


def _fast_again(map_path: Path) -> None:
    script_path = map_path.parent.parent / "script" / "script.json"
    script = json.loads(script_path.read_text())
    script["nodes"]["01_load_points"]["sleep"] = 0
    script_path.write_text(json.dumps(script))


def test_quitting_with_a_running_worker_and_stopping_it_then_reopening_resumes(tmp_path: Path) -> None:
    map_path = slow_first_node(tmp_path, 60)

    async def first_session() -> int:
        app = make_app(map_path)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: kinds(events(map_path), "WorkerStarted", "01_load_points"), what="worker")
            await pilot.press("q")
            await wait_until(pilot, lambda: isinstance(app.screen, QuitScreen), what="the quit question")
            await pilot.press("s")
            await wait_until(pilot, lambda: app.return_code is not None, timeout=30, what="the app to exit")
        return int(kinds(events(map_path), "WorkerStarted", "01_load_points")[0]["detail"]["pid"])

    pid = run(first_session())
    assert not group_alive(pid), "the stopped worker is gone"
    assert kinds(events(map_path), "RunFinished")[-1]["detail"]["outcome"] == "stopped"
    _fast_again(map_path)

    async def second_session() -> None:
        app = make_app(map_path)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: app.service.outcome is not None, what="the end of the run")
            assert app.service.outcome is not None and app.service.outcome.status == "complete"

    run(second_session())
    evs = events(map_path)
    assert [e["detail"]["resumed"] for e in kinds(evs, "RunStarted")] == [False, True]
    recovered = kinds(evs, "NodeRecovered", "01_load_points")
    assert recovered and recovered[0]["detail"]["now"] == "pending"
    assert [
        e["detail"]["attempt"] for e in kinds(evs, "WorkerStarted", "01_load_points") if e["detail"]["role"] == "worker"
    ] == [1, 2]


def test_palette_commands_stop_retry_and_hold_scheduling(tmp_path: Path) -> None:
    map_path = slow_first_node(tmp_path, 60)

    async def scenario() -> None:
        app = make_app(map_path)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: "01_load_points" in app.service.running(), what="01 running")
            app.screen.query_one("#nodes").move_cursor(row=1)  # 01_load_points (row 0 is its region)
            await pilot.pause(0.1)
            assert app.selected_node() == "01_load_points"
            app.action_stop_node()
            await wait_until(pilot, lambda: app.service.pause_of("01_load_points") is not None, what="stopped")
            assert app.service.pause_of("01_load_points").trigger == "stopped by a person"  # type: ignore[union-attr]
            await wait_until(pilot, lambda: not app.service.running(), what="the worker to stop")
            app.action_toggle_scheduling()
            assert app.service.supervisor.held
            _fast_again(map_path)
            app.action_retry_node()
            await wait_until(pilot, lambda: app.service.pause_of("01_load_points") is None, what="retry")
            await pilot.pause(1.2)
            assert not app.service.running(), "nothing starts while scheduling is held"
            assert cell(app, "01_load_points", "why") == "scheduling is paused"
            app.action_toggle_scheduling()
            await wait_until(pilot, lambda: app.service.phase("01_load_points") == "verified", what="01 verified")

    run(scenario())
    evs = events(map_path)
    assert [e["detail"]["held"] for e in kinds(evs, "SchedulingHeld")] == [True, False]
    assert kinds(evs, "DecisionRecorded", "01_load_points")[0]["detail"]["action"] == "retry"


def test_log_keeps_ansi_colours_search_finds_lines_and_follow_toggles(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path)

    async def scenario() -> None:
        app = make_app(map_path)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: app.service.outcome is not None, what="the end of the run")
            app.screen.query_one("#nodes").move_cursor(row=5)  # 04_assign
            await pilot.pause(0.2)
            assert app.selected_node() == "04_assign"
            app.service._on_output("04_assign", "stdout", ["\x1b[31mred alert\x1b[0m plain"])
            await pilot.pause(0.3)
            log = app.screen.query_one(AnsiLog)
            assert log.lines[-1].endswith("plain")
            strip = log._render_line_strip(len(log.lines) - 1, Style())
            red = [seg for seg in strip if seg.text.startswith("red alert")]
            assert red and red[0].style is not None and red[0].style.color is not None
            assert red[0].style.color.number == 1  # ANSI red
            await pilot.press("slash")
            await pilot.press(*"tie test")
            await pilot.press("enter")
            found = log.find("tie test", -1)
            assert found is not None and "tie test" in log.lines[found].lower()
            assert not log.auto_scroll  # a search stops following
            await pilot.press("f")
            assert log.auto_scroll

    run(scenario())


def test_a_growing_log_keeps_its_scrollbar_and_the_end_in_step_without_relayouts() -> None:
    """GrowingLog skips Textual's whole-screen layout when its virtual size changes; its scrollbar must
    still know the new length, and a following log must still show its last line."""
    from textual.app import App, ComposeResult

    class OneLog(App[None]):
        def compose(self) -> ComposeResult:
            yield AnsiLog(max_lines=500, id="log")

    async def scenario() -> None:
        app = OneLog()
        async with app.run_test(size=(60, 12)) as pilot:
            log = app.query_one(AnsiLog)
            for batch in range(30):
                log.write_lines([f"\x1b[32mline\x1b[0m {batch * 10 + i}" for i in range(10)])
                await pilot.pause()
            assert log.show_vertical_scrollbar
            assert log.vertical_scrollbar.window_virtual_size == log.line_count == 300
            assert log.scroll_y == log.max_scroll_y > 0
            assert log.lines[-1].endswith("line\x1b[0m 299")
            for _ in range(30):  # past max_lines: the oldest go, the length stays
                log.write_lines([f"more {i}" for i in range(10)])
            await pilot.pause()
            assert log.vertical_scrollbar.window_virtual_size == log.line_count == 500
            assert log.scroll_y == log.max_scroll_y

    run(scenario())


def test_a_stale_node_says_why_in_the_table_while_it_is_verified_again(tmp_path: Path) -> None:
    """After a complete run a person tightens 03_seed_centroids' post condition (and its check takes a moment):
    the table shows 03 and what follows it as stale, with the reason, while they are checked again."""
    import subprocess

    from .engine_support import foreman, trust_map

    map_path = demo_repo(tmp_path)
    assert foreman("run", str(map_path), "--headless").returncode == 0
    doc = json.loads(map_path.read_text())
    doc["contents"]["03_seed_centroids"]["verify"]["post"].append({"desc": "the seeds are distinct"})
    doc["contents"]["03_seed_centroids"]["verify"]["core"].append(
        {"desc": "takes a moment", "level": "L1", "cmd": "python -c 'import time; time.sleep(3)'"}
    )
    map_path.write_text(json.dumps(doc, indent=2))
    subprocess.run(["git", "commit", "-qam", "a stricter seed"], cwd=map_path.parent, check=True)
    trust_map(map_path)

    async def scenario() -> None:
        app = make_app(map_path)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: "stale:" in cell(app, "03_seed_centroids", "why"), what="03 stale")
            assert cell(app, "03_seed_centroids", "why") == "stale: 03_seed_centroids's post changed"
            assert cell(app, "04_assign", "why").startswith("stale: 03_seed_centroids's post")
            assert cell(app, "01_load_points", "status").endswith("verified")
            await wait_until(pilot, lambda: app.service.finished, what="the run's end")
            assert cell(app, "03_seed_centroids", "why") == ""

    run(scenario())


def test_a_rate_limited_node_says_when_it_retries_and_the_header_says_fewer_run(tmp_path: Path, monkeypatch) -> None:
    """A worker's call refused with a 429 (Claude Code's recorded result): its row says "rate limited — retry in
    Ns" while it waits, the header says how many workers run at once now and what the run has spent."""
    from .standin_support import NODE, standin_run

    map_path, env = standin_run(tmp_path, {NODE: ["rate_limit", "work"]}, "rate_limit_wait = 30\n")
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    async def scenario() -> None:
        app = make_app(map_path)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: "rate limited" in cell(app, NODE, "why"), what="the rate-limit note")
            assert re.fullmatch(r"rate limited — retry in \d+s", cell(app, NODE, "why")), cell(app, NODE, "why")
            summary = str(app.screen.query_one("#summary").render())
            # max_parallel 3 halved to 1; another node's call going through since may have raised it to 2.
            assert re.search(r"rate limited: [12] at once", summary), summary
            app.service.supervisor.request_stop()
            await wait_until(pilot, lambda: app.service.finished, what="the run's end")

    run(scenario())
