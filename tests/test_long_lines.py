"""Hostile and oversized worker output through the real App: a colour code Rich cannot parse, 300 lines of
1 MiB arriving while keys are pressed, and a 1 GiB line from a real worker process with the App's memory read
from /proc."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from rich.style import Style
from textual import events

from foreman_tui.tui.node_table import NodeTable
from foreman_tui.tui.service import SCROLLBACK, NodeFeed
from foreman_tui.tui.widgets import AnsiLog

from .conftest import REPO
from .output_support import command_project, frame_of, unsafe_in_frame
from .tui_support import SIZE, make_app, wait_until

MIB = 1024 * 1024
HOSTILE_LINE = "\x1b[38;5;" + "9" * 5000 + "m"
"""The line from the report: Rich's ANSI parser raises on it (an int of 5000 digits)."""

PRINT_HOSTILE = f"""
import sys, time
sys.stdout.write({HOSTILE_LINE!r} + "\\n")
sys.stdout.write({HOSTILE_LINE!r} + "after the colour\\n")
sys.stdout.write("\\x1b]52;c;cm0gLXJmIH4K\\x07\\x1b]0;title\\x07plain end\\n")
sys.stdout.flush()
time.sleep(3600)
"""


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def _rendered(log: AnsiLog, y: int) -> str:
    return "".join(segment.text for segment in log._render_line_strip(y, Style()))


@pytest.mark.parametrize("limit", [None, 20000], ids=["default-limit", "line-kept-whole"])
def test_a_hostile_colour_code_from_a_worker_does_not_crash_the_tui(tmp_path: Path, limit: int | None) -> None:
    """With the default limit the 5,008-character line is cut (marker shown); with a larger limit it reaches
    the ANSI conversion whole, which must not raise either."""
    settings = f"output_line_limit = {limit}\n" if limit else ""
    map_path = command_project(tmp_path, PRINT_HOSTILE, settings=settings)

    async def scenario() -> None:
        app = make_app(map_path)
        async with app.run_test(size=SIZE) as pilot:
            app.screen.query_one(NodeTable).select_node("n00")
            feed = lambda: app.service.feeds.get("n00")  # noqa: E731
            await wait_until(pilot, lambda: (f := feed()) is not None and f.written >= 3, what="the worker's lines")
            await pilot.pause(0.3)  # a refresh: the lines are in the log widget and drawn
            assert app._exception is None and app.is_running
            log = app.screen.query_one(AnsiLog)
            shown = [_rendered(log, y) for y in range(len(log.lines))]
            assert not unsafe_in_frame(frame_of(app))
            assert any("plain end" in line for line in shown)
            assert not any("title" in line for line in shown)  # the OSC is dropped with its payload
            if limit:
                assert any(line.startswith("after the colour") for line in shown), shown
            else:
                assert sum("[cut 5,008 chars" in line for line in shown) == 1, shown
            app.service.stop()
            await wait_until(pilot, lambda: app.service.finished, what="the run to stop")

    run(scenario())


def test_300_lines_of_a_mib_arrive_while_keys_are_pressed(tmp_path: Path) -> None:
    """Each line is cut to the line limit with a marker, the node's feed and the log widget stay within the
    memory budget, and every key takes effect (generous bound: the figures are in docs/benchmarks.md)."""
    map_path = command_project(tmp_path, "import time\ntime.sleep(3600)\n")
    latencies: list[float] = []

    async def scenario() -> None:
        app = make_app(map_path)
        async with app.run_test(size=SIZE) as pilot:
            service = app.service
            service.supervisor.hold_scheduling(True, "test")
            app.screen.query_one(NodeTable).select_node("n00")
            await pilot.pause(0.2)
            log = app.screen.query_one(AnsiLog)
            body = "x" * MIB

            async def arrive() -> None:  # as the engine's reader tasks hand them on: a few per chunk
                for start in range(0, 300, 5):
                    lines = [f"\x1b[32mline {i}\x1b[0m {body}" for i in range(start, start + 5)]
                    service._on_output("n00", "stdout", lines)
                    await asyncio.sleep(0.02)

            arriving = asyncio.create_task(arrive())
            while not arriving.done():
                before = log.auto_scroll
                pressed = time.monotonic()
                app.post_message(events.Key("f", "f"))  # what the terminal driver does with a keystroke
                while log.auto_scroll == before and time.monotonic() - pressed < 30:
                    await asyncio.sleep(0.002)
                latencies.append(time.monotonic() - pressed)
                await asyncio.sleep(0.1)
            await arriving
            await pilot.pause(0.3)

            feed = service.feeds["n00"]
            limit = service.settings.output_line_limit
            budget = service.settings.output_memory_mib * MIB
            assert feed.written == 300
            assert all(len(line) < limit + 80 and "[cut " in line for line in feed.lines)
            assert feed.lines[-1].startswith("\x1b[32mline 299\x1b[0m xxx")
            cut = len(f"\x1b[32mline 299\x1b[0m {body}") - limit
            assert feed.lines[-1].endswith(f" ... [cut {cut:,} chars - o opens the full log]")
            assert 0 < feed.bytes <= budget
            assert sum(sys.getsizeof(line) for line in feed.lines) == feed.bytes
            assert sum(sys.getsizeof(line) for line in log.lines) <= budget
            assert "line 299" in _rendered(log, len(log.lines) - 1)
            assert app._exception is None

    run(scenario())
    assert len(latencies) >= 3
    assert max(latencies) < 1.0, f"key latencies {sorted(latencies)[-5:]}"


