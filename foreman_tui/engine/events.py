"""What the engine says: typed events with past-tense names, and the JSON-lines log they are kept in.

Every event goes to ``.foreman/events.jsonl`` (one object per line: ``time``, ``node``, ``kind``, ``detail``)
and to every live subscriber (the headless printer, the TUI, tests), so they all read one stream.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from .event_text import readable


@dataclass(kw_only=True)
class Event:
    """Base of all events. ``node`` is a node id, ``region:<key>`` for a region, or None for the run."""

    node: str | None = None
    time: float = field(default_factory=time.time)
    registry: ClassVar[dict[str, type[Event]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Event.registry[cls.__name__] = cls

    @property
    def kind(self) -> str:
        return type(self).__name__

    def detail(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("node", "time")}

    def to_json(self) -> dict[str, Any]:
        stamp = datetime.fromtimestamp(self.time, UTC).isoformat(timespec="milliseconds")
        return {"time": stamp, "ts": self.time, "node": self.node, "kind": self.kind, "detail": self.detail()}

    def describe(self) -> str:
        """One readable line for the headless printer and the TUI's feed (``event_text.py``, unless the event
        has its own)."""
        text = readable(self.kind, self.detail())
        if text is not None:
            return text
        parts = ", ".join(f"{k}={v}" for k, v in self.detail().items() if v not in (None, "", [], {}))
        return f"{self.kind} {parts}".strip()


@dataclass(kw_only=True)
class RunStarted(Event):
    map: str
    isolation: str
    max_parallel: int
    integration_branch: str
    resumed: bool = False


@dataclass(kw_only=True)
class RunNoted(Event):
    """Something a person should know about the start of a run (an uncommitted edit, git's identity…)."""

    note: str

    def describe(self) -> str:
        return f"note: {self.note}"


@dataclass(kw_only=True)
class OrphanStopped(Event):
    pid: int
    reason: str


@dataclass(kw_only=True)
class NodeRecovered(Event):
    was: str
    now: str
    reason: str


@dataclass(kw_only=True)
class WorkerStarted(Event):
    role: str
    attempt: int
    pid: int
    argv: list[str]
    workdir: str
    log: str
    resume: bool = False
    executor: str = "local"
    host: str = ""
    """Where it runs when not here: the Ray node's id (``executor`` = ``ray``); empty on this machine."""

    def describe(self) -> str:
        how = " (resumed session)" if self.resume else ""
        where = f" on Ray node {self.host[:12]}" if self.host else ""
        return f"{self.role} started, attempt {self.attempt}, pid {self.pid}{where}{how} — log {self.log}"


@dataclass(kw_only=True)
class WorkerExited(Event):
    role: str
    attempt: int
    exit_code: int | None
    duration: float
    timed_out: bool = False
    stopped: bool = False

    def describe(self) -> str:
        why = " (timed out)" if self.timed_out else " (stopped)" if self.stopped else ""
        return f"{self.role} exited with {self.exit_code} after {self.duration:.1f}s{why}"


@dataclass(kw_only=True)
class AgentStep(Event):
    """One tool call an agent made, as its structured output announced it (live)."""

    role: str
    attempt: int
    step: str


@dataclass(kw_only=True)
class AgentReported(Event):
    """Parsed from an agent's structured output when it exits: session id, tool steps, files, errors, cost."""

    attempt: int
    role: str = "worker"
    session_id: str | None = None
    cost_usd: float | None = None
    turns: int | None = None
    steps: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    tokens: dict[str, int] = field(default_factory=dict)
    """``input`` (cached included), ``cached_input``, ``output``, as the CLI counted them; empty if it did not."""
    cost_source: str = ""
    """Where ``cost_usd`` comes from: ``reported`` (the CLI said it) or ``prices`` (tokens × foreman.toml's
    ``[prices]``); empty when the cost is not known."""

    def describe(self) -> str:
        cost = f", ${self.cost_usd:.4f}" if self.cost_usd else ""
        return f"{self.role} reported {len(self.steps)} step(s), {len(self.files)} file(s){cost}"


@dataclass(kw_only=True)
class AgentStopped(Event):
    """An agent process foreman stopped although it had not timed out: it printed its final result and did not
    exit (``lingered``), or it went silent (``stalled``)."""

    role: str
    attempt: int
    reason: str  # "lingered" | "stalled"
    after: float
    """Seconds of grace after its result (lingered) or of silence (stalled)."""

    def describe(self) -> str:
        if self.reason == "stalled":
            return f"{self.role} stalled: no output, file change or commit for {self.after:g}s — stopped"
        return f"{self.role} printed its result but did not exit within {self.after:g}s — stopped"


@dataclass(kw_only=True)
class RateLimited(Event):
    """An agent call refused for a rate limit or an overload: not a failed attempt; it is retried (resumed,
    when the agent can) after ``wait`` seconds, with fewer workers at once."""

    role: str
    attempt: int
    wait: float
    retry_at: float
    reason: str
    parallel: int
    """Workers that may run at once from now (``max_parallel`` halved, never below one)."""

    def describe(self) -> str:
        return f"{self.role} rate limited — retry in {self.wait:.0f}s ({self.parallel} at once now): {self.reason}"


@dataclass(kw_only=True)
class BudgetRaised(Event):
    """A person raised the run's budget (``node`` = "budget") or a node's."""

    by: float
    budget: float
    who: str


@dataclass(kw_only=True)
class CommitDetected(Event):
    sha: str
    branch: str
    subject: str
    attempt: int
    committed_at: float
    detected_by: str  # "watch" | "poll" | "exit" | "resume"

    def describe(self) -> str:
        return f"commit {self.sha[:10]} on {self.branch} ({self.detected_by}): {self.subject}"


@dataclass(kw_only=True)
class AttemptFailed(Event):
    attempt: int
    reason: str
    role: str = "worker"


@dataclass(kw_only=True)
class CheckFinished(Event):
    """One check run (or skipped). ``check`` names its place: ``core[0]``, ``checkpoint``, ``region:lloyd core[0]``."""

    level: str
    check: str
    desc: str
    status: str  # "pass" | "fail" | "skipped"
    cmd: str | None = None
    duration: float = 0.0
    exit_code: int | None = None
    reason: str = ""
    output_tail: str = ""
    attempt: int | None = None

    def describe(self) -> str:
        why = f" — {self.reason}" if self.reason else ""
        return f"{self.level} {self.check} {self.status.upper()} ({self.duration:.1f}s){why}: {self.desc}"


@dataclass(kw_only=True)
class FixTaskSent(Event):
    attempt: int
    reason: str
    message_file: str
    resume: bool


@dataclass(kw_only=True)
class ScopeViolated(Event):
    files: list[str]


@dataclass(kw_only=True)
class ReviewFinished(Event):
    round: int
    verdict: str  # "CLEAN" | "FLAG" | "NONE"
    text: str

    def describe(self) -> str:
        return f"review round {self.round}: {self.text or self.verdict}"


@dataclass(kw_only=True)
class NodeMerged(Event):
    branch: str
    sha: str


@dataclass(kw_only=True)
class MergeConflicted(Event):
    branch: str
    files: list[str]


@dataclass(kw_only=True)
class NodeVerified(Event):
    regions: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return "verified" + "".join(f"\n   {line}" for line in self.regions)


@dataclass(kw_only=True)
class DecisionVerified(Event):
    feeders: list[str]


@dataclass(kw_only=True)
class StageFinished(Event):
    """A region's L2 stage, or the end stage (L3 + benchmark)."""

    stage: str  # "L2" | "L3"
    passed: bool
    checks: int
    failed: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class BenchmarkRan(Event):
    cmd: str
    passed: bool
    value: float | None
    known_optimal: float | None
    output_tail: str = ""


@dataclass(kw_only=True)
class NodePaused(Event):
    """A hard pause opened. ``block`` is the SPEC §6 text; ``options`` are ``{key, label, action}``."""

    pause_id: str
    trigger: str
    problem: str
    tried: str = ""
    evidence: str = ""
    options: list[dict[str, str]] = field(default_factory=list)
    source: str = "engine"
    block: str = ""

    def describe(self) -> str:
        return f"PAUSED [{self.trigger}] {self.problem}"


@dataclass(kw_only=True)
class DecisionRecorded(Event):
    pause_id: str | None
    option: str | None
    label: str
    action: str
    text: str
    who: str

    def describe(self) -> str:
        chosen = f"{self.option}) {self.label}" if self.option else "instruction"
        return f"decision by {self.who}: {chosen}" + (f" — {self.text}" if self.text else "")


@dataclass(kw_only=True)
class DecisionIgnored(Event):
    reason: str


@dataclass(kw_only=True)
class NodeApproved(Event):
    """A person passed an approval gate."""

    who: str
    text: str = ""


@dataclass(kw_only=True)
class NodeFailed(Event):
    reason: str
    dependants: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class NodeReset(Event):
    reason: str


@dataclass(kw_only=True)
class NodeStale(Event):
    """A verified node's contract (or an upstream post condition) changed: it is verified again."""

    reason: str


@dataclass(kw_only=True)
class ContractChanged(Event):
    """foreman wrote a person's decision into a node's post conditions (hard pause #3)."""

    by: str
    text: str


@dataclass(kw_only=True)
class NodeRetried(Event):
    """A person asked to run a node again (a failed one, or a running attempt restarted)."""

    who: str
    was: str


@dataclass(kw_only=True)
class SchedulingHeld(Event):
    """A person paused (held=True) or resumed the starting of new nodes; running ones go on either way."""

    held: bool
    who: str


@dataclass(kw_only=True)
class WorkersLeftRunning(Event):
    """The person quit and chose to leave the running workers running; the next run takes them over."""

    nodes: list[str]


@dataclass(kw_only=True)
class DisputeRaised(Event):
    """A worker set ``dispute`` on a verify item: shown and recorded, never silently accepted."""

    check: str
    desc: str
    reason: str


@dataclass(kw_only=True)
class FeedbackRouted(Event):
    """A note of a feedback file, and where it went (``node`` None: the flow chart, or nowhere)."""

    file: str
    note: str
    routed_as: str  # "with its next task" | "pause" | "recorded for the report (flow)" | "not routed: <why>" …
    section: str = ""
    line: int = 0

    def describe(self) -> str:
        where = f" (## {self.section})" if self.section else ""
        return f"feedback{where} {self.routed_as}: {self.note}"


@dataclass(kw_only=True)
class MapReloaded(Event):
    reason: str


@dataclass(kw_only=True)
class DiagnosisMade(Event):
    """After an L2/L3 failure: the checkpoint chain walked in order, the first suspicious node named."""

    stage: str
    suspect: str | None
    findings: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class RunFinished(Event):
    outcome: str  # "complete" | "paused" | "failed" | "stopped"
    verified: int
    total: int
    paused: list[str] = field(default_factory=list)


class EventLog:
    """Appends events to ``events.jsonl`` and hands them to subscribers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        torn = path.exists() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
        self._handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the run
        if torn:  # a run killed mid-write left half a line: end it, so our first event stands on its own
            self._handle.write("\n")
        self._subscribers: list[asyncio.Queue[Event | None]] = []
        self.listeners: list[Callable[[Event], None]] = []
        """Called with each event as it is emitted, in order with the output lines around it; must be quick
        and must not raise (the TUI's bookkeeping; never rendering)."""

    def emit(self, event: Event) -> Event:
        self._handle.write(json.dumps(event.to_json(), ensure_ascii=False, default=str) + "\n")
        self._handle.flush()
        for listener in self.listeners:
            listener(event)
        for queue in self._subscribers:
            queue.put_nowait(event)
        return event

    def subscribe(self) -> asyncio.Queue[Event | None]:
        """A queue of every event from now on (``None`` is left for the subscriber's own end marker)."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._subscribers.append(queue)
        return queue

    def close(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """The log's records, skipping a torn last line (a run killed mid-write)."""
    if not path.exists():
        return
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue
