"""What a person reading the TUI for hours needs to see, checked on the real demo (and the stand-in agent CLIs):
the paused node's log in front, a feed that never cuts a line, a table that reads as columns, one way to type an
instruction, no toast over the pane it talks about, and the troubles of a run (rate limits, stalls, stale nodes,
spend) in the table and the header."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.geometry import Region
from textual.widgets import Input

from foreman_tui.engine.pauses import Option, Pause
from foreman_tui.tui import main_screen
from foreman_tui.tui.feed import EventFeed
from foreman_tui.tui.node_table import NodeTable, checks_cell
from foreman_tui.tui.pause_panel import PausePanel

from .engine_support import demo_repo, slow_first_node
from .tui_support import SIZE, cell, make_app, wait_until

PAUSED = "05_update"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def title(app: Any) -> str:
    return str(app.screen.query_one("#log-title").render())


def summary(app: Any) -> str:
    return str(app.screen.query_one("#summary").render())


def table_lines(app: Any) -> list[str]:
    table = app.screen.query_one(NodeTable)
    return [table.render_line(y).text for y in range(table.size.height)]


def toast_regions(app: Any) -> list[Region]:
    return [toast.region for toast in app.screen.query("Toast")]


def test_a_pause_brings_its_node_and_log_to_the_front_and_no_toast_covers_them(tmp_path: Path) -> None:
    """When 05_update pauses (nobody has touched the keys), its row is selected and its log is on the right: the
    title names 05_update and the log holds its worker's words. No toast lies over the log or the pause panel,
    neither when the pause opens nor after a decision is sent. `w` still goes to the pause after moving away."""
    map_path = demo_repo(tmp_path, with_pause=True)

    async def scenario() -> None:
        app = make_app(map_path)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await wait_until(pilot, lambda: app.screen.node == PAUSED, what="the paused node selected")
            await wait_until(pilot, lambda: PAUSED in title(app), what="its log shown")
            for node in ("01_load_points", "04_assign"):  # a verified node's clock has stopped
                assert app.service.elapsed(node, 1e12) == app.service.elapsed(node, 2e12), node
            log_text = "\n".join(app.screen.query_one("#log").lines)
            assert "The stopping rule is ambiguous" in log_text
            covered = [app.screen.query_one("#log").region, app.screen.query_one(PausePanel).region]
            await pilot.pause(0.3)
            assert not app.screen.query("Toast"), "the pause panel says it: no toast over the screen"

            await pilot.press("up")
            assert app.screen.node == "04_assign"
            await pilot.press("w")
            assert app.screen.node == PAUSED
            await pilot.press("a", "enter")
            await wait_until(pilot, lambda: toast_regions(app), what="the decision's toast")
            assert any("sent A" in str(toast.render()) for toast in app.screen.query("Toast"))
            assert not [t for t in toast_regions(app) for c in covered if t.overlaps(c)]
            await wait_until(pilot, lambda: app.service.finished, what="the run's end")

    run(scenario())


def test_a_person_who_just_chose_a_node_keeps_it_when_a_pause_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The person moved to 02_vector_math "just now" (here: within a long window): the pause waits in the panel
    and the header ("1 pause waiting") instead of taking the log away; `w` goes to it."""
    monkeypatch.setattr(main_screen, "FOLLOW_QUIET", 3600.0)
    map_path = demo_repo(tmp_path, with_pause=True)

    async def scenario() -> None:
        app = make_app(map_path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("down")
            assert app.screen.node == "02_vector_math"
            await wait_until(pilot, lambda: app.service.pauses(), what="the pause")
            await wait_until(pilot, lambda: "1 pause waiting" in summary(app), what="the header's badge")
            panel = app.screen.query_one(PausePanel)
            assert panel.display and panel.pause is not None and panel.pause.node == PAUSED
            assert app.screen.node == "02_vector_math" and "02_vector_math" in title(app)
            await pilot.press("w")
            assert app.screen.node == PAUSED
            app.service.stop()
            await wait_until(pilot, lambda: app.service.finished, what="the run's end")

    run(scenario())


def test_the_event_feed_wraps_so_a_long_event_is_read_whole(tmp_path: Path) -> None:
    """The pause's event carries the whole problem (four lines' worth at this width): every word of it is in the
    feed, wrapped under the event's text, no line wider than the pane, and no sideways scrollbar."""
    map_path = demo_repo(tmp_path, with_pause=True)

    async def scenario() -> None:
        app = make_app(map_path)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: app.service.pauses(), what="the pause")
            problem = app.service.pauses()[0].problem
            feed = app.screen.query_one(EventFeed)
            words = " ".join(" ".join(line.split()) for line in feed.texts())
            await wait_until(pilot, lambda: "PAUSED" in " ".join(feed.texts()), what="the pause in the feed")
            words = " ".join(" ".join(line.split()) for line in feed.texts())
            assert " ".join(problem.split()) in words
            width = feed.scrollable_content_region.width
            assert max(len(line.rstrip()) for line in feed.texts()) <= width
            assert not feed.show_horizontal_scrollbar
            app.service.stop()
            await wait_until(pilot, lambda: app.service.finished, what="the run's end")

    run(scenario())


