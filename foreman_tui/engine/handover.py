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
from .events import NodeRecovered, WorkerExited, WorkersLeftRunning
from .process import group_alive, stop_group_now

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
            self.emit(WorkersLeftRunning(nodes=sorted(left)))
        self.request_stop()
        return sorted(left)

    def _find_left_running(self) -> None:
        """At start-up: the workers a person left running that still run (they are not orphans)."""
        self._taken_over = {}
        self._watching = set()
        for node, record in self.pids.left_running().items():
            nr = self.state.nodes.get(node)
            if nr is not None and nr.phase == "running":
                self._taken_over[node] = record

    def _report_taken_over(self) -> None:
        for node, record in self._taken_over.items():
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
        try:
            return log.read_text(encoding="utf-8", errors="replace").splitlines()[-200:]
        except OSError:
            return []

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
