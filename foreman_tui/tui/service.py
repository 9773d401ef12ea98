"""The engine as the TUI holds it: one supervisor run, its events, and per node a bounded window of live
output and agent steps. Nothing here touches a widget: the engine's reader tasks only append to deques and
queues, and the screen takes what is new on a timer. Free of Textual, so it can be tested and benchmarked
on its own."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from ..config import Settings
from ..engine.events import (
    AgentStep,
    AgentStopped,
    CheckFinished,
    Event,
    NodePaused,
    NodeReset,
    NodeVerified,
    WorkerStarted,
    read_events,
)
from ..engine.pauses import Decision, Pause
from ..engine.project import Project
from ..engine.supervisor import Outcome, Supervisor
from .text import cut_lines

SCROLLBACK = 5000
"""Lines of live output kept per node (the full output is always in the attempt's log file)."""
STEPS = 2000
"""Agent steps kept per node."""
MIB = 1024 * 1024
STEPS_SHARE = 8
"""A node's agent steps may hold 1/8 of its memory budget (``output_memory_mib``), its raw lines the rest."""

PHASE_LOOK = {
    # phase: (icon, label, style). Icons are one cell in every terminal: no symbol that a terminal may draw as
    # a two-cell emoji (⏸, ▶), which pushes the rest of the row one cell to the right.
    "pending": ("○", "pending", "dim"),
    "waiting": ("◌", "waiting", "yellow"),
    "running": ("▸", "running", "bold cyan"),
    "checking": ("◆", "checking", "blue"),
    "reviewing": ("◇", "reviewing", "magenta"),
    "merging": ("⇢", "merging", "blue"),
    "merged": ("⇢", "merging", "blue"),
    "verified": ("✓", "verified", "bold green"),
    "stale": ("↻", "stale", "bold yellow"),
    "paused": ("‖", "PAUSED", "bold black on yellow"),
    "failed": ("✗", "failed", "bold red"),
    "decision": ("◇", "decision", "dim"),
    "decided": ("◇", "passed", "green"),
}


def keep_newest(window: deque[str], lines: list[str], held: int, max_bytes: int) -> int:
    """Append ``lines`` to ``window`` (a deque with a ``maxlen``), then drop its oldest lines until it holds at
    most ``max_bytes`` bytes (``sys.getsizeof``: what the strings really take; the newest line always stays).
    ``held`` is what the window held before; returns what it holds now. Per batch, not per line: the lines
    ``extend`` pushes out are measured before, and dropped by the deque itself."""
    limit = window.maxlen
    assert limit is not None
    if len(lines) > limit:
        lines = lines[-limit:]
    pushed_out = len(window) + len(lines) - limit
    if pushed_out > 0:
        held -= sum(map(sys.getsizeof, islice(window, pushed_out)))
    window.extend(lines)
    held += sum(map(sys.getsizeof, lines))
    drop = window.popleft
    while held > max_bytes and len(window) > 1:
        held -= sys.getsizeof(drop())
    return held


@dataclass
class NodeFeed:
    """What the TUI keeps of one node's run: windows of its newest output lines and agent steps, bounded in
    lines and in bytes, each line cut to ``line_limit`` characters with a marker."""

    line_limit: int = 4096
    """Characters of one line kept (``output_line_limit``)."""
    memory: int = 4 * MIB
    """Bytes of this node's lines and steps kept (``output_memory_mib``)."""
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=SCROLLBACK))
    written: int = 0
    """Lines ever added (so a view knows how many are new since it last looked)."""
    bytes: int = 0
    """Bytes the kept lines hold."""
    steps: deque[str] = field(default_factory=lambda: deque(maxlen=STEPS))
    steps_written: int = 0
    steps_bytes: int = 0
    checks: dict[str, CheckFinished] = field(default_factory=dict)
    """The latest result of each L1 check, by key (``core[0]``, ``checkpoint``)."""
    started: float | None = None
    ended: float | None = None
    log: str | None = None
    """The current attempt's log file."""
    stalled: int | None = None
    """The attempt that was stopped as stalled, while the node has not moved on from it."""

    def add(self, lines: list[str]) -> None:
        lines = cut_lines(lines, self.line_limit)
        self.written += len(lines)
        budget = self.memory - self.memory // STEPS_SHARE
        self.bytes = keep_newest(self.lines, lines, self.bytes, budget)

    def add_steps(self, steps: list[str]) -> None:
        steps = cut_lines(steps, self.line_limit)
        self.steps_written += len(steps)
        budget = self.memory // STEPS_SHARE
        self.steps_bytes = keep_newest(self.steps, steps, self.steps_bytes, budget)


