"""What bounds agent calls besides the attempt timeout: how many workers run at once when the API pushes back
(additive increase, multiplicative decrease), how long to wait after a rate limit, and what the run may spend.

Pure bookkeeping: the supervisor (``calls.py``) asks and acts; nothing here starts, stops or sleeps on its own
except a slot waiting for another to free.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

CENT_FRACTION = 1e-6
"""Dollars below which two sums count as equal."""
LONGEST_WAIT = 600.0
"""The most a rate limit is waited out by doubling (10 minutes); a longer retry-after the API gave still wins."""


class Throttle:
    """The workers that may run at once: ``max_parallel``, halved when an agent call hits a rate limit (never
    below one), raised again by one over ``limit`` calls that go through (so about one per round of calls)."""

    def __init__(self, most: int) -> None:
        self.most = most
        self._limit = float(most)
        self._busy = 0
        self._freed = asyncio.Event()

    @property
    def limit(self) -> int:
        return max(1, math.floor(self._limit))

    @property
    def busy(self) -> int:
        return self._busy

    def limited(self) -> int:
        """A call hit a rate limit: halve the limit. Returns the new limit."""
        self._limit = max(1.0, float(math.floor(self._limit / 2)))
        return self.limit

    def succeeded(self) -> None:
        """A call went through: creep back up towards ``most``."""
        if self._limit < self.most:
            self._limit = min(float(self.most), self._limit + 1 / self._limit)
            self._freed.set()

    async def acquire(self) -> None:
        while self._busy >= self.limit:
            self._freed.clear()
            await self._freed.wait()
        self._busy += 1

    def release(self) -> None:
        self._busy -= 1
        self._freed.set()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class Backoff:
    """How long to wait before retrying a rate-limited call of one node: ``first`` seconds, doubled for each
    rate limit in a row on that node up to ``LONGEST_WAIT``, ±20 % jitter (so parallel workers do not retry in
    step); a retry-after the API asked for is honoured when it is longer."""

    def __init__(self, first: float, jitter: Callable[[], float] = random.random) -> None:
        self.first = first
        self.jitter = jitter
        self.streak: dict[str, int] = {}

    def next(self, key: str, asked: float | None = None) -> float:
        n = self.streak.get(key, 0)
        self.streak[key] = n + 1
        wait = min(LONGEST_WAIT, self.first * 2**n * (0.8 + 0.4 * self.jitter()))
        return max(wait, asked or 0.0)

    def clear(self, key: str) -> None:
        self.streak.pop(key, None)


@dataclass(frozen=True, slots=True)
class Spend:
    """What the run has spent and may spend, when an agent call is about to start."""

    run: float
    """Spent by the whole run so far (every node's workers and reviewers, across resumes)."""
    node: float
    """Spent on the node the call is for."""
    largest_call: float
    """The most one call has cost so far: what the next one is expected to cost at most (0: not known yet)."""
    in_flight: int
    """Agent calls running now (each may cost ``largest_call``)."""
    known: bool
    """Whether any call of this run has finished (so ``largest_call`` means something)."""
    run_budget: float | None
    node_budget: float | None

    def over(self) -> str | None:
        """ "run" or "node" when this call must not start (the budget is reached, or the call would pass it with
        the calls under way); None when it may."""
        expected = self.largest_call
        run, node = self.run + CENT_FRACTION, self.node + CENT_FRACTION  # sums of floats: $1.0 may be 0.99999…
        if self.run_budget is not None and (
            run >= self.run_budget or self.run + (self.in_flight + 1) * expected > self.run_budget + CENT_FRACTION
        ):
            return "run"
        if self.run_budget is not None and not self.known and self.in_flight:
            return "wait"
        if self.node_budget is not None and (
            node >= self.node_budget or self.node + expected > self.node_budget + CENT_FRACTION
        ):
            return "node"
        return None

    def left(self) -> float | None:
        """What the call may spend at most (for a CLI with a per-call cap), or None without a budget."""
        caps = []
        if self.run_budget is not None:
            caps.append(self.run_budget - self.run - self.in_flight * self.largest_call)
        if self.node_budget is not None:
            caps.append(self.node_budget - self.node)
        return max(0.0, min(caps)) if caps else None
