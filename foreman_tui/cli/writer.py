"""Writing a report's lines and tables fast, byte for byte as Rich would (see ``render.py``'s docstring): Rich lays
out some 20,000 table cells a second, so a 50,000-node map took half a minute to print."""

from __future__ import annotations

import re
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

try:
    from rich._ratio import ratio_reduce
    from rich.markup import RE_TAGS
except ImportError:  # pragma: no cover - a Rich without them: every table and markup line goes to Rich
    ratio_reduce = None  # type: ignore[assignment]
    RE_TAGS = None  # type: ignore[assignment]

RICH_ROWS_MAX = 2_000
"""On a terminal, reports with more rows than this (nodes, batches, commands…) are written without colour."""

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""Characters Rich strips, expands or breaks lines at (control codes, tabs, line separators): such text goes to
Rich."""


def _table(console: Console, *columns: str) -> Table:
    fancy = console.is_terminal
    table = Table(
        box=box.SIMPLE_HEAD if fancy else None,
        show_header=True,
        header_style="bold" if fancy else "",
        pad_edge=False,
        show_edge=False,
    )
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


class _Literal(str):
    """Text printed as it is, never read as markup: what an unstyled ``Text`` is to Rich."""


Cell = str | Text


class _Out:
    """Prints a report's lines and tables to ``console``: directly when it is plain (see the module's docstring),
    else through Rich. Use it as a context manager: lines are written in blocks, the last one on exit. The
    renderers run with the garbage collector paused: the report they print is hundreds of thousands of
    objects, just built, and each collection while printing would walk all of them again (half the time)."""

    def __init__(self, console: Console, rows: int = 0) -> None:
        self.console = console
        self.terminal = console.is_terminal
        self.fast = (not self.terminal or rows > RICH_ROWS_MAX) and RE_TAGS is not None
        self.width = console.width
        self._emoji = bool(getattr(console, "_emoji", True))
        self._pending: list[str] = []

    def __enter__(self) -> _Out:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.flush()

    def flush(self) -> None:
        if self._pending:
            text = "".join(self._pending)
            self._pending.clear()
            file = self.console.file
            file.write(text)
            file.flush()

    def print(self, *objects: Any) -> None:
        """``console.print`` as such."""
        self.flush()
        self.console.print(*objects)

    def plain(self, value: Cell) -> str:
        """The characters Rich would print for ``value`` (a ``str`` is console markup, as Rich reads it)."""
        if isinstance(value, Text):
            return value.plain
        if isinstance(value, _Literal):
            return str(value)
        if ("[" in value and (RE_TAGS.search(value) or "\\[" in value)) or (self._emoji and ":" in value):
            return self.console.render_str(value).plain
        return value

    def line(self, value: Cell, style: str = "") -> None:
        """``console.print(value)``; a ``_Literal`` is printed as ``Text(value, style=style)``."""
        if self.fast:
            try:
                text = self.plain(value)
            except Exception:  # bad markup: Rich says so
                text = "\x00"
            width = self.width
            if not _UNSAFE.search(text.replace("\n", "")) and all(_width(part) <= width for part in text.split("\n")):
                self._pending.append(text + "\n")
                return
        self.print(Text(value, style=style) if isinstance(value, _Literal) else value)

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Cell]]) -> None:
        """``console.print`` of :func:`_table` with these rows."""
        if self.fast:
            lines = self._layout(columns, rows)
            if lines is not None:
                self._pending.append("".join(lines))
                return
        table = _table(self.console, *columns)
        for row in rows:
            table.add_row(*(Text(cell) if isinstance(cell, _Literal) else cell for cell in row))
        self.print(table)

    def _layout(self, columns: Sequence[str], rows: Sequence[Sequence[Cell]]) -> list[str] | None:
        """The lines of Rich's rendering of :func:`_table` (column widths as ``Table._calculate_column_widths``,
        cells wrapped by ``Text.wrap``), without styles; None when it would need Rich (unsafe characters, a
        table wider than the console, columns too narrow to wrap in)."""
        n = len(columns)
        boxed = box.SIMPLE_HEAD.substitute(self.console.options, safe=self.console.safe_box) if self.terminal else None
        extra = n - 1 if boxed else 0
        pads = [(0 if i == 0 else 1, 0 if i == n - 1 else 1) for i in range(n)]
        grid: list[list[list[str]]] = [[[column] for column in columns]]
        longest = [_width(column) for column in columns]
        unsafe = _UNSAFE.search
        plain = self.plain
        for row in rows:
            cells = []
            for i, value in enumerate(row):
                try:
                    text = plain(value)
                except Exception:  # bad markup: Rich raises it, or never reads it (a column too narrow)
                    return None
                if "\n" in text:
                    lines = text.split("\n")
                    widest = max(map(_width, lines))
                    if unsafe(text.replace("\n", "")):
                        return None
                else:
                    lines = [text]
                    widest = _width(text)
                    if unsafe(text):
                        return None
                if widest > longest[i]:
                    longest[i] = widest
                cells.append(lines)
            grid.append(cells)
        limit = self.width - extra
        if limit < 1:
            return None

        def measured(longest_text: int, pad: int, room: int) -> int:
            # Measurement.get of Padding(Text) in a column ``room`` wide, as Rich clamps it
            if room < 1:
                return 0
            if room - pad < 1:
                return room
            return min(min(longest_text, room) + pad, room)

        widths = [measured(m, left + right, limit) or 1 for m, (left, right) in zip(longest, pads, strict=True)]
        if sum(widths) > limit:
            widths = Table._collapse_widths(widths, [True] * n, limit)
            if sum(widths) > limit:
                widths = ratio_reduce(sum(widths) - limit, [1] * n, widths, widths)
            widths = [measured(m, left + right, w) for m, (left, right), w in zip(longest, pads, widths, strict=True)]
        if sum(widths) + extra > self.width:
            return None
        inner = [w - left - right for w, (left, right) in zip(widths, pads, strict=True)]
        if min(inner) < 2:
            return None
        blanks = [" " * w for w in widths]
        lefts = [" " * left for left, _ in pads]
        rights = [" " * right for _, right in pads]
        out: list[str] = []
        last_row = len(grid) - 1
        for r, cells in enumerate(grid):
            rendered: list[list[str]] = []
            height = 1
            for i, lines in enumerate(cells):
                room = inner[i]
                cell_lines = []
                for text in lines:
                    if text.isascii():
                        if len(text) <= room:
                            cell_lines.append(lefts[i] + text.ljust(room) + rights[i])
                            continue
                    else:
                        width = cell_len(text)
                        if width <= room:
                            cell_lines.append(f"{lefts[i]}{text}{' ' * (room - width)}{rights[i]}")
                            continue
                    for part in Text(text).wrap(self.console, room, justify="left", overflow="fold"):
                        piece = part.plain
                        cell_lines.append(f"{lefts[i]}{piece}{' ' * (room - cell_len(piece))}{rights[i]}")
                if len(cell_lines) > height:
                    height = len(cell_lines)
                rendered.append(cell_lines)
            if r == 0:  # the header row: cells aligned at the bottom
                divider = boxed.head_vertical if boxed else ""
                rendered = [[blanks[i]] * (height - len(c)) + c for i, c in enumerate(rendered)]
            else:
                divider = (boxed.foot_vertical if r == last_row else boxed.mid_vertical) if boxed else ""
            if height == 1:
                out.append(divider.join([c[0] for c in rendered]) + "\n")
            else:
                for line_no in range(height):
                    out.append(
                        divider.join([c[line_no] if line_no < len(c) else blanks[i] for i, c in enumerate(rendered)])
                        + "\n"
                    )
            if r == 0 and boxed:
                out.append(boxed.get_row(widths, "head", edge=False) + "\n")
        return out


def _width(text: str) -> int:
    """Cells ``text`` takes on a terminal (ASCII text without control characters: one a character)."""
    return len(text) if text.isascii() else cell_len(text)