def test_checks_read_as_counts() -> None:
    """`L1 passed/total ✓`, then failures; dim before any ran; nothing for a node without checks."""
    assert checks_cell(["core[0]", "core[1]", "post[0]", "checkpoint"], {}).plain == "L1 0/4"
    results = {"core[0]": "pass", "core[1]": "pass", "post[0]": "fail", "checkpoint": "pass"}
    cell_text = checks_cell(["core[0]", "core[1]", "post[0]", "checkpoint"], results)
    assert cell_text.plain == "L1 3/4 ✓ · 1 ✗"
    assert checks_cell(["core[0]", "checkpoint"], {"core[0]": "pass", "checkpoint": "pass"}).plain == "L1 2/2 ✓"
    assert checks_cell(["checkpoint"], {"checkpoint": "fail"}).plain == "L1 0/1 · 1 ✗"
    assert checks_cell([], {}).plain == ""


@pytest.mark.parametrize("size", [SIZE, (100, 30), (80, 24)])
def test_the_table_reads_as_columns_at_any_width_and_never_scrolls_sideways(tmp_path: Path, size: Any) -> None:
    """At the pause: status, try, time and checks stand apart (`✓ verified  1/3  0:00  L1 2/2 ✓`), the
    checks say `L1 2/2 ✓` for the verified nodes, the note is cut with "…" to the width left, there is no
    sideways scrollbar, and the table's tooltip explains the columns. Under 120 columns the log goes under the
    table, which keeps the whole width."""
    map_path = demo_repo(tmp_path, with_pause=True)

    async def scenario() -> None:
        app = make_app(map_path)
        async with app.run_test(size=size) as pilot:
            await wait_until(pilot, lambda: app.service.pauses(), what="the pause")
            await pilot.pause(0.3)
            table = app.screen.query_one(NodeTable)
            for node in ("01_load_points", "02_vector_math", "03_seed_centroids", "04_assign"):
                assert cell(app, node, "checks") == "L1 2/2 ✓", node
            assert cell(app, PAUSED, "checks") == "L1 0/2"
            rows = table_lines(app)
            verified = [line for line in rows if "verified" in line and "_" in line]
            assert verified and all(re.search(r"✓ verified {2,}\d/3 {2,}\d+:\d\d {2,}L1 2/2 ✓", r) for r in verified)
            assert any(re.search(r"‖ PAUSED {2,}1/3 ", line) for line in rows), rows
            assert not table.show_horizontal_scrollbar and table.virtual_size.width <= table.size.width
            assert all(len(line) <= table.size.width for line in rows)
            assert "L1 checks" in str(table.tooltip)
            narrow = size[0] < main_screen.NARROW
            assert app.screen.has_class("-narrow") == narrow
            assert (table.size.width >= size[0] - 2) == narrow
            app.service.stop()
            await wait_until(pilot, lambda: app.service.finished, what="the run's end")

    run(scenario())


