"""The node table: every node, grouped by region, one row each, with status, attempt, time, checks, cost and
why it waits."""

from __future__ import annotations

import time

from rich.style import Style
from rich.text import Text
from textual import events
from textual._types import SegmentLines
from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

from .service import PHASE_LOOK, EngineService
from .text import printable

COLUMNS = (
    ("node", "node"),
    ("status", "status"),
    ("try", "try"),
    ("time", "time"),
    ("checks", "L1 checks"),
    ("cost", "cost"),
)
NOTE = ("why", "waiting / note")
"""The last column: it takes the width left, so the table never scrolls sideways."""
NOTE_MIN = 12
TABLE_LEGEND = (
    "status: ○ pending · ◌ waiting · ▸ running · ◆ checking · ◇ reviewing · ⇢ merging · ✓ verified · "
    "↻ stale · ‖ PAUSED · ✗ failed\n"
    "try: this round's attempt / attempts before a pause\n"
    "L1 checks: passed/total (✓), failed (✗); checks without a command are not counted\n"
    "Enter opens a node's detail"
)


def checks_cell(runnable: list[str], results: dict[str, str]) -> Text:
    """A node's L1 checks at a glance: ``L1 3/4 ✓ · 1 ✗`` (passed of those with a command, then failures);
    green once all passed, ``L1 0/4`` dim before any ran."""
    if not runnable:
        return Text("")
    passed = sum(results.get(key) == "pass" for key in runnable)
    failed = sum(results.get(key) == "fail" for key in runnable)
    total = len(runnable)
    cell = Text()
    if passed == total:
        cell.append(f"L1 {passed}/{total} ✓", style="green")
    else:
        cell.append(f"L1 {passed}/{total}", style="" if passed or failed else "dim")
        if passed:
            cell.append(" ✓", style="green")
    if failed:
        cell.append(" · ")
        cell.append(f"{failed} ✗", style="bold red")
    return cell


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
        self.chosen_at = float("-inf")
        """When the person last moved the cursor (monotonic seconds)."""
        self._cells: dict[tuple[RowKey | None, ColumnKey | None], tuple[tuple[object, ...], object, SegmentLines]] = {}
        """Each cell's last rendering: (what it depended on, the value, the lines). See ``_render_cell``."""
        self._look = 0
        """Bumped when the styles change (theme, CSS): every kept rendering is then stale."""
        self._line_style: Style | None = None
        """The widget's style while ``render_lines`` runs."""

    def on_mount(self) -> None:
        self.tooltip = TABLE_LEGEND
        for key, label in COLUMNS:
            self.add_column(label, key=key)
        self.add_column(NOTE[1], key=NOTE[0], width=NOTE_MIN)
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
            self.add_row(Text(f"▾ {label}", style="bold"), *[""] * len(COLUMNS), key=key)
            for node in members:
                self.add_row(Text(f"  {node}"), *[""] * len(COLUMNS), key=node)
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

    def notify_style_update(self) -> None:
        self._look += 1
        self._cells.clear()
        super().notify_style_update()

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> SegmentLines:
        """DataTable's rendering of a cell, kept per cell while neither its value nor its look changed.
        DataTable keys its own cache on a counter that every ``update_cell`` bumps, so each running clock's
        turn (once a second) re-rendered every cell of the table: ~70 cells through Rich for 8 changed ones."""
        row_key = self._header_row_key if row_index == -1 else self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index) if column_index >= 0 else None
        row = self.rows.get(row_key) if row_key is not None else None
        value: object
        if row_index == -1:
            value = self.columns[column_key].label if column_key is not None else None
        elif column_index == -1:
            value = row.label if row is not None else None
        else:
            value = self._data.get(row_key, {}).get(column_key) if row_key and column_key else None
        depends = (
            row_index,
            column_index,
            base_style,
            width,
            cursor,
            hover,
            self.show_cursor,
            self._show_hover_cursor,
            self._pseudo_class_state,
            self.cell_padding,
            row.height if row is not None else self.header_height,
            self._look,
        )
        kept = self._cells.get((row_key, column_key))
        if kept is not None and kept[1] is value and kept[0] == depends:
            return kept[2]
        lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        if len(self._cells) > 4 * (self.size.height + 2) * (len(self.columns) + 1):
            self._cells.clear()  # bounded by what a screen shows (a long table scrolled through), as DataTable's are
        self._cells[(row_key, column_key)] = (depends, value, lines)
        return lines

    def render_lines(self, crop: Region) -> list[Strip]:
        self._line_style = self.rich_style  # once per repaint, not once per line (it walks up the DOM)
        try:
            return super().render_lines(crop)
        finally:
            self._line_style = None

    def render_line(self, y: int) -> Strip:
        """DataTable's, with the widget's style looked up once per repaint (``render_lines``)."""
        style = self._line_style
        if style is None or self.fixed_rows:
            return super().render_line(y)
        scroll_x, scroll_y = self.scroll_offset
        if y >= (self.header_height if self.show_header else 0):
            y += scroll_y
        return self._render_line(y, scroll_x, scroll_x + self.size.width, style)

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
        results = {key: result.status for key, result in feed.checks.items()} if feed else {}
        values["checks"] = checks_cell(service.runnable_check_keys(node), results)
        pause = service.pause_of(node)
        why = (
            f"[{pause.trigger}] {pause.problem}"
            if pause
            else service.limit_reason(node, now) or service.stale_reason(node) or service.wait_reason(node)
        )
        # Text: a str cell would be markup. Cut to the column when shown (``_fit_note``), not here.
        values["why"] = Text(printable(why[:200], one_line=True), no_wrap=True, overflow="ellipsis")
        cost = service.cost(node)
        values["cost"] = f"${cost:.2f}" if cost else ""
        return values

    def update_rows(self) -> None:
        # Whole seconds: every running clock then turns at the same moment, one repaint of the table a
        # second rather than one per running node.
        now = float(int(time.time()))
        turned: list[str] = []
        for node in self.node_rows:
            for column, value in self.row_values(node, now).items():
                shown = self._shown.get((node, column))
                if shown != value:
                    self._shown[(node, column)] = value
                    if column == "time" and isinstance(shown, str) and len(shown) == len(value):  # type: ignore[arg-type]
                        self._turn_clock(node, value)  # type: ignore[arg-type]
                        turned.append(node)
                    else:
                        self.update_cell(node, column, value, update_width=column != NOTE[0])  # type: ignore[arg-type]
        for node in turned:  # a clock that turned repaints its row, not the whole table
            self.refresh_row(self.get_row_index(node))
        for region, (_, done, total) in zip(
            self.service.project.graph.regions, self.service.region_progress(), strict=False
        ):
            text = f"{done}/{total}" if total else ""
            if self._shown.get((region.key, "status")) != text:
                self._shown[(region.key, "status")] = text
                self.update_cell(f"region:{region.key}", "status", text)
        self._fit_note()

    def _turn_clock(self, node: str, clock: str) -> None:
        """``update_cell`` for a running clock whose text kept its width: without DataTable's repaint of the
        whole table (``update_rows`` repaints the row) and without measuring the column again."""
        self._data[RowKey(node)][ColumnKey("time")] = clock
        self._update_count += 1

    def on_resize(self) -> None:
        self._fit_note()
        if self.row_count:  # keep the selected row in sight when the table shrinks (a pause panel opened)
            self.call_after_refresh(self._cursor_in_sight)

    def _cursor_in_sight(self) -> None:
        """Scroll to the cursor's row as it is *now*: a key pressed since the resize has moved it."""
        self.move_cursor(row=self.cursor_row)

    def _fit_note(self) -> None:
        """Give the note column the width the others leave (it is cut with "…"), so no row runs past the table's
        edge and no sideways scrollbar appears."""
        if not self.columns or not self.size.width:
            return
        note = self.columns[NOTE[0]]  # type: ignore[index]
        others = sum(c.get_render_width(self) for key, c in self.columns.items() if key != NOTE[0])
        width = max(NOTE_MIN, self.scrollable_content_region.width - others - 2 * self.cell_padding)
        if note.width != width:
            note.width = width
            self._require_update_dimensions = True
            self.refresh()

    # The person moving the cursor (keys or mouse), told apart from the screen selecting a node itself.

    def _person_moved(self) -> None:
        self.chosen_at = time.monotonic()

    def action_cursor_up(self) -> None:
        self._person_moved()
        super().action_cursor_up()

    def action_cursor_down(self) -> None:
        self._person_moved()
        super().action_cursor_down()

    def action_page_up(self) -> None:
        self._person_moved()
        super().action_page_up()

    def action_page_down(self) -> None:
        self._person_moved()
        super().action_page_down()

    def action_scroll_top(self) -> None:
        self._person_moved()
        super().action_scroll_top()

    def action_scroll_bottom(self) -> None:
        self._person_moved()
        super().action_scroll_bottom()

    async def _on_click(self, event: events.Click) -> None:
        self._person_moved()
        await super()._on_click(event)

    @property
    def selected_node(self) -> str | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return key if key and not key.startswith("region:") else None

    def select_node(self, node: str) -> None:
        self.move_cursor(row=self.get_row_index(node))
