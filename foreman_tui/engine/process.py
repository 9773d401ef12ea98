"""Running one child process the way a supervisor must.

Each child starts in its own session (so it and everything it spawns form one process group), with stdin
from a file or /dev/null, never the terminal. Its stdout and stderr are read in 64 KiB chunks (agent JSON
lines exceed asyncio's readline limit), every byte is appended to a log file, and complete lines go to a
bounded tail and to an optional callback, a chunk's worth of lines at a time (a flood of output costs a few calls
per 64 KiB, not a few per line). Stopping signals the whole group: SIGTERM, a grace period,
SIGKILL; the leader is always reaped and the rest of its group is cleared even when the leader exits on
its own, so no grandchild outlives its worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)
CHUNK = 64 * 1024
MAX_LINE = 8 * 1024 * 1024  # a longer "line" is cut so one runaway line cannot exhaust memory
LinesHandler = Callable[[str, list[str]], None]  # (stream name, complete lines without their newlines)


@dataclass(frozen=True, slots=True)
class ProcessResult:
    exit_code: int | None
    duration: float
    timed_out: bool = False
    stopped: bool = False


class ChildProcess:
    """One supervised child. ``start()``, then ``wait(timeout)``; ``stop()`` from anywhere."""

    def __init__(
        self,
        argv: Sequence[str],
        cwd: Path,
        env: Mapping[str, str],
        log_path: Path,
        stdin_path: Path | None = None,
        tail_lines: int = 2000,
        on_lines: LinesHandler | None = None,
    ) -> None:
        self.argv = list(argv)
        self.cwd = cwd
        self.env = dict(env)
        self.log_path = log_path
        self.stdin_path = stdin_path
        self.tail: deque[str] = deque(maxlen=tail_lines)
        self.on_lines = on_lines
        self.pid: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._log: BinaryIO | None = None
        self._started = 0.0
        self._stopping = False

    async def start(self) -> int:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed in wait()
        self._log = log
        stdin = open(self.stdin_path, "rb") if self.stdin_path else None  # noqa: SIM115
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=stdin if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError:
            log.close()
            raise
        finally:
            if stdin is not None:
                stdin.close()
        self._started = time.monotonic()
        self.pid = self._proc.pid
        assert self._proc.stdout is not None and self._proc.stderr is not None
        self._readers = [
            asyncio.create_task(self._pump(self._proc.stdout, "stdout")),
            asyncio.create_task(self._pump(self._proc.stderr, "stderr")),
        ]
        return self.pid

    async def _pump(self, stream: asyncio.StreamReader, name: str) -> None:
        parts: list[bytes] = []  # pieces of the line still being read (a long line spans many chunks)
        size = 0
        log = self._log
        assert log is not None
        while chunk := await stream.read(CHUNK):
            log.write(chunk)
            log.flush()
            end = chunk.rfind(b"\n")  # only the new chunk is scanned
            if end < 0:
                parts.append(chunk)
                size += len(chunk)
                if size > MAX_LINE:
                    self._lines(name, b"".join(parts))
                    parts, size = [], 0
                continue
            complete = chunk[:end]
            if parts:
                parts.append(complete)
                complete = b"".join(parts)
            self._lines(name, complete)
            rest = chunk[end + 1 :]
            parts, size = ([rest], len(rest)) if rest else ([], 0)
        if parts:
            self._lines(name, b"".join(parts))

    def _lines(self, name: str, raw: bytes) -> None:
        """Pass on the lines in ``raw`` (complete lines joined by newlines, the last one without its own).
        A newline never falls inside a UTF-8 sequence, so decoding them together equals decoding each."""
        text = raw.decode("utf-8", errors="replace")
        lines = text.split("\n")
        if "\r" in text:
            lines = [line.rstrip("\r") for line in lines]
        self.tail.extend(lines)
        if self.on_lines is not None:
            try:
                self.on_lines(name, lines)
            except Exception:  # a consumer's bug must not stop the draining of the pipes (the child would block)
                log.exception("line handler failed on %s lines", name)

    def hand_off(self) -> int | None:
        """Let the child outlive foreman: stop reading its pipes here and give them to a small drain
        process (``drain.py``) that keeps appending to the same log. Returns the drain's pid, or None if
        the child has already ended. After this, ``wait()`` must not be called; foreman is about to exit."""
        if self._proc is None or not self.running or self._log is None:
            return None
        for reader in self._readers:
            reader.cancel()
        transport = getattr(self._proc, "_transport", None)  # asyncio keeps the pipe transports there
        fds: list[int] = []
        for number in (1, 2):
            pipe = transport.get_pipe_transport(number) if transport is not None else None
            if pipe is None:
                continue
            pipe.pause_reading()
            fds.append(pipe.get_extra_info("pipe").fileno())
        for stream in (self._proc.stdout, self._proc.stderr):  # read from the pipe but not yet logged
            pending = bytes(getattr(stream, "_buffer", b""))
            if pending:
                self._log.write(pending)
        self._log.flush()
        drain = subprocess.Popen(
            [sys.executable, "-m", "foreman_tui.engine.drain", str(self.log_path), *map(str, fds)],
            pass_fds=fds,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return drain.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def wait(self, timeout: float | None = None) -> ProcessResult:
        """Wait for the child (stopping it at ``timeout``), clear its process group, drain its output."""
        assert self._proc is not None, "start() first"
        timed_out = False
        try:
            await asyncio.wait_for(asyncio.shield(self._proc.wait()), timeout)
        except TimeoutError:
            timed_out = True
            await self.stop()
        await self._clear_group()
        # Output pipes close once every holder is gone; bound the drain so an escaped holder cannot hang us.
        _, pending = await asyncio.wait(self._readers, timeout=5)
        for task in pending:
            task.cancel()
        if self._log is not None:
            self._log.close()
            self._log = None
        return ProcessResult(self._proc.returncode, time.monotonic() - self._started, timed_out, self._stopping)

    async def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the group, then SIGKILL after ``grace`` seconds; returns once the leader is reaped."""
        if self._proc is None or self.pid is None:
            return
        self._stopping = True
        if self._proc.returncode is None:
            _signal_group(self.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(self._proc.wait()), grace)
            except TimeoutError:
                _signal_group(self.pid, signal.SIGKILL)
                await self._proc.wait()
        await self._clear_group(grace=min(grace, 2.0))

    async def _clear_group(self, grace: float = 2.0) -> None:
        """Stop whatever is left of the child's process group after the leader has gone."""
        if self.pid is None or not group_alive(self.pid):
            return
        _signal_group(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while group_alive(self.pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if group_alive(self.pid):
            _signal_group(self.pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    """Whether any process is still in group ``pgid`` (zombies of our own children aside)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _group_has_live_member(pgid)


def _group_has_live_member(pgid: int) -> bool:
    """killpg(0) also succeeds for zombies; look in /proc for a member that is not one."""
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def stop_group_now(pgid: int, grace: float = 5.0) -> bool:
    """Synchronously stop a whole process group (an orphan of a dead run). True if something was running."""
    if not group_alive(pgid):
        return False
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if group_alive(pgid):
        _signal_group(pgid, signal.SIGKILL)
        deadline = time.monotonic() + 2
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
    return True
