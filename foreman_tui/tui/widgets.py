"""The main screen's widgets: the node table, the progress bars, the live log and the pause panel."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterable
from typing import Self

from rich.style import Style
from rich.text import Text
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.geometry import Size
from textual.reactive import Reactive
from textual.strip import Strip
from textual.widgets import DataTable, Input, Label, Log, ProgressBar, Static

from ..engine.pauses import Decision, Pause
from .service import PHASE_LOOK, EngineService
from .text import ansi_text, plain, printable, shorten

PANEL_TEXT = 4000
"""Characters of a pause's problem, what was tried, or an option shown in the panel."""
PANEL_EVIDENCE = 20000
"""Characters of a pause's evidence shown (its end)."""


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


COLUMNS = (("node", "node"), ("status", "status"), ("try", "try"), ("time", "time"), ("checks", "checks"))
TAIL_COLUMNS = (("why", "waiting / note"), ("cost", "cost"))


def show(widget: Static, content: Text | str, *, layout: bool = True) -> None:
    """Give ``widget`` new content only if it differs: the screen refreshes ten times a second, and an
    update with ``layout`` lays out and repaints all of it (pass False when the widget's size is fixed)."""
    if widget.content != content:
        widget.update(content, layout=layout)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}"


class NodeTable(DataTable[Text | str]):
    """Every node, grouped by region, one row each; region rows carry the region's progress."""

    def __init__(self, service: EngineService, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)  # type: ignore[arg-type]
        self.service = service
        self._shown: dict[tuple[str, str], object] = {}
        self.node_rows: list[str] = []

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)
        self.add_column(TAIL_COLUMNS[0][1], key=TAIL_COLUMNS[0][0], width=40)
        self.add_column(TAIL_COLUMNS[1][1], key=TAIL_COLUMNS[1][0])
        graph = self.service.project.graph
        placed: set[str] = set()
        groups: list[tuple[str, str, list[str]]] = []
        for region in graph.regions:
            members = [n for n in graph.order if n in region.nodes and n not in placed]
            placed.update(members)
            groups.append((f"region:{region.key}", region.label, members))
        rest = [n for n in graph.order if n not in placed and graph.types.get(n) in ("process", "decision")]
        if rest:
            groups.append(("region:", "(no region)" if groups else "nodes", rest))
        for key, label, members in groups:
            self.add_row(Text(f"▾ {label}", style="bold"), "", "", "", "", "", "", key=key)
            for node in members:
                self.add_row(Text(f"  {node}"), "", "", "", "", "", "", key=node)
                self.node_rows.append(node)
        self._fit_caches()
        self.update_rows()

    def _fit_caches(self) -> None:
        """Size DataTable's render caches to this table. Their keys include an update counter, so every
        changed cell (the running clocks change each second) makes all entries stale; at their defaults
        (1,000 rows, 10,000 cells) they keep ~50k dead objects that each full garbage collection walks."""
        rows = self.row_count + 1  # the header too
        for cache, size in (
            (self._row_render_cache, rows * 2),
            (self._cell_render_cache, rows * len(self.columns) * 2),
            (self._row_renderable_cache, rows * 2),
            (self._line_cache, rows * 2),
        ):
            cache.maxsize = min(cache.maxsize, max(size, 64))

    def row_values(self, node: str, now: float) -> dict[str, object]:
        service = self.service
        phase = service.phase(node)
        icon, label, style = PHASE_LOOK.get(phase, ("?", phase, ""))
        values: dict[str, object] = {"status": Text(f"{icon} {label}", style=style)}
        if service.project.graph.types.get(node) != "process":
            return values | {"try": "", "time": "", "checks": "", "why": "", "cost": ""}
        values["try"] = service.attempt(node)
        values["time"] = _clock(service.elapsed(node, now))
        feed = service.feeds.get(node)
        marks = Text()
        for key in service.check_keys(node):
            result = feed.checks.get(key) if feed else None
            status = result.status if result else ""
            mark, mark_style = {"pass": ("✓", "green"), "fail": ("✗", "bold red")}.get(status, ("—", "dim"))
            marks.append(mark, style=mark_style)
        values["checks"] = marks
        pause = service.pause_of(node)
        why = (
            f"[{pause.trigger}] {pause.problem}"
            if pause
            else service.limit_reason(node, now) or service.stale_reason(node) or service.wait_reason(node)
        )
        why = printable(why[:200], one_line=True)
        values["why"] = Text(why if len(why) <= 40 else why[:39] + "…")  # Text: a str cell would be markup
        cost = service.cost(node)
        values["cost"] = f"${cost:.2f}" if cost else ""
        return values

    def update_rows(self) -> None:
        # Whole seconds: every running clock then turns at the same moment, one repaint of the table a
        # second rather than one per running node.
        now = float(int(time.time()))
        for node in self.node_rows:
            for column, value in self.row_values(node, now).items():
                if self._shown.get((node, column)) != value:
                    self._shown[(node, column)] = value
                    self.update_cell(node, column, value, update_width=column != "why")  # type: ignore[arg-type]
        for region, (_, done, total) in zip(
            self.service.project.graph.regions, self.service.region_progress(), strict=False
        ):
            text = f"{done}/{total}" if total else ""
            if self._shown.get((region.key, "status")) != text:
                self._shown[(region.key, "status")] = text
                self.update_cell(f"region:{region.key}", "status", text)

    @property
    def selected_node(self) -> str | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return key if key and not key.startswith("region:") else None

    def select_node(self, node: str) -> None:
        self.move_cursor(row=self.get_row_index(node))


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


