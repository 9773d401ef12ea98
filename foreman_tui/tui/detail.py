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
from .service import EngineService


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
            else:
                style = {"pass": "green", "fail": "bold red"}.get(result.status, "dim")
                outcome = Text(result.status, style=style)
                if result.reason:
                    outcome.append(f" {result.reason}")
                if result.output_tail and result.status == "fail":
                    outcome.append("\n" + "\n".join(result.output_tail.splitlines()[-8:]), style="dim")
            table.add_row(key, check.level, check.item.desc, check.item.cmd or "—", outcome)
        return table

    def _checkpoint(self) -> Syntax | Text:
        name = f"_checkpoints/{self.node}.json"
        path = self.service.worker_tree(self.node) / name
        if not path.exists():  # merged, its worktree gone: the integration branch has it
            path = self.service.supervisor.project_dir / name
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError:
            return Text(f"no checkpoint yet ({path.name})", style="dim")
        except ValueError as exc:
            return Text(f"{path}: not valid JSON ({exc})", style="red")
        return Syntax(json.dumps(data, indent=2, ensure_ascii=False), "json", word_wrap=True)

    @work(thread=True, exit_on_error=False, group="diff", description="reading the node's diff")
    def load_diff(self) -> None:
        self.post_message(DiffLoaded(self.node, self.service.diff(self.node)))

    @on(DiffLoaded)
    def _diff_loaded(self, message: DiffLoaded) -> None:
        widget = self.query_one("#detail-diff-text", Static)
        if message.text:
            widget.update(Syntax(message.text, "diff", word_wrap=True))
        else:
            widget.update(Text("no commits from this node yet", style="dim"))
