"""Screens opened from the main one: the plan, the report, the shell hint, and the question asked on quit."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Markdown, Static

from ..cli import render
from ..engine.ledger import write_report
from ..engine.reports import plan_report
from .service import EngineService
from .text import printable


class PlanScreen(Screen[None]):
    """What ``foreman plan`` prints, for the map as it is now."""

    BINDINGS = [Binding("escape,q", "app.pop_screen", "back", id="plan_back")]

    def __init__(self, service: EngineService) -> None:
        super().__init__()
        self.service = service

    def compose(self) -> ComposeResult:
        yield Static(Text(" plan ", style="bold reverse"), id="plan-title")
        with VerticalScroll(id="plan"):
            yield Static(self._plan(), id="plan-text")
        yield Footer()

    def _plan(self) -> Text:
        report = plan_report(self.service.project, self.service.settings.max_parallel)
        report["map"] = Path(report["map"]).name
        buffer = io.StringIO()
        console = Console(file=buffer, width=max(self.app.size.width - 4, 60), force_terminal=True, highlight=False)
        render.plan(report, console)
        return Text.from_ansi(buffer.getvalue())


class ReportScreen(Screen[None]):
    """The ledger (``foreman report``), rendered as Markdown; built in a thread worker."""

    BINDINGS = [Binding("escape,q", "app.pop_screen", "back", id="report_back")]

    def __init__(self, service: EngineService) -> None:
        super().__init__()
        self.service = service

    def compose(self) -> ComposeResult:
        yield Static(Text(" report ", style="bold reverse"), id="report-title")
        with VerticalScroll(id="report"):
            yield Markdown("_building the report…_", id="report-text")
        yield Footer()

    def on_mount(self) -> None:
        self.build()

    @work(thread=True, exit_on_error=False, group="report", description="building the report")
    def build(self) -> None:
        text = printable(write_report(self.service.project, "md", None, False))  # commit subjects are workers'
        self.app.call_from_thread(self.query_one("#report-text", Markdown).update, text)


class ShellHintScreen(ModalScreen[None]):
    """Where a node's worker works, and the command to open a shell there (foreman does not spawn one)."""

    BINDINGS = [Binding("escape,enter,q", "dismiss", "close", id="hint_close")]

    def __init__(self, node: str, tree: str) -> None:
        super().__init__()
        self.node = node
        self.folder = tree

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Text(f"{self.node}: the worker's tree", style="bold"))
            yield Static(f"\n  cd {self.folder}\n\nOpen a shell there in another terminal (or after quitting).")
            yield Button("Close", id="close")

    @on(Button.Pressed)
    def _close(self) -> None:
        self.dismiss()


class QuitScreen(ModalScreen[str | None]):
    """Workers are running: stop them, or leave them running for the next run to take over?"""

    BINDINGS = [
        Binding("s", "choose('stop')", "stop them", id="quit_stop"),
        Binding("l", "choose('leave')", "leave running", id="quit_leave"),
        Binding("escape,c", "choose('')", "cancel", id="quit_cancel"),
    ]

    def __init__(self, running: list[str]) -> None:
        super().__init__()
        self.running = running

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Text(f"{len(self.running)} node(s) still at work: {', '.join(self.running)}", style="bold"))
            yield Static(
                "\n[b]s[/b]  stop them and quit — they start again on the next `foreman`\n"
                "[b]l[/b]  leave the workers running and quit — the next `foreman` takes them over\n"
                "[b]Esc[/b]  keep going\n"
            )
            with Horizontal(id="dialog-buttons"):
                yield Button("Stop them", id="stop", variant="error")
                yield Button("Leave them running", id="leave", variant="warning")
                yield Button("Cancel", id="cancel")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.action_choose("" if event.button.id == "cancel" else str(event.button.id))

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice or None)
