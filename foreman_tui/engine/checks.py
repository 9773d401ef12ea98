"""Running one check command: split with shlex (no shell), in a given tree, with a timeout, in its own
process group so a hung test is killed whole. The outcome keeps the tail of the output as evidence."""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .events import CheckFinished
from .process import ChildProcess
from .project import CheckRef

TAIL_LINES = 40


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    status: str  # "pass" | "fail"
    duration: float
    exit_code: int | None
    output_tail: str
    reason: str = ""


async def run_check(
    cmd: str,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    log_path: Path,
    mark: str | None = None,
    prefix: Sequence[str] = (),
) -> CheckOutcome:
    """Run one check command; ``mark`` tags it and everything it starts (``reaper.py``); ``prefix`` goes before
    its argv (a sandbox)."""
    try:
        argv = shlex.split(cmd)
    except ValueError as exc:
        return CheckOutcome("fail", 0.0, None, "", f"cannot parse the command: {exc}")
    if not argv:
        return CheckOutcome("fail", 0.0, None, "", "empty command")
    child = ChildProcess([*prefix, *argv], cwd, env, log_path, tail_lines=TAIL_LINES, mark=mark)
    try:
        await child.start()
    except OSError as exc:
        return CheckOutcome("fail", 0.0, None, "", f"cannot start {argv[0]!r}: {exc.strerror}")
    try:
        result = await child.wait(timeout)
    except asyncio.CancelledError:  # the node was stopped or reset by a person: no check outlives it
        await asyncio.shield(child.stop(grace=2.0))
        raise
    tail = "\n".join(child.tail)
    if result.timed_out:
        return CheckOutcome("fail", result.duration, result.exit_code, tail, f"timed out after {timeout:g}s")
    if result.exit_code != 0:
        return CheckOutcome("fail", result.duration, result.exit_code, tail, f"exit status {result.exit_code}")
    return CheckOutcome("pass", result.duration, 0, tail)


def check_event(
    owner: str, level: str, name: str, check: CheckRef, outcome: CheckOutcome, attempt: int | None = None
) -> CheckFinished:
    return CheckFinished(
        node=owner,
        level=level,
        check=name,
        desc=check.item.desc,
        status=outcome.status,
        cmd=check.item.cmd,
        duration=outcome.duration,
        exit_code=outcome.exit_code,
        reason=outcome.reason,
        output_tail=outcome.output_tail,
        attempt=attempt,
    )