def test_a_node_feed_is_bounded_by_lines_and_by_bytes() -> None:
    feed = NodeFeed(line_limit=100, memory=4 * MIB)
    feed.add(["short"] * (SCROLLBACK + 10))
    assert len(feed.lines) == SCROLLBACK and feed.written == SCROLLBACK + 10
    feed = NodeFeed(line_limit=100, memory=10_000)
    feed.add(["y" * 500] * 100)
    assert all(len(line) < 200 for line in feed.lines) and feed.bytes <= 10_000
    assert feed.bytes == sum(sys.getsizeof(line) for line in feed.lines)
    assert feed.lines[-1].startswith("y" * 100 + " ... [cut 400 chars")


MIB_LINES_WORKER = """
import sys
line = "z" * (1 << 20) + "\\n"
for _ in range(300):
    sys.stdout.write(line)
sys.stdout.write("after the long line\\n")
sys.stdout.flush()
"""

GIB_WORKER = """
import sys
out = sys.stdout.buffer
block = b"y" * (1 << 20)
for _ in range(1024):  # 1 GiB, no newline
    out.write(block)
out.write(b"\\n" + b"after the long line\\n")
out.flush()
"""

APP_IN_A_PROCESS = """
import asyncio, json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from foreman_tui.engine.project import Project
from foreman_tui.tui.app import ForemanApp
from foreman_tui.tui.node_table import NodeTable
from foreman_tui.tui.widgets import AnsiLog

def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) // 1024

async def main():
    project = Project.load(Path(sys.argv[1]))
    app = ForemanApp(project, project.settings)
    async with app.run_test(size=(150, 44)) as pilot:
        app.screen.query_one(NodeTable).select_node("n00")
        service = app.service
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and service.phase("n00") in ("pending", "waiting", "running"):
            await pilot.pause(0.1)
        await pilot.pause(0.5)
        feed = service.feeds["n00"]
        log = app.screen.query_one(AnsiLog)
        result = {
            "phase": service.phase("n00"),
            "seconds": round(time.monotonic() - deadline + 600, 1),
            "feed_lines": len(feed.lines),
            "feed_chars": sum(map(len, feed.lines)),
            "longest": max(map(len, feed.lines)),
            "cut": sum("[cut " in line for line in feed.lines),
            "last": feed.lines[-1][-60:],
            "widget_chars": sum(map(len, log.lines)),
            "crashed": repr(app._exception) if app._exception else None,
        }
        service.stop()
        while not service.finished:
            await pilot.pause(0.1)
    result["vm_hwm_mib"] = status("VmHWM")
    print(json.dumps(result))

asyncio.run(main())
"""


def test_a_gib_line_from_a_real_worker_keeps_the_app_small(tmp_path: Path) -> None:
    """A worker prints 1 GiB without a newline, then a newline and one more line, and commits nothing. The
    App (in a process of its own, so its peak RSS can be read) stays under 400 MiB; the log file keeps it all."""
    result = _app_in_a_process(tmp_path, GIB_WORKER, log_size=1024 * MIB + len("\nafter the long line\n"))
    assert result["cut"] >= 1 and result["longest"] < 4096 + 120, result


def test_300_lines_of_a_mib_from_a_real_worker_keep_the_app_small(tmp_path: Path) -> None:
    result = _app_in_a_process(tmp_path, MIB_LINES_WORKER, log_size=300 * (MIB + 1) + len("after the long line\n"))
    assert result["cut"] >= 200 and result["longest"] < 4096 + 120, result


def _app_in_a_process(tmp_path: Path, worker: str, log_size: int) -> dict[str, Any]:
    """Run the App on a one-node project whose worker is ``worker`` until the node stops running; check the
    log file has ``log_size`` bytes, the App did not crash, stayed under 400 MiB and kept at most the budget
    of the node's output; return its figures."""
    map_path = command_project(tmp_path, worker, settings="retries = 0\n")
    script = tmp_path / "app.py"
    script.write_text(APP_IN_A_PROCESS)
    try:
        done = subprocess.run(
            [sys.executable, str(script), str(map_path), str(REPO)],
            capture_output=True,
            text=True,
            timeout=900,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(result)  # shown with -s: the figures for the report
        log = map_path.parent / ".foreman" / "logs" / "n00" / "1.log"
        assert log.stat().st_size == log_size
    finally:
        for log in (map_path.parent / ".foreman" / "logs").rglob("*.log"):
            log.unlink()  # a GiB in the kept temporary folders helps nobody
    assert result["crashed"] is None
    assert result["phase"] != "running"
    assert result["last"].endswith("after the long line"), result
    assert result["feed_chars"] <= 4 * MIB and result["widget_chars"] <= 4 * MIB, result
    assert result["vm_hwm_mib"] < 400, result
    return result
