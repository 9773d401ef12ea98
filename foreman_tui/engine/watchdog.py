"""Watching one agent process for the two ways real CLIs fail to end: printing their final result and then
never exiting (seen with Claude Code in ``-p`` mode), and going silent — no output, no file change in their
tree, no commit — for good. Either way the process group is stopped and the caller is told why; the attempt
is then judged as any other (its commit, the checks), a stall counting as a failed attempt."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .process import ProcessResult

if TYPE_CHECKING:
    from .executor import Attempt

LINGERED = "lingered"
"""Stopped ``result_grace`` seconds after its final result event."""
STALLED = "stalled"
"""Stopped after ``stall_timeout`` seconds without output, a file change or a commit."""
SKIPPED_DIRS = frozenset({".git", "node_modules", "__pycache__", ".venv"})


@dataclass(frozen=True, slots=True)
class Limits:
    timeout: float
    grace: float
    """Seconds after the final result event."""
    stall: float
    stop_grace: float


def changed_since(tree: Path, since: float, budget: int = 200_000) -> bool:
    """Whether a file under ``tree`` (git's folder and dependency folders aside) was modified after ``since``
    (wall-clock seconds). Looks at ``budget`` entries at most: a huge tree is not scanned to the end."""
    stack = [tree]
    seen = 0
    while stack and seen < budget:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            seen += 1
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in SKIPPED_DIRS:
                        stack.append(Path(entry.path))
                elif entry.stat(follow_symlinks=False).st_mtime > since:
                    return True
            except OSError:
                continue
    return False


class Activity:
    """When an agent last showed it is working (wall-clock seconds): its output, a commit, a file it changed."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last = time.time()

    def touch(self, when: float | None = None) -> None:
        self.last = when if when is not None else time.time()


async def watch(
    child: Attempt, limits: Limits, finished: Callable[[], bool], activity: Activity, tree: Path
) -> tuple[ProcessResult, str | None]:
    """Wait for ``child`` like ``child.wait(timeout)``, and stop it when it lingers after its result
    (``finished()`` true for ``grace`` seconds) or stalls (``activity`` older than ``stall`` seconds and no file
    in ``tree`` changed since). Returns its result and why it was stopped (None: it ended, or timed out, on its
    own)."""
    waiter = asyncio.ensure_future(child.wait(limits.timeout))
    tick = max(0.05, min(1.0, limits.grace / 5 or 1.0, limits.stall / 10))
    result_seen: float | None = None
    reason: str | None = None
    try:
        while not waiter.done():
            await asyncio.wait([waiter], timeout=tick)
            if waiter.done():
                break
            now = time.time()
            if finished():
                result_seen = result_seen or now
                if now - result_seen >= limits.grace:
                    reason = LINGERED
                    break
            if now - activity.last >= limits.stall:
                if not await asyncio.to_thread(changed_since, tree, activity.last):
                    reason = STALLED
                    break
                activity.touch(now)  # it changed a file meanwhile: working, quietly
        if reason is not None:
            await child.stop(limits.stop_grace)
        return await waiter, reason
    except asyncio.CancelledError:
        waiter.cancel()
        raise
