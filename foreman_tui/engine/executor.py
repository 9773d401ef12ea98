"""Where an agent attempt runs: the seam between the engine and the machines.

The engine hands an executor an :class:`AttemptSpec` (the command, its tree, its environment, where its output
goes) and gets back an :class:`Attempt`: something it can ``start``, ``wait`` for (under a timeout), ``stop``
(SIGTERM to the whole process group, a grace, SIGKILL) and hand off (left running when a person quits). Its
output arrives as lines through ``spec.on_lines`` and in ``spec.log``; its commits arrive on the node's branch,
where the commit monitor sees them. The engine does not know which executor it talks to:

- ``local`` (:class:`LocalExecutor`): a process group on this machine in the node's worktree (``process.py``);
- ``ray`` (``ray_executor.py``): one named, detached Ray actor per attempt, working in a clone on a Ray node,
  its commits fetched back as they are made.

Scheduling, checks, reviews, merges and pauses stay with the supervisor whatever the executor.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..config import ExecutorSettings
from .process import ChildProcess, LinesHandler, ProcessResult


class ExecutorError(Exception):
    """An attempt could not be started, or an executor not reached, where attempts are to run."""


EXECUTOR_VAR = "FOREMAN_EXECUTOR"
HOST_VAR = "FOREMAN_HOST"


@dataclass(slots=True)
class AttemptSpec:
    """One agent attempt, as the engine asks for it."""

    node: str
    role: str
    attempt: int
    argv: list[str]
    cwd: Path
    """The node's tree on this machine (its worktree, or a review checkout)."""
    env: dict[str, str]
    log: Path
    stdin: Path | None = None
    on_lines: LinesHandler | None = None
    mark: str | None = None
    files: list[Path] = field(default_factory=list)
    """Files on this machine the command or its environment names (the prompt, the message, the map): an
    executor running elsewhere ships them and points the command at its copies."""


class Attempt(Protocol):
    """A running attempt, wherever it runs."""

    pid: int | None
    log_path: Path

    async def start(self) -> int: ...

    async def wait(self, timeout: float | None = None) -> ProcessResult: ...

    async def stop(self, grace: float = 10.0) -> None: ...

    def hand_off(self) -> int | None:
        """Let the attempt outlive foreman (a person quit leaving workers running); None if it had ended."""
        ...

    def record(self) -> dict[str, Any]:
        """What the pid file keeps of it, so a later run can stop it or take it over."""
        ...

    @property
    def running(self) -> bool: ...

    @property
    def returncode(self) -> int | None: ...

    @property
    def elapsed(self) -> float: ...


class Executor(Protocol):
    kind: str

    async def open(self) -> None:
        """Reach where attempts run (before the run's start-up: it may find attempts to take over)."""
        ...

    def attempt(self, spec: AttemptSpec) -> Attempt: ...

    def env(self) -> dict[str, str]:
        """What a worker is told about where it runs (``FOREMAN_EXECUTOR``, ``FOREMAN_HOST``)."""
        ...

    def can_adopt(self, record: dict[str, Any]) -> bool:
        """Whether the attempt behind a pid record of a run before this one still runs and can be followed."""
        ...

    def adopt(self, record: dict[str, Any], on_lines: LinesHandler | None) -> Attempt | None:
        """The attempt behind a pid record that a run before this one left, if it still runs and this executor
        can follow it (None: it cannot; the node is dispatched again)."""
        ...

    def discard(self, record: dict[str, Any]) -> bool:
        """Stop the attempt behind a pid record this run will not follow; whether it was still there."""
        ...

    def strays(self, known: set[str]) -> list[str]:
        """Stop attempts this executor finds that no record knows (started just before a run died); their names."""
        ...

    async def close(self) -> None: ...


class LocalAttempt(ChildProcess):
    """A process group on this machine (``process.py``)."""

    def record(self) -> dict[str, Any]:
        return {}


class LocalExecutor:
    kind = "local"

    def __init__(self) -> None:
        self.host = socket.gethostname()

    async def open(self) -> None:
        return None

    def env(self) -> dict[str, str]:
        return {EXECUTOR_VAR: self.kind, HOST_VAR: self.host}

    def can_adopt(self, record: dict[str, Any]) -> bool:
        return False  # a local worker left running is followed through its log (handover.py)

    def adopt(self, record: dict[str, Any], on_lines: LinesHandler | None) -> Attempt | None:
        return None

    def discard(self, record: dict[str, Any]) -> bool:
        return False

    def strays(self, known: set[str]) -> list[str]:
        return []

    def attempt(self, spec: AttemptSpec) -> Attempt:
        return LocalAttempt(
            spec.argv,
            spec.cwd,
            spec.env,
            spec.log,
            spec.stdin,
            on_lines=spec.on_lines,
            mark=spec.mark,
        )

    async def close(self) -> None:
        return None


def make_executor(settings: ExecutorSettings, *, namespace: str, stop_grace: float) -> Executor:
    """The executor ``[executor]`` asks for (Ray is imported only when it is the one)."""
    if settings.kind == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(settings, namespace=namespace, stop_grace=stop_grace)
    return LocalExecutor()
