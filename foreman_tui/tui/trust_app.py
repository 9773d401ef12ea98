"""The TUI's first question when a map or foreman.toml would run something the person has not approved: the same
list ``foreman trust`` prints, one key to approve it all, one to quit. It runs before the engine exists, so
nothing of the map has started while the person reads."""

from __future__ import annotations

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Static

from ..engine.trust import Item
from .text import printable

STATUS_STYLE = {"new": ("+ new", "bold yellow"), "changed": ("~ changed", "bold red")}


class TrustApp(App[bool]):
    """Returns True when the person approved everything listed, False (or None) when they quit."""

    TITLE = "foreman — approve commands"
    BINDINGS = [
        Binding("a", "approve", "approve all and start", id="trust_approve"),
        Binding("q,escape", "refuse", "quit (nothing runs)", id="trust_quit"),
    ]
    CSS = """
    #trust-intro { padding: 1 2; }
    #trust-table { height: 1fr; }
    """

    def __init__(self, source: str, pending: list[tuple[Item, str]]) -> None:
        super().__init__()
        self.source = source
        self.pending = pending

    def compose(self) -> ComposeResult:
        intro = Text()
        intro.append(f"{len(self.pending)} command(s)", style="bold")
        intro.append(f" from {printable(self.source)} and its foreman.toml are new or changed since you approved.\n")
        intro.append("Nothing runs until you approve them. Read each one: it runs on your machine, as you.\n")
        intro.append("a", style="bold reverse")
        intro.append(" approve all and start   ")
        intro.append("q", style="bold reverse")
        intro.append(" quit (approve later with `foreman trust MAP`)")
        yield Static(intro, id="trust-intro")
        with VerticalScroll():
            yield DataTable(id="trust-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#trust-table", DataTable)
        table.add_columns("status", "kind", "command", "from", "when")
        for item, status in self.pending:
            label, style = STATUS_STYLE.get(status, (status, ""))
            table.add_row(
                Text(label, style=style),
                item.kind,
                Text(item.shown),
                Text(printable(item.source)),
                Text(item.when, style="dim"),
            )
        table.focus()

    def action_approve(self) -> None:
        self.exit(True)

    def action_refuse(self) -> None:
        self.exit(False)
