"""Helpers for the TUI's pilot tests: open the App on a real demo repository, wait on its state."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot

from foreman_tui.engine.project import Project
from foreman_tui.tui.app import ForemanApp

SIZE = (150, 44)


def make_app(map_path: Path) -> ForemanApp:
    project = Project.load(map_path)
    return ForemanApp(project, project.settings)


async def wait_until(pilot: Pilot[int], condition: Callable[[], object], timeout: float = 90, what: str = "") -> None:
    """Let the app run until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await pilot.pause(0.05)


def cell(app: ForemanApp, node: str, column: str) -> str:
    """The plain text of one cell of the node table."""
    from foreman_tui.tui.node_table import NodeTable

    value = app.screen.query_one(NodeTable).get_cell(node, column)
    return getattr(value, "plain", str(value))
