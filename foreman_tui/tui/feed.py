"""The event feed: one entry per engine event, wrapped to the pane's width so no line is ever cut."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from rich.table import Table
from rich.text import Text
from textual.geometry import Size
from textual.reactive import Reactive
from textual.widgets import RichLog

from ..engine.events import Event
from .text import printable

NODE_WIDTH = 18
"""Cells for the node's name; a longer one wraps inside its column."""
FEED_LINES = 1000


def stamp(when: float) -> str:
    return datetime.fromtimestamp(when).strftime("%H:%M:%S")


def feed_text(event: Event) -> str:
    """What the feed says of ``event`` (worker-written parts, such as a commit subject, made harmless; its own
    line breaks kept)."""
    return printable(event.describe()[:2000])


def feed_entry(event: Event) -> Table:
    """One event as a row: its time, its node, and its sentence, which wraps under itself."""
    row = Table.grid(padding=(0, 1))
    row.add_column(no_wrap=True, style="dim")
    row.add_column(width=NODE_WIDTH, overflow="fold")
    row.add_column(ratio=1, overflow="fold")
    row.add_row(stamp(event.time), Text(printable(event.node or "run", one_line=True)), Text(feed_text(event)))
    return row


class EventFeed(RichLog):
    """The feed. Entries are rendered once, at the pane's width, when written. Like ``GrowingLog``, its growth
    costs a repaint rather than a layout of the whole screen."""

    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=False)

    def __init__(self, *, id: str | None = None) -> None:
        # min_width: RichLog renders at least 78 cells wide by default, wider than the pane it sits in.
        super().__init__(max_lines=FEED_LINES, min_width=20, wrap=True, markup=False, highlight=False, id=id)

    def _watch_virtual_size(self, size: Size) -> None:
        self._scroll_update(size)

    def add(self, events: Iterable[Event]) -> None:
        for event in events:
            self.write(feed_entry(event), expand=True)

    def texts(self) -> list[str]:
        """The feed as the person sees it, one string per screen line."""
        return [strip.text for strip in self.lines]
