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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checks import check_event, run_check
from .commands import INPUT_TICK, Commands
from .context import FailedStart
from .events import (
    AttemptFailed,
    CheckFinished,
    CommitDetected,
    DecisionVerified,
    MergeConflicted,
    NodeMerged,
    NodeRecovered,
    NodeVerified,
    OrphanStopped,
    RunFinished,
    RunNoted,
    RunStarted,
)
from .gitrepo import BRANCH_PREFIX, CommitInfo, RepoError
from .handover import Handover
from .pause_blocks import parse_worker_block
from .pauses import (
    APPROVAL_GATE,
    INTERNAL,
    MERGE_CONFLICT,
    MERGE_FAILED,
    SAME_CHECK_3X,
    WORKER_FAILED,
    WORKER_TIMED_OUT,
    Pause,
    engine_options,
)
from .project import CheckRef
from .prompts import (
    checkpoint_problem,
    worker_prompt,
)
from .review import Reviews
from .runstate import NodeRun, RunLock, RunState
from .scheduler import next_batch, ready_nodes
from .stages import Stages
from .watcher import CommitMonitor


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # "complete" | "paused" | "stopped" | "incomplete" (a node failed by decision) | "failed"
    verified: int
    total: int

    @property
    def exit_code(self) -> int:
        return {"complete": 0, "paused": 3, "stopped": 3, "incomplete": 3}.get(self.status, 1)


__all__ = ["INPUT_TICK", "Outcome", "Supervisor"]


