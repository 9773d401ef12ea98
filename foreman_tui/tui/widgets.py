"""The main screen's widgets: the live log, the progress bars, and ``show`` (update only what changed). The node
table and the pause panel have modules of their own."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Self

from rich.style import Style
from rich.text import Text
from textual.containers import Horizontal, Vertical
from textual.geometry import Size
from textual.reactive import Reactive
from textual.strip import Strip
from textual.widgets import Label, Log, ProgressBar, Static

from .service import EngineService
from .text import ansi_text, plain


class GrowingLog(Log):
    """A ``Log`` whose growth costs a repaint, not a layout of the whole screen. Textual lays out every
    widget whenever a scrollable's virtual size changes, i.e. for each batch of lines while a log fills
    (10-30 ms a time here, ten times a second). A log's size does not depend on its content: updating
    its scrollbars is enough, and they still ask for a layout themselves when one appears or goes."""

    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=False)

    def _watch_virtual_size(self, size: Size) -> None:
        self._scroll_update(size)


class AnsiLog(GrowingLog):
    """``Log`` (bounded, fast: lines are rendered only when seen) that keeps the ANSI colours of agent
    output and highlights search matches. Whatever a line holds, only its colours reach the terminal (see
    ``text.py``); the log is bounded by ``max_bytes`` as well as by lines, and each line given is one row."""

    search: str = ""

    def __init__(self, *, max_lines: int, max_bytes: int | None = None, id: str | None = None) -> None:
        super().__init__(max_lines=max_lines, id=id)
        self.max_bytes = max_bytes

    @classmethod
    def _process_line(cls, line: str) -> str:  # the width of a line is that of its visible text
        return plain(line)

    def _render_line_strip(self, y: int, rich_style: Style) -> Strip:
        if y in self._render_line_cache:
            return self._render_line_cache[y]
        text = ansi_text(self._lines[y])
        text.stylize_before(rich_style)
        if self.search:
            text.highlight_words([self.search], style="black on yellow", case_sensitive=False)
        strip = Strip(text.render(self.app.console), text.cell_len)
        self._render_line_cache[y] = strip
        return strip

    def write_lines(self, lines: Iterable[str], scroll_end: bool | None = None) -> Self:
        """Textual's ``Log.write_lines`` without splitting the lines again (a line of output is one row, its
        line breaks shown as ⏎) and pruning by bytes as well as by lines."""
        is_vertical_scroll_end = self.is_vertical_scroll_end
        auto_scroll = self.auto_scroll if scroll_end is None else scroll_end
        new_lines = list(lines)
        self._lines.extend(new_lines)
        self._prune()
        self.virtual_size = Size(self._width, len(self._lines))
        self._update_size(self._updates, new_lines)
        self.refresh_lines(max(0, len(self._lines) - len(new_lines)), len(new_lines))
        if auto_scroll and not self.is_vertical_scrollbar_grabbed and is_vertical_scroll_end:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        else:
            self.refresh()
        return self

    def _prune(self) -> None:
        """Drop the oldest lines beyond ``max_lines`` and ``max_bytes`` (the newest always stays)."""
        lines = self._lines
        remove = max(0, len(lines) - self.max_lines) if self.max_lines is not None else 0
        if self.max_bytes is not None:
            held = sum(map(sys.getsizeof, lines))
            for line in lines[:remove]:
                held -= sys.getsizeof(line)
            while held > self.max_bytes and remove < len(lines) - 1:
                held -= sys.getsizeof(lines[remove])
                remove += 1
        if remove <= 0:
            return
        cache = self._render_line_cache
        kept = {y - remove: cache[y] for y in cache.keys() if y >= remove}  # noqa: SIM118 - not iterable
        cache.clear()
        for y, strip in kept.items():
            cache[y] = strip
        del lines[:remove]

    def set_search(self, term: str) -> None:
        self.search = term
        self._render_line_cache.clear()
        self.refresh()

    def find(self, term: str, start: int, backwards: bool = False) -> int | None:
        """The index of the next line (from ``start``, wrapping) whose visible text contains ``term``."""
        lines = self.lines
        count = len(lines)
        if not count or not term:
            return None
        needle = term.casefold()
        step = -1 if backwards else 1
        for offset in range(1, count + 1):
            index = (start + step * offset) % count
            if needle in plain(lines[index]).casefold():
                return index
        return None


def show(widget: Static, content: Text | str, *, layout: bool = True) -> None:
    """Give ``widget`` new content only if it differs: the screen refreshes ten times a second, and an
    update with ``layout`` lays out and repaints all of it (pass False when the widget's size is fixed)."""
    if widget.content != content:
        widget.update(content, layout=layout)


class RegionBars(Vertical):
    """A progress bar per region (verified process nodes) and one for the whole map."""

    def __init__(self, service: EngineService, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.service = service

    def compose(self) -> Iterable[Horizontal]:
        rows = [(f"bar-{i}", label, total) for i, (label, _, total) in enumerate(self.service.region_progress())]
        rows.append(("bar-all", "overall", len(self.service.project.graph.process_order)))
        for bar_id, label, total in rows:
            yield Horizontal(
                Label(label, classes="bar-name"),
                ProgressBar(total=max(total, 1), show_eta=False, show_percentage=False, id=bar_id),
                Label("", id=f"{bar_id}-count", classes="bar-count"),
                classes="bar-row",
            )

    def update_bars(self) -> None:
        progress = self.service.region_progress()
        verified = len(self.service.verified())
        rows = [(f"bar-{i}", done, total) for i, (_, done, total) in enumerate(progress)]
        rows.append(("bar-all", verified, len(self.service.project.graph.process_order)))
        for bar_id, done, total in rows:
            self.query_one(f"#{bar_id}", ProgressBar).update(progress=done)
            show(self.query_one(f"#{bar_id}-count", Label), f"{done}/{total} verified", layout=False)
