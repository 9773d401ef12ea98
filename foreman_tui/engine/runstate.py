"""foreman's own run detail, beside the map's ``state`` (which stays schema-valid): per node the phase,
attempts, failure counts, session, pause; per stage whether it passed. Kept in ``.foreman/run.json``,
written atomically on every change. Also the run lock and the worker pid files that let a new run stop
the orphans of a dead one."""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator

from ..map.errors import UsageError
from ..map.store import atomic_write
from .fingerprint import Fingerprint
from .lifecycle import Phase, to_phase
from .pauses import Decision, Pause
from .process import group_alive, stop_group_now


class NodeRun(BaseModel):
    phase: Phase = Phase.PENDING
    """Where the node is in its life (``lifecycle.py``); moved only through ``Lifecycle.move``."""
    attempt: int = 0
    """Worker attempts started so far (log files are numbered by it)."""
    round_start: int = 0
    """Attempts made before the current round: a reset or a person's decision starts a new one."""
    base: str | None = None
    """The commit the node's work started from."""
    head: str | None = None
    """The node's latest commit seen."""
    session_id: str | None = None
    check_failures: dict[str, int] = Field(default_factory=dict)
    """Consecutive failures per check."""
    failure_outputs: dict[str, list[str]] = Field(default_factory=dict)
    no_commit: int = 0
    review_round: int = 0
    pending_message: str | None = None
    """Fix task or decision for the next attempt (path of the message file)."""
    history: list[str] = Field(default_factory=list)
    pause: Pause | None = None
    feedback: list[str] = Field(default_factory=list)
    """Notes from a feedback file, delivered with the node's next attempt."""
    disputes: dict[str, str] = Field(default_factory=dict)
    """Disputes a worker raised on this node's checks (check → reason), as seen."""
    accepted: list[str] = Field(default_factory=list)
    """Checks a person accepted as failing (a dispute accepted), by name."""
    cost_usd: float = 0.0
    budget_raised: float = 0.0
    """USD a person added to ``node_budget_usd`` for this node."""
    thread_tokens: dict[str, list[int]] = Field(default_factory=dict)
    """Token totals of each conversation (session) so far, as [input, cached input, output], for CLIs that report
    a resumed conversation's totals (Codex): what one call used is the difference."""
    rate_limited: str = ""
    """While a rate-limited call of this node waits: what the API said; empty otherwise."""
    retry_at: float | None = None
    """While it waits: when the call is retried (epoch seconds)."""
    attempt_from: str | None = None
    """The node's head when its current attempt began: a commit beyond it, found after a crash, is kept."""
    merged: str | None = None
    """The merge commit of the node's branch into the integration branch, once merged."""
    fingerprint: Fingerprint | None = None
    """What the node was verified against (``fingerprint.py``); set when it is verified."""
    stale: str = ""
    """Why the node is being verified again (e.g. "01_tokenize's post changed"); empty once it is verified."""

    @field_validator("phase", mode="before")
    @classmethod
    def _legacy_phase(cls, value: object) -> object:
        return to_phase(value)

    @property
    def round_attempt(self) -> int:
        """The attempt number within the current round (what a person is shown: "attempt 2/3")."""
        return self.attempt - self.round_start


class FeedbackMiss(BaseModel):
    """A feedback note that matched no node or region (its file is kept until it is routed)."""

    file: str
    line: int
    section: str
    note: str
    reason: str


class RunState(BaseModel):
    version: int = 1
    integration_branch: str = ""
    isolation: str = "worktree"
    nodes: dict[str, NodeRun] = Field(default_factory=dict)
    stages: dict[str, str] = Field(default_factory=dict)
    """``region:<key>`` / ``end`` → "passed" | "failed" | "accepted"."""
    decisions: list[Decision] = Field(default_factory=list)
    """Every decision a person made, in order."""
    feedback_seen: list[str] = Field(default_factory=list)
    """Digests of the feedback notes already taken (a resubmitted file repeats them)."""
    feedback_unmatched: list[FeedbackMiss] = Field(default_factory=list)
    """Notes in kept feedback files that match no node or region."""
    budget_raised: float = 0.0
    """USD a person added to ``budget_usd`` at a "budget reached" pause (kept across resumes)."""
    largest_call_usd: float = 0.0
    """The most one agent call has cost in this run: what the next one is expected to cost at most."""

    def spent(self) -> float:
        """USD spent by every node's workers and reviewers so far."""
        return sum(nr.cost_usd for nr in self.nodes.values())

    def node(self, node_id: str) -> NodeRun:
        return self.nodes.setdefault(node_id, NodeRun())


class RunStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "run.json"

    def load(self) -> RunState | None:
        if not self.path.exists():
            return None
        return RunState.model_validate_json(self.path.read_bytes())

    def save(self, state: RunState) -> None:
        atomic_write(self.path, state.model_dump_json(indent=2).encode("utf-8"))


class AlreadyRunning(UsageError):
    """Another foreman holds this repository's run lock."""


