"""Finding and stopping what a worker left behind: its process group, and the processes that carry its mark.

A worker starts in its own session, so it and its descendants form one process group, stopped with
``killpg``. A descendant that calls ``setsid()`` (a daemonising tool, ``nohup setsid …``, a test server)
leaves that group; it is found instead by its *mark*: the worker's environment carries
``FOREMAN_PROCESS_MARK=<mark>``, every descendant inherits it, and ``/proc/<pid>/environ`` shows it
(the environment a process was started with, whatever it changed since).

What cannot be found this way: a descendant started with a scrubbed environment (``env -i``, a sandbox that
clears it, a daemon manager that clears it), one whose environ we may not read (another user, a set-uid
program), and one in another pid namespace that is not ours to see (foreman's bubblewrap keeps the mark, and its
processes are seen from outside). Such a process outlives the worker unless it is also still in its group.

Linux only (``/proc``); elsewhere no marked process is ever found. foreman's own pid is never a target.
Stopping is SIGTERM, a grace period, then SIGKILL. The waiting loop is written once (``clearing``) and
driven by ``time.sleep`` for the synchronous callers and by ``asyncio.sleep`` in the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Collection, Generator
from pathlib import Path

MARK_VAR = "FOREMAN_PROCESS_MARK"
POLL = 0.05
KILL_WAIT = 2.0
"""Seconds to wait for SIGKILLed processes to vanish (one in uninterruptible sleep takes its time)."""

Steps = Generator[float, None, list[int]]
"""Yields the seconds to sleep before the next look; returns the marked pids it found."""


def marked_pids(mark: str) -> list[int]:
    """The live processes whose starting environment has ``FOREMAN_PROCESS_MARK=<mark>`` exactly."""
    return _survivors(None, mark)[1]


def stop_marked(mark: str, grace: float = 2.0) -> list[int]:
    """Stop every process carrying ``mark`` (SIGTERM, ``grace`` seconds, SIGKILL) and return their pids.
    Synchronous: for a new run clearing away the orphans of a dead one."""
    return _run(clearing(None, mark, grace, set()))


async def stop_marked_async(mark: str, grace: float = 2.0) -> list[int]:
    """``stop_marked`` for the event loop: it sleeps with asyncio between looks."""
    return await run_async(clearing(None, mark, grace, set()))


def signal_all(pgid: int, mark: str | None, sig: int, sent: set[int]) -> None:
    """Send ``sig`` to group ``pgid`` and to the marked processes outside it; a SIGTERM only once each."""
    if sig != signal.SIGTERM or -pgid not in sent:
        signal_group(pgid, sig)
        sent.add(-pgid)
    for pid in _survivors(pgid, mark)[1] if mark else []:
        if sig != signal.SIGTERM or pid not in sent:
            _kill(pid, sig)
            sent.add(pid)


async def run_async(steps: Steps) -> list[int]:
    try:
        while True:
            await asyncio.sleep(next(steps))
    except StopIteration as done:
        return done.value


def _run(steps: Steps) -> list[int]:
    try:
        while True:
            time.sleep(next(steps))
    except StopIteration as done:
        return done.value


def clearing(pgid: int | None, mark: str | None, grace: float, sent: set[int]) -> Steps:
    """The steps of stopping group ``pgid`` and the processes carrying ``mark``: SIGTERM, ``grace`` seconds,
    SIGKILL. ``sent`` remembers who has had its SIGTERM already (``-pgid`` stands for the group), so no
    process is asked twice."""
    found: list[int] = []
    deadline = time.monotonic() + grace
    killing_until: float | None = None
    while True:
        group, marked = _survivors(pgid, mark)
        found.extend(pid for pid in marked if pid not in found)
        if not group and not marked:
            return found
        now = time.monotonic()
        if killing_until is None and now >= deadline:
            killing_until = now + KILL_WAIT
        if killing_until is not None and now >= killing_until:
            return found  # unkillable for now (uninterruptible sleep); nothing more to do
        sig = signal.SIGTERM if killing_until is None else signal.SIGKILL
        if group and pgid is not None and (sig == signal.SIGKILL or -pgid not in sent):
            signal_group(pgid, sig)
            sent.add(-pgid)
        for pid in marked:
            if sig == signal.SIGKILL or pid not in sent:
                _kill(pid, sig)
                sent.add(pid)
        yield POLL


def _survivors(pgid: int | None, mark: str | None) -> tuple[bool, list[int]]:
    """Whether a live (not zombie) process is in group ``pgid``, and the live pids outside it carrying
    ``mark``. One pass over /proc."""
    proc = Path("/proc")
    if not proc.is_dir():
        return (pgid is not None and _killpg_ok(pgid)), []
    needle = f"\0{MARK_VAR}={mark}\0".encode() if mark is not None else None
    own = os.getpid()
    group, marked = False, []
    for name in os.listdir(proc):
        if not name.isdigit() or int(name) == own:
            continue
        if pgid is not None:
            try:
                fields = (proc / name / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] == "Z":
                continue
            if len(fields) > 2 and int(fields[2]) == pgid:
                group = True
                continue
        if needle is not None:
            try:
                environ = (proc / name / "environ").read_bytes()  # empty for a zombie or a kernel thread
            except OSError:
                continue  # gone, or not ours to read
            if needle in b"\0" + environ + b"\0":
                marked.append(int(name))
    return group, sorted(marked)


def marks_under(prefix: str) -> dict[int, str]:
    """Live processes whose mark starts with ``prefix``, with their whole mark (a dead run's leftovers)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return {}
    needle = f"\0{MARK_VAR}={prefix}".encode()
    own = os.getpid()
    found: dict[int, str] = {}
    for name in os.listdir(proc):
        if not name.isdigit() or int(name) == own:
            continue
        try:
            environ = b"\0" + (proc / name / "environ").read_bytes()
        except OSError:
            continue
        at = environ.find(needle)
        if at >= 0:
            end = environ.find(b"\0", at + 1)
            value = environ[at + 1 : end if end >= 0 else None].decode(errors="replace")
            found[int(name)] = value.split("=", 1)[1]
    return found


def stop_leftovers(prefix: str, keep: Collection[str] = (), grace: float = 2.0) -> dict[int, str]:
    """Stop every process whose mark starts with ``prefix`` (all a dead run started: workers, reviewers, checks,
    and their escaped descendants), except those whose mark is in ``keep`` (workers left running on purpose).
    Returns the pids stopped with their marks."""
    targets = {pid: mark for pid, mark in marks_under(prefix).items() if mark not in keep}
    for pid in targets:
        _kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(pid) for pid in targets):
        time.sleep(POLL)
    for pid in targets:
        if _alive(pid):
            _kill(pid, signal.SIGKILL)
    return targets


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _killpg_ok(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    """Whether any process is still in group ``pgid`` (zombies aside: killpg(0) succeeds for them too)."""
    return _killpg_ok(pgid) and _survivors(pgid, None)[0]


def stop_group_now(pgid: int, grace: float = 5.0) -> bool:
    """Synchronously stop a whole process group (an orphan of a dead run). True if something was running."""
    if not group_alive(pgid):
        return False
    _run(clearing(pgid, None, grace, set()))
    return True
