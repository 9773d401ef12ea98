"""The supervisor's shared state and plumbing: paths, events, the run state and its lifecycle, the workspace (git
and map writes), starting an agent process, pausing a node, sending a fix task. The steps of a node's life
(``steps.py``), start-up (``startup.py``), the review (``review.py``) and the stages (``stages.py``) build on it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..agents.presets import Agent, make_agent
from ..config import Settings
from ..map.model import NodeState, State
from ..map.store import MapStore, atomic_write, foreman_dir
from .checks import CheckOutcome, run_check
from .environment import command_env, project_python, without_secrets
from .events import (
    Event,
    EventLog,
    FixTaskSent,
    NodePaused,
    RunNoted,
)
from .executor import Attempt, Executor, make_executor
from .gitrepo import Repo
from .lifecycle import WORKER_PHASES, Lifecycle, Phase
from .limits import Backoff, Throttle
from .pauses import Decision, Pause, engine_options
from .preflight import preflight
from .process import ChildProcess
from .project import Project
from .prompts import (
    fix_message,
)
from .runstate import PidFiles, RunLock, RunState, RunStore
from .sandbox import sandbox_prefix
from .scheduler import Wait
from .trust import require_trust
from .watchdog import Activity
from .watcher import CommitMonitor
from .workspace import Workspace, finish

NOTIFY_TIMEOUT = 20.0
"""Seconds the notify command may take (it is stopped after; the run waits for it at its end)."""


class RunContext:
    def __init__(self, project: Project, settings: Settings | None = None, *, use_fs_events: bool = True) -> None:
        self.project = project
        self.settings = settings or project.settings
        self.graph = project.graph
        self.map_path = project.doc.path or Path("algorithm-map.json").resolve()
        self.project_dir = self.map_path.parent
        # Refusals first, before anything is written: not a git repository, a missing program, no Python.
        self._repo: Repo | None = Repo(self.project_dir)
        self.python = project_python(self.project_dir, self.settings.checks)
        self.worker: Agent = make_agent(self.settings.worker)
        self.reviewer: Agent = make_agent(self.settings.reviewer)
        preflight(
            self.repo, self.map_path, self.settings, self.python, {"worker": self.worker, "reviewer": self.reviewer}
        )
        self.trust = require_trust(project, self.settings)
        """The commands the person approved; nothing else from the map or foreman.toml runs (``trust.py``)."""
        self.home = foreman_dir(self.project_dir)
        self.marks = f"foreman:{_project_key(self.repo)}:"
        """Every process this repository's runs start carries a mark under this prefix (``reaper.py``)."""
        self.run_mark = f"{self.marks}{uuid.uuid4().hex[:12]}"
        self.events = EventLog(self.home / "events.jsonl")
        self.store = MapStore(self.map_path)
        self.ws = Workspace(self.repo, self.store, self.home)
        self.runs = RunStore(self.home)
        self.lock: RunLock | None = None
        self.pids = PidFiles(self.home)
        self.use_fs_events = use_fs_events
        self.state = RunState()
        self.lifecycle = Lifecycle(self.state, self.runs, self._moved)
        self.waits: list[Wait] = []
        self.executor: Executor = make_executor(
            self.settings.executor,
            namespace=self.settings.executor.namespace or f"foreman-{_project_key(self.repo)}",
            stop_grace=self.settings.stop_grace,
        )
        """Where worker and reviewer attempts run (``executor.py``): this machine, or a Ray cluster."""
        self.children: dict[str, Attempt] = {}
        self.on_output: Callable[[str, str, list[str]], None] | None = None
        """Given each batch of a worker's output lines as (node, stream, lines); called on the event loop,
        so it must only store them (a flood of output arrives here)."""
        self.ask: Callable[[Pause], Awaitable[Decision | None]] | None = None
        """How to ask a person when nothing can run until they decide (a terminal, the TUI); None: don't."""
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.throttle = Throttle(self.settings.max_parallel)
        """At most ``max_parallel`` workers run at once, whatever went back to its worker (a fix task); fewer
        while the API answers with rate limits (``limits.py``)."""
        self.backoff = Backoff(self.settings.rate_limit_wait)
        self._calls_finished = 0
        self._call_finished = asyncio.Event()
        self.activity: dict[str, Activity] = {}
        """When each node's running agent last showed it is working (its output, a commit): for stalls."""
        self._background: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._wake = asyncio.Event()
        self._resetting: set[str] = set()
        self._detaching = False
        self._handed_off: set[str] = set()
        self._command_env: dict[str, str] | None = None
        self._clean_env: dict[str, str] | None = None
        self._feedback_read: dict[Path, int] = {}
        """mtime of each feedback file kept (for its unrouted notes) when it was last read."""
        self._monitor: CommitMonitor | None = None

    # --------------------------------------------------------------------------------------- plumbing

    @property
    def repo(self) -> Repo:
        assert self._repo is not None
        return self._repo

    def emit(self, event: Event) -> Event:
        return self.events.emit(event)

    def save(self) -> None:
        self.lifecycle.save()

    def _use_state(self, state: RunState) -> None:
        self.state = state
        self.lifecycle = Lifecycle(state, self.runs, self._moved)

    def _moved(self, node: str, was: Phase, to: Phase) -> None:
        """A worker slot freed (its node went on to checks, or paused): look for what can start now."""
        if was in WORKER_PHASES and to not in WORKER_PHASES:
            self._wake.set()

    def _rel_project(self) -> Path:
        return self.project_dir.relative_to(self.repo.root)

    def tree_of(self, node_id: str) -> Path:
        """The project folder as the node's worker sees it."""
        if self.state.isolation == "worktree" and self.state.node(node_id).base is not None:
            return self.home / "worktrees" / node_id / self._rel_project()
        return self.project_dir

    def _env(self) -> dict[str, str]:
        """The environment of the project's commands (checks, benchmark, agents): the project's Python."""
        if self._command_env is None:
            self._command_env = command_env(self.python, self.settings.checks, self.home / "bin")
        return dict(self._command_env)

    def _check_env(self) -> dict[str, str]:
        """The environment of map commands (checks, the benchmark): the project's, minus the person's secrets."""
        if self._clean_env is None:
            self._clean_env = without_secrets(self._env(), self.settings.checks)
        return dict(self._clean_env)

    async def _run_cmd(self, cmd: str, cwd: Path, log: Path, owner: str) -> CheckOutcome:
        """Run one map command (a check, the benchmark) for ``owner``: only when the person approved its exact
        text, without their secrets, in the sandbox when one is configured."""
        if not self.trust.allows(cmd):
            reason = f"not approved: `{cmd}` changed or is new since `foreman trust`; approve it with foreman trust"
            return CheckOutcome("fail", 0.0, None, "", reason)
        prefix: list[str] = []
        if self.settings.checks.sandbox == "bwrap":
            readable = [self.python.path.parent.parent] if self.python.path is not None else []
            prefix = sandbox_prefix([cwd], network=False, readable=readable)
        return await run_check(cmd, cwd, self._check_env(), self.settings.check_timeout, log, self._mark(owner), prefix)

    def _mark(self, owner: str, role: str = "check") -> str:
        """The mark of a process this run starts for ``owner`` (a node, a stage) in ``role``."""
        return f"{self.run_mark}:{owner}:{role}"

    def _node_files(self, node_id: str) -> tuple[str, ...]:
        return self.project.owned[node_id].files

    def _write(self, path: Path, text: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text.encode("utf-8"))
        return path

    def request_stop(self) -> None:
        """Stop scheduling and stop running workers; the run ends "stopped" and resumes next time."""
        self._stopping = True
        for task in self._tasks.values():
            task.cancel()
        self._wake.set()

    # ---------------------------------------------------------------------------------------- startup

    def _verified(self) -> set[str]:
        return {n for n in self.graph.process_order if self.state.node(n).phase == "verified"}

    def _pause(
        self,
        node: str,
        trigger: str,
        problem: str,
        evidence: str = "",
        tried: str = "",
        pause: Pause | None = None,
        suspect: str | None = None,
    ) -> Pause:
        """Open a hard pause on ``node`` (a node id, ``region:<key>``, ``end`` or ``map``): it stops that node
        and what depends on it, nothing else. Engine triggers get the options of ``engine_options``."""
        nr = self.state.node(node)
        if pause is None:
            pause = Pause(
                node=node,
                trigger=trigger,
                problem=problem,
                tried=tried or "; ".join(nr.history[-5:]),
                evidence=evidence[-8000:],
                options=engine_options(trigger),
                suspect=suspect,
            )
        self.lifecycle.move(node, Phase.PAUSED, pause=pause)
        if nr.base and nr.head and nr.base != nr.head:
            self._in_background(self._attach_diff_stat(pause, nr.base, nr.head))
        if self.settings.notify_command:
            self._in_background(self._notify_person(pause))
        self.emit(
            NodePaused(
                node=node,
                pause_id=pause.id,
                trigger=pause.trigger,
                problem=pause.problem,
                tried=pause.tried,
                evidence=pause.evidence[-4000:],
                options=[o.model_dump() for o in pause.options],
                source=pause.source,
                block=pause.block(),
            )
        )
        return pause

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` beside the run; the run waits for it at its end."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _notify_person(self, pause: Pause) -> None:
        """Run ``notify_command`` — as approved, in the checks' environment — with the pause as JSON on stdin;
        its output goes to ``logs/notify.log``; it gets ``NOTIFY_TIMEOUT`` seconds."""
        argv = self.settings.notify_command
        if not self.trust.allows(json.dumps(argv, ensure_ascii=False)):
            return
        decide = f'foreman decide {self.map_path} {pause.node} <OPTION> [--text "your instruction"]'
        payload = {**pause.model_dump(mode="json"), "map": str(self.map_path), "decide": decide}
        stdin = self._write(self.home / "notify" / f"{pause.id}.json", json.dumps(payload, ensure_ascii=False))
        log = self.home / "logs" / "notify.log"
        mark = self._mark(pause.node, "notify")
        child = ChildProcess(argv, self.project_dir, self._check_env(), log, stdin, mark=mark)
        try:
            await child.start()
        except OSError as exc:
            self.emit(RunNoted(note=f"the notify command could not start: {exc}"))
            return
        try:
            await child.wait(NOTIFY_TIMEOUT)
        finally:
            if child.running:
                await child.stop(1.0)

    # ------------------------------------------------------------------------------------- one node

    async def _attach_diff_stat(self, pause: Pause, base: str, head: str) -> None:
        """Add what the node changed (git diff --stat) to a pause's evidence, without blocking the loop."""
        stat = await asyncio.to_thread(self.repo.diff_stat, base, head)
        if stat:
            pause.evidence = (pause.evidence + "\n\n--- diff stat ---\n" + stat).strip()[-8000:]
            self.save()

    def _refresh_statuses(self, changes: dict[str, dict[str, Any]]) -> None:
        """Keep the in-memory map state in step with what was written."""
        model = self.project.doc.model
        if model.state is None:
            model.state = State()
        state = model.state
        for node, change in changes.items():
            entry = state.nodes.get(node)
            if entry is not None and "status" in change:
                entry.status = change["status"]
            elif entry is None and "status" in change:
                state.nodes[node] = NodeState(status=change["status"])

    def _message_path(self, node: str, name: str) -> Path:
        return self.home / "runs" / node / name

    def _send_fix(self, node: str, reason: str, details: str) -> None:
        nr = self.state.node(node)
        if nr.stale:  # verified before: say what changed since
            reason = f"{reason} (It was verified before; since then {nr.stale}.)"
        text = fix_message(reason, details, nr.history)
        path = self._write(self._message_path(node, f"message-{nr.attempt + 1}.md"), text)
        history = [*nr.history, f"attempt {nr.attempt}: {reason}"]
        self.lifecycle.move(node, Phase.RUNNING, pending_message=str(path), history=history)
        self.emit(
            FixTaskSent(
                node=node,
                attempt=nr.attempt + 1,
                reason=reason,
                message_file=str(path),
                resume=bool(self.worker.resumable and nr.session_id),
            )
        )

    async def _commit_map(self, message: str) -> None:
        """Commit the map's state (only its state: a person's uncommitted edit elsewhere in it stays out)."""
        await finish(self.ws.commit_state, message)


def _project_key(repo: Repo) -> str:
    """A short name for the repository, the same in every run of it."""
    return hashlib.sha256(str(repo.common_dir.resolve()).encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class FailedStart:
    """An agent that could not even be started (command not found…); stands in for its result."""

    message: str
    timed_out: bool = False
    exit_code: int | None = None
