"""Finding processes by the mark in their environment and stopping them, outside any ChildProcess: what a
new run does with the descendants of a dead one that left their process group. Real processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator

import pytest

from foreman_tui.engine.reaper import MARK_VAR, marked_pids, stop_group_now, stop_marked, stop_marked_async

from .engine_support import alive, wait_for

SLEEPER = "import time; print('up', flush=True); time.sleep(300)"
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(300)"
)


Spawn = Callable[..., "subprocess.Popen[str]"]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start a python snippet in its own session, optionally with a mark; all are killed and reaped after."""
    started: list[subprocess.Popen[str]] = []

    def start(code: str, mark: str | None = None) -> subprocess.Popen[str]:
        env = {k: v for k, v in os.environ.items() if k != MARK_VAR}
        if mark is not None:
            env[MARK_VAR] = mark
        proc = subprocess.Popen(
            [sys.executable, "-c", code], env=env, start_new_session=True, stdout=subprocess.PIPE, text=True
        )
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "up\n"  # running its code, environ readable
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def test_marked_pids_finds_exactly_the_marked(spawn: Spawn) -> None:
    mark = uuid.uuid4().hex
    marked = spawn(SLEEPER, mark)
    other = spawn(SLEEPER, mark + "x")  # a longer mark is another mark
    plain = spawn(SLEEPER)
    assert marked_pids(mark) == [marked.pid]
    found = stop_marked(mark, grace=2)
    assert found == [marked.pid]
    assert marked.wait(5) is not None
    assert other.poll() is None and plain.poll() is None
    assert marked_pids(mark) == []


def test_stop_marked_kills_what_ignores_sigterm(spawn: Spawn) -> None:
    mark = uuid.uuid4().hex
    stubborn, sleeper = spawn(STUBBORN, mark), spawn(SLEEPER, mark)
    found = asyncio.run(stop_marked_async(mark, grace=0.5))
    assert found == sorted([stubborn.pid, sleeper.pid])
    assert sleeper.wait(5) == -15 and stubborn.wait(5) == -9


def test_stop_marked_never_stops_the_caller(spawn: Spawn) -> None:
    """A process carrying the mark (foreman inside a marked environment) stops the others, not itself."""
    mark = uuid.uuid4().hex
    other = spawn(SLEEPER, mark)
    code = f"from foreman_tui.engine.reaper import stop_marked; print(stop_marked({mark!r}, grace=2))"
    env = {**os.environ, MARK_VAR: mark}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.strip() == f"[{other.pid}]", result
    assert other.wait(5) == -15


def test_stop_group_now_still_stops_a_group(spawn: Spawn) -> None:
    leader = spawn(
        "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); "
        "print('up', flush=True); time.sleep(300)"
    )
    assert stop_group_now(leader.pid, grace=2)
    assert leader.wait(5) == -15
    assert not stop_group_now(leader.pid)


def test_a_pid_that_has_gone_is_not_found(spawn: Spawn) -> None:
    mark = uuid.uuid4().hex
    proc = spawn(SLEEPER, mark)
    proc.kill()
    wait_for(lambda: not alive(proc.pid), 5, "the killed process to exit")
    assert marked_pids(mark) == []  # a zombie (not yet reaped) has no environment left
