"""The supervisor: runs a map to verified code.

It schedules ready process nodes (never two sharing a file, at most ``max_parallel``) and drives each one
through its life — ``lifecycle.py`` has the phases and the moves, ``steps.py`` what each phase does: a worker
attempt in the node's tree, commit detection, the L1 checks and the checkpoint, the review, the merge, the
record in the map. Every move is written ahead to the run state, so a run killed at any moment resumes where it
stopped (``startup.py`` recovers each phase). Region (L2), decision and end (L3, benchmark) stages run as soon as
their nodes are verified (``stages.py``). It speaks only through events (``events.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .commands import INPUT_TICK, Commands
from .events import RunFinished
from .lifecycle import WORKER_PHASES, Phase
from .pauses import INTERNAL, Pause
from .review import Reviews
from .scheduler import next_batch, ready_nodes
from .startup import Startup
from .steps import NodeSteps
from .watcher import CommitMonitor
from .workspace import finish


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # "complete" | "paused" | "stopped" | "incomplete" (a node failed by decision) | "failed"
    verified: int
    total: int

    @property
    def exit_code(self) -> int:
        return {"complete": 0, "paused": 3, "stopped": 3, "incomplete": 3}.get(self.status, 1)


__all__ = ["INPUT_TICK", "Outcome", "Supervisor"]


class Supervisor(Commands, Reviews, NodeSteps, Startup):
    """Runs a map to verified code; see the module docstring. ``run()`` once per instance."""

    def _step(self, phase: Phase) -> Callable[[str], Awaitable[None]] | None:
        """What a node in ``phase`` does next (None: nothing until a person or an upstream node moves it)."""
        return {
            Phase.PENDING: self._attempt,
            Phase.RUNNING: self._attempt,
            Phase.CHECKING: self._check,
            Phase.REVIEWING: self._review,
            Phase.MERGING: self._merge,
            Phase.MERGED: self._record,
            Phase.STALE: self._recheck,
        }.get(phase)

    async def _drive(self, node: str) -> None:
        """Take the node through the steps of its phases until it is verified or paused."""
        await self._prepare_tree(node)
        while (step := self._step(phase := self.lifecycle.phase(node))) is not None:
            await step(node)
            if self._budget_paused() and self.lifecycle.phase(node) == phase:
                return  # its agent call was refused by the run's budget: it waits, as it is, for a raise

    # ------------------------------------------------------------------------------------------- loop

    def _scheduling_blocked(self) -> bool:
        """No new node starts while stopping, after a person halted the run or held scheduling, or while a
        structural edit of the map waits for a decision (running nodes finish either way)."""
        map_pause = self.state.nodes.get("map")
        held = self._stopping or self.halted or self.held or self._budget_paused()
        return held or (map_pause is not None and map_pause.phase == "paused")

    def _start_ready(self) -> None:
        if self._scheduling_blocked():
            return
        blocked = {n for n, r in self.state.nodes.items() if r.phase in ("paused", "failed")} | self._resetting
        blocked |= self._held_by_decisions()
        ready = ready_nodes(self.graph, self._verified(), exclude=set(self._tasks) | blocked)
        # A slot is a worker: a node being checked, reviewed or merged frees its slot (its files stay its own).
        working = [n for n in self._tasks if self.lifecycle.phase(n) in WORKER_PHASES]
        holding = [n for n in self._tasks if n not in working]
        batch = next_batch(ready, self.project.files, working, self.throttle.limit, holding)
        self.waits = batch.waits
        for node in batch.start:
            self._tasks[node] = asyncio.create_task(self._drive(node), name=f"node:{node}")

    async def run(self) -> Outcome:
        await self.executor.open()  # before start-up: it finds the attempts a last run left on a cluster
        try:
            self._prepare()
        except BaseException:
            await self.executor.close()
            raise
        self._monitor = CommitMonitor(self.repo, self._on_commit, self.settings.poll, self.use_fs_events)
        monitor_task = asyncio.create_task(self._monitor.run(), name="commit-monitor")
        try:
            self._note_disputes()
            await self._take_inputs()
            await self._run_stages()
            while True:
                self._start_ready()
                if not self._tasks:
                    if self._stopping:
                        break
                    if self._stages_due():
                        await self._run_stages()
                        continue
                    if not await self._wait_for_a_person():
                        break
                    continue
                tick = asyncio.create_task(self._tick())
                done, _ = await asyncio.wait([*self._tasks.values(), tick], return_when=asyncio.FIRST_COMPLETED)
                tick.cancel()
                for node, task in list(self._tasks.items()):
                    if task in done:
                        del self._tasks[node]
                        error = None if task.cancelled() else task.exception()
                        if error is not None:
                            self._pause(node, INTERNAL, f"{type(error).__name__}: {error}")
                if not self._stopping:
                    await self._take_inputs()
                    await self._run_stages()
                if self.ws.flush_due():
                    await finish(self.ws.flush)
            return await self._finish()
        finally:
            for task in self._tasks.values():
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            if self._background:
                await asyncio.gather(*self._background, return_exceptions=True)
            self._monitor.close()
            with contextlib.suppress(asyncio.CancelledError):
                await monitor_task
            await finish(self.ws.flush)  # what the map should say, even on a stop
            self.save()
            await self.executor.close()
            self.events.close()
            if self.lock is not None:
                self.lock.release()

    def open_pauses(self) -> list[Pause]:
        return [r.pause for r in self.state.nodes.values() if r.phase == "paused" and r.pause is not None]

    async def _wait_for_a_person(self) -> bool:
        """Nothing can run until someone decides. With a way to ask (a terminal, the TUI) ask; decisions
        written by `foreman decide` meanwhile count too. Without one, end the run (exit 3, pause kept)."""
        await self._take_inputs()
        if self.ask is not None:
            left_for_later: set[str] = set()
            while not self._ready_after_inputs():
                waiting = [p for p in self.open_pauses() if p.node not in left_for_later]
                if not waiting:
                    break
                decision = await self.ask(waiting[0])
                if decision is None:
                    left_for_later.add(waiting[0].node)
                else:
                    await self.apply_decision(decision)
        while self.hold_open and not self._stopping and not self._ready_after_inputs():
            if not (self.open_pauses() or self.held):
                break  # nothing a person could still unblock
            await self._tick()
            await self._take_inputs()
        return self._ready_after_inputs()

    def _ready_after_inputs(self) -> bool:
        """True if the inputs just taken made something runnable again."""
        if self._scheduling_blocked():
            return False
        blocked = {n for n, r in self.state.nodes.items() if r.phase in ("paused", "failed")}
        blocked |= self._held_by_decisions()
        return bool(ready_nodes(self.graph, self._verified(), exclude=blocked)) or self._stages_due()

    def _stages_due(self) -> bool:
        verified = self._verified()
        due = [f"region:{r.key}" for r in self.graph.regions if self.graph.region_complete(r, verified)]
        due += [
            f"decision:{d}"
            for d in self.graph.decision_feeders
            if self._decision_has_checks(d) and self.graph.decision_verified(d, verified)
        ]
        if (
            self.graph.process_order
            and len(verified) == len(self.graph.process_order)
            and not self._held_by_decisions()
        ):
            due.append("end")
        return any(key not in self.state.stages and key not in self.state.nodes for key in due)

    async def _finish(self) -> Outcome:
        verified = self._verified()
        total = len(self.graph.process_order)
        paused = sorted(n for n, r in self.state.nodes.items() if r.phase == "paused")
        failed = sorted(n for n, r in self.state.nodes.items() if r.phase == "failed")
        failed_stage = any(v == "failed" for v in self.state.stages.values())
        end_done = self.state.stages.get("end") in ("passed", "accepted")
        if self._stopping:
            status = "stopped"
        elif len(verified) == total and not failed_stage and end_done:
            status = "complete"
        elif paused or failed_stage:
            status = "paused"
        elif failed or self.halted:
            status = "incomplete"
        else:
            status = "failed"
        self.save()
        if not self._stopping:  # leave the map's state committed, not just written
            await self._commit_map(f"foreman: run {status} ({len(verified)}/{total} verified)")
        self.emit(RunFinished(outcome=status, verified=len(verified), total=total, paused=paused))
        return Outcome(status, len(verified), total)
