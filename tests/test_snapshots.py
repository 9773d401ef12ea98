"""Pictures of the TUI (pytest-textual-snapshot, Textual pinned in pyproject.toml), taken on a real demo
repository that a headless run left at its hard pause: 4 of 8 nodes verified, 05_update paused.

Clock times and pids differ from run to run, so the event feed's line format and the elapsed column
are replaced by fixed ones here (presentation only; the engine, git and the workers are real)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from foreman_tui.engine.project import Project
from foreman_tui.headless import run_headless
from foreman_tui.tui import feed, node_table, views

from .engine_support import demo_repo
from .tui_support import make_app

SIZE = (150, 44)


@pytest.fixture
def paused_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    map_path = demo_repo(tmp_path, with_pause=True)
    project = Project.load(map_path)
    with open(tmp_path / "headless.log", "w") as out:
        outcome = asyncio.run(run_headless(project, project.settings, out=out, interactive=False))
    assert outcome.status == "paused"
    monkeypatch.setattr(feed, "stamp", lambda when: "12:00:00")
    monkeypatch.setattr(feed, "feed_text", lambda e: e.kind)
    monkeypatch.setattr(node_table, "_clock", lambda seconds: "" if seconds is None else "0:07")
    return map_path


async def _settle(pilot: Pilot[Any]) -> None:
    app = pilot.app
    deadline = asyncio.get_running_loop().time() + 30
    while not app.service.pauses() and asyncio.get_running_loop().time() < deadline:
        await pilot.pause(0.05)
    await pilot.pause(0.3)


def _select(row: int) -> Any:
    async def run_before(pilot: Pilot[Any]) -> None:
        await _settle(pilot)
        pilot.app.screen.query_one("#nodes").move_cursor(row=row)
        await pilot.pause(0.3)

    return run_before


def test_main_screen_mid_run(paused_demo: Path, snap_compare: Any) -> None:
    """The main screen mid-run: the node table grouped by region (Prepare 3/3, Lloyd iteration 1/2, no
    region), 01_load_points selected by the person, its log on the right ("scripted worker…", "wrote…",
    "committed"); 04_assign verified at attempt 2/3; the checks column "L1 2/2 ✓" for the verified nodes and
    "L1 0/2" (dim) for the others; 05_update "‖ PAUSED" with its trigger cut with "…" at the table's edge; 07/08
    "waits for 05_update", 09 "waits for 07_inert…"; no scrollbar in the table, the log or the feed; progress bars
    3/3, 1/2, overall 4/8; the pause panel under the table for 05_update with options a, b and "c your instruction
    (type it)" and no separate i line; the event feed; the footer."""
    assert snap_compare(make_app(paused_demo), terminal_size=SIZE, run_before=_select(1))


def test_pause_panel_with_a_staged_choice(paused_demo: Path, snap_compare: Any) -> None:
    """The pause panel of 05_update selected: trigger "#2 implementation departs from the spec", the
    problem and what was tried, the evidence box, option b highlighted and the line "Send: B) plain
    shift <= tol + instruction “use the how's rule”   Enter sends · Esc cancels" — shown, not sent."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await _select(6)(pilot)
        await pilot.press("b", "i", *"use the how's rule", "enter")
        await pilot.pause(0.3)

    assert snap_compare(make_app(paused_demo), terminal_size=SIZE, run_before=run_before)


def test_detail_view(paused_demo: Path, snap_compare: Any) -> None:
    """The detail view of 04_assign: title with its status, Overview and Implementation as Markdown,
    the checks table (pre/core/post with commands and last results: pass), the checkpoint as pretty JSON
    (expanded), the files it owns (kmeans/assign.py) and a collapsed Diff."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await _select(5)(pilot)
        await pilot.press("enter")
        await pilot.pause(0.5)

    assert snap_compare(make_app(paused_demo), terminal_size=SIZE, run_before=run_before)


def test_plan_view(paused_demo: Path, snap_compare: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan view: "Plan algorithm-map.json max_parallel 3", back edge 06_converged→04_assign, the
    already verified nodes, the batches left with their waits, the file overlap 07_inertia ↔ 08_summarize
    on kmeans/report.py, the nodes table with owned files and checks, region and end checks, the agents. The
    temporary folder and foreman's Python in the agents' commands are shown as fixed paths (their length would
    change the wrapping, hence the scroll bar, from run to run)."""
    real = views.plan_report

    def fixed_paths(*args: Any, **kwargs: Any) -> dict[str, Any]:
        text = json.dumps(real(*args, **kwargs))
        for path, shown in ((str(paused_demo.parent.parent), "/tmp/demo"), (sys.executable, "/usr/bin/python3")):
            text = text.replace(json.dumps(path)[1:-1], shown)
        return dict(json.loads(text))

    monkeypatch.setattr(views, "plan_report", fixed_paths)

    async def run_before(pilot: Pilot[Any]) -> None:
        await _settle(pilot)
        await pilot.press("p")
        await pilot.pause(0.5)

    assert snap_compare(make_app(paused_demo), terminal_size=SIZE, run_before=run_before)
