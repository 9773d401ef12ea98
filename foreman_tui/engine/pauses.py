"""Hard pauses: the model, the options foreman offers for each trigger, and decisions — the person's
answers — as files that ``foreman decide`` writes and a live run (or the next one) picks up. The block a
worker prints to ask for one is read by ``pause_blocks.py``.
"""

from __future__ import annotations

import getpass
import os
import time
import uuid
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from ..map.files import owner_name
from ..map.store import atomic_write, check_home, take_records

Action = Literal[
    "retry",
    "instruct",
    "accept",
    "fail",
    "reset",
    "recheck",
    "rereview",
    "remerge",
    "reload",
    "merged",
    "change_post",
    "raise_budget",
    "stop",
]

# Triggers, as SPEC §6 names them.
SAME_CHECK_3X = "#1 same L1 check failed 3 times"
SPEC_DEPARTURE = "#2 implementation departs from the spec"
UPSTREAM_POST = "#3 upstream post condition must change"
WORKER_FAILED = "worker failed"
WORKER_TIMED_OUT = "worker timed out"
MERGE_CONFLICT = "merge conflict"
MERGE_FAILED = "merge failed"
L2_FAILED = "L2 failed"
L3_FAILED = "L3 failed"
DECISION_FAILED = "decision check failed"
STRUCTURE_CHANGED = "map structure changed"
UNTRUSTED = "commands not approved"
FEEDBACK_ON_VERIFIED = "feedback on a verified node"
APPROVAL_GATE = "approval gate"
REVIEW_FAILED = "review failed"
INTERNAL = "internal error"
STOPPED_BY_PERSON = "stopped by a person"
BUDGET_REACHED = "budget reached"


class Option(BaseModel):
    key: str
    label: str
    action: Action
    target: str | None = None
    """The node the action is about, when it is not the paused one (a region's pause naming its nodes)."""
    amount: float | None = None
    """For ``raise_budget``: by how many USD."""


class Pause(BaseModel):
    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:8])
    node: str
    trigger: str
    problem: str
    tried: str = ""
    evidence: str = ""
    options: list[Option] = Field(default_factory=list)
    source: Literal["engine", "worker"] = "engine"
    suspect: str | None = None
    """For L2/L3 failures: the first suspicious node the diagnosis named."""
    resume: str | None = None
    """For a node's budget pause: the phase it goes on in once its budget is raised."""
    at: float = Field(default_factory=time.time)

    def option(self, key: str) -> Option | None:
        return next((o for o in self.options if o.key.upper() == key.upper()), None)

    def block(self) -> str:
        """The SPEC §6 block, for terminals and logs."""
        options = " / ".join(f"{o.key}) {o.label}" for o in self.options)
        lines = [f"HARD PAUSE: [{self.trigger}]", f"Node: {self.node}", f"Problem: {self.problem}"]
        if self.tried:
            lines.append(f"Tried: {self.tried}")
        lines.append(f"Options: {options}" + (" / " if options else "") + "or your instruction (free text)")
        return "\n".join(lines)


class Decision(BaseModel):
    pause_id: str | None = None
    node: str
    option: str | None = None
    text: str = ""
    who: str = Field(default_factory=lambda: user_name())
    at: float = Field(default_factory=time.time)
    action: Action | None = None
    label: str = ""

    def message(self) -> str:
        """What the worker is told."""
        if self.option:
            chosen = f"The person chose option {self.option}) {self.label}".rstrip()
            return chosen + (f"\nTheir instruction: {self.text}" if self.text else "")
        return f"The person's instruction: {self.text}"


