"""What reaches a live run from outside: a person's decisions (``foreman decide``, stdin, the TUI), edits of
the map (content edits are taken in; structural ones open a pause), disputes workers raise on checks, and
notes in a feedback file. The supervisor calls ``_take_inputs`` about twice a second."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from ..map.errors import BadInput, UsageError
from .calls import Calls, budget_amount
from .events import (
    ContractChanged,
    DecisionIgnored,
    DecisionRecorded,
    DisputeRaised,
    MapReloaded,
    NodeApproved,
    NodeFailed,
    NodeReset,
)
from .feedback_intake import FeedbackIntake
from .gitrepo import BRANCH_PREFIX
from .lifecycle import Phase
from .pauses import (
    APPROVAL_GATE,
    BUDGET_REACHED,
    FEEDBACK_ON_VERIFIED,
    REVIEW_FAILED,
    SPEC_DEPARTURE,
    STRUCTURE_CHANGED,
    UNTRUSTED,
    Decision,
    Option,
    Pause,
    take_decisions,
)
from .project import Project
from .reset import fresh_run
from .staleness import Staleness
from .trust import Untrusted, require_trust
from .workspace import finish


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class Inputs(FeedbackIntake, Staleness, Calls):
    _map_seen: tuple[int, str, str] | None = None
    halted: bool = False
    """A person chose to stop scheduling (after a structural edit): running nodes finish, no new ones start."""

    # ------------------------------------------------------------------------------------- the map

    def _read_map(self) -> tuple[int, str, str] | None:
        """(mtime, structure digest, contents digest) of the map on disk, or None if caught mid-edit."""
        try:
            mtime = self.map_path.stat().st_mtime_ns
            raw = json.loads(self.map_path.read_bytes())
        except (OSError, ValueError):
            return None  # someone who does not write atomically is mid-edit: look again next time
        return mtime, _digest(raw.get("graph")), _digest(raw.get("contents"))

    async def _check_map(self) -> None:
        """Content edits (a worker adjusting `implementation`) are taken in; structural ones open a pause.
        Files are read in a thread; state changes and events happen here, on the loop."""
        if self._map_seen is not None and self.map_path.stat().st_mtime_ns == self._map_seen[0]:
            return
        seen = await asyncio.to_thread(self._read_map)
        if seen is None:
            return
        if self._map_seen is None:
            self._map_seen = seen
            return
        mtime, structure, contents = seen
        if structure != self._map_seen[1]:
            if self.state.node("map").phase != "paused":
                self._pause(
                    "map",
                    STRUCTURE_CHANGED,
                    "the map's nodes, edges or regions changed on disk during the "
                    "run; reload it to schedule by the new structure, or stop",
                )
            self._map_seen = (mtime, self._map_seen[1], self._map_seen[2])
            return
        before = self._map_seen[2]
        self._map_seen = seen
        if contents != before:
            await self._reload_project("the map's contents were edited")

    async def _reload_project(self, reason: str) -> bool:
        try:
            project = await asyncio.to_thread(Project.load, self.map_path)
            gate = await asyncio.to_thread(require_trust, project, self.settings)
        except Untrusted as exc:  # the edit would run something unapproved: keep the map as it was, and ask
            listed = "\n".join(f"{item.shown}  ({item.source})" for item, _ in exc.pending)
            problem = (
                f"the map's edit makes foreman run {len(exc.pending)} command(s) you have not approved; "
                f"the run goes on with the map as it was. Approve them with `foreman trust {self.map_path}`, "
                "then reload"
            )
            self._pause("map", UNTRUSTED, problem, evidence=listed)
            return False
        except BadInput as exc:
            self._pause("map", STRUCTURE_CHANGED, f"the map no longer loads: {exc}")
            return False
        except UsageError as exc:  # the approvals cannot be read now: nothing new runs until they can
            self._pause("map", UNTRUSTED, f"the map's edit cannot be checked against your approvals: {exc}")
            return False
        self.trust = gate
        changed = _digest(project.doc.raw.get("contents")) != _digest(self.project.doc.raw.get("contents"))
        self.project = project
        self.graph = project.graph
        if changed:
            self.emit(MapReloaded(reason=reason))
            await self._mark_stale(await self._stale_after_edit())
        self._note_disputes()
        return True

    def _note_disputes(self) -> None:
        """A worker's `dispute` on a verify item is shown and recorded once; the check still counts."""
        for node in self.graph.process_order:
            nr = self.state.node(node)
            for check in self.project.node_checks(node):
                reason = check.item.dispute
                name = f"{check.phase}[{check.index}]"
                if reason and nr.disputes.get(name) != reason:
                    nr.disputes[name] = reason
                    self.emit(DisputeRaised(node=node, check=name, desc=check.item.desc, reason=reason))
        self.save()

    # ------------------------------------------------------------------------------------- decisions

    async def _take_inputs(self) -> None:
        for decision in take_decisions(self.home):
            await self.apply_decision(decision)
        await self._check_map()
        await self._take_feedback()

    async def apply_decision(self, decision: Decision) -> bool:
        """Carry out a person's decision on an open pause. Returns False (and says why) if it does not apply."""
        nr = self.state.nodes.get(decision.node)
        pause = nr.pause if nr is not None and nr.phase == "paused" else None
        if nr is None or pause is None:
            self.emit(DecisionIgnored(node=decision.node, reason="no open pause on this node"))
            return False
        option = pause.option(decision.option) if decision.option else None
        if decision.option and option is None:
            keys = ", ".join(o.key for o in pause.options)
            self.emit(DecisionIgnored(node=decision.node, reason=f"no option {decision.option} (choose {keys})"))
            return False
        if option is None and not decision.text.strip():
            self.emit(DecisionIgnored(node=decision.node, reason="neither an option nor an instruction"))
            return False
        if pause.trigger == BUDGET_REACHED and option is None and budget_amount(decision.text) is None:
            self.emit(DecisionIgnored(node=decision.node, reason="choose an option, or type the dollars to add"))
            return False
        if (
            option is not None
            and option.action == "merged"
            and not await asyncio.to_thread(self.repo.is_ancestor, BRANCH_PREFIX + decision.node, "HEAD")
        ):
            reason = (
                f"{BRANCH_PREFIX}{decision.node} is not merged into {self.state.integration_branch} yet; "
                f"merge it, then choose {option.key} again"
            )
            self.emit(DecisionIgnored(node=decision.node, reason=reason))
            return False
        decision.pause_id = pause.id
        decision.action = option.action if option else "instruct"
        decision.label = option.label if option else ""
        self.state.decisions.append(decision)
        self.emit(
            DecisionRecorded(
                node=decision.node,
                pause_id=pause.id,
                option=decision.option,
                label=decision.label,
                action=decision.action,
                text=decision.text,
                who=decision.who,
            )
        )
        if decision.node == "map":
            await self._decide_map(decision)
        elif pause.trigger == BUDGET_REACHED:
            await self._decide_budget(decision, option)
        elif decision.node.startswith(("region:", "decision:")) or decision.node == "end":
            await self._decide_stage(decision, pause, option)
        else:
            await self._decide_node(decision, pause.trigger)
        self.save()
        return True

    def _message_for(self, node: str, decision: Decision, context: str) -> str:
        nr = self.state.node(node)
        text = f"# Decision on your hard pause\n\n{context}\n\n{decision.message()}\n"
        return str(self._write(self._message_path(node, f"decision-{nr.attempt + 1}.md"), text))

    def _unpause(self, node: str, phase: Phase, **changes: object) -> None:
        """The person decided: the node goes on in ``phase``, a new round of attempts and reviews."""
        nr = self.state.node(node)
        nr.check_failures.clear()
        nr.failure_outputs.clear()
        self.lifecycle.move(node, phase, pause=None, round_start=nr.attempt, no_commit=0, review_round=0, **changes)

    async def _decide_node(self, decision: Decision, trigger: str) -> None:
        node = decision.node
        nr = self.state.node(node)
        context = f"Trigger: {trigger}. Problem: {nr.pause.problem if nr.pause else ''}"
        action = decision.action
        if action in ("retry", "instruct"):
            if trigger == APPROVAL_GATE:  # rejected: the redone work needs approving again
                nr.accepted = [a for a in nr.accepted if not a.startswith("approve:")]
            self._unpause(node, Phase.PENDING, pending_message=self._message_for(node, decision, context))
        elif action == "accept":
            if trigger == FEEDBACK_ON_VERIFIED:
                self._unpause(node, Phase.VERIFIED)
            elif trigger == REVIEW_FAILED:
                self._unpause(node, Phase.MERGING)
            else:
                nr.accepted.extend(k for k in nr.check_failures if k not in nr.accepted)
                self._unpause(node, Phase.MERGING if trigger == SPEC_DEPARTURE else Phase.REVIEWING)
            if trigger == APPROVAL_GATE:
                self.emit(NodeApproved(node=node, who=decision.who, text=decision.text))
        elif action == "recheck":
            self._unpause(node, Phase.CHECKING)
        elif action == "rereview":
            self._unpause(node, Phase.REVIEWING)
        elif action == "remerge":
            self._unpause(node, Phase.MERGING)
        elif action == "fail":
            self.lifecycle.move(node, Phase.FAILED)
            dependants = self.graph.dependants(node)
            self.emit(NodeFailed(node=node, reason=f"marked failed by {decision.who}", dependants=dependants))
        elif action == "reset":
            message = self._message_for(node, decision, context) if decision.text or nr.pause else None
            await self._reset_node(node, f"reset by {decision.who}")
            self.lifecycle.note(node, pending_message=message)
        elif action == "change_post":
            await self._change_post(decision, nr.pause)
            context += "\nThe upstream post condition was changed as decided; go on with it."
            self._unpause(node, Phase.PENDING, pending_message=self._message_for(node, decision, context))
        elif action == "merged":  # apply_decision checked that the branch really is merged
            await finish(self.ws.remove_tree, node)
            self._unpause(node, Phase.MERGING, base=None)  # nothing left to merge: it is only recorded

    async def _change_post(self, decision: Decision, pause: Pause | None) -> None:
        """Write the decided post condition into the upstream node's ``verify.post`` (committed, in the ledger);
        that node and everything after it become stale."""
        option = pause.option(decision.option or "") if pause is not None else None
        target = option.target if option is not None else None
        if target is None or self.project.doc.content(target) is None:
            return
        text = decision.text.strip() or (pause.problem if pause is not None else "")

        def add_post(doc: dict[str, Any]) -> None:
            verify = doc.setdefault("contents", {}).setdefault(target, {}).setdefault("verify", {})
            verify.setdefault("post", []).append({"desc": text})

        await finish(
            self.ws.edit_contents,
            add_post,
            f"foreman: {target}'s post condition changed, as decided at {decision.node}",
        )
        self.emit(ContractChanged(node=target, by=decision.node, text=text))
        self._map_seen = await asyncio.to_thread(self._read_map)
        await self._reload_project(f"{target}'s post condition changed, as decided")

    async def _reset_node(self, node: str, reason: str) -> None:
        """Throw the node's work away: its worktree and branch, its run record (attempts and cost are kept)."""
        nr = self.state.node(node)
        if self.state.isolation == "worktree":
            await finish(self.ws.remove_tree, node)
        self.state.nodes[node] = fresh_run(nr, reason)
        self.save()
        await finish(self.ws.write_states, {node: {"status": "not_started"}})
        self.emit(NodeReset(node=node, reason=reason))

    async def _decide_stage(self, decision: Decision, pause: Pause, option: Option | None) -> None:
        key = decision.node
        stage = "end" if key == "end" else key
        action = decision.action
        suspect = pause.suspect
        del self.state.nodes[key]
        if pause.trigger == FEEDBACK_ON_VERIFIED:  # a note on a verified region: redo the node chosen, or not
            if option is not None and option.action == "reset" and option.target:
                await self._reset_node(option.target, f"feedback on {key}, as decided")
                context = f"The person left this feedback on {key} and chose this node to act on it:\n{pause.problem}"
                self.state.node(option.target).pending_message = self._message_for(option.target, decision, context)
            return
        if action == "accept":
            self.state.stages[stage] = "accepted"
            return
        self.state.stages.pop(stage, None)
        target = option.target if option is not None and option.target else suspect
        if action in ("reset", "instruct", "retry") and target:
            await self._reset_node(target, f"{key} failed; the person chose to redo it")
            context = f"The {key} checks failed and this node is suspected: {pause.problem}"
            self.state.node(target).pending_message = self._message_for(target, decision, context)

    async def _decide_map(self, decision: Decision) -> None:
        del self.state.nodes["map"]
        if decision.action == "reload":
            if await self._reload_project("reloaded after a structure change, as decided"):
                self._map_seen = await asyncio.to_thread(self._read_map)
        else:
            self.halted = True
