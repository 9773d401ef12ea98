"""A node's life as one explicit state machine: the phases, the moves allowed between them, and what a restart
does in each phase.

::

    pending ──▶ running ──▶ checking ──▶ reviewing ──▶ merging ──▶ merged ──▶ verified
                  ▲  │ ▲        │ fix task    │ FLAG       │ conflict
                  │  │ └────────┴─────────────┘            │ refused
                  │  └──────────────┬───────────────────────┘
                  │                 ▼
                  └─────────────  paused  ──▶ failed        (any phase may pause; reset → pending)

    verified ──▶ stale ──▶ checking                 (what it was verified against changed: re-checked,
                                                     re-reviewed; a worker only if a check fails or a FLAG)

Every move is **written ahead**: the run state (``.foreman/run.json``, fsynced) says the new phase *before* the
side effect that phase stands for starts, so a process killed at any moment finds, on its next start, a phase
whose recovery step makes the restart idempotent (``RECOVERY``). Side effects that must finish once begun (a
merge, a map write and its commit, removing a worktree) run under the repository lock and are shielded from
cancellation (``workspace.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .runstate import NodeRun, RunState, RunStore


class Phase(StrEnum):
    PENDING = "pending"
    """Waits for its upstream, a slot, or a file another node holds."""
    RUNNING = "running"
    """A worker attempt is under way (or was, when foreman stopped)."""
    CHECKING = "checking"
    """The worker committed: its L1 checks and checkpoint are being run."""
    REVIEWING = "reviewing"
    """The checks passed: the reviewer reads the code."""
    MERGING = "merging"
    """Reviewed CLEAN: ``foreman/<id>`` is being merged into the integration branch."""
    MERGED = "merged"
    """Merged; the map does not say verified yet."""
    VERIFIED = "verified"
    """Recorded verified in the map and committed; its worktree and branch are removed after."""
    STALE = "stale"
    """Was verified, but its contract or an upstream post condition changed since (``fingerprint.py``): its map
    status is ``implemented`` again; it is re-checked on the integration branch, then re-reviewed."""
    PAUSED = "paused"
    """Waits for a person (a hard pause)."""
    FAILED = "failed"
    """A person marked it failed; what depends on it does not run."""


LEGACY = {"implemented": Phase.CHECKING, "integrating": Phase.MERGING}
"""Phase names of run states written by earlier versions."""

ACTIVE = frozenset({Phase.RUNNING, Phase.CHECKING, Phase.REVIEWING, Phase.MERGING, Phase.MERGED})
"""Phases in which something is under way for the node."""

WORKER_PHASES = frozenset({Phase.PENDING, Phase.RUNNING})
"""Phases of a started node that hold one of the ``max_parallel`` worker slots (its worker runs or is about to)."""

_ANY = frozenset(Phase)
TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.PENDING: frozenset({Phase.RUNNING, Phase.CHECKING, Phase.PAUSED}),
    Phase.RUNNING: frozenset({Phase.RUNNING, Phase.CHECKING, Phase.PAUSED, Phase.PENDING}),
    Phase.CHECKING: frozenset({Phase.REVIEWING, Phase.RUNNING, Phase.PAUSED, Phase.PENDING}),
    Phase.REVIEWING: frozenset({Phase.MERGING, Phase.RUNNING, Phase.PAUSED, Phase.PENDING}),
    Phase.MERGING: frozenset({Phase.MERGED, Phase.RUNNING, Phase.PAUSED}),
    Phase.MERGED: frozenset({Phase.VERIFIED}),
    Phase.VERIFIED: frozenset({Phase.PAUSED, Phase.PENDING, Phase.STALE}),
    Phase.STALE: frozenset({Phase.CHECKING, Phase.PAUSED, Phase.PENDING, Phase.STALE}),
    Phase.PAUSED: _ANY - {Phase.MERGED},
    Phase.FAILED: frozenset({Phase.PENDING, Phase.PAUSED}),
}
"""The moves allowed out of each phase. Reset (back to pending) is allowed from wherever a person can ask for it;
a merge, once done, can only be recorded."""

RECOVERY: dict[Phase, str] = {
    Phase.PENDING: "dispatch when ready (a worktree left from before is reused)",
    Phase.RUNNING: "a commit after the attempt began is kept (checks next); none: dispatch again",
    Phase.CHECKING: "run the checks again",
    Phase.REVIEWING: "review again",
    Phase.MERGING: "an aborted merge is undone; the branch already in the integration branch: merged; else merge",
    Phase.MERGED: "record it verified in the map and commit (both idempotent)",
    Phase.VERIFIED: "remove its worktree and branch if they are still there",
    Phase.STALE: "re-check it on the integration branch when its upstream nodes are verified",
    Phase.PAUSED: "keep waiting for the person",
    Phase.FAILED: "nothing",
}
"""What a restart does in each phase (the supervisor's ``_recover_*`` steps; docs/engine.md)."""


class InvalidTransition(RuntimeError):
    """A move the table does not allow: a bug in foreman, never a person's input."""


def to_phase(value: object) -> object:
    """A phase as saved (earlier versions' names too), for the run state's validation."""
    return LEGACY.get(value, value) if isinstance(value, str) else value


class Lifecycle:
    """The run state's node phases, moved only through the table and saved before the move's side effect.
    Nodes that are not process nodes (``region:<key>``, ``decision:<id>``, ``end``, ``map``) only pause and
    unpause here."""

    def __init__(self, state: RunState, store: RunStore, on_move: Callable[[str, Phase, Phase], None] | None = None):
        self.state = state
        self.store = store
        self.on_move = on_move

    def phase(self, node: str) -> Phase:
        nr = self.state.nodes.get(node)
        return nr.phase if nr is not None else Phase.PENDING

    def move(self, node: str, to: Phase, **changes: object) -> NodeRun:
        """Move ``node`` to ``to`` (with ``changes`` to its record) and save, fsynced, before returning."""
        nr = self.state.node(node)
        was = nr.phase
        if to not in TRANSITIONS[was]:
            raise InvalidTransition(f"{node}: {was} → {to} is not a move of the node lifecycle")
        for key, value in changes.items():
            setattr(nr, key, value)
        nr.phase = to
        self.save()
        if self.on_move is not None and was != to:
            self.on_move(node, was, to)
        return nr

    def adopt(self, node: str, to: Phase) -> None:
        """Take the map's word over the run state at start-up (a person marked the node verified, or a crash fell
        between the map's commit and the run state's save). Recovery only; saved with the rest."""
        self.state.node(node).phase = to

    def note(self, node: str, **changes: object) -> NodeRun:
        """Record something about ``node`` within its phase (a commit seen, a session id) and save."""
        nr = self.state.node(node)
        for key, value in changes.items():
            setattr(nr, key, value)
        self.save()
        return nr

    def save(self) -> None:
        self.store.save(self.state)

    def in_phase(self, nodes: Iterable[str], *phases: Phase) -> list[str]:
        wanted = set(phases)
        return [n for n in nodes if self.phase(n) in wanted]
