"""The main screen: nodes and progress on the left with the pause panel under them, the selected node's
live log and the event feed on the right. Everything is refreshed on one timer from what the engine
service gathered meanwhile, so a flood of output costs one batch per tick, not one update per line."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from ..engine.events import NodePaused
from ..engine.pauses import Pause
from .feed import EventFeed
from .messages import DecisionSent, EventsArrived, PauseShown, RunEnded
from .node_table import NodeTable
from .pause_panel import PausePanel
from .service import SCROLLBACK, EngineService
from .text import printable
from .widgets import AnsiLog, RegionBars, show

if TYPE_CHECKING:
    from .app import ForemanApp

REFRESH = 0.1
"""Seconds between screen refreshes (output, table, feed): ten batches a second."""
OPTION_KEYS = "abcde"
NARROW = 120
"""Below this many columns the log and feed go under the table (``-narrow`` in foreman.tcss)."""
FOLLOW_QUIET = 5.0
"""Seconds since the person last chose a node after which a new pause brings its node's log to the front."""


class MainScreen(Screen[None]):
    BINDINGS = [
        *(
            Binding(key, f"option('{key.upper()}')", f"option {key.upper()}", show=False, id=f"option_{key}")
            for key in OPTION_KEYS
        ),
        Binding("i", "instruct", "instruction", show=False, id="instruct"),
        Binding("enter", "enter", "details / send", id="enter", tooltip="Send the staged decision, or open details"),
        Binding("escape", "cancel", "cancel", show=False, id="cancel"),
        Binding("w", "next_pause", "next pause", id="next_pause", tooltip="Select the next node waiting for you"),
        Binding("slash", "search", "search", id="search", tooltip="Search the log"),
        Binding("n", "find(False)", "next", show=False, id="find_next"),
        Binding("N", "find(True)", "previous", show=False, id="find_previous"),
        Binding("f", "follow", "follow", id="follow", tooltip="Follow the end of the log, or stop following"),
        Binding("r", "raw", "raw/steps", id="raw", tooltip="Agent steps or the raw log"),
        Binding("o", "pager", "open log", id="pager", tooltip="Open the full log file in $PAGER"),
        Binding("p", "plan", "plan", id="plan"),
        Binding("s", "toggle_scheduling", "hold/resume", id="scheduling", tooltip="Pause or resume scheduling"),
    ]

    def __init__(self, service: EngineService) -> None:
        super().__init__()
        self.service = service
        self.node: str | None = None
        self.raw = False
        self._shown_written = 0
        self._shown_mode: tuple[str | None, str] | None = None
        """(node, "raw" or "steps") the log widget shows now."""
        self._title_look: tuple[object, ...] | None = None
        """What the log's title was made from (``_show_log``)."""
        self._search = ""
        self._match: int | None = None
        self._known_pauses: set[str] = set()
        self._seen_pauses: set[str] = set()
        self._second = 0
        """The whole second of the last full refresh (``tick``)."""
        self._chosen_at = float("-inf")
        """When the person last chose a node with `w` (the table keeps its own cursor moves)."""

    @property
    def foreman(self) -> ForemanApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static(id="summary")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield NodeTable(self.service, id="nodes")
                yield RegionBars(self.service, id="bars")
                yield PausePanel(id="pause")
            with Vertical(id="right"):
                yield Static(id="log-title")
                yield AnsiLog(max_lines=SCROLLBACK, max_bytes=self.service.memory, id="log")
                yield Input(placeholder="search the log — Enter finds, n/N next/previous, Esc closes", id="search")
                yield Static("events", id="feed-title")
                yield EventFeed(id="feed")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#search", Input).display = False
        self.query_one(PausePanel).display = False
        table = self.query_one(NodeTable)
        if table.node_rows:
            table.select_node(table.node_rows[0])
        table.focus()
        self.set_interval(REFRESH, self._periodic_tick)
        self.tick()

    def on_resize(self) -> None:
        self.set_class(self.size.width < NARROW, "-narrow")

    # --------------------------------------------------------------------------------- refreshing

    def _periodic_tick(self) -> None:
        self.tick(whole=False)

    def tick(self, *, whole: bool = True) -> None:
        """Show what is new. The log every time (output shows within a tick); the table, the bars, the pause
        panel and the header when events arrived, when the clock's second turned (the running times, a rate
        limit's countdown), or when ``whole``: with nothing happening, a tick then costs next to nothing."""
        events = self.service.take_events()
        if events:
            self.post_message(EventsArrived(events))
            self.query_one(EventFeed).add(events)
            for event in events:
                if isinstance(event, NodePaused) and event.pause_id not in self._known_pauses:
                    self._known_pauses.add(event.pause_id)
                    self.foreman.announce_pause(event)
        second = int(time.time())
        everything = whole or bool(events) or second != self._second
        self._second = second
        if everything:
            self._follow_new_pause()
            self.query_one(NodeTable).update_rows()
            self.query_one(RegionBars).update_bars()
            self._show_pause()
        self._show_log()
        if everything:
            self._show_summary()

    def _follow_new_pause(self) -> None:
        """A pause that opens brings its node (and so its log) to the front, unless the person chose a node in
        the last few seconds: then it waits in the panel and the header, and ``w`` goes to it."""
        pauses = self.service.pauses()
        new = [p for p in pauses if p.id not in self._seen_pauses]
        if not new:
            return
        self._seen_pauses.update(p.id for p in new)
        table = self.query_one(NodeTable)
        if time.monotonic() - max(self._chosen_at, table.chosen_at) < FOLLOW_QUIET:
            return
        node = new[-1].node
        if node != self.node and node in table.node_rows:
            table.select_node(node)

    def _show_summary(self) -> None:
        service = self.service
        total = len(service.project.graph.process_order)
        text = Text()
        text.append(" foreman ", style="bold reverse")
        text.append(f" {service.supervisor.map_path.name} ", style="bold")
        text.append(f" {len(service.verified())}/{total} verified · {len(service.running())} running")
        spent, budget = service.spend()
        if spent or budget is not None:
            text.append(f" · ${spent:.2f}" + (f" of ${budget:.2f}" if budget is not None else ""))
        limit = service.supervisor.throttle.limit
        if limit < service.settings.max_parallel:
            text.append(f"  rate limited: {limit} at once ", style="bold black on yellow")
        for count, what in service.troubles():
            text.append(f"  {count} {what} ", style="bold yellow")
        waiting = len(service.pauses())
        if waiting:
            text.append(f"  ‖ {waiting} pause{'s' if waiting > 1 else ''} waiting ", style="bold black on yellow")
        if service.supervisor.held:
            text.append("  scheduling paused (s resumes) ", style="bold white on dark_red")
        if service.outcome is not None:
            style = "bold green" if service.outcome.status == "complete" else "bold yellow"
            text.append(f"  run {service.outcome.status}: q quits", style=style)
        elif service.error is not None:
            text.append(printable(f"  engine error: {service.error}", one_line=True), style="bold red")
        show(self.query_one("#summary", Static), text, layout=False)

    def _selected_pause(self) -> Pause | None:
        """The selected node's pause, or else the oldest one waiting."""
        pauses = self.service.pauses()
        if not pauses:
            return None
        own = self.service.pause_of(self.node) if self.node else None
        return own or pauses[0]

    def _show_pause(self) -> None:
        panel = self.query_one(PausePanel)
        pause = self._selected_pause()
        waiting = len(self.service.pauses())
        if panel.show(pause, waiting) and pause is not None:
            self.post_message(PauseShown(pause.node, pause.id, waiting))

    def _show_log(self) -> None:
        log = self.query_one(AnsiLog)
        node = self.node
        feed = self.service.shown(node) if node else None
        mode = "steps" if feed is not None and feed.steps and not self.raw else "raw"
        lines: Sequence[str]
        if feed is None:
            lines_written, lines = 0, ()
        elif mode == "steps":
            lines_written, lines = feed.steps_written, feed.steps
        else:
            lines_written, lines = feed.written, feed.lines
        if (node, mode) != self._shown_mode or lines_written < self._shown_written:
            self._shown_mode = (node, mode)
            log.clear()
            log.write_lines(list(lines))
        elif (new := min(lines_written - self._shown_written, len(lines))) > 0:
            log.write_lines([lines[i] for i in range(-new, 0)])  # only the new tail, not the whole window
        self._shown_written = lines_written
        attempt = self.service.attempt(node) if node else ""
        look = (node, mode, attempt, log.auto_scroll, self._search)
        if look == self._title_look:
            return  # the title as it is (ten ticks a second: most of them change nothing)
        self._title_look = look
        title = Text()
        title.append(printable(f" {node or '(select a node)'} ", one_line=True), style="bold reverse")
        if node:
            title.append(f"  {mode}", style="bold")
            if attempt:
                title.append(f" · attempt {attempt}")
            title.append(" · following" if log.auto_scroll else " · not following (f)", style="dim")
            if self._search:
                title.append(f" · search “{self._search}”", style="yellow")
        show(self.query_one("#log-title", Static), title, layout=False)

    # ------------------------------------------------------------------------------------- events

    @on(DataTable.RowHighlighted, "#nodes")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value
        node = key if key and not key.startswith("region:") else None
        if node != self.node:
            self.node = node
            self._shown_mode = None
            self._match = None
            self.tick()

    @on(DataTable.RowSelected, "#nodes")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_enter()

    @on(Input.Submitted, "#pause-instruction")
    def _instruction_given(self, event: Input.Submitted) -> None:
        self.query_one(PausePanel).keep_instruction(event.value)
        self.query_one(NodeTable).focus()

    @on(Input.Submitted, "#search")
    def _search_given(self, event: Input.Submitted) -> None:
        self._search = event.value.strip()
        log = self.query_one(AnsiLog)
        log.set_search(self._search)
        self.query_one("#search", Input).display = False
        self.query_one(NodeTable).focus()
        self._match = None
        self.action_find(False)

    @on(RunEnded)
    def _run_ended(self, message: RunEnded) -> None:
        self.tick()

    # ------------------------------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        panel = self.query_one(PausePanel)
        if action in ("option", "instruct"):
            return panel.pause is not None
        if action in ("find",):
            return bool(self._search)
        return True

    def action_option(self, key: str) -> None:
        panel = self.query_one(PausePanel)
        if not panel.choose(key):
            self.notify(f"this pause has no option {key}", severity="warning")

    def action_instruct(self) -> None:
        self.query_one(PausePanel).start_instruction()

    def action_enter(self) -> None:
        panel = self.query_one(PausePanel)
        decision = panel.staged()
        if decision is None:
            self.action_detail()
            return
        decision.who = f"{decision.who} (tui)"
        self.service.decide(decision)
        panel.cancel()
        what = f"{decision.option}" if decision.option else "your instruction"
        self.notify(f"{decision.node}: sent {what}", title="decision")
        self.post_message(DecisionSent(decision))

    def action_cancel(self) -> None:
        search = self.query_one("#search", Input)
        if search.display:
            search.display = False
            self.query_one(NodeTable).focus()
            return
        panel = self.query_one(PausePanel)
        if not panel.cancel() and self._search:
            self._search = ""
            self.query_one(AnsiLog).set_search("")
        self.query_one(NodeTable).focus()

    def action_next_pause(self) -> None:
        pauses = [p for p in self.service.pauses() if p.node in self.query_one(NodeTable).node_rows]
        if not pauses:
            self.notify("no pause is waiting")
            return
        nodes = [p.node for p in pauses]
        after = nodes.index(self.node) + 1 if self.node in nodes else 0
        self._chosen_at = time.monotonic()
        self.query_one(NodeTable).select_node(nodes[after % len(nodes)])

    def action_search(self) -> None:
        box = self.query_one("#search", Input)
        box.display = True
        box.value = self._search
        box.focus()

    def action_find(self, backwards: bool) -> None:
        log = self.query_one(AnsiLog)
        start = self._match if self._match is not None else (log.scroll_offset.y if backwards else -1)
        found = log.find(self._search, start, backwards)
        if found is None:
            self.notify(f"“{self._search}” is not in this log", severity="warning", markup=False)
            return
        self._match = found
        log.auto_scroll = False
        log.scroll_to(y=max(0, found - log.size.height // 2), animate=False)

    def action_follow(self) -> None:
        log = self.query_one(AnsiLog)
        log.auto_scroll = not log.auto_scroll
        if log.auto_scroll:
            log.scroll_end(animate=False)
        self._show_log()

    def action_raw(self) -> None:
        self.raw = not self.raw
        self._show_log()

    def action_pager(self) -> None:
        feed = self.service.feeds.get(self.node) if self.node else None
        if feed is None or not feed.log:
            self.notify("this node has no log yet", severity="warning")
            return
        argv = shlex.split(os.environ.get("PAGER") or "less -R")
        if not argv or shutil.which(argv[0]) is None:
            self.notify(f"no pager found; the log is {feed.log}", severity="warning")
            return
        with self.app.suspend():
            subprocess.run([*argv, feed.log], check=False)

    def action_plan(self) -> None:
        self.foreman.action_show_plan()

    def action_detail(self) -> None:
        if self.node is None:
            return
        from .detail import DetailScreen

        self.app.push_screen(DetailScreen(self.service, self.node))

    def action_toggle_scheduling(self) -> None:
        self.foreman.action_toggle_scheduling()
