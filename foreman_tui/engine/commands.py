"""What a person can ask of a live run (the TUI's keys and palette): decide a pause at once, hold or
resume the starting of new nodes, stop, retry or reset one node, keep the run open while pauses wait.
Every command is carried out on the event loop and leaves an event behind."""

from __future__ import annotations

import asyncio
import contextlib

from ..map.errors import UsageError
from .events import NodeRetried, RunNoted, SchedulingHeld
from .inputs import Inputs
from .lifecycle import Phase
from .pauses import STOPPED_BY_PERSON, Decision, write_decision
from .reset import plan_reset, take_resets

INPUT_TICK = 0.5
"""Seconds between looks at decisions, map edits and feedback while nodes run."""


class Commands(Inputs):
    held: bool = False
    """A person paused scheduling: running nodes go on, no new one starts until resumed."""
    hold_open: bool = False
    """Keep the run open while pauses wait for a person (the TUI); without it, a run with nothing left
    to do but wait ends with status "paused" (exit 3) and the pause stays on disk."""

    def active_nodes(self) -> list[str]:
        """Nodes with a worker, checks or a review under way now."""
        return sorted(self._tasks)

    def wake(self) -> None:
        """Look at inputs now rather than at the next tick."""
        self._wake.set()

    async def _tick(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), INPUT_TICK)
        self._wake.clear()

    def decide(self, decision: Decision) -> None:
        """Answer a pause. The decision goes through the same file as ``foreman decide`` (so a crash right
        after loses nothing) and is taken in at once."""
        write_decision(self.home, decision)
        self.wake()

    def hold_scheduling(self, held: bool, who: str) -> None:
        if held == self.held:
            return
        self.held = held
        self.emit(SchedulingHeld(held=held, who=who))
        self.wake()

    def stop_node(self, node: str, who: str) -> str | None:
        """Stop a running node's worker (or checks, or review) and pause it, so the person decides what
        next. Returns why not, or None when done."""
        task = self._tasks.get(node)
        if task is None:
            return f"{node} is not running"
        if self.state.node(node).phase in (Phase.MERGING, Phase.MERGED):
            return f"{node} is being merged; wait a moment"
        self._pause(node, STOPPED_BY_PERSON, f"stopped by {who}")
        task.cancel()
        self.wake()
        return None

    async def retry_node(self, node: str, who: str) -> str | None:
        """Run a node again: a paused one (as if its retry option was chosen), a failed one, or a running
        one (its attempt is stopped and a new one starts)."""
        nr = self.state.nodes.get(node)
        if nr is None or node not in self.graph.process_order:
            return f"{node} is not a process node of this map"
        if nr.phase == "paused" and nr.pause is not None:
            retry = next((o for o in nr.pause.options if o.action in ("retry", "instruct")), None)
            decision = Decision(node=node, option=retry.key if retry else None, text="" if retry else "Try again.")
            decision.who = who
            return None if await self.apply_decision(decision) else f"{node}: the retry was not accepted"
        was: str = nr.phase
        if nr.phase == Phase.FAILED:
            self.lifecycle.move(node, Phase.PENDING)
        elif node in self._tasks and nr.phase not in (Phase.MERGING, Phase.MERGED):
            task = self._tasks[node]
            task.cancel()
            await asyncio.wait([task], timeout=self.settings.stop_grace + 5)
        else:
            return f"{node} is {nr.phase}: nothing to retry"
        self.save()
        self.emit(NodeRetried(node=node, who=who, was=was))
        self.wake()
        return None

    async def _take_inputs(self) -> None:
        await self._take_resets()
        await super()._take_inputs()

    async def _take_resets(self) -> None:
        """``foreman reset`` from another terminal: the same operation as the TUI's reset."""
        for command in take_resets(self.home):
            refused = await self.reset_node(command.node, command.who, command.cascade)
            if refused:
                self.emit(RunNoted(note=f"foreman reset {command.node} not done: {refused}"))

    async def reset_node(self, node: str, who: str, cascade: bool = False) -> str | None:
        """Throw a node's work away and start it over (stopping it first if it runs); the verified nodes after it
        become stale, or with ``cascade`` are reset too (``reset.py``: the same plan as ``foreman reset``)."""
        phases = {n: r.phase for n, r in self.state.nodes.items()}
        try:
            plan = plan_reset(self.graph, phases, node, cascade)
        except UsageError as exc:
            return str(exc)
        busy = [n for n in plan.resets if phases.get(n) in (Phase.MERGING, Phase.MERGED)]
        if busy:
            return f"{', '.join(busy)} is being merged; wait a moment"
        for target in plan.resets:
            task = self._tasks.get(target)
            self._resetting.add(target)
            try:
                if task is not None:
                    task.cancel()
                    await asyncio.wait([task], timeout=self.settings.stop_grace + 5)
                await self._reset_node(target, f"reset by {who}" + (f" (after {node})" if target != node else ""))
            finally:
                self._resetting.discard(target)
        self._reopen_stages(set(plan.resets))
        await self._mark_stale(plan.stale)
        self.save()
        self.wake()
        return None
