"""Human output of the CLI reports: Rich tables and colour on a terminal, plain aligned text when piped.

Rich lays out some 20,000 table cells a second, so a 50,000-node map took half a minute to print. Reports are
therefore written through :class:`_Out`: when the output is not a terminal, every line and table that Rich would
print unchanged by anything but padding (no markup, no control characters) is laid out here — the same column
widths, wrapping and padding as Rich, byte for byte, with Rich's own code doing any wrapping — and anything
else goes to Rich. On a terminal Rich prints everything, unless the report has more than ``RICH_ROWS_MAX``
rows: then it is written the same way, without colour or bold (the layout, table rule included, stays).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Collection, Sequence
from types import TracebackType
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..map._gc import gc_paused
from ..map.errors import Problem

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

STATUS_STYLE = {
    "verified": ("✓", "green"),
    "implemented": ("●", "yellow"),
    "theory_ok": ("◐", "cyan"),
    "discussing": ("◐", "cyan"),
    "not_started": ("○", "dim"),
}


def _console(stream: Any) -> Console:
    console = Console(file=stream, highlight=False)
    if not console.is_terminal:
        console = Console(file=stream, highlight=False, width=200, no_color=True, emoji=False)
    return console


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


def _status(console: Console, status: str) -> Text:
    icon, style = STATUS_STYLE.get(status, ("?", ""))
    return Text(f"{icon} {status}", style=style) if console.is_terminal else Text(status)


def _warnings(out: _Out, warnings: list[dict[str, str]]) -> None:
    if not warnings:
        return
    terminal = out.console.is_terminal
    out.line(f"\n[bold yellow]Warnings ({len(warnings)})[/]" if terminal else f"\nWarnings ({len(warnings)})")
    for w in warnings:
        fix = f" — {w['fix']}" if w.get("fix") else ""
        out.line(_Literal(f"  ! {w['path']}: {w['message']}{fix}"), style="yellow" if terminal else "")


def _back_edges(edges: list[dict[str, Any]]) -> str:
    if not edges:
        return "none"
    return ", ".join(f"{e['from']}→{e['to']}" + (f" ({e['label']})" if e.get("label") else "") for e in edges)


def _commands(out: _Out, commands: list[dict[str, Any]]) -> None:
    """Every command the map makes foreman run, where it comes from and when it runs."""
    out.line(f"\nCommands foreman will run ({len(commands)})")
    if not commands:
        out.line("  none")
        return
    out.table(("command", "from", "when"), [(c["cmd"], c["source"], c["when"]) for c in commands])


def _rows(*parts: Collection[Any]) -> int:
    return max(len(part) for part in parts)


def validate(report: dict[str, Any]) -> None:
    console = _console(sys.stdout)
    size = _rows(report["files"], report["commands"], report["regions"], report["warnings"])
    with gc_paused(), _Out(console, size) as out:
        out.print(Text(f"{report['title']}", style="bold"), Text(f"  {report['map']}", style="dim"))
        counts = report["nodes"]
        total = sum(counts.values())
        out.line(
            f"Nodes      {total}: " + ", ".join(f"{n} {t}" for t, n in counts.items()) + f"; {report['edges']} edges"
        )
        out.line(f"Back edges {_back_edges(report['back_edges'])}")
        regions = report["regions"]
        out.line(
            f"Regions    {len(regions)}"
            + "".join(
                f"\n  {r['label']} ({r['key']}): {r['nodes']} nodes, {r['process_nodes']} process" for r in regions
            )
        )
        checks = report["checks"]
        out.line(
            "Checks     "
            + "; ".join(f"{level}: {c['with_cmd']} with cmd, {c['without_cmd']} without" for level, c in checks.items())
        )
        rows = []
        for node, info in report["files"].items():
            detail = f"{info['source']} ({info['detail']})" if info["detail"] else info["source"]
            rows.append((node, ", ".join(info["files"]) or "—", detail))
        out.line("\nOwned files")
        out.table(("node", "owned files", "from"), rows)
        _commands(out, report["commands"])
        _warnings(out, report["warnings"])
        verdict = "valid" + (f", {len(report['warnings'])} warning(s)" if report["warnings"] else "")
        out.line(Text(f"\n✓ {verdict}", style="bold green") if console.is_terminal else f"\n{verdict}")


def _check_summary(checks: list[dict[str, Any]]) -> str:
    """``1 (1 cmd) / 2 (0 cmd) / 0``: a node's checks by level, and how many of them have a command."""
    by_level = {"L1": [0, 0], "L2": [0, 0], "L3": [0, 0]}
    for check in checks:
        counts = by_level[check["level"]]
        counts[0] += 1
        if check["cmd"]:
            counts[1] += 1
    return " / ".join([f"{n} ({cmd} cmd)" if n else "0" for n, cmd in by_level.values()])


