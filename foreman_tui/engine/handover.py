"""Leaving workers running when a person quits, and taking them over in the next run.

Quitting with "leave them running" hands each running worker's output pipes to a drain process
(``drain.py``) and marks its pid file; the worker goes on working and committing with nobody watching.
The next run does not stop those workers as orphans: it waits for each to end (reading the same log for
the live view), takes its commit if it made one, and carries on from there as after any attempt.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from .context import RunContext
from .events import NodeRecovered, OrphanStopped, RunNoted, WorkerExited, WorkersLeftRunning
from .process import group_alive, stop_group_now
from .runstate import REMOTE

POLL = 0.25
"""Seconds between looks at a taken-over worker (is it alive, what did it print)."""


class Handover(RunContext):
    _taken_over: dict[str, dict[str, Any]]
    _watching: set[str]

    def leave_running(self) -> list[str]:
        """Quit, leaving the running workers running (checks and reviews are stopped; they run again next
        time). Returns the nodes whose workers were left. foreman must exit soon after the run ends."""
        self._detaching = True
        left = sorted(self._watching)
        for key, child in list(self.children.items()):
            node, role = key.split(".", 1)
            if role != "worker" or child.hand_off() is None:
                continue
            self._handed_off.add(key)
            self.pids.mark_left_running(node, role, child.log_path, self.state.node(node).attempt)
            left.append(node)
        if left:
            self.emit(WorkersLeftRunning(nodes=sorted(set(left))))
        self.request_stop()
        return sorted(set(left))

    def _find_left_running(self) -> None:
        """At start-up: the workers a person left running that still run (they are not orphans), and the
        attempts on a Ray cluster a run left, whether it quit or died (detached actors outlive it)."""
        self._taken_over = {}
        self._watching = set()
        for node, record in self.pids.left_running().items():
            nr = self.state.nodes.get(node)
            if nr is not None and nr.phase == "running":
                self._taken_over[node] = record
        remote = self.pids.remote()
        for stem, record in remote.items():
            node, role = stem.split(".", 1)
            nr = self.state.nodes.get(node)
            name = str(record[REMOTE].get("name", ""))
            if role == "worker" and nr is not None and nr.phase == "running" and self.executor.can_adopt(record):
                self._taken_over[node] = record
                continue
            if self.executor.discard(record):
                self.emit(
                    OrphanStopped(node=node, pid=0, reason=f"its {role}'s Ray actor {name}, left by a run; stopped")
                )
            elif self.executor.kind != record[REMOTE].get("executor"):
                self.emit(
                    RunNoted(
                        note=f"{node}'s {role} was left on {record[REMOTE].get('executor')} ({name}); "
                        f"with executor.kind = {self.executor.kind} it is not followed (stop it there)"
                    )
                )
            self.pids.clear(node, role)
        known = {str(r[REMOTE].get("name", "")) for r in remote.values()}
        for name in self.executor.strays(known):
            reason = f"Ray actor {name}, started by a run that died before it recorded it; stopped"
            self.emit(OrphanStopped(node=name.split(".")[0], pid=0, reason=reason))

    def _report_taken_over(self) -> None:
        for node, record in self._taken_over.items():
            if REMOTE in record:
                where = f"{record[REMOTE].get('executor')} actor {record[REMOTE].get('name')} on {record.get('host')}"
                reason = f"its attempt ({where}) is still at work: following it"
                self.emit(NodeRecovered(node=node, was="running", now="running", reason=reason))
                continue
            self.emit(
                NodeRecovered(
                    node=node,
                    was="running",
                    now="running",
                    reason=f"its worker (pid {record['pgid']}), left running when foreman quit, is still at "
                    "work; waiting for it",
                )
            )

    async def _await_left_worker(self, node: str, record: dict[str, Any]) -> list[str]:
        """Wait for a worker left running by the last session to end; show its output as it comes. Returns
        the last lines of its log (to find a hard-pause block)."""
        if REMOTE in record:
            return await self._await_remote(node, record)
        pgid = int(record["pgid"])
        log = Path(record.get("log", ""))
        started = float(record.get("started", time.time()))
        offset = max(0, log.stat().st_size - 64 * 1024) if log.is_file() else 0
        pending = b""
        self._watching.add(node)
        try:
            while await asyncio.to_thread(group_alive, pgid):
                offset, pending = self._follow_log(node, log, offset, pending)
                if time.time() - started > self.settings.timeout:
                    await asyncio.to_thread(stop_group_now, pgid, self.settings.stop_grace)
                    break
                await asyncio.sleep(POLL)
            self._follow_log(node, log, offset, pending)
        except asyncio.CancelledError:
            if not self._detaching:
                await asyncio.shield(asyncio.to_thread(stop_group_now, pgid, self.settings.stop_grace))
            raise
        finally:
            self._watching.discard(node)
            if not self._detaching:
                self.pids.clear(node, "worker")
        self.emit(
            WorkerExited(
                node=node,
                role="worker",
                attempt=int(record.get("attempt", self.state.node(node).attempt)),
                exit_code=None,
                duration=time.time() - started,
            )
        )
        return _last_lines(log)

    async def _await_remote(self, node: str, record: dict[str, Any]) -> list[str]:
        """Follow an attempt a last run left on another executor (a Ray actor) to its end: its output and
        commits come as for one this run started."""

        def on_lines(stream: str, lines: list[str]) -> None:
            if node in self.activity:
                self.activity[node].touch()
            if self.on_output is not None:
                self.on_output(node, stream, lines)

        attempt = self.executor.adopt(record, on_lines)
        log = Path(str(record[REMOTE].get("log", "")))
        started = float(record.get("started", time.time()))
        if attempt is None:
            self.pids.clear(node, "worker")
            return []
        key = f"{node}.worker"
        self.children[key] = attempt
        self._watching.add(node)
        try:
            result = await attempt.wait(max(1.0, self.settings.timeout - (time.time() - started)))
        except asyncio.CancelledError:
            if not self._detaching:
                await asyncio.shield(attempt.stop(self.settings.stop_grace))
            raise
        finally:
            self.children.pop(key, None)
            self._watching.discard(node)
            if not self._detaching:
                self.pids.clear(node, "worker")
        self.emit(
            WorkerExited(
                node=node,
                role="worker",
                attempt=int(record[REMOTE].get("attempt", self.state.node(node).attempt)),
                exit_code=result.exit_code,
                duration=result.duration,
                timed_out=result.timed_out,
            )
        )
        return _last_lines(log)

    def _follow_log(self, node: str, log: Path, offset: int, pending: bytes) -> tuple[int, bytes]:
        """Hand the log's new complete lines to ``on_output``."""
        try:
            with open(log, "rb") as handle:
                handle.seek(offset)
                data = handle.read(4 * 1024 * 1024)
        except OSError:
            return offset, pending
        if not data:
            return offset, pending
        unread = pending + data
        end = unread.rfind(b"\n")  # -1 when no line is complete yet: everything stays pending
        if end >= 0 and self.on_output is not None:
            self.on_output(node, "stdout", unread[:end].decode("utf-8", errors="replace").split("\n"))
        return offset + len(data), unread[end + 1 :]


def _last_lines(log: Path) -> list[str]:
    """The last lines of a worker's log (to find a hard-pause block in them)."""
    try:
        return log.read_text(encoding="utf-8", errors="replace").splitlines()[-200:]
    except OSError:
        return []
