"""The command palette's foreman commands (Ctrl+P): scheduling, the selected node, views, quitting."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from .app import ForemanApp


class ForemanCommands(Provider):
    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        app: ForemanApp = self.app  # type: ignore[assignment]
        node = app.selected_node()
        held = app.service.supervisor.held
        commands: list[tuple[str, str, Callable[[], object]]] = [
            (
                "Resume scheduling" if held else "Pause scheduling",
                "start new nodes again" if held else "running nodes go on; no new node starts",
                app.action_toggle_scheduling,
            ),
        ]
        if node is not None:
            commands += [
                (f"Retry node {node}", "run it again (a paused, failed or running node)", app.action_retry_node),
                (f"Stop node {node}", "stop its worker and pause it for you to decide", app.action_stop_node),
                (f"Reset node {node}", "throw its work away and start it over", app.action_reset_node),
                (f"Open {node}'s tree in a shell", "where its worker works, and the command", app.action_shell_hint),
            ]
        commands += [
            ("Show report", "the ledger: gates, hops, decisions, cost", app.action_show_report),
            ("Show plan", "batches, waits, file overlaps, checks", app.action_show_plan),
            ("Toggle raw log", "agent steps or the raw output", app.action_toggle_raw),
            ("Quit", "asks what to do with running workers", app.action_quit),
        ]
        return commands

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, text=title, help=help_text)