class Supervisor(Commands, Handover, Stages, Reviews):
    """Runs a map to verified code; see the module docstring. ``run()`` once per instance."""

    def _prepare(self) -> None:
        self.lock = RunLock(self.repo.common_dir)  # one foreman per repository, whichever map it runs
        self.lock.acquire()
        saved = self.runs.load()
        if saved is not None:
            self.state = saved
        self._find_left_running()
        for stem, pgid in self.pids.stop_orphans(keep=frozenset(self._taken_over)):
            node = stem.split(".")[0]
            self.emit(OrphanStopped(node=node, pid=pgid, reason="left running by a run that died"))
        for stale in self.project_dir.glob(f".{self.map_path.name}.*.tmp"):
            stale.unlink(missing_ok=True)  # a write cut short by a kill: the map itself was never touched
        if self.repo.abort_unfinished_merge():
            self.emit(
                NodeRecovered(
                    node=None,
                    was="merging",
                    now="clean",
                    reason="a merge interrupted by the last run's end was aborted",
                )
            )
        resumed = saved is not None
        if saved is None:
            self.state = RunState(integration_branch=self.repo.current_branch(), isolation=self.settings.isolation)
        branch = self.repo.current_branch()
        if branch != self.state.integration_branch:
            raise RepoError(
                f"the run integrates into '{self.state.integration_branch}' but '{branch}' is checked out; "
                f"check out '{self.state.integration_branch}' (or remove .foreman/run.json to start over)"
            )
        self._reconcile()
        self._report_taken_over()
        self._note_start()
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

    def _note_start(self) -> None:
        """Tell the person what the run will not do with what it found: uncommitted edits, git's identity."""
        rel_map = self.map_path.relative_to(self.repo.root).as_posix()
        changed = self.repo.changed_paths()
        if rel_map in changed and self._map_edited_beyond_state():
            self.emit(
                RunNoted(
                    note=f"{rel_map} has an uncommitted edit of yours: it stays yours (foreman commits only the "
                    "map's state, over the map as committed)"
                )
            )
        others = [p for p in changed if p != rel_map]
        if others:
            shown = ", ".join(others[:10]) + (f" and {len(others) - 10} more" if len(others) > 10 else "")
            where = (
                f"the workers' worktrees start from {self.state.integration_branch}'s last commit and do not see them"
                if self.state.isolation == "worktree"
                else "the workers share this tree with them"
            )
            self.emit(RunNoted(note=f"uncommitted changes in {shown}; {where}"))
        if self.repo.identity_env:
            self.emit(
                RunNoted(
                    note="git has no user.name/user.email here: foreman's commits and the workers' are made as "
                    "foreman <foreman@localhost> (set yours with git config to use it)"
                )
            )

    def _map_edited_beyond_state(self) -> bool:
        committed = self.repo.file_at("HEAD", self.map_path)
        try:
            head = json.loads(committed or b"{}")
            now = self.store.read()
        except (ValueError, OSError):
            return True
        head.pop("state", None)
        now.pop("state", None)
        return bool(head != now)

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
            if nr.phase == "running" and node not in self._taken_over:
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

    def _scheduling_blocked(self) -> bool:
        """No new node starts while stopping, after a person halted the run or held scheduling, or while a
        structural edit of the map waits for a decision (running nodes finish either way)."""
        map_pause = self.state.nodes.get("map")
        held = self._stopping or self.halted or self.held
        return held or (map_pause is not None and map_pause.phase == "paused")

    def _start_ready(self) -> None:
        if self._scheduling_blocked():
            return
        blocked = {n for n, r in self.state.nodes.items() if r.phase in ("paused", "failed")} | self._resetting
        blocked |= self._held_by_decisions()
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
            self.save()
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
            if nr.phase == "integrating" and nr.feedback and nr.base is not None:
                self._send_fix(node, "The person left feedback on this node.", "\n".join(nr.feedback))
                nr.phase = "running"
                continue
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

    async def _attempt(self, node: str) -> str:
        """One worker attempt: "committed", "retry" or "paused"."""
        nr = self.state.node(node)
        if node in self._taken_over:  # its worker was left running when foreman quit: wait for it
            return await self._take_over(node, self._taken_over.pop(node))
        nr.attempt += 1
        nr.phase = "running"
        attempt = nr.attempt
        self.save()
        tree = self.tree_of(node)
        message = Path(nr.pending_message) if nr.pending_message else None
        text = await asyncio.to_thread(worker_prompt, self.project, node, tree, self.python.describe())
        if message is not None and not (self.worker.resumable and nr.session_id):
            text += "\n\n" + message.read_text(encoding="utf-8")  # a fresh run carries the history itself
        if nr.feedback:
            notes = "\n".join(f"- {note}" for note in nr.feedback)
            text += f"\n\n## Feedback from the person (take it into account)\n{notes}\n"
            if message is not None:
                message.write_text(message.read_text(encoding="utf-8") + f"\n\n## Feedback\n{notes}\n")
            nr.feedback.clear()
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
        if isinstance(result, FailedStart):
            reason = f"the agent could not start: {result.message}"
        elif result.timed_out:
            reason = f"timed out after {self.settings.timeout:g}s and was stopped"
        else:
            reason = f"exited with status {result.exit_code} without a commit"
        said = [*report.lines, *report.final_text.splitlines()]  # a block may be in any message, or the result
        return self._attempt_outcome(node, head_before, said, reason)

    async def _take_over(self, node: str, record: dict[str, Any]) -> str:
        nr = self.state.node(node)
        head_before = nr.head
        assert self._monitor is not None
        tracking_branch = BRANCH_PREFIX + node if self.state.isolation == "worktree" else None
        self._monitor.track(node, nr.head or nr.base or "HEAD", tracking_branch)
        try:
            lines = await self._await_left_worker(node, record)
            await self._monitor.scan("exit")
        finally:
            self._monitor.untrack(node)
        return self._attempt_outcome(node, head_before, lines, "ended without a commit while foreman was away")

    def _attempt_outcome(self, node: str, head_before: str | None, answer: list[str], reason: str) -> str:
        """After a worker ended: "committed", "paused" (it printed a hard-pause block, or too many attempts
        went by without a commit) or "retry"."""
        nr = self.state.node(node)
        attempt = nr.attempt
        committed = bool(nr.head and nr.head != head_before)
        asked = parse_worker_block(answer, node)
        # A worker that asked for a person is never dispatched again before one decides. With a commit, only a
        # complete block counts (a header alone may be the protocol quoted back; the commit is work done).
        if asked is not None and (asked.options or not committed):
            asked.node = node
            asked.evidence = "\n".join(answer[-60:])
            asked.options = asked.options or engine_options(asked.trigger)  # an unreadable block: ours
            if committed:
                nr.no_commit = 0
                self.save()
            self._pause(node, asked.trigger, asked.problem, pause=asked)
            return "paused"
        if committed:
            nr.no_commit = 0
            nr.pending_message = None
            self.save()
            return "committed"
        tail = "\n".join(answer[-60:])
        nr.no_commit += 1
        nr.history.append(f"attempt {attempt}: {reason}")
        self.save()
        self.emit(AttemptFailed(node=node, attempt=attempt, reason=reason))
        if nr.no_commit > self.settings.retries:
            trigger = WORKER_TIMED_OUT if "timed out" in reason else WORKER_FAILED
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
                reported = {True: "pass", False: "fail"}.get(value) if value is not None else None
                reason = f"no command; the worker reports {reported} in its checkpoint" if reported else "no command"
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
            self.emit(check_event(node, "L1", key, check, outcome, nr.attempt))
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
            gates = [
                c
                for c in self.project.node_checks(node)
                if c.item.approve and f"approve:{c.phase}[{c.index}]" not in nr.accepted
            ]
            if gates:
                names = "; ".join(f"{c.phase}[{c.index}] {c.item.desc}" for c in gates)
                nr.accepted.extend(f"approve:{c.phase}[{c.index}]" for c in gates)  # asked once per gate
                self._pause(node, APPROVAL_GATE, f"a person must approve: {names}")
                return None
            self.save()
            return True
        worst = max(failures, key=lambda f: nr.check_failures[f[0]])
        if nr.check_failures[worst[0]] >= 3:
            evidence = "\n\n".join(f"--- failure {i + 1} ---\n{o}" for i, o in enumerate(nr.failure_outputs[worst[0]]))
            self._pause(
                node,
                SAME_CHECK_3X,
                f"{worst[0]} failed {nr.check_failures[worst[0]]} times in a row: {worst[1]}",
                evidence,
            )
            return None
        details = "\n\n".join(f"## {d}\n```\n{e.rstrip()}\n```" if e else f"## {d}" for _, d, e in failures)
        self._send_fix(node, "Some checks failed.", details)
        return False

    async def _integrate(self, node: str) -> None:
        nr = self.state.node(node)
        async with self._merge_lock:
            if self.state.isolation == "worktree" and nr.base is not None:
                outcome = await asyncio.to_thread(self.repo.merge, node)
                if outcome.kind == "conflict":
                    self.emit(MergeConflicted(node=node, branch=BRANCH_PREFIX + node, files=list(outcome.conflicts)))
                    self._pause(
                        node,
                        MERGE_CONFLICT,
                        f"merging {BRANCH_PREFIX}{node} conflicts in {', '.join(outcome.conflicts)}; "
                        f"the merge was aborted. To merge by hand: cd {self.repo.root} && git merge "
                        f"{BRANCH_PREFIX}{node}, resolve, commit, then choose A.",
                        outcome.message,
                    )
                    return
                if outcome.kind == "refused":
                    self._pause(
                        node,
                        MERGE_FAILED,
                        f"git would not merge {BRANCH_PREFIX}{node} into {self.state.integration_branch}: "
                        f"{outcome.message.splitlines()[-1] if outcome.message else 'no reason given'}",
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
                if self._decision_has_checks(decision):
                    continue  # verified by its own stage, once its checks pass (stages.py)
                if self.project.status_of(decision) != "verified" and self.graph.decision_verified(decision, verified):
                    changes[decision] = {"status": "verified"}
                    newly.append((decision, feeders))
            await asyncio.to_thread(self._map_state, changes)
            await asyncio.to_thread(self._commit_map_now, f"foreman: {node} verified")
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

    # ----------------------------------------------------------------------------------------- stages