def plan(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or _console(sys.stdout)
    size = _rows(report["batches"], report["nodes"], report["overlaps"], report["commands"], report["regions"])
    with gc_paused(), _Out(console, size) as out:
        _plan(out, report)


def _plan(out: _Out, report: dict[str, Any]) -> None:
    console = out.console
    terminal = console.is_terminal
    out.print(
        Text("Plan", style="bold"), Text(f"  {report['map']}  max_parallel {report['max_parallel']}", style="dim")
    )
    out.line(f"Back edges (ignored for ordering): {_back_edges(report['back_edges'])}")
    if report["already_verified"]:
        out.line(f"Already verified: {', '.join(report['already_verified'])}")
    out.line("")
    for batch in report["batches"]:
        if out.fast:
            out.line(_Literal(f"Batch {batch['index']}: {', '.join(batch['nodes'])}"))
        else:
            out.line(Text(f"Batch {batch['index']}: ", style="bold") + Text(", ".join(batch["nodes"])))
        for wait in batch["waits"]:
            out.line(_Literal(f"    {wait['node']} {wait['reason']}"), style="yellow" if terminal else "")
    if not report["batches"]:
        out.line("Nothing to run: every process node is verified.")
    if report["overlaps"]:
        out.line("\nFile overlaps (never run at the same time)")
        for overlap in report["overlaps"]:
            out.line(f"  {' ↔ '.join(overlap['nodes'])}: {', '.join(overlap['files'])}")
    rows: list[tuple[Cell, ...]] = []
    for node, info in report["nodes"].items():
        checks = _check_summary(info["checks"])
        if out.fast:
            files: Cell = _Literal(f"{chr(10).join(info['files']) or '—'}\nfrom {info['source']}")
            status: Cell = _Literal(info["status"] if not terminal else _status(console, info["status"]).plain)
        else:
            files = Text("\n".join(info["files"]) or "—")
            files.append(f"\nfrom {info['source']}", style="dim" if terminal else "")
            status = _status(console, info["status"])
        rows.append((node, status, files, "\n".join(info["upstream"]) or "—", checks))
    out.line("\nNodes")
    out.table(("node", "status", "owned files", "upstream (checkpoint each)", "checks L1 / L2 / L3"), rows)
    if report["regions"]:
        out.line("\nRegion checks (L2, when all of a region's process nodes are verified)")
        for region in report["regions"]:
            runnable = sum(bool(c["cmd"]) for c in region["checks"])
            out.line(
                f"  {region['label']}: {len(region['checks'])} check(s), {runnable} with cmd"
                f" — after {', '.join(region['process_nodes']) or 'nothing'}"
            )
    end = report["end_checks"]
    out.line(f"\nEnd checks (L3): {len(end)}, {sum(bool(c['cmd']) for c in end)} with cmd")
    bench = report["benchmark"]
    if bench:
        out.line("Benchmark: " + ", ".join(f"{k} {v}" for k, v in bench.items()))
    _commands(out, report["commands"])
    _warnings(out, report["warnings"])


def status(report: dict[str, Any]) -> None:
    console = _console(sys.stdout)
    with gc_paused(), _Out(console, _rows(report["nodes"], report["regions"])) as out:
        _status_lines(out, report)


def _status_lines(out: _Out, report: dict[str, Any]) -> None:
    console = out.console
    terminal = console.is_terminal
    out.print(Text(f"{report['title']}", style="bold"), Text(f"  {report['map']}", style="dim"))
    if report.get("live"):
        out.line("A run is going on now; the phases below are its own.")
    rows: list[tuple[Cell, ...]] = []
    for node in report["nodes"]:
        if node["type"] == "terminal":
            continue
        note = ""
        if node.get("phase"):
            note = node["phase"] + (f" (attempt {node['attempt']})" if node.get("attempt") else "")
        elif node["status"] == "implemented" and node["type"] == "process":
            note = "implemented: checks and review next"
        elif node.get("waiting_on"):
            note = "waits for " + ", ".join(node["waiting_on"])
        elif node["type"] == "decision":
            note = "feeders verified" if node["feeders_verified"] else "feeders not all verified"
        if out.fast:
            status: Cell = _Literal(node["status"] if not terminal else _status(console, node["status"]).plain)
        else:
            status = _status(console, node["status"])
        rows.append((node["id"], node["type"], status, note))
    out.table(("node", "type", "status", "note"), rows)
    for region in report["regions"]:
        out.line(region["line"])
    for pause in report.get("pauses", []):
        out.line(_Literal(f"\nPAUSED {pause['node']} [{pause['trigger']}]"), style="bold yellow" if terminal else "")
        out.line(f"  {pause['problem']}")
        for option in pause["options"]:
            out.line(f"  {option['key']}) {option['label']}")
        out.line(f'  answer: foreman decide {report["map"]} {pause["node"]} <OPTION> [--text "your instruction"]')
    if report.get("failed"):
        out.line(f"Failed by decision: {', '.join(report['failed'])}")
    for miss in report.get("feedback_unmatched", []):
        out.line(f"Feedback not routed ({miss['file']} line {miss['line']}): {miss['reason']} — {miss['note'][:80]}")
    totals = report["totals"]
    by_status = ", ".join(f"{n} {s}" for s, n in totals["by_status"].items())
    out.line(f"Total: {totals['verified']}/{totals['process_nodes']} process nodes verified ({by_status})")
    if totals["complete"]:
        out.line(Text("Build complete.", style="bold green") if terminal else "Build complete.")


def problems(source: str, found: list[Problem], what: str) -> None:
    console = _console(sys.stderr)
    terminal = console.is_terminal
    with gc_paused(), _Out(console, len(found)) as out:
        out.line(_Literal(f"foreman: the {what} is not valid: {source}"), style="bold red" if terminal else "")
        for problem in found:
            out.line(_Literal(f"  ✗ {problem.path}: {problem.message}"), style="red" if terminal else "")
            if problem.fix:
                out.line(_Literal(f"      fix: {problem.fix}"), style="dim" if terminal else "")
        out.line("Nothing was written (exit status 2).")