class EngineService:
    """Owns one engine run for the App: start it, send it commands, read what it says."""

    def __init__(self, project: Project, settings: Settings, *, use_fs_events: bool = True) -> None:
        self.project = project
        self.settings = settings
        self.supervisor = Supervisor(project, settings, use_fs_events=use_fs_events)
        self.supervisor.hold_open = True  # a person is there: pauses wait for them instead of ending the run
        self.supervisor.on_output = self._on_output
        self.feeds: dict[str, NodeFeed] = {}
        self._events = self.supervisor.events.subscribe()
        self.supervisor.events.listeners.append(self._note)  # in step with the output lines
        self.outcome: Outcome | None = None
        self.error: BaseException | None = None
        self._recall()

    def _recall(self) -> None:
        """What earlier runs of this map left in the event log: each node's last check results, times
        and log file, so a reopened foreman shows them before anything new happens."""
        path = self.supervisor.events.path
        if not path.exists():
            return
        for record in read_events(path):
            kind = Event.registry.get(str(record.get("kind")))
            if kind in (WorkerStarted, CheckFinished, NodeVerified, NodePaused, NodeReset):
                with contextlib.suppress(TypeError, ValueError):
                    event = kind(node=record.get("node"), time=record.get("ts", 0.0), **record["detail"])
                    self._note(event, live=False)

    def _preload(self, feed: NodeFeed) -> None:
        """The end of the node's last log file, when it has one and nothing live was shown yet."""
        if feed.log is None or feed.written:
            return
        try:
            with open(feed.log, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(0, size - 256 * 1024))
                data = handle.read()
        except OSError:
            return
        lines = data.decode("utf-8", errors="replace").split("\n")
        if size > len(data):
            lines = lines[1:]  # the first one is cut
        if lines and not lines[-1]:
            lines.pop()
        feed.add(lines)

    # ------------------------------------------------------------------------------------ the run

    async def run(self) -> Outcome:
        try:
            self.outcome = await self.supervisor.run()
        except BaseException as exc:
            self.error = exc
            raise
        return self.outcome

    @property
    def finished(self) -> bool:
        return self.outcome is not None or self.error is not None

    def feed(self, node: str) -> NodeFeed:
        found = self.feeds.get(node)
        if found is None:
            found = self.feeds[node] = NodeFeed(self.settings.output_line_limit, self.memory)
        return found

    @property
    def memory(self) -> int:
        """Bytes of one node's output kept for showing."""
        return int(self.settings.output_memory_mib * MIB)

    def shown(self, node: str) -> NodeFeed | None:
        """The node's feed for showing: with the end of its last log if this session saw none of it."""
        feed = self.feeds.get(node)
        if feed is not None and not feed.written:
            self._preload(feed)
        return feed

    def _on_output(self, node: str, stream: str, lines: list[str]) -> None:
        """Called by the engine's reader tasks with each batch of lines: store only, never render here."""
        self.feed(node).add(lines)

    def take_events(self, limit: int = 2000) -> list[Event]:
        """The events since the last call (at most ``limit``), for the feed and the screen's reactions; the
        per-node bookkeeping happened as each was emitted (``_note``)."""
        taken: list[Event] = []
        while len(taken) < limit:
            try:
                event = self._events.get_nowait()
            except asyncio.QueueEmpty:
                break
            if event is not None:
                taken.append(event)
        return taken

    def _note(self, event: Event, live: bool = True) -> None:
        if event.node is None:
            return
        feed = self.feed(event.node)
        if isinstance(event, WorkerStarted):
            if event.role == "worker":
                feed.started = feed.started or event.time
                feed.ended = None
                feed.log = event.log
            if live and (feed.written or event.role == "worker"):
                what = "attempt" if event.role == "worker" else f"{event.role}, attempt"
                feed.add([f"\x1b[2m── {what} {event.attempt} ──\x1b[0m"])
        elif isinstance(event, AgentStep):
            feed.add_steps([f"[{event.role}] {event.step}"])
        elif isinstance(event, AgentStopped) and event.reason == "stalled":
            feed.stalled = event.attempt  # said in the note until the node is verified or reset
        elif isinstance(event, CheckFinished) and event.level == "L1":
            feed.checks[event.check] = event
        elif isinstance(event, NodeVerified | NodePaused):
            feed.ended = event.time
            if isinstance(event, NodeVerified):
                feed.stalled = None
        elif isinstance(event, NodeReset):
            feed.checks.clear()
            feed.started = feed.ended = None
            feed.stalled = None

    # ------------------------------------------------------------------------------- what to show

    def phase(self, node: str) -> str:
        kind = self.project.graph.types.get(node)
        if kind != "process":
            stage = self.supervisor.state.nodes.get(f"decision:{node}")
            if stage is not None and stage.phase == "paused":
                return "paused"  # its own checks failed (decision:<id>)
            return "decided" if self.project.status_of(node) == "verified" else "decision"
        nr = self.supervisor.state.nodes.get(node)
        if nr is None:
            return "verified" if self.project.status_of(node) == "verified" else "pending"
        if nr.phase == "pending" and self.wait_reason(node):
            return "waiting"
        return str(nr.phase)

    def stale_reason(self, node: str) -> str:
        """Why a node that was verified is being verified again ("stale: 01_tokenize's post changed"), or ""."""
        nr = self.supervisor.state.nodes.get(node)
        return f"stale: {nr.stale}" if nr is not None and nr.stale else ""

    def limit_reason(self, node: str, now: float) -> str:
        """A limit the node's agent ran into: "rate limited — retry in 40s", "attempt 2 stalled", or ""."""
        nr = self.supervisor.state.nodes.get(node)
        if nr is not None and nr.retry_at is not None:
            return f"rate limited — retry in {max(0.0, nr.retry_at - now):.0f}s"
        feed = self.feeds.get(node)
        if feed is not None and feed.stalled is not None:
            return f"attempt {feed.stalled} stalled: stopped"
        return ""

    def troubles(self) -> list[tuple[int, str]]:
        """How many nodes wait on a rate limit, were stopped as stalled, or are stale: for the header."""
        nodes = self.supervisor.state.nodes
        counts = (
            (sum(nr.retry_at is not None for nr in nodes.values()), "rate limited"),
            (sum(feed.stalled is not None for feed in self.feeds.values()), "stalled"),
            (sum(bool(nr.stale) and nr.phase != "verified" for nr in nodes.values()), "stale"),
        )
        return [(count, what) for count, what in counts if count]

    def spend(self) -> tuple[float, float | None]:
        """(USD spent by the run so far, its budget or None)."""
        state, settings = self.supervisor.state, self.settings
        budget = settings.budget_usd + state.budget_raised if settings.budget_usd is not None else None
        return state.spent(), budget

    def wait_reason(self, node: str) -> str:
        """Why a pending node has not started: a file shared with a running node, no free slot, or an
        upstream node not verified yet."""
        for wait in self.supervisor.waits:
            if wait.node == node:
                if wait.kind == "files":
                    return f"shares {', '.join(wait.files)} with {wait.blocker}"
                return "no free slot"
        nr = self.supervisor.state.nodes.get(node)
        if nr is not None and nr.phase != "pending":
            return ""
        for upstream in self.project.graph.upstream.get(node, ()):
            up = self.supervisor.state.nodes.get(upstream)
            if (up.phase if up else self.project.status_of(upstream)) != "verified":
                return f"waits for {upstream}"
        if self.supervisor.held:
            return "scheduling is paused"
        return ""

    def attempt(self, node: str) -> str:
        """The attempt within the current round, "2/3" ("5" past the usual bound; "" before the first)."""
        nr = self.supervisor.state.nodes.get(node)
        attempt = nr.round_attempt if nr else 0
        cap = max(3, self.settings.retries + 1)
        if attempt <= 0:
            return ""
        return f"{attempt}/{cap}" if attempt <= cap else str(attempt)

    def cost(self, node: str) -> float:
        nr = self.supervisor.state.nodes.get(node)
        return nr.cost_usd if nr else 0.0

    def elapsed(self, node: str, now: float | None = None) -> float | None:
        feed = self.feeds.get(node)
        if feed is None or feed.started is None:
            return None
        return max(0.0, (feed.ended or now or time.time()) - feed.started)

    def runnable_check_keys(self, node: str) -> list[str]:
        """The node's L1 checks that run a command (``core[0]``…), then its checkpoint."""
        keys = [f"{c.phase}[{c.index}]" for c in self.project.node_checks(node) if c.level == "L1" and c.runnable]
        return [*keys, "checkpoint"]

    def pauses(self) -> list[Pause]:
        """Open pauses, oldest first."""
        return sorted(self.supervisor.open_pauses(), key=lambda p: p.at)

    def pause_of(self, node: str) -> Pause | None:
        nr = self.supervisor.state.nodes.get(node)
        return nr.pause if nr is not None and nr.phase == "paused" else None

    def region_progress(self) -> list[tuple[str, int, int]]:
        """(label, verified, process nodes) per region."""
        verified = self.verified()
        return [
            (r.label, sum(n in verified for n in r.process_nodes), len(r.process_nodes))
            for r in self.project.graph.regions
        ]

    def verified(self) -> set[str]:
        return {n for n in self.project.graph.process_order if self.phase(n) == "verified"}

    def running(self) -> list[str]:
        """Nodes with a worker, check or review going on now."""
        return self.supervisor.active_nodes()

    def worker_tree(self, node: str) -> Path:
        return self.supervisor.tree_of(node)

    def diff(self, node: str) -> str:
        """The node's changes so far (blocking: GitPython; call it from a thread worker)."""
        nr = self.supervisor.state.nodes.get(node)
        if nr is None or not nr.base or not nr.head:
            return ""
        from ..engine.gitrepo import Repo

        return Repo(self.supervisor.project_dir).diff(nr.base, nr.head)

    # ------------------------------------------------------------------------------------ commands

    def decide(self, decision: Decision) -> None:
        self.supervisor.decide(decision)

    def leave_running(self) -> list[str]:
        return self.supervisor.leave_running()

    def stop(self) -> None:
        self.supervisor.request_stop()
