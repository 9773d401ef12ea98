"""Staleness in a run (SPEC §11): verified nodes whose contract changed go back to be verified again.

At start and on every map edit the fingerprints of verified nodes are compared with the map
(``fingerprint.py``); a stale node moves to ``stale`` (its map status back to ``implemented``, committed), the
region, decision and end stages it belongs to run again, and its step re-checks it on the integration branch:
its L1 checks, then the reviewer. Only a failing check or a FLAG brings its worker back, with a fix task that
names what changed. A node verified again with new code makes its verified dependants stale in turn.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .context import RunContext
from .events import NodeStale
from .fingerprint import Fingerprint, find_stale, fingerprint
from .lifecycle import Phase
from .reset import stages_of, stale_fields
from .workspace import finish


class Staleness(RunContext):
    def _verified_fingerprints(self) -> dict[str, Fingerprint]:
        verified: dict[str, Fingerprint] = {}
        for node in self.graph.process_order:
            nr = self.state.nodes.get(node)
            if nr is not None and nr.phase == Phase.VERIFIED and nr.fingerprint is not None:
                verified[node] = nr.fingerprint
        return verified

    def _stale_now(self) -> dict[str, str]:
        """The verified nodes that are stale against the map as it is now, with why."""
        return find_stale(self.project, self._verified_fingerprints())

    async def _stale_after_edit(self) -> dict[str, str]:
        """``_stale_now`` for a live run: the comparison (a digest per verified node) in a thread."""
        return await asyncio.to_thread(find_stale, self.project, self._verified_fingerprints())

    def _note_stale(self, reasons: dict[str, str]) -> dict[str, dict[str, Any]]:
        """Move each node to ``stale`` (its old tree and commits forgotten: it is re-checked where it is merged),
        and open the stages it belongs to again. Returns the map changes to record."""
        for node, reason in reasons.items():
            self.lifecycle.move(node, Phase.STALE, **stale_fields(self.state.node(node), reason))
            self.emit(NodeStale(node=node, reason=reason))
        self._reopen_stages(set(reasons))
        return {node: {"status": "implemented"} for node in reasons}

    def _reopen_stages(self, nodes: set[str]) -> None:
        """The region (L2), decision and end stages a node of ``nodes`` takes part in run again."""
        if not nodes:
            return
        for stage in stages_of(self.graph, nodes):
            self.state.stages.pop(stage, None)
        self.save()

    async def _mark_stale(self, reasons: dict[str, str]) -> None:
        changes = self._note_stale(reasons)
        if changes:
            await finish(self.ws.record, changes, _message(reasons))
            self._refresh_statuses(changes)

    def _mark_stale_at_start(self) -> None:
        """Start-up: fingerprint verified nodes that have none (verified before fingerprints, or by a person), put
        back a stale status a crash kept from the map, then compare."""
        changes: dict[str, dict[str, Any]] = {}
        for node in self.graph.process_order:
            nr = self.state.nodes.get(node)
            if nr is None:
                continue
            if nr.phase == Phase.VERIFIED and nr.fingerprint is None:
                nr.fingerprint = fingerprint(self.project, node)
            elif nr.phase == Phase.STALE and self.project.status_of(node) == "verified":
                changes[node] = {"status": "implemented"}
        self.save()
        reasons = self._stale_now()
        changes.update(self._note_stale(reasons))
        if changes:
            self.ws.record(changes, _message(reasons) if reasons else "foreman: stale nodes recorded")
            self._refresh_statuses(changes)

    async def _recheck(self, node: str) -> None:
        """A stale node's step: its checks and review again, in the main tree, on the integration branch."""
        self.lifecycle.move(node, Phase.CHECKING)

    async def _verified_again(self, node: str, new_code: bool) -> None:
        """After ``node`` is verified: record its fingerprint; if it was stale and got new code, its verified
        dependants are stale now."""
        self.lifecycle.note(node, fingerprint=fingerprint(self.project, node), stale="")
        if not new_code:
            return
        after = [n for n in self.graph.dependants(node) if self.lifecycle.phase(n) == Phase.VERIFIED]
        await self._mark_stale({n: f"{node} was verified again with new code" for n in after})


def _message(reasons: dict[str, str]) -> str:
    shown = ", ".join(list(reasons)[:5]) + (f" and {len(reasons) - 5} more" if len(reasons) > 5 else "")
    return f"foreman: stale: {shown}"
