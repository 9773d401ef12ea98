"""A node in full: overview and implementation as Markdown, its checks with their last results and
output, its checkpoint (pretty JSON, collapsible), the files it owns and its diff (read from git in a
thread worker)."""

from __future__ import annotations

import json

from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Collapsible, Footer, Markdown, Static

from .messages import DiffLoaded
from .service import MIB, EngineService
from .text import printable, shorten

DIFF_SHOWN = 200_000
"""Characters of a diff shown (highlighting more would hold up the screen); the rest is in git."""
CHECKPOINT_SHOWN = MIB
"""Bytes of a checkpoint file read and shown."""


class DetailScreen(Screen[None]):
    BINDINGS = [Binding("escape,q", "app.pop_screen", "back", id="detail_back")]

    def __init__(self, service: EngineService, node: str) -> None:
        super().__init__()
        self.service = service
        self.node = node

    def compose(self) -> ComposeResult:
        project = self.service.project
        content = project.doc.content(self.node)
        title = Text()
        title.append(f" {self.node} ", style="bold reverse")
        title.append(f"  {content.title if content else project.graph.labels.get(self.node, '')}", style="bold")
        title.append(f"  · {self.service.phase(self.node)}")
        yield Static(title, id="detail-title")
        with VerticalScroll(id="detail"):
            yield Static("Overview", classes="detail-heading")
            yield Markdown(content.overview if content else "_(no contents for this node)_", id="detail-overview")
            if content is not None and content.how_text:
                yield Static("Implementation", classes="detail-heading")
                yield Markdown(content.how_text, id="detail-how")
            yield Static("Checks", classes="detail-heading")
            yield Static(self._checks(), id="detail-checks")
            with Collapsible(title="Checkpoint", collapsed=False, id="detail-checkpoint"):
                yield Static(self._checkpoint(), id="detail-checkpoint-json")
            yield Static("Files owned", classes="detail-heading")
            owned = project.owned.get(self.node)
            files = "\n".join(owned.files) if owned and owned.files else "—"
            source = f"\n(from {owned.describe()})" if owned else ""
            yield Static(Text(files) + Text(source, style="dim"), id="detail-files")
            with Collapsible(title="Diff", collapsed=True, id="detail-diff"):
                yield Static("reading git…", id="detail-diff-text")
        yield Footer()

    def on_mount(self) -> None:
        self.load_diff()

    def _checks(self) -> Table | Text:
        checks = self.service.project.node_checks(self.node)
        if not checks:
            return Text("no checks", style="dim")
        feed = self.service.feeds.get(self.node)
        table = Table(show_edge=False, pad_edge=False, expand=True)
        for column in ("check", "level", "what", "command", "last result"):
            table.add_column(column, overflow="fold")
        for check in checks:
            key = f"{check.phase}[{check.index}]"
            result = feed.checks.get(key) if feed and check.level == "L1" else None
            if result is None:
                outcome = Text("—", style="dim")
            else:  # the reason and the output are the project's (or a worker's): shown, never acted on
                style = {"pass": "green", "fail": "bold red"}.get(result.status, "dim")
                outcome = Text(printable(result.status, one_line=True), style=style)
                if result.reason:
                    outcome.append(" " + printable(shorten(result.reason, 2000)))
                if result.output_tail and result.status == "fail":
                    tail = "\n".join(shorten(line, 1000) for line in result.output_tail.splitlines()[-8:])
                    outcome.append("\n" + printable(tail), style="dim")
            cells = (key, check.level, check.item.desc, check.item.cmd or "—")
            table.add_row(*(Text(printable(cell)) for cell in cells), outcome)  # Text: a str cell is markup
        return table

    def _checkpoint(self) -> Syntax | Text:
        name = f"_checkpoints/{self.node}.json"
        path = self.service.worker_tree(self.node) / name
        if not path.exists():  # merged, its worktree gone: the integration branch has it
            path = self.service.supervisor.project_dir / name
        try:
            with open(path, "rb") as handle:
                raw = handle.read(CHECKPOINT_SHOWN + 1)
        except OSError:
            return Text(f"no checkpoint yet ({path.name})", style="dim")
        if len(raw) > CHECKPOINT_SHOWN:
            return Text(f"{path}: over {CHECKPOINT_SHOWN // MIB} MiB, not shown here", style="red")
        try:
            data = json.loads(raw.decode("utf-8"))
            pretty = json.dumps(data, indent=2, ensure_ascii=False)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep to read
            return Text(printable(f"{path}: not valid JSON ({exc})"), style="red")
        return Syntax(printable(shorten(pretty, DIFF_SHOWN)), "json", word_wrap=True)

    @work(thread=True, exit_on_error=False, group="diff", description="reading the node's diff")
    def load_diff(self) -> None:
        self.post_message(DiffLoaded(self.node, self.service.diff(self.node)))

    @on(DiffLoaded)
    def _diff_loaded(self, message: DiffLoaded) -> None:
        widget = self.query_one("#detail-diff-text", Static)
        if message.text:
            widget.update(Syntax(printable(shorten(message.text, DIFF_SHOWN)), "diff", word_wrap=True))
        else:
            widget.update(Text("no commits from this node yet", style="dim"))
