"""What each phase of a node's life does (``lifecycle.py`` has the phases and the moves between them).

Each step runs the side effect its phase stands for and moves the node on; the supervisor's ``_drive`` calls
the step of whatever phase the node is in until it pauses or is verified:

    pending / running → ``_attempt``   one worker attempt; its commit → checking
    checking          → ``_check``     L1 checks and the checkpoint → reviewing, or a fix task → running
    reviewing         → ``_review``    (review.py) CLEAN → merging, FLAG → a fix task → running
    merging           → ``_merge``     merge ``foreman/<id>`` → merged (a conflict, a refusal: paused)
    merged            → ``_record``    the map says verified, committed → verified; then the tree goes
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from ..map.files import read_inside
from .calls import Calls
from .checks import check_event
from .context import FailedStart
from .events import (
    AttemptFailed,
    CheckFinished,
    CommitDetected,
    DecisionVerified,
    MergeConflicted,
    NodeMerged,
    NodeVerified,
)
from .gitrepo import BRANCH_PREFIX, CommitInfo
from .handover import Handover
from .lifecycle import Phase
from .pause_blocks import parse_worker_block
from .pauses import (
    APPROVAL_GATE,
    MERGE_CONFLICT,
    MERGE_FAILED,
    SAME_CHECK_3X,
    UPSTREAM_POST,
    WORKER_FAILED,
    WORKER_TIMED_OUT,
    contract_options,
    engine_options,
)
from .project import CheckRef, checkpoint_path
from .prompts import checkpoint_problem, worker_prompt
from .stages import Stages
from .watchdog import LINGERED, STALLED
from .workspace import finish


class NodeSteps(Handover, Stages, Calls):
    # ------------------------------------------------------------------------------------- the tree

    async def _prepare_tree(self, node: str) -> None:
        """The node's worktree (worktree isolation) and the commit its work starts from."""
        nr = self.state.node(node)
        if nr.phase in (Phase.MERGING, Phase.MERGED):
            return  # merging needs the branch, not the tree (and a node merged by hand has neither)
        if nr.phase in (Phase.CHECKING, Phase.REVIEWING, Phase.STALE) and nr.base is None:
            return  # implemented in the main tree (before foreman, or verified and now stale): nothing to set up
        if self.state.isolation == "worktree":
            base = await finish(self.ws.add_tree, node)
        else:
            base = await asyncio.to_thread(self.repo.head)
        if nr.base is None:
            self.lifecycle.note(node, base=base)

    def _on_commit(self, node: str, commit: CommitInfo, detected_by: str, detected_at: float) -> None:
        nr = self.lifecycle.note(node, head=commit.sha)  # written at once: a crash from here on keeps it
        if node in self.activity:
            self.activity[node].touch()
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

    # -------------------------------------------------------------------------------- pending, running

    async def _attempt(self, node: str) -> None:
        """One worker attempt. Its commit → checking; a hard-pause block or too many attempts without a commit
        → paused; otherwise the node stays running and the next attempt follows."""
        nr = self.state.node(node)
        if node in self._taken_over:  # its worker was left running when foreman quit: wait for it
            await self._take_over(node, self._taken_over.pop(node))
            return
        if not await self._budget_allows(node, "worker"):
            return
        if nr.base is None and nr.phase == Phase.RUNNING:  # a fix task for work checked in the main tree
            await self._prepare_tree(node)
        self.lifecycle.move(node, Phase.RUNNING, attempt=nr.attempt + 1, attempt_from=nr.head or nr.base)
        attempt = nr.attempt
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
            self.lifecycle.note(node, feedback=[])
        prompt = self._write(self._message_path(node, f"prompt-{attempt}.md"), text)
        head_before = nr.head
        assert self._monitor is not None
        tracking_branch = BRANCH_PREFIX + node if self.state.isolation == "worktree" else None
        self._monitor.track(node, nr.head or nr.base or "HEAD", tracking_branch)
        log = self.home / "logs" / node / f"{attempt}.log"
        try:
            result, report = await self._call(node, self.worker, "worker", attempt, prompt, message, log)
        finally:
            self._monitor.untrack(node)
        if report.session_id:
            self.lifecycle.note(node, session_id=report.session_id)
        if isinstance(result, FailedStart):
            reason = f"the agent could not start: {result.message}"
        elif result.lost:
            reason = result.lost
        elif result.timed_out:
            reason = f"timed out after {self.settings.timeout:g}s and was stopped"
        elif result.stopped_for == STALLED:
            reason = f"stalled: no output, file change or commit for {self.settings.stall_timeout:g}s; stopped"
        elif result.stopped_for == LINGERED:
            reason = f"did not exit {self.settings.result_grace:g}s after its final result (stopped), without a commit"
        else:
            reason = f"exited with status {result.exit_code} without a commit"
        said = [*report.lines, *report.final_text.splitlines()]  # a block may be in any message, or the result
        await self._attempt_outcome(node, head_before, said, reason)

    async def _take_over(self, node: str, record: dict[str, Any]) -> None:
        nr = self.state.node(node)
        head_before = nr.attempt_from or nr.base
        assert self._monitor is not None
        tracking_branch = BRANCH_PREFIX + node if self.state.isolation == "worktree" else None
        self._monitor.track(node, nr.head or nr.base or "HEAD", tracking_branch)
        try:
            lines = await self._await_left_worker(node, record)
            await self._monitor.scan("exit")
        finally:
            self._monitor.untrack(node)
        await self._attempt_outcome(node, head_before, lines, "ended without a commit while foreman was away")

    async def _attempt_outcome(self, node: str, head_before: str | None, answer: list[str], reason: str) -> None:
        nr = self.state.node(node)
        committed = bool(nr.head and nr.head != head_before)
        asked = parse_worker_block(answer, node)
        # A worker that asked for a person is never dispatched again before one decides. With a commit, only a
        # complete block counts (a header alone may be the protocol quoted back; the commit is work done).
        if asked is not None and (asked.options or not committed):
            asked.node = node
            asked.evidence = "\n".join(answer[-60:])
            asked.options = asked.options or engine_options(asked.trigger)  # an unreadable block: ours
            if asked.trigger == UPSTREAM_POST:  # foreman can carry the change through: one option per upstream
                asked.options += contract_options(len(asked.options), self.graph.upstream.get(node, ()))
            self._pause(node, asked.trigger, asked.problem, pause=asked)
            return
        if committed:
            self.lifecycle.move(node, Phase.CHECKING, no_commit=0, pending_message=None)
            await finish(self.ws.write_states, {node: {"status": "implemented"}})
            return
        tail = "\n".join(answer[-60:])
        self.lifecycle.note(node, no_commit=nr.no_commit + 1, history=[*nr.history, f"attempt {nr.attempt}: {reason}"])
        self.emit(AttemptFailed(node=node, attempt=nr.attempt, reason=reason))
        if nr.no_commit > self.settings.retries:
            trigger = WORKER_TIMED_OUT if "timed out" in reason else WORKER_FAILED
            self._pause(node, trigger, f"{nr.no_commit} attempt(s) without a commit; last: {reason}", tail)

    # ------------------------------------------------------------------------------------------ checking

    def _checkpoint_value(self, tree: Path, node: str, check: CheckRef) -> bool | None:
        """A worker may self-report checks without a command in its checkpoint: {"verify": {"core": [...]}}."""
        try:
            data = json.loads(read_inside(tree / checkpoint_path(node), tree))  # a link out: OSError, not read
            value = data.get("verify", {}).get(check.phase, [])[check.index]
        except (OSError, ValueError, AttributeError, IndexError, TypeError):
            return None
        return value if isinstance(value, bool) else None

    async def _check(self, node: str) -> None:
        """The node's L1 checks and its checkpoint. All pass → reviewing; a failure → a fix task (running), or
        a pause when the same check failed three times in a row."""
        nr = self.state.node(node)
        tree = self.tree_of(node)
        content = self.project.doc.content(node)
        verify = content.verify if content is not None else None
        results: dict[str, list[bool | None]] = {
            phase: [None] * len(getattr(verify, phase) if verify else []) for phase in ("pre", "core", "post")
        }
        failures: list[tuple[str, str, str]] = []  # (key, description, evidence)
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
            outcome = await self._run_cmd(check.item.cmd or "", tree, log, node)
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
        await finish(self.ws.write_states, {node: {"verify_results": results}})
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
                return
            self.lifecycle.move(node, Phase.REVIEWING)
            return
        worst = max(failures, key=lambda f: nr.check_failures[f[0]])
        if nr.check_failures[worst[0]] >= 3:
            evidence = "\n\n".join(f"--- failure {i + 1} ---\n{o}" for i, o in enumerate(nr.failure_outputs[worst[0]]))
            self._pause(
                node,
                SAME_CHECK_3X,
                f"{worst[0]} failed {nr.check_failures[worst[0]]} times in a row: {worst[1]}",
                evidence,
            )
            return
        details = "\n\n".join(f"## {d}\n```\n{e.rstrip()}\n```" if e else f"## {d}" for _, d, e in failures)
        self._send_fix(node, "Some checks failed.", details)

    # ----------------------------------------------------------------------------------- merging, merged

    async def _merge(self, node: str) -> None:
        """Merge ``foreman/<id>`` into the integration branch (shielded: once begun, it finishes) → merged."""
        nr = self.state.node(node)
        if nr.feedback and nr.base is not None:  # the person spoke while it was in review: hear them first
            self._send_fix(node, "The person left feedback on this node.", "\n".join(nr.feedback))
            return
        if self.state.isolation != "worktree" or nr.base is None:
            self.lifecycle.move(node, Phase.MERGED)  # nothing to merge: its commits are on the branch already
            return
        outcome = await finish(self.ws.merge, node)
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
            said = outcome.message.splitlines()[-1] if outcome.message else "no reason given"
            self._pause(
                node,
                MERGE_FAILED,
                f"git would not merge {BRANCH_PREFIX}{node} into {self.state.integration_branch}: {said}",
                outcome.message,
            )
            return
        self.lifecycle.move(node, Phase.MERGED, merged=outcome.sha)
        self.emit(NodeMerged(node=node, branch=BRANCH_PREFIX + node, sha=outcome.sha))

    def _newly_verified_decisions(self, verified: set[str]) -> dict[str, tuple[str, ...]]:
        """Decision nodes (without checks of their own: those have a stage) whose feeders are all verified."""
        return {
            decision: feeders
            for decision, feeders in self.graph.decision_feeders.items()
            if not self._decision_has_checks(decision)
            and self.project.status_of(decision) != "verified"
            and self.graph.decision_verified(decision, verified)
        }

    async def _record(self, node: str) -> None:
        """The map says verified (with the decisions it completes) and is committed, as one shielded step →
        verified. Then its worktree and branch go (also shielded)."""
        verified = self._verified() | {node}
        decisions = self._newly_verified_decisions(verified)
        changes: dict[str, dict[str, Any]] = {node: {"status": "verified"}}
        changes.update({d: {"status": "verified"} for d in decisions})
        await finish(self.ws.record, changes, f"foreman: {node} verified")
        self._refresh_statuses(changes)
        nr = self.state.node(node)
        new_code = bool(nr.stale) and nr.base is not None
        self.lifecycle.move(node, Phase.VERIFIED)
        for decision, feeders in decisions.items():
            self.emit(DecisionVerified(node=decision, feeders=list(feeders)))
        lines = []
        for region in self.graph.regions_of(node):
            done = sum(n in verified for n in region.process_nodes)
            lines.append(f'Region "{region.label}": {done}/{len(region.process_nodes)} verified')
        self.emit(NodeVerified(node=node, regions=lines))
        worktree = self.state.isolation == "worktree" and self.state.node(node).base is not None
        if worktree and not self.settings.keep_worktrees:
            await finish(self.ws.remove_tree, node)
        await self._verified_again(node, new_code)