class OnePanel(App[None]):
    def compose(self) -> ComposeResult:
        yield PausePanel(id="pause")


def _pause(*labels: str) -> Pause:
    options = [Option(key=chr(ord("A") + i), label=label, action="retry") for i, label in enumerate(labels)]
    return Pause(node="n", trigger="t", problem="p", options=options, source="worker")


def test_one_way_to_type_an_instruction_at_a_pause() -> None:
    """A pause whose map offers "C) your instruction" shows that option once, and no separate `i` line; choosing
    it opens the text box. A pause without such an option offers `i` instead — again once."""

    async def scenario() -> None:
        app = OnePanel()
        async with app.run_test(size=(80, 30)) as pilot:
            panel = app.query_one(PausePanel)
            panel.show(_pause("keep it", "drop it", "your instruction"), 1)
            await pilot.pause()
            options = str(panel.query_one("#pause-options").render())
            assert options.count("your instruction") == 1 and " i " not in options, options
            assert panel.choose("C")
            await pilot.pause()
            box = panel.query_one("#pause-instruction", Input)
            assert box.display and box.has_focus

            panel.show(_pause("retry", "mark failed"), 1)
            await pilot.pause()
            options = str(panel.query_one("#pause-options").render())
            assert options.count("your instruction") == 1 and " i " in options, options

    run(scenario())


def test_a_stalled_worker_and_its_spend_show_in_the_table_and_the_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in Claude Code that goes silent is stopped at the 2 s stall timeout: its row says "attempt 1
    stalled" and the header "1 stalled", while the next attempt works, until the node is verified; then the row
    shows what the node cost and the header what the run spent."""
    from .standin_support import NODE, standin_run

    map_path, env = standin_run(tmp_path, {NODE: ["silent", "work"]}, "stall_timeout = 2\nretries = 1\n")
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    async def scenario() -> None:
        app = make_app(map_path)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: "stalled" in cell(app, NODE, "why"), what="the stall note")
            assert cell(app, NODE, "why").startswith("attempt 1 stalled")
            assert "1 stalled" in summary(app)
            await wait_until(pilot, lambda: cell(app, NODE, "status").endswith("verified"), what="verified")
            assert re.fullmatch(r"\$\d+\.\d\d", cell(app, NODE, "cost")), cell(app, NODE, "cost")
            assert re.search(r"· \$\d+\.\d\d", summary(app)) and "stalled" not in summary(app)
            app.service.stop()
            await wait_until(pilot, lambda: app.service.finished, what="the run's end")

    run(scenario())


def test_a_running_clock_turns_on_screen(tmp_path: Path) -> None:
    """A worker at work for a few seconds: its row's time, as drawn (not only the table's data), goes 0:00,
    0:01, 0:02… — the clocks repaint their own row each second, nothing else."""
    map_path = slow_first_node(tmp_path, 20)

    def drawn_clock(app: Any) -> str | None:
        row = next((line for line in table_lines(app) if "01_load_points" in line), "")
        found = re.search(r"running {2,}\S* {2,}(\d+:\d\d)", row)
        return found.group(1) if found else None

    async def scenario() -> None:
        app = make_app(map_path)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: drawn_clock(app), what="01 running with its clock")
            seen: set[str] = set()

            def turned_twice() -> bool:
                clock = drawn_clock(app)
                if clock is not None:
                    seen.add(clock)
                return len(seen) >= 3

            await wait_until(pilot, turned_twice, 15, "the drawn clock to turn twice")
            app.service.stop()
            await wait_until(pilot, lambda: app.service.finished, what="the run's end")

    run(scenario())