def _evidence(pause: Pause) -> str:
    """The evidence without the block a worker printed (the panel shows that already, field by field)."""
    if pause.source != "worker":
        return pause.evidence
    lines = pause.evidence.splitlines()
    start = next((i for i, line in enumerate(lines) if _BLOCK_HEAD.match(line)), len(lines))
    return "\n".join(lines[:start]).strip()


def _shown(text: str, *, one_line: bool = False) -> str:
    """Worker-written text of a pause as the panel shows it: bounded, nothing a terminal would act on."""
    return printable(shorten(text, PANEL_TEXT), one_line=one_line)


_BLOCK_HEAD = re.compile(r"^\s*(HARD PAUSE|硬暂停)\s*[:：]")
_FREE_TEXT = re.compile(r"^(your instruction|用户指示|user instruction|你的指示)\W*$", re.IGNORECASE)


class PausePanel(Vertical):
    """The open hard pause, inline: what happened, the evidence, one key per option, an instruction box.
    A choice is shown before it is sent; Enter sends it, Esc drops it."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.pause: Pause | None = None
        self.waiting = 0
        self.choice: str | None = None
        self.text = ""

    def compose(self) -> Iterable[Static | VerticalScroll | Input]:
        yield Static(id="pause-title")
        with VerticalScroll(id="pause-scroll"):  # what happened scrolls; the options always show
            yield Static(id="pause-body")
            yield Static(id="pause-evidence-text")
        yield Static(id="pause-options")
        yield Input(placeholder="your instruction — Enter to keep it, Esc to drop it", id="pause-instruction")
        yield Static(id="pause-confirm")

    def show(self, pause: Pause | None, waiting: int) -> bool:
        """Show ``pause`` (None hides the panel). True if the pause shown changed."""
        changed = (pause.id if pause else None) != (self.pause.id if self.pause else None)
        self.pause, self.waiting = pause, waiting
        self.display = pause is not None
        if pause is None:
            return changed
        if changed:
            self.choice, self.text = None, ""
            self.query_one("#pause-instruction", Input).value = ""
            self.query_one("#pause-instruction", Input).display = False
            body = Text()
            body.append("Problem: ", style="bold")
            body.append(_shown(pause.problem) or "—")
            if pause.tried:
                body.append("\nTried: ", style="bold")
                body.append(_shown(pause.tried))
            self.query_one("#pause-body", Static).update(body)
            evidence = printable(shorten(_evidence(pause), PANEL_EVIDENCE, keep_end=True))
            self.query_one("#pause-evidence-text", Static).update(Text(evidence or "(no evidence)"))
            self.query_one("#pause-scroll", VerticalScroll).scroll_home(animate=False)
        title = Text()
        title.append(f" ⏸ HARD PAUSE  {_shown(pause.node, one_line=True)} ", style="bold black on yellow")
        title.append(f"  [{_shown(pause.trigger, one_line=True)}]", style="bold")
        if waiting > 1:
            title.append(f"   {waiting} pauses waiting", style="bold white on red")
        show(self.query_one("#pause-title", Static), title)
        self._show_options()
        return changed

    def _show_options(self) -> None:
        assert self.pause is not None
        text = Text()
        for option in self.pause.options:
            selected = self.choice == option.key
            text.append(f" {_shown(option.key.lower(), one_line=True)} ", style="bold reverse" if selected else "bold")
            text.append(f" {_shown(option.label, one_line=True)}\n", style="bold" if selected else "")
        text.append(" i ", style="bold")
        text.append(" your instruction (free text)")
        show(self.query_one("#pause-options", Static), text)
        confirm = Text()
        decision = self.staged()
        if decision is not None:
            confirm.append("Send: ", style="bold")
            chosen = self.pause.option(decision.option) if decision.option else None
            if chosen is not None:
                confirm.append(_shown(f"{chosen.key}) {chosen.label}", one_line=True))
            if decision.text:
                instruction = _shown(decision.text, one_line=True)
                confirm.append((" + " if decision.option else "") + f"instruction “{instruction}”")
            confirm.append("   Enter sends · Esc cancels", style="dim")
        else:
            confirm.append("Press an option's key or i; the choice is shown here before it is sent.", style="dim")
        show(self.query_one("#pause-confirm", Static), confirm)

    def choose(self, key: str) -> bool:
        option = self.pause.option(key) if self.pause is not None else None
        if option is None:
            return False
        if _FREE_TEXT.match(option.label):  # "C) your instruction": that is the text box
            self.start_instruction()
            return True
        self.choice = key.upper()
        self._show_options()
        return True

    def start_instruction(self) -> None:
        box = self.query_one("#pause-instruction", Input)
        box.display = True
        box.value = self.text
        box.focus()

    def keep_instruction(self, text: str) -> None:
        self.text = text.strip()
        self.query_one("#pause-instruction", Input).display = False
        self._show_options()

    def staged(self) -> Decision | None:
        if self.pause is None or not (self.choice or self.text):
            return None
        return Decision(node=self.pause.node, option=self.choice, text=self.text)

    def cancel(self) -> bool:
        """Drop the staged choice; False if there was none."""
        had = self.choice is not None or bool(self.text)
        self.choice, self.text = None, ""
        self.query_one("#pause-instruction", Input).display = False
        if self.pause is not None:
            self._show_options()
        return had
