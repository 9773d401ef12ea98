"""`foreman` in a real terminal: tmux runs it, the test reads the screen with capture-pane and types
with send-keys. Each test has its own tmux server (-L), so tests can run in parallel."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from foreman_tui.engine.process import group_alive

from .conftest import REPO
from .engine_support import (
    add_check,
    demo_repo,
    events,
    foreman,
    kinds,
    nothing_left_mentioning,
    processes_mentioning,
    slow_first_node,
    wait_for,
)

# CI installs tmux (.ci/run); there a missing tmux is a failure, not a skip.
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None and not os.environ.get("CI"), reason="needs tmux")


class Terminal:
    def __init__(self, command: str, cwd: Path) -> None:
        self.server = f"foreman-test-{uuid.uuid4().hex[:8]}"
        self.session = "t"
        # The pane is sized first, then the command started in it, without the COLUMNS/LINES (80×24) the pane's
        # shell may pass on: Textual, like every program using shutil.get_terminal_size, believes those first.
        self._tmux("new-session", "-d", "-s", self.session, "-x", "150", "-y", "44", "-c", str(cwd), "sleep 600")
        self._tmux("resize-window", "-t", self.session, "-x", "150", "-y", "44")
        self._tmux("respawn-pane", "-k", "-t", self.session, "-c", str(cwd), f"unset COLUMNS LINES; {command}")

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.server, *args], capture_output=True, text=True, check=True)
        return done.stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", self.session)

    def wait_for(self, text: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"'{text}' did not appear within {timeout}s; the screen:\n{screen}")
            time.sleep(0.1)

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", self.session, *keys)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.server, "kill-server"], capture_output=True, check=False)


@pytest.fixture
def terminal() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for term in opened:
        term.close()


SCROLLBAR_GLYPHS = set("▁▂▃▄▅▆▇█▉▊▋▌▍▎▏")


def _reads_cleanly(screen: str) -> None:
    """As a terminal shows it: each verified row's status, try, time and checks stand apart, and the left pane (the
    table, the bars, the pause panel) has no scrollbar piece in it."""
    rows = [line for line in screen.splitlines() if "✓ verified" in line]
    assert len(rows) == 4 and all(re.search(r"✓ verified {2,}\d/3 {2,}\d+:\d\d {2,}L1 2/2 ✓", r) for r in rows), screen
    left = [line.split("│")[0] for line in screen.splitlines()[:-1]]  # the footer has its own divider
    assert not SCROLLBAR_GLYPHS & set("".join(left)), screen


def test_demo_in_a_real_terminal_reaches_the_pause_takes_a_key_and_completes(
    tmp_path: Path, terminal: list[Terminal]
) -> None:
    demo = tmp_path / "demo"
    command = (
        f"{shlex.quote(sys.executable)} -m foreman_tui demo --dir {shlex.quote(str(demo))}; echo EXIT=$?; sleep 600"
    )
    term = Terminal(command, REPO)
    terminal.append(term)
    screen = term.wait_for("HARD PAUSE")
    assert "05_update" in screen and "squared shift" in screen
    _reads_cleanly(term.wait_for(" 05_update   raw"))  # the paused node's log came to the front
    term.keys("a")
    term.wait_for("Send: A)")
    term.keys("Enter")
    term.wait_for("run complete")
    term.keys("q")
    screen = term.wait_for("EXIT=0")
    assert "run complete (8/8 verified)" in screen
    term.close()  # its shell names the folder too
    nothing_left_mentioning(str(demo))  # no worker, check or foreman process


def test_leaving_workers_running_on_quit_and_the_next_run_takes_them_over(
    tmp_path: Path, terminal: list[Terminal]
) -> None:
    map_path = slow_first_node(tmp_path, 8)
    command = f"{shlex.quote(sys.executable)} -m foreman_tui run {shlex.quote(str(map_path))}; echo EXIT=$?; sleep 600"
    term = Terminal(command, map_path.parent)
    terminal.append(term)
    term.wait_for("1 running")
    term.keys("q")
    term.wait_for("leave the workers running")
    term.keys("l")
    screen = term.wait_for("EXIT=3", timeout=30)
    assert "left running: 01_load_points" in screen
    record = json.loads((map_path.parent / ".foreman" / "pids" / "01_load_points.worker.json").read_text())
    assert record["left_running"] and group_alive(record["pgid"]), "the worker still works with foreman gone"

    done = foreman("run", str(map_path), "--headless", timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    evs = events(map_path)
    taken = kinds(evs, "NodeRecovered", "01_load_points")
    assert taken and "left running" in taken[0]["detail"]["reason"]
    starts = [e for e in kinds(evs, "WorkerStarted", "01_load_points") if e["detail"]["role"] == "worker"]
    assert len(starts) == 1, "the left worker's commit was taken; no second attempt"
    log = (map_path.parent / ".foreman" / "logs" / "01_load_points" / "1.log").read_text()
    assert "working slowly" in log and "committed" in log  # written after foreman quit, through the drain
    assert not group_alive(record["pgid"])
    term.close()
    nothing_left_mentioning(str(map_path.parent))


def test_a_start_up_error_in_the_tui_is_said_on_the_terminal_after_it_closes(
    tmp_path: Path, terminal: list[Terminal]
) -> None:
    from foreman_tui.engine.runstate import RunLock

    map_path = demo_repo(tmp_path)
    lock = RunLock(map_path.parent / ".git")  # another foreman holds the repository
    lock.acquire()
    try:
        command = (
            f"{shlex.quote(sys.executable)} -m foreman_tui run {shlex.quote(str(map_path))}; echo EXIT=$?; sleep 600"
        )
        term = Terminal(command, map_path.parent)
        terminal.append(term)
        term.wait_for("engine error")  # on the screen first
        term.keys("q")
        screen = term.wait_for("EXIT=2", timeout=30)
    finally:
        lock.release()
    assert f"foreman: another foreman is already running on this repository (pid {os.getpid()})" in screen


def _slow_worker_running(tmp_path: Path, terminal: list[Terminal], after: str = "") -> tuple[Path, Terminal]:
    """`foreman run` in a terminal (then the shell's ``after``) on the demo, its first worker at work for 30 s."""
    step = {**json.loads((REPO / "maps/demo/script.json").read_text())["nodes"]["01_load_points"], "sleep": 30}
    map_path = demo_repo(tmp_path, nodes={"01_load_points": step}, settings="poll = 0.5\nstop_grace = 1\n")
    command = f"{shlex.quote(sys.executable)} -m foreman_tui run {shlex.quote(str(map_path))}{after}"
    term = Terminal(command, map_path.parent)
    terminal.append(term)
    term.wait_for("running")
    wait_for(lambda: bool(kinds(events(map_path), "WorkerStarted", "01_load_points")), 60, "01's worker")
    return map_path, term


def test_sigterm_to_the_tui_stops_the_workers_and_gives_the_terminal_back(
    tmp_path: Path, terminal: list[Terminal]
) -> None:
    map_path, term = _slow_worker_running(tmp_path, terminal, "; echo EXIT=$?; sleep 600")
    foreman_pid = next(
        pid for pid, cmd in processes_mentioning(f"foreman_tui run {map_path}").items() if "sleep" not in cmd
    )
    os.kill(foreman_pid, signal.SIGTERM)
    screen = term.wait_for("EXIT=3", timeout=60)  # a stop: resumable, and the shell prints after the app
    assert "Traceback" not in screen
    worker = [e["detail"] for e in kinds(events(map_path), "WorkerExited", "01_load_points")]
    assert worker and worker[-1]["stopped"]
    assert kinds(events(map_path), "RunFinished")[-1]["detail"]["outcome"] == "stopped"


def test_when_its_terminal_goes_away_the_tui_stops_its_workers_and_ends(
    tmp_path: Path, terminal: list[Terminal]
) -> None:
    """The terminal closes under a running foreman (an SSH connection drops, the window is closed: here tmux's
    server is killed). foreman gets SIGHUP (and the SIGCONT the kernel sends with it): it stops its worker, records
    a resumable stop and ends — instead of hanging for ever in Textual's writer to a terminal that is gone."""
    map_path, term = _slow_worker_running(tmp_path, terminal)
    term.close()
    nothing_left_mentioning(str(map_path.parent), timeout=30)  # foreman, its worker and its checks
    worker = [e["detail"] for e in kinds(events(map_path), "WorkerExited", "01_load_points")]
    assert worker and worker[-1]["stopped"]
    assert kinds(events(map_path), "RunFinished")[-1]["detail"]["outcome"] == "stopped"


def test_the_tui_lists_unapproved_commands_before_anything_runs(tmp_path: Path, terminal: list[Terminal]) -> None:
    map_path = demo_repo(tmp_path)
    marker = tmp_path / "marker"
    add_check(map_path, "01_load_points", f"{sys.executable} -c \"open('{marker}', 'w').close()\"")
    command = f"{shlex.quote(sys.executable)} -m foreman_tui run {shlex.quote(str(map_path))}; echo EXIT=$?; sleep 600"
    term = Terminal(command, map_path.parent)
    terminal.append(term)
    screen = term.wait_for("approve all")
    assert "+ new" in screen and "1 command(s)" in screen
    term.keys("q")
    screen = term.wait_for("EXIT=2", timeout=30)
    assert "nothing approved, nothing run" in screen
    assert not marker.exists() and not (map_path.parent / ".foreman" / "events.jsonl").exists()
    term.close()

    term = Terminal(command, map_path.parent)
    terminal.append(term)
    term.wait_for("approve all")
    term.keys("a")
    term.wait_for("run complete")
    term.keys("q")
    term.wait_for("EXIT=0", timeout=30)
    assert marker.exists()
