"""The supervisor: runs a map to verified code.

It schedules ready process nodes (never two sharing a file, at most ``max_parallel``), gives each one a
tree (a git worktree on ``foreman/<id>``, or the main tree in ``shared`` mode), runs the worker agent,
detects its commit, runs the node's L1 checks and its checkpoint check, has the reviewer judge the code,
merges verified work one node at a time, and keeps the map's state and its own run state on disk after
every step, so a run killed at any moment resumes where it stopped. Region (L2) and end (L3, benchmark)
stages run as soon as their nodes are verified. It speaks only through events (``events.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..agents.presets import Agent, AgentContext, make_agent
from ..config import Settings
from ..map.model import NodeState, State
from ..map.store import MapStore, atomic_write, foreman_dir
from .checks import CheckOutcome, run_check
from .events import (
    AgentReported,
    AttemptFailed,
    BenchmarkRan,
    CheckFinished,
    CommitDetected,
    DecisionVerified,
    Event,
    EventLog,
    FixTaskSent,
    MergeConflicted,
    NodeMerged,
    NodePaused,
    NodeRecovered,
    NodeVerified,
    OrphanStopped,
    ReviewFinished,
    RunFinished,
    RunStarted,
    ScopeViolated,
    StageFinished,
    WorkerExited,
    WorkerStarted,
)
from .gitrepo import BRANCH_PREFIX, CommitInfo, Repo
from .process import ChildProcess
from .project import CheckRef, Project
from .prompts import (
    checkpoint_problem,
    code_files_text,
    fix_message,
    parse_verdict,
    review_prompt,
    worker_prompt,
)
from .runstate import NodeRun, Pause, PidFiles, RunLock, RunState, RunStore
from .scheduler import Wait, next_batch, ready_nodes
from .watcher import CommitMonitor

PAUSE_MARKERS = ("HARD PAUSE:", "硬暂停：", "硬暂停:")
TEST_PATH = re.compile(r"(^|/)(tests?/|test_[^/]*$|[^/]*_test\.[a-z]+$)")


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # "complete" | "paused" | "failed" | "stopped"
    verified: int
    total: int

    @property
    def exit_code(self) -> int:
        return {"complete": 0, "paused": 3, "stopped": 3}.get(self.status, 1)


class Supervisor:
    def __init__(self, project: Project, settings: Settings | None = None, *, use_fs_events: bool = True) -> None:
        self.project = project
        self.settings = settings or project.settings
        self.graph = project.graph
        self.map_path = project.doc.path or Path("algorithm-map.json").resolve()
        self.project_dir = self.map_path.parent
        self.home = foreman_dir(self.project_dir)
        self.events = EventLog(self.home / "events.jsonl")
        self.store = MapStore(self.map_path)
        self.runs = RunStore(self.home)
        self.lock = RunLock(self.home)
        self.pids = PidFiles(self.home)
        self.worker: Agent = make_agent(self.settings.worker)
        self.reviewer: Agent = make_agent(self.settings.reviewer)
        self.use_fs_events = use_fs_events
        self.state = RunState()
        self.waits: list[Wait] = []
        self.children: dict[str, ChildProcess] = {}
        self.on_output: Callable[[str, str, str], None] | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._merge_lock = asyncio.Lock()
        self._stopping = False
        self._repo: Repo | None = None
        self._monitor: CommitMonitor | None = None

    # --------------------------------------------------------------------------------------- plumbing

    @property
    def repo(self) -> Repo:
        assert self._repo is not None
        return self._repo

    def emit(self, event: Event) -> Event:
        return self.events.emit(event)

    def save(self) -> None:
        self.runs.save(self.state)

    def _rel_project(self) -> Path:
        return self.project_dir.relative_to(self.repo.root)

    def tree_of(self, node_id: str) -> Path:
        """The project folder as the node's worker sees it."""
        if self.state.isolation == "worktree" and self.state.node(node_id).base is not None:
            return self.home / "worktrees" / node_id / self._rel_project()
        return self.project_dir

    def _worktree_root(self, node_id: str) -> Path:
        return self.home / "worktrees" / node_id

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        # Checks and agents run with the Python environment foreman runs in (`python` = this interpreter's).
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        for key in [k for k in env if k.startswith("FOREMAN_")]:
            del env[key]
        return env

    def _node_files(self, node_id: str) -> tuple[str, ...]:
        return self.project.owned[node_id].files

    def _write(self, path: Path, text: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text.encode("utf-8"))
        return path

    def _map_state(self, changes: dict[str, dict[str, Any]]) -> None:
        self.store.set_states(changes)

    def request_stop(self) -> None:
        """Stop scheduling and stop running workers; the run ends "stopped" and resumes next time."""
        self._stopping = True
        for task in self._tasks.values():
            task.cancel()

    # ---------------------------------------------------------------------------------------- startup

    def _prepare(self) -> None:
        self.lock.acquire()
        for stem, pgid in self.pids.stop_orphans():
            node = stem.split(".")[0]
            self.emit(OrphanStopped(node=node, pid=pgid, reason="left running by a run that died"))
        self._repo = Repo(self.project_dir)
        saved = self.runs.load()
        resumed = saved is not None
        if saved is not None:
            self.state = saved
        else:
            self.state = RunState(integration_branch=self.repo.current_branch(), isolation=self.settings.isolation)
        branch = self.repo.current_branch()
        if branch != self.state.integration_branch:
            raise RuntimeError(
                f"the run integrates into '{self.state.integration_branch}' but '{branch}' is checked out; "
                f"check out '{self.state.integration_branch}' (or remove .foreman/run.json to start over)"
            )
        self._reconcile()
        self.save()
        self.emit(
            RunStarted(
                map=str(self.map_path),
                isolation=self.state.isolation,
                max_parallel=self.settings.max_parallel,
                integration_branch=self.state.integration_branch,
                resumed=resumed,
            )
        )

    def _reconcile(self) -> None:
        """Make the run state agree with the map's state and with git after a restart (or a crash)."""
        for node in self.graph.process_order:
            nr = self.state.node(node)
            status = self.project.status_of(node)
            if status == "verified":
                if nr.phase != "verified":
                    nr.phase = "verified"
                continue
            if nr.phase == "verified":  # the map says otherwise (a reset): start over
                self.state.nodes[node] = nr = NodeRun()
            if nr.phase == "pending" and status == "implemented" and nr.base is None:
                nr.phase = "implemented"  # implemented outside foreman: check and review it in the main tree
                self.emit(
                    NodeRecovered(
                        node=node,
                        was="pending",
                        now="implemented",
                        reason="the map says implemented; checks and review next",
                    )
                )
            if nr.phase == "running":
                tip = self._node_tip(node)
                if tip and tip != nr.head and tip != nr.base:
                    nr.head = tip
                    nr.phase = "implemented"
                    self.emit(
                        NodeRecovered(
                            node=node, was="running", now="implemented", reason=f"its commit {tip[:10]} is there"
                        )
                    )
                else:
                    nr.phase = "pending"
                    self.emit(
                        NodeRecovered(
                            node=node,
                            was="running",
                            now="pending",
                            reason="no commit from the interrupted attempt; dispatching again",
                        )
                    )

    def _node_tip(self, node: str) -> str | None:
        nr = self.state.node(node)
        if nr.base is None:
            return None
        if self.state.isolation == "worktree":
            return self.repo.branch_head(BRANCH_PREFIX + node)
        found = self.repo.trailer_commits(nr.base, node)
        return found[0].sha if found else None

    # ------------------------------------------------------------------------------------------- loop

    def _verified(self) -> set[str]:
        return {n for n in self.graph.process_order if self.state.node(n).phase == "verified"}

    def _start_ready(self) -> None:
        if self._stopping:
            return
        blocked = {n for n, r in self.state.nodes.items() if r.phase in ("paused", "failed")}
        ready = ready_nodes(self.graph, self._verified(), exclude=set(self._tasks) | blocked)
        batch = next_batch(
            ready, self.project.files, running=list(self._tasks), max_parallel=self.settings.max_parallel
        )
        self.waits = batch.waits
        for node in batch.start:
            self._tasks[node] = asyncio.create_task(self._drive(node), name=f"node:{node}")

    async def run(self) -> Outcome:
        self._prepare()
        self._monitor = CommitMonitor(self.repo, self._on_commit, self.settings.poll, self.use_fs_events)
        monitor_task = asyncio.create_task(self._monitor.run(), name="commit-monitor")
        try:
            await self._run_stages()
            while True:
                self._start_ready()
                if not self._tasks:
                    break
                done, _ = await asyncio.wait(self._tasks.values(), return_when=asyncio.FIRST_COMPLETED)
                for node, task in list(self._tasks.items()):
                    if task in done:
                        del self._tasks[node]
                        if not task.cancelled() and task.exception() is not None:
                            self._pause(
                                node, "internal error", f"{type(task.exception()).__name__}: {task.exception()}"
                            )
                if not self._stopping:
                    await self._run_stages()
            return self._finish()
        finally:
            for task in self._tasks.values():
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            self._monitor.close()
            with contextlib.suppress(asyncio.CancelledError):
                await monitor_task
            self.save()
            self.events.close()
            self.lock.release()

    def _finish(self) -> Outcome:
        verified = self._verified()
        total = len(self.graph.process_order)
        paused = sorted(n for n, r in self.state.nodes.items() if r.phase == "paused")
        failed_stage = any(v == "failed" for v in self.state.stages.values())
        if self._stopping:
            status = "stopped"
        elif len(verified) == total and not failed_stage and self.state.stages.get("end") == "passed":
            status = "complete"
        elif paused or failed_stage:
            status = "paused"
        else:
            status = "failed"
        self.save()
        self.emit(RunFinished(outcome=status, verified=len(verified), total=total, paused=paused))
        return Outcome(status, len(verified), total)

    def _pause(self, node: str, trigger: str, reason: str, evidence: str = "") -> None:
        nr = self.state.node(node)
        nr.phase = "paused"
        nr.pause = Pause(trigger=trigger, reason=reason, evidence=evidence[-8000:])
        self.save()
        self.emit(NodePaused(node=node, trigger=trigger, reason=reason, evidence=evidence[-2000:]))

    # ------------------------------------------------------------------------------------- one node

    async def _drive(self, node: str) -> None:
        nr = self.state.node(node)
        await self._prepare_tree(node)
        while True:
            if nr.phase in ("pending", "running"):
                result = await self._attempt(node)
                if result == "retry":
                    continue
                if result == "paused":
                    return
                nr.phase = "implemented"
                self.save()
                await asyncio.to_thread(self._map_state, {node: {"status": "implemented"}})
            if nr.phase == "implemented":
                checked = await self._l1(node)
                if checked is None:
                    return
                if not checked:
                    nr.phase = "running"
                    continue
                nr.phase = "reviewing"
                self.save()
            if nr.phase == "reviewing":
                verdict = await self._review(node)
                if verdict == "paused":
                    return
                if verdict == "fix":
                    nr.phase = "running"
                    continue
                nr.phase = "integrating"
                self.save()
            if nr.phase == "integrating":
                await self._integrate(node)
            return

    async def _prepare_tree(self, node: str) -> None:
        nr = self.state.node(node)
        if nr.phase in ("implemented", "reviewing", "integrating") and nr.base is None:
            return  # implemented in the main tree before foreman: nothing to set up
        if self.state.isolation == "worktree":
            async with self._merge_lock:  # worktree creation and merges both touch the main repository
                start = await asyncio.to_thread(self.repo.head)
                base = await asyncio.to_thread(self.repo.add_worktree, node, self._worktree_root(node), start)
            if nr.base is None:
                nr.base = base
        elif nr.base is None:
            nr.base = await asyncio.to_thread(self.repo.head)
        self.save()

    def _on_commit(self, node: str, commit: CommitInfo, detected_by: str, detected_at: float) -> None:
        nr = self.state.node(node)
        nr.head = commit.sha
        self.save()
        branch = BRANCH_PREFIX + node if self.state.isolation == "worktree" else self.state.integration_branch
        self.emit(
            CommitDetected(
                node=node,
                time=detected_at,
                sha=commit.sha,
                branch=branch,
                subject=commit.subject,
                attempt=nr.attempt,
                committed_at=commit.committed_at,
                detected_by=detected_by,
            )
        )

    def _message_path(self, node: str, name: str) -> Path:
        return self.home / "runs" / node / name

    async def _run_agent(
        self,
        node: str,
        agent: Agent,
        role: str,
        attempt: int,
        prompt: Path,
        message: Path | None,
        log: Path,
        timeout: float,
    ) -> tuple[Any, Any]:
        """Start one agent process, wait for it (stopping it at ``timeout``), and return (result, report)."""
        nr = self.state.node(node)
        tree = self.tree_of(node)
        ctx = AgentContext(
            node,
            role,
            attempt,
            self.map_path,
            tree,
            prompt,
            message,
            nr.session_id if role == "worker" else None,
            self._node_files(node),
        )
        invocation = agent.command(ctx)
        env = self._env() | {
            "FOREMAN_NODE_ID": node,
            "FOREMAN_MAP": str(self.map_path),
            "FOREMAN_WORKDIR": str(tree),
            "FOREMAN_PROMPT_FILE": str(prompt),
            "FOREMAN_ATTEMPT": str(attempt),
            "FOREMAN_ROLE": role,
        }
        if message is not None:
            env["FOREMAN_MESSAGE_FILE"] = str(message)
        parser = agent.parser()

        def on_line(stream: str, line: str) -> None:
            parser.feed(stream, line)
            if self.on_output is not None:
                self.on_output(node, stream, line)

        child = ChildProcess(invocation.argv, tree, env, log, invocation.stdin, on_line=on_line)
        key = f"{node}.{role}"
        try:
            pid = await child.start()
        except OSError as exc:
            return _FailedStart(str(exc)), parser.report
        self.children[key] = child
        self.pids.record(node, role, pid, invocation.argv)
        self.emit(
            WorkerStarted(
                node=node,
                role=role,
                attempt=attempt,
                pid=pid,
                argv=invocation.argv,
                workdir=str(tree),
                log=str(log),
                resume=invocation.resumed,
            )
        )
        try:
            result = await child.wait(timeout)
        except asyncio.CancelledError:
            await asyncio.shield(child.stop(self.settings.stop_grace))
            raise
        finally:
            self.children.pop(key, None)
            self.pids.clear(node, role)
        self.emit(
            WorkerExited(
                node=node,
                role=role,
                attempt=attempt,
                exit_code=result.exit_code,
                duration=result.duration,
                timed_out=result.timed_out,
                stopped=result.stopped,
            )
        )
        return result, parser.report

    async def _attempt(self, node: str) -> str:
        """One worker attempt: "committed", "retry" or "paused"."""
        nr = self.state.node(node)
        nr.attempt += 1
        nr.phase = "running"
        attempt = nr.attempt
        self.save()
        tree = self.tree_of(node)
        message = Path(nr.pending_message) if nr.pending_message else None
        text = await asyncio.to_thread(worker_prompt, self.project, node, tree)
        if message is not None and not (self.worker.resumable and nr.session_id):
            text += "\n\n" + message.read_text(encoding="utf-8")  # a fresh run carries the history itself
        prompt = self._write(self._message_path(node, f"prompt-{attempt}.md"), text)
        head_before = nr.head
        assert self._monitor is not None
        tracking_branch = BRANCH_PREFIX + node if self.state.isolation == "worktree" else None
        self._monitor.track(node, nr.head or nr.base or "HEAD", tracking_branch)
        log = self.home / "logs" / node / f"{attempt}.log"
        try:
            result, report = await self._run_agent(
                node, self.worker, "worker", attempt, prompt, message, log, self.settings.timeout
            )
            await self._monitor.scan("exit")
        finally:
            self._monitor.untrack(node)
        if report.session_id:
            nr.session_id = report.session_id
        if report.cost_usd:
            nr.cost_usd += float(report.cost_usd)
        if report.session_id or report.cost_usd or report.steps:
            self.emit(
                AgentReported(
                    node=node,
                    attempt=attempt,
                    session_id=report.session_id,
                    cost_usd=report.cost_usd,
                    turns=report.turns,
                    steps=len(report.steps),
                    files=report.files,
                )
            )
        if nr.head and nr.head != head_before:
            nr.no_commit = 0
            nr.pending_message = None
            self.save()
            return "committed"
        tail = "\n".join(report.lines[-60:]) if report.lines else ""
        block = _pause_block(report.lines)
        if block:
            self._pause(node, "worker asked", block.splitlines()[0], block)
            return "paused"
        if isinstance(result, _FailedStart):
            reason = f"the agent could not start: {result.message}"
        elif result.timed_out:
            reason = f"timed out after {self.settings.timeout:g}s and was stopped"
        else:
            reason = f"exited with status {result.exit_code} without a commit"
        nr.no_commit += 1
        nr.history.append(f"attempt {attempt}: {reason}")
        self.save()
        self.emit(AttemptFailed(node=node, attempt=attempt, reason=reason))
        if nr.no_commit > self.settings.retries:
            trigger = "worker timed out" if "timed out" in reason else "worker failed"
            self._pause(node, trigger, f"{nr.no_commit} attempt(s) without a commit; last: {reason}", tail)
            return "paused"
        return "retry"

    def _checkpoint_value(self, tree: Path, node: str, check: CheckRef) -> bool | None:
        """A worker may self-report checks without a command in its checkpoint: {"verify": {"core": [...]}}."""
        try:
            data = json.loads((tree / "_checkpoints" / f"{node}.json").read_text(encoding="utf-8"))
            value = data.get("verify", {}).get(check.phase, [])[check.index]
        except (OSError, ValueError, AttributeError, IndexError, TypeError):
            return None
        return value if isinstance(value, bool) else None

    async def _l1(self, node: str) -> bool | None:
        """Run the node's L1 checks and its checkpoint check. True: all pass; False: a fix task was sent;
        None: the node paused (the same check failed three times in a row)."""
        nr = self.state.node(node)
        tree = self.tree_of(node)
        content = self.project.doc.content(node)
        verify = content.verify if content is not None else None
        results: dict[str, list[bool | None]] = {
            phase: [None] * len(getattr(verify, phase) if verify else []) for phase in ("pre", "core", "post")
        }
        failures: list[tuple[str, str, str]] = []  # (key, description, evidence)
        env = self._env()
        for check in self.project.node_checks(node):
            if check.level != "L1":
                continue
            key = f"{check.phase}[{check.index}]"
            if not check.runnable:
                value = self._checkpoint_value(tree, node, check)
                results[check.phase][check.index] = value
                reason = "no command; self-reported in the checkpoint" if value is not None else "no command"
                self.emit(
                    CheckFinished(
                        node=node,
                        level="L1",
                        check=key,
                        desc=check.item.desc,
                        status="skipped",
                        reason=reason,
                        attempt=nr.attempt,
                    )
                )
                continue
            log = self.home / "logs" / node / f"check-{nr.attempt}-{check.phase}{check.index}.log"
            outcome = await run_check(check.item.cmd or "", tree, env, self.settings.check_timeout, log)
            results[check.phase][check.index] = outcome.status == "pass"
            self.emit(_check_event(node, "L1", key, check, outcome, nr.attempt))
            if outcome.status == "fail":
                failures.append(
                    (key, f"`{check.item.cmd}` ({check.item.desc}) failed: {outcome.reason}", outcome.output_tail)
                )
        problem = await asyncio.to_thread(checkpoint_problem, tree, node)
        self.emit(
            CheckFinished(
                node=node,
                level="L1",
                check="checkpoint",
                desc="the node's checkpoint",
                status="fail" if problem else "pass",
                reason=problem or "",
                attempt=nr.attempt,
            )
        )
        if problem:
            failures.append(("checkpoint", problem, ""))
        failed_keys = {key for key, _, _ in failures}
        for key in set(nr.check_failures) | failed_keys:
            if key in failed_keys:
                nr.check_failures[key] = nr.check_failures.get(key, 0) + 1
                outputs = nr.failure_outputs.setdefault(key, [])
                outputs.append(next(e or d for k, d, e in failures if k == key))
                del outputs[:-3]
            else:
                nr.check_failures.pop(key, None)
                nr.failure_outputs.pop(key, None)
        await asyncio.to_thread(self._map_state, {node: {"verify_results": results}})
        if not failures:
            self.save()
            return True
        worst = max(failures, key=lambda f: nr.check_failures[f[0]])
        if nr.check_failures[worst[0]] >= 3:
            evidence = "\n\n".join(f"--- failure {i + 1} ---\n{o}" for i, o in enumerate(nr.failure_outputs[worst[0]]))
            self._pause(
                node,
                "#1 same L1 check failed 3 times",
                f"{worst[0]} failed {nr.check_failures[worst[0]]} times in a row: {worst[1]}",
                evidence,
            )
            return None
        details = "\n\n".join(f"## {d}\n```\n{e.rstrip()}\n```" if e else f"## {d}" for _, d, e in failures)
        self._send_fix(node, "Some checks failed.", details)
        return False

    def _send_fix(self, node: str, reason: str, details: str) -> None:
        nr = self.state.node(node)
        text = fix_message(reason, details, nr.history)
        path = self._write(self._message_path(node, f"message-{nr.attempt + 1}.md"), text)
        nr.pending_message = str(path)
        nr.history.append(f"attempt {nr.attempt}: {reason}")
        self.save()
        self.emit(
            FixTaskSent(
                node=node,
                attempt=nr.attempt + 1,
                reason=reason,
                message_file=str(path),
                resume=bool(self.worker.resumable and nr.session_id),
            )
        )

    def _scope(self, node: str) -> tuple[list[str], list[str]]:
        """(owned files that exist, files the node changed outside its scope), project-relative."""
        nr = self.state.node(node)
        owned = list(self._node_files(node))
        outside: list[str] = []
        if nr.base and nr.head and nr.base != nr.head:
            rel = self._rel_project().as_posix()
            prefix = "" if rel == "." else rel + "/"
            if self.state.isolation == "worktree":
                changed = self.repo.changed_files(nr.base, nr.head)
            else:
                changed = self.repo.changed_files_of([c.sha for c in self.repo.trailer_commits(nr.base, node)])
            allowed = set(owned) | {f"_checkpoints/{node}.json"}
            for path in changed:
                local = path[len(prefix) :] if path.startswith(prefix) else path
                if local not in allowed and not TEST_PATH.search(local):
                    outside.append(local)
        return owned, outside

    async def _review(self, node: str) -> str:
        """Run the reviewer. "clean", "fix" (a fix task was sent) or "paused"."""
        nr = self.state.node(node)
        for _ in range(2):  # one retry when the reviewer gives no verdict
            nr.review_round += 1
            round_ = nr.review_round
            if round_ > self.settings.review_rounds + 1:
                self._pause(node, "review rounds exhausted", f"{round_ - 1} reviews without CLEAN")
                return "paused"
            owned, outside = await asyncio.to_thread(self._scope, node)
            if outside:
                self.emit(ScopeViolated(node=node, files=outside))
            content = self.project.doc.content(node)
            code = await asyncio.to_thread(code_files_text, self.tree_of(node), owned, outside)
            prompt = self._write(
                self._message_path(node, f"review-{round_}.md"),
                review_prompt(node, content.how_text if content else "", code),
            )
            log = self.home / "logs" / node / f"review-{round_}.log"
            _, report = await self._run_agent(
                node, self.reviewer, "reviewer", round_, prompt, None, log, self.settings.timeout
            )
            verdict, text = parse_verdict(report.text())
            self.save()
            self.emit(ReviewFinished(node=node, round=round_, verdict=verdict, text=text))
            if verdict == "CLEAN":
                return "clean"
            if verdict == "FLAG":
                if round_ >= self.settings.review_rounds:
                    self._pause(node, "review rounds exhausted", f"still flagged after {round_} reviews: {text}")
                    return "paused"
                self._send_fix(node, "The reviewer flagged the code.", text)
                return "fix"
        self._pause(
            node, "review failed", "the reviewer gave no CLEAN/FLAG verdict twice", "\n".join(report.lines[-40:])
        )
        return "paused"

    async def _integrate(self, node: str) -> None:
        nr = self.state.node(node)
        async with self._merge_lock:
            if self.state.isolation == "worktree" and nr.base is not None:
                outcome = await asyncio.to_thread(self.repo.merge, node)
                if not outcome.merged:
                    self.emit(MergeConflicted(node=node, branch=BRANCH_PREFIX + node, files=list(outcome.conflicts)))
                    self._pause(
                        node,
                        "merge conflict",
                        f"merging {BRANCH_PREFIX}{node} conflicts in {', '.join(outcome.conflicts) or '?'}; "
                        "the merge was aborted",
                        outcome.message,
                    )
                    return
                self.emit(NodeMerged(node=node, branch=BRANCH_PREFIX + node, sha=outcome.sha))
            nr.phase = "verified"
            self.save()
            verified = self._verified()
            changes: dict[str, dict[str, Any]] = {node: {"status": "verified"}}
            newly = []
            for decision, feeders in self.graph.decision_feeders.items():
                if self.project.status_of(decision) != "verified" and self.graph.decision_verified(decision, verified):
                    changes[decision] = {"status": "verified"}
                    newly.append((decision, feeders))
            await asyncio.to_thread(self._map_state, changes)
            await asyncio.to_thread(self.repo.commit_paths, [self.map_path], f"foreman: {node} verified")
            self._refresh_statuses(changes)
        for decision, feeders in newly:
            self.emit(DecisionVerified(node=decision, feeders=list(feeders)))
        lines = []
        for region in self.graph.regions_of(node):
            done = sum(n in verified for n in region.process_nodes)
            lines.append(f'Region "{region.label}": {done}/{len(region.process_nodes)} verified')
        self.emit(NodeVerified(node=node, regions=lines))
        if self.state.isolation == "worktree" and nr.base is not None and not self.settings.keep_worktrees:
            async with self._merge_lock:
                await asyncio.to_thread(self.repo.remove_worktree, node, self._worktree_root(node))

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

    # ----------------------------------------------------------------------------------------- stages

    async def _run_checks(self, owner: str, level: str, checks: list[CheckRef]) -> list[str]:
        """Run stage checks in the main tree; returns the failed check names."""
        failed = []
        env = self._env()
        results: dict[str, dict[str, list[bool | None]]] = {}
        for check in checks:
            name = f"{check.owner} {check.phase}[{check.index}]"
            if not check.runnable:
                self.emit(
                    CheckFinished(
                        node=owner, level=level, check=name, desc=check.item.desc, status="skipped", reason="no command"
                    )
                )
                continue
            log = (
                self.home / "logs" / owner.replace(":", "_") / f"{level}-{check.owner.replace(':', '_')}-"
                f"{check.phase}{check.index}.log"
            )
            outcome = await run_check(check.item.cmd or "", self.project_dir, env, self.settings.check_timeout, log)
            self.emit(_check_event(owner, level, name, check, outcome))
            if outcome.status == "fail":
                failed.append(name)
            if not check.owner.startswith("region:"):
                current = self._current_results(check.owner)
                current[check.phase][check.index] = outcome.status == "pass"
                results[check.owner] = current
        if results:
            await asyncio.to_thread(self._map_state, {n: {"verify_results": r} for n, r in results.items()})
        return failed

    def _current_results(self, node: str) -> dict[str, list[bool | None]]:
        raw = self.store.read().get("state", {}).get("nodes", {}).get(node, {}).get("verify_results", {})
        content = self.project.doc.content(node)
        verify = content.verify if content is not None else None
        out: dict[str, list[bool | None]] = {}
        for phase in ("pre", "core", "post"):
            size = len(getattr(verify, phase)) if verify else 0
            values = list(raw.get(phase, []))[:size]
            out[phase] = values + [None] * (size - len(values))
        return out

    async def _run_stages(self) -> None:
        verified = self._verified()
        for region in self.graph.regions:
            key = f"region:{region.key}"
            if key in self.state.stages or not self.graph.region_complete(region, verified):
                continue
            checks = self.project.region_checks(region.index)
            failed = await self._run_checks(key, "L2", checks)
            self.state.stages[key] = "failed" if failed else "passed"
            self.save()
            self.emit(StageFinished(node=key, stage="L2", passed=not failed, checks=len(checks), failed=failed))
            await self._commit_map(f"foreman: L2 {'failed' if failed else 'passed'} for region {region.label}")
            if failed:
                self._pause(key, "L2 failed", f'region "{region.label}": {", ".join(failed)} failed')
        process = self.graph.process_order
        if process and len(verified) == len(process) and "end" not in self.state.stages:
            checks = self.project.end_checks()
            failed = await self._run_checks("end", "L3", checks)
            bench_ok = await self._benchmark()
            self.state.stages["end"] = "failed" if failed or not bench_ok else "passed"
            self.save()
            self.emit(
                StageFinished(
                    node="end",
                    stage="L3",
                    passed=not failed and bench_ok,
                    checks=len(checks),
                    failed=failed + ([] if bench_ok else ["benchmark"]),
                )
            )
            await self._commit_map(f"foreman: L3 {'failed' if failed or not bench_ok else 'passed'}")
            if failed or not bench_ok:
                self._pause("end", "L3 failed", ", ".join(failed + ([] if bench_ok else ["benchmark"])) + " failed")

    async def _commit_map(self, message: str) -> None:
        async with self._merge_lock:
            await asyncio.to_thread(self.repo.commit_paths, [self.map_path], message)

    async def _benchmark(self) -> bool:
        bench = self.project.doc.model.meta.benchmark
        if bench is None or not bench.cmd:
            return True
        log = self.home / "logs" / "end" / "benchmark.log"
        outcome = await run_check(bench.cmd, self.project_dir, self._env(), self.settings.check_timeout, log)
        value = _last_number(outcome.output_tail)
        passed = outcome.status == "pass"
        if passed and bench.known_optimal is not None:
            passed = value is not None and abs(value - bench.known_optimal) <= 1e-6 * max(1.0, abs(bench.known_optimal))
        self.emit(
            BenchmarkRan(
                node="end",
                cmd=bench.cmd,
                passed=passed,
                value=value,
                known_optimal=bench.known_optimal,
                output_tail=outcome.output_tail[-2000:],
            )
        )
        return passed


def _check_event(
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


@dataclass(frozen=True, slots=True)
class _FailedStart:
    message: str
    timed_out: bool = False
    exit_code: int | None = None


def _pause_block(lines: list[str]) -> str:
    for i, line in enumerate(lines):
        if line.strip().startswith(PAUSE_MARKERS):
            return "\n".join(lines[i : i + 12]).strip()
    return ""


def _last_number(text: str) -> float | None:
    """The benchmark's value: the last line of its output, when that line is a number."""
    for line in reversed(text.strip().splitlines()):
        try:
            return float(line.strip())
        except ValueError:
            return None
    return None