def user_name() -> str:
    """Who is deciding (or approving, or resetting): the login name, else ``$USER``."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown")


# ------------------------------------------------------------------------------------ engine options

Choice = tuple[str, Action]
_RETRY: Choice = ("retry with your instruction as guidance", "retry")
_RESET: Choice = ("reset the node and start it over", "reset")
_FAIL: Choice = ("mark the node failed and stop what depends on it", "fail")
_CHOICES: dict[str, list[Choice]] = {
    SAME_CHECK_3X: [
        _RETRY,
        ("accept the dispute: go on to review despite the check", "accept"),
        ("re-run only the checks (after you fixed something by hand)", "recheck"),
        _RESET,
        _FAIL,
    ],
    APPROVAL_GATE: [("approve: go on", "accept"), ("reject: redo it with your instruction", "retry"), _FAIL],
    SPEC_DEPARTURE: [
        ("redo it following the how (with your guidance)", "retry"),
        ("accept the implementation as it is", "accept"),
        _FAIL,
    ],
    MERGE_CONFLICT: [
        ("I merged it by hand: continue", "merged"),
        ("redo the node on the current integration branch", "reset"),
        _FAIL,
    ],
    MERGE_FAILED: [
        ("merge again (after you dealt with what git said)", "remerge"),
        ("redo the node on the current integration branch", "reset"),
        _FAIL,
    ],
    REVIEW_FAILED: [
        ("review again (the worker is not run)", "rereview"),
        _RETRY,
        ("accept the code as it is", "accept"),
        _RESET,
        _FAIL,
    ],
    L2_FAILED: [
        ("re-run the checks", "recheck"),
        ("reset the suspicious node and redo it", "reset"),
        ("accept and go on", "accept"),
    ],
    STRUCTURE_CHANGED: [("reload the map and continue", "reload"), ("stop scheduling (mark the run failed)", "fail")],
    UNTRUSTED: [
        ("I approved them (foreman trust): reload the map and continue", "reload"),
        ("stop scheduling (mark the run failed)", "fail"),
    ],
    FEEDBACK_ON_VERIFIED: [
        ("redo the node with this feedback", "reset"),
        ("keep it verified; ignore the feedback", "accept"),
    ],
}
_CHOICES[L3_FAILED] = _CHOICES[L2_FAILED]
_CHOICES[STOPPED_BY_PERSON] = [("start it again (with your instruction, if any)", "retry"), _RESET, _FAIL]
_DEFAULT_CHOICES: list[Choice] = [_RETRY, _RESET, _FAIL]  # worker failed/timed out, internal


def engine_options(trigger: str) -> list[Option]:
    """The choices foreman offers for its own triggers, lettered A, B, C… (the free-text instruction is
    always there too)."""
    choices = _CHOICES.get(trigger, _DEFAULT_CHOICES)
    return [Option(key=chr(ord("A") + i), label=label, action=action) for i, (label, action) in enumerate(choices)]


def contract_options(taken: int, upstream: tuple[str, ...] | list[str]) -> list[Option]:
    """Hard pause #3's options foreman adds to a worker's own: change an upstream node's post condition as
    proposed (the person's text, else the worker's problem text), which makes that node and what follows stale."""
    return [
        Option(
            key=chr(ord("A") + taken + i),
            label=f"change {up}'s post condition as proposed (your text, else the worker's)",
            action="change_post",
            target=up,
        )
        for i, up in enumerate(list(upstream)[:5])
    ]


# ---------------------------------------------------------------------------------- decision files


def decisions_dir(home: Path) -> Path:
    return home / "decisions"


def write_decision(home: Path, decision: Decision) -> Path:
    """Leave a decision for the run in ``home/decisions``; the file is named after the node in a safe form
    (``region:<key>`` holds free text), its content says which node."""
    check_home(home)
    folder = decisions_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{int(decision.at * 1000)}-{owner_name(decision.node)}-{uuid.uuid4().hex[:6]}.json"
    atomic_write(path, decision.model_dump_json(indent=2).encode("utf-8"))
    return path


def take_decisions(home: Path) -> list[Decision]:
    """Read and remove the decisions waiting on disk, oldest first."""
    return take_records(decisions_dir(home), "*.json", Decision)