RUN_PHASE_NAMES = {
    Phase.RUNNING: "running",
    Phase.CHECKING: "checking",
    Phase.REVIEWING: "reviewing",
    Phase.MERGING: "merging",
    Phase.MERGED: "merging",
    Phase.PAUSED: "paused",
    Phase.FAILED: "failed",
    Phase.STALE: "stale",
}
"""How ``foreman status`` names a node's run phase (pending and verified say nothing beyond the map)."""


def lock_path(project_dir: Path) -> Path | None:
    """The run lock's file for the repository ``project_dir`` is in (without loading git), or None."""
    for folder in (project_dir, *project_dir.parents):
        dot_git = folder / ".git"
        if dot_git.is_dir():
            return dot_git / "foreman-run.lock"
        if dot_git.is_file():  # a worktree: "gitdir: <path>", whose commondir names the shared folder
            text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
            gitdir = (folder / text.removeprefix("gitdir:").strip()).resolve()
            common = gitdir / "commondir"
            if common.is_file():
                gitdir = (gitdir / common.read_text().strip()).resolve()
            return gitdir / "foreman-run.lock"
    return None


def run_is_live(project_dir: Path) -> bool:
    """Whether a foreman holds the run lock of this repository now."""
    path = lock_path(project_dir)
    if path is None or not path.is_file():
        return False
    with open(path, "rb") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return False


class RunLock:
    """One foreman per repository: an exclusive, non-blocking flock held for the run's lifetime, on a file
    in the repository's git folder (so it covers every map and worktree of the repository)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "foreman-run.lock"
        self._handle: Any = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise AlreadyRunning(f"another foreman is already running on this repository ({holder})") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


REMOTE = "remote"
"""The key of a pid record whose attempt runs elsewhere (its executor's handle on it, e.g. a Ray actor's name)."""


class PidFiles:
    """``.foreman/pids/<node>.<role>.json``: each live worker's process group, so a new run can stop the
    orphans of a run that died (``kill -9``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder / "pids"

    def record(
        self,
        node_id: str,
        role: str,
        pid: int,
        argv: list[str],
        mark: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Path:
        """``extra``: what the executor keeps of an attempt that does not run here (``{"remote": {...}}``)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{node_id}.{role}.json"
        record = {"pid": pid, "pgid": pid, "argv": argv, "started": time.time(), "mark": mark, **(extra or {})}
        atomic_write(path, json.dumps(record).encode())
        return path

    def clear(self, node_id: str, role: str) -> None:
        (self.folder / f"{node_id}.{role}.json").unlink(missing_ok=True)

    def mark_left_running(self, node_id: str, role: str, log: Path, attempt: int) -> None:
        """The person quit leaving this worker running: the next run takes it over instead of stopping it."""
        path = self.folder / f"{node_id}.{role}.json"
        record = json.loads(path.read_text())
        record.update(left_running=True, log=str(log), attempt=attempt)
        atomic_write(path, json.dumps(record).encode())

    def left_running(self) -> dict[str, dict[str, Any]]:
        """Workers a person left running that still run, by node: their pid records (the files stay until
        the run that takes them over sees them end)."""
        found: dict[str, dict[str, Any]] = {}
        if not self.folder.is_dir():
            return found
        for path in sorted(self.folder.glob("*.worker.json")):
            try:
                record = json.loads(path.read_text())
                pgid = int(record["pgid"])
            except (OSError, ValueError, KeyError, json.JSONDecodeError):
                continue
            if REMOTE in record:
                continue  # its executor finds it (``remote()``)
            if record.get("left_running") and _looks_like(pgid, record.get("argv") or []) and group_alive(pgid):
                found[path.name.split(".")[0]] = record
        return found

    def remote(self) -> dict[str, dict[str, Any]]:
        """The records of attempts that ran elsewhere (a Ray actor), by file stem (``<node>.<role>``)."""
        found: dict[str, dict[str, Any]] = {}
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(record, dict) and isinstance(record.get(REMOTE), dict):
                found[path.stem] = record
        return found

    def stop_orphans(self, keep: frozenset[str] = frozenset()) -> list[tuple[str, int]]:
        """Stop every recorded process group that still runs, except the workers of nodes in ``keep`` (left
        running on purpose, to be taken over); returns (file stem, pgid) of those stopped."""
        stopped: list[tuple[str, int]] = []
        if not self.folder.is_dir():
            return stopped
        for path in sorted(self.folder.glob("*.json")):
            if path.name.endswith(".worker.json") and path.name.split(".")[0] in keep:
                continue
            try:
                record = json.loads(path.read_text())
                pgid = int(record["pgid"])
            except (OSError, ValueError, KeyError, json.JSONDecodeError):
                path.unlink(missing_ok=True)
                continue
            if REMOTE in record:
                continue  # not a process here: its executor stops or takes it over (``remote()``)
            if _looks_like(pgid, record.get("argv") or []) and stop_group_now(pgid):
                stopped.append((path.stem, pgid))
            path.unlink(missing_ok=True)
        return stopped


def _looks_like(pid: int, argv: list[str]) -> bool:
    """Guard against a reused pid: the group leader's command line (if it still lives) must match ours."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # the leader is gone; its group (if any) can only be our orphans
    return bool(argv) and cmdline[: len(argv)] == [a.encode() for a in argv]
