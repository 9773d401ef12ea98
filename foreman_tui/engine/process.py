"""Running one child process the way a supervisor must.

Each child starts in its own session (so it and everything it spawns form one process group), with stdin
from a file or /dev/null, never the terminal. Given a ``mark``, its environment also carries
``FOREMAN_PROCESS_MARK=<mark>``, inherited by every descendant, so one that leaves the group (``setsid``)
is still found and stopped (``reaper.py``). What cannot be found: a descendant that left the group *and*
scrubbed its environment (``env -i``, a sandbox that clears it), or whose environment we may not read (set-uid, another
user, another pid namespace); it outlives the worker.

Output: stdout and stderr are read in 64 KiB chunks straight from the pipes (agent JSON lines exceed
asyncio's readline limit); every byte is appended to a log file, and complete lines go to an optional
callback, a chunk's worth of lines at a time, and to a bounded tail. Memory is bounded in bytes: at most
``MAX_LINE`` bytes of one unfinished line are held per stream; a longer line is passed on once, as its
first ``MAX_LINE`` bytes and a marker, and the rest of it is only counted (the log has it all). The tail
keeps ``tail_lines`` lines, each cut to ``line_limit`` characters.

The end of an attempt is the exit of the worker itself (the leader), watched on its own (a pidfd, or
polling), never the closing of the pipes: a grandchild may hold them open for hours. After the leader
exits, the pipes are drained until they close, for ``drain_grace`` seconds at most, the rest of the group
and the marked processes are stopped (SIGTERM, a grace, SIGKILL; reading goes on meanwhile), and the pipes
are closed whoever still holds them. ``stop()``
signals the group and the marked processes, waits for the leader up to its grace, then SIGKILLs. The
leader is always reaped.
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
from typing import IO, BinaryIO

from .reaper import MARK_VAR, clearing, run_async, signal_all
from .reaper import group_alive as group_alive  # re-exported: callers know these from here
from .reaper import marked_pids as marked_pids
from .reaper import stop_group_now as stop_group_now
from .reaper import stop_marked as stop_marked
from .reaper import stop_marked_async as stop_marked_async

log = logging.getLogger(__name__)
CHUNK = 64 * 1024
MAX_LINE = 4 * 1024 * 1024  # bytes of one line held at most; a longer one is cut so it cannot exhaust memory
LINE_LIMIT = 4096  # characters of one line in the tail
FINAL_READS = 16  # chunks read per pipe at closing (what is already in the pipe; a writer may never stop)
LinesHandler = Callable[[str, list[str]], None]  # (stream name, complete lines without their newlines)


@dataclass(frozen=True, slots=True)
class ProcessResult:
    exit_code: int | None
    duration: float
    timed_out: bool = False
    stopped: bool = False
    stopped_for: str | None = None
    """Why a watcher stopped it, when one did (``watchdog.py``: lingered after its result, stalled)."""
    lost: str = ""
    """Why the attempt was lost where it ran (its Ray node died), if it was: a failed attempt, tried again."""


class _Line:
    """The unfinished line of one stream: at most ``MAX_LINE`` bytes of it are kept, the rest counted."""

    __slots__ = ("cut", "parts", "size")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.cut = 0

    def feed(self, chunk: bytes) -> list[str]:
        """The lines that ``chunk`` completes."""
        first = chunk.find(b"\n")
        if first < 0:
            self._keep(chunk)
            return []
        last = chunk.rfind(b"\n")
        self._keep(chunk[:first])
        lines = [self.take()]
        if last > first:  # whole lines inside one chunk: shorter than CHUNK, never cut
            lines += _decode(chunk[first + 1 : last])
        self._keep(chunk[last + 1 :])
        return lines

    def end(self) -> list[str]:
        """The last line, which has no newline (at the end of the stream)."""
        return [self.take()] if self.size or self.cut else []

    def _keep(self, data: bytes) -> None:
        room = MAX_LINE - self.size
        if len(data) > room:
            self.cut += len(data) - room
            data = data[:room]
        if data:
            self.parts.append(data)
            self.size += len(data)

    def take(self) -> str:
        text = b"".join(self.parts).decode("utf-8", errors="replace")
        if self.cut:
            text += f" … [cut: {self.cut} more bytes; the log has every byte]"
        else:
            text = text.rstrip("\r")
        self.parts, self.size, self.cut = [], 0, 0
        return text


def _decode(raw: bytes) -> list[str]:
    """The lines in ``raw`` (complete lines joined by newlines). A newline never falls inside a UTF-8
    sequence, so decoding them together equals decoding each."""
    text = raw.decode("utf-8", errors="replace")
    lines = text.split("\n")
    return [line.rstrip("\r") for line in lines] if "\r" in text else lines


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
        mark: str | None = None,
        drain_grace: float = 2.0,
        line_limit: int = LINE_LIMIT,
    ) -> None:
        self.argv = list(argv)
        self.cwd = cwd
        self.env = dict(env)
        self.log_path = log_path
        self.stdin_path = stdin_path
        self.tail: deque[str] = deque(maxlen=tail_lines)
        self.on_lines = on_lines
        self.mark = mark
        self.drain_grace = drain_grace
        self.line_limit = line_limit
        self.pid: int | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pipes: dict[int, tuple[str, _Line, IO[bytes]]] = {}  # fd: (stream name, its open line, the pipe)
        self._exited = asyncio.Event()  # the leader has exited and is reaped
        self._closed = asyncio.Event()  # both pipes are closed
        self._watcher: asyncio.Task[None] | None = None
        self._finishing: asyncio.Task[None] | None = None
        self._sent: set[int] = set()  # who has had its SIGTERM (-pid: the group)
        self._log: BinaryIO | None = None
        self._started = 0.0
        self._stopping = False
        self._handed_off = False

    async def start(self) -> int:
        self._loop = asyncio.get_running_loop()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab")  # noqa: SIM115 - closed when the attempt ends
        env = self.env if self.mark is None else {**self.env, MARK_VAR: self.mark}
        stdin = open(self.stdin_path, "rb") if self.stdin_path else None  # noqa: SIM115
        try:
            popen = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=env,
                stdin=stdin if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError:
            out.close()
            raise
        finally:
            if stdin is not None:
                stdin.close()
        self._started = time.monotonic()
        self._log, self._popen, self.pid = out, popen, popen.pid
        for name, pipe in (("stdout", popen.stdout), ("stderr", popen.stderr)):
            assert pipe is not None
            fd = pipe.fileno()
            os.set_blocking(fd, False)
            self._pipes[fd] = (name, _Line(), pipe)
            self._loop.add_reader(fd, self._readable, fd)
        self._watcher = asyncio.ensure_future(self._watch(popen))
        return popen.pid

    async def _watch(self, popen: subprocess.Popen[bytes]) -> None:
        """Reap the leader as soon as it exits, whoever still holds its pipes."""
        loop = asyncio.get_running_loop()
        try:
            pidfd: int | None = os.pidfd_open(popen.pid)
        except (AttributeError, OSError):  # not Linux ≥ 5.3, or not allowed: poll instead
            pidfd = None
        if pidfd is not None:
            exited: asyncio.Future[None] = loop.create_future()

            def readable() -> None:
                if not exited.done():
                    exited.set_result(None)

            loop.add_reader(pidfd, readable)
            try:
                await exited
            finally:
                loop.remove_reader(pidfd)
                os.close(pidfd)
        delay = 0.005
        while popen.poll() is None:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
        self._exited.set()

    def _readable(self, fd: int) -> None:
        entry = self._pipes.get(fd)
        if entry is None:  # closed meanwhile (its number may belong to another file by now)
            return
        try:
            chunk = os.read(fd, CHUNK)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            self._take(entry[0], entry[1], chunk)
        else:
            self._close_pipe(fd)

    def _take(self, name: str, line: _Line, chunk: bytes) -> None:
        if self._log is not None:
            try:
                self._log.write(chunk)
                self._log.flush()
            except OSError:  # a full disk: say so once, keep draining the pipes (the child would block)
                log.exception("cannot write %s; its output is no longer logged", self.log_path)
                with contextlib.suppress(OSError):
                    self._log.close()
                self._log = None
        self._pass_on(name, line.feed(chunk))

    def _close_pipe(self, fd: int, final_reads: int = 0) -> None:
        """Stop reading ``fd`` (after reading what is already in it, up to ``final_reads`` chunks), pass on
        its last unfinished line and close it."""
        entry = self._pipes.pop(fd, None)
        if entry is None:
            return
        name, line, pipe = entry
        if self._loop is not None:
            self._loop.remove_reader(fd)
        for _ in range(final_reads):
            try:
                chunk = os.read(fd, CHUNK)
            except OSError:
                break
            if not chunk:
                break
            self._take(name, line, chunk)
        self._pass_on(name, line.end())
        pipe.close()
        if not self._pipes:
            self._closed.set()

    def _pass_on(self, name: str, lines: list[str]) -> None:
        if not lines:
            return
        keep = self.tail.maxlen
        recent = lines if keep is None or len(lines) <= keep else lines[-keep:]
        limit = self.line_limit
        self.tail.extend(
            line if len(line) <= limit else f"{line[:limit]} … [{len(line) - limit} more characters]" for line in recent
        )
        if self.on_lines is not None:
            try:
                self.on_lines(name, lines)
            except Exception:  # a consumer's bug must not stop the draining of the pipes (the child would block)
                log.exception("line handler failed on %s lines", name)

    def hand_off(self) -> int | None:
        """Let the child outlive foreman: stop reading its pipes here and give them to a small drain
        process (``drain.py``) that keeps appending to the same log. Returns the drain's pid (the child's
        own if its pipes are closed already: nothing to drain), or None if the child has already ended.
        After this, nothing of the child is stopped here unless ``stop()`` is called; foreman is about to
        exit."""
        if self._popen is None or not self.running or self._handed_off or self._loop is None:
            return None
        fds = list(self._pipes)
        handed = self._popen.pid
        if fds:
            if self._log is not None:
                self._log.flush()  # every byte read is in it; the drain appends the rest
            try:
                drain = subprocess.Popen(
                    [sys.executable, "-m", "foreman_tui.engine.drain", str(self.log_path), *map(str, fds)],
                    pass_fds=fds,
                    start_new_session=True,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            except OSError:
                log.exception("cannot start the drain for %s; it is not left running", self.argv[0])
                return None
            handed = drain.pid
        for fd in fds:
            self._loop.remove_reader(fd)
        if self._log is not None:
            self._log.close()
            self._log = None
        self._handed_off = True
        for _, _, pipe in self._pipes.values():
            pipe.close()  # the drain has its own copies
        self._pipes.clear()
        self._closed.set()
        return handed

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.returncode is None

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode if self._popen is not None else None

    @property
    def elapsed(self) -> float:
        """Seconds since the child started."""
        return time.monotonic() - self._started if self._started else 0.0

    async def wait(self, timeout: float | None = None) -> ProcessResult:
        """Wait for the leader to exit (stopping it at ``timeout``), then finish the attempt: drain the
        pipes for ``drain_grace`` at most, stop the rest of the group and the marked processes, close."""
        assert self._popen is not None, "start() first"
        timed_out = False
        try:
            await asyncio.wait_for(self._leader_exit(), timeout)
        except TimeoutError:
            timed_out = True
            await self.stop()
        await self._finish(drain=True, clear_grace=2.0)
        return ProcessResult(self._popen.returncode, time.monotonic() - self._started, timed_out, self._stopping)

    async def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the group and the marked processes, SIGKILL after ``grace`` seconds if the leader
        still runs; returns once the leader is reaped and the rest cleared (never waits on the pipes)."""
        if self._popen is None or self.pid is None:
            return
        self._stopping = True
        if not self._exited.is_set():
            signal_all(self.pid, self.mark, signal.SIGTERM, self._sent)
            try:
                await asyncio.wait_for(self._leader_exit(), grace)
            except TimeoutError:
                signal_all(self.pid, self.mark, signal.SIGKILL, self._sent)
                await self._leader_exit()
        await self._finish(drain=False, clear_grace=min(grace, 2.0))

    async def _leader_exit(self) -> None:
        """The leader's exit, as the watcher task reports it, or, once that task is gone (cancelled, say, while
        a loop shuts down), as polling sees it: a stop never waits on a watcher that is no longer there."""
        assert self._popen is not None
        while not self._exited.is_set():
            watcher = self._watcher
            if watcher is not None and not watcher.done():
                # The watcher sets the event, or ends without (cancelled): wait for either, without polling.
                exited = asyncio.ensure_future(self._exited.wait())
                try:
                    await asyncio.wait((exited, watcher), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    exited.cancel()
                continue
            if self._popen.poll() is not None:
                self._exited.set()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exited.wait(), 0.1)

    async def _finish(self, drain: bool, clear_grace: float) -> None:
        """The end of the attempt, once, whoever asks first (``wait()`` or ``stop()``)."""
        if self._finishing is None:
            self._finishing = asyncio.ensure_future(self._finish_once(drain, clear_grace))
        await asyncio.shield(self._finishing)

    async def _finish_once(self, drain: bool, clear_grace: float) -> None:
        if drain and self._pipes:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), self.drain_grace)
        if self.pid is not None and (self._stopping or not self._handed_off):
            await run_async(clearing(self.pid, self.mark, clear_grace, self._sent))
        for fd in list(self._pipes):
            self._close_pipe(fd, final_reads=FINAL_READS)
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None
