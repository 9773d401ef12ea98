"""One readable line for each kind of event (what ``Event.describe`` says when the event has no text of its own):
the headless printer and the TUI's feed show these. Short shas, no ``key=value`` dumps; everything an event
carries stays in its JSON (``--json``, ``events.jsonl``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Detail = dict[str, Any]


def duration(seconds: float) -> str:
    """A span of time as a person reads it: "4.2 s", "3 min 05 s", "2 h 07 min"."""
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {rest:02d} s" if minutes else f"{seconds:.1f} s"


def _names(items: list[Any], most: int = 6) -> str:
    shown = ", ".join(str(item) for item in items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "") if items else "none"


def _stage(d: Detail) -> str:
    failed = f" — failed: {_names(d['failed'])}" if d.get("failed") else ""
    return f"{d['stage']} checks {'passed' if d['passed'] else 'FAILED'} ({d['checks']} run){failed}"


def _benchmark(d: Detail) -> str:
    value = f": {d['value']}" if d.get("value") is not None else ""
    optimal = f" (known optimal {d['known_optimal']})" if d.get("known_optimal") is not None else ""
    return f"benchmark {'passed' if d['passed'] else 'FAILED'}{value}{optimal}"


TEXTS: dict[str, Callable[[Detail], str]] = {
    "RunStarted": lambda d: (
        f"{'resumed' if d['resumed'] else 'started'} on {d['integration_branch']} "
        f"({d['isolation']}, up to {d['max_parallel']} workers at once)"
    ),
    "RunFinished": lambda d: (
        f"run {d['outcome']}: {d['verified']}/{d['total']} verified"
        + (f"; paused: {_names(d['paused'])}" if d.get("paused") else "")
    ),
    "OrphanStopped": lambda d: f"stopped a process left from an earlier run (pid {d['pid']}): {d['reason']}",
    "NodeRecovered": lambda d: f"recovered: {d['was']} → {d['now']} ({d['reason']})",
    "AgentStep": lambda d: f"{d['role']}: {d['step']}",
    "AttemptFailed": lambda d: f"{d['role']} attempt {d['attempt']} failed: {d['reason']}",
    "FixTaskSent": lambda d: (
        f"fix task for attempt {d['attempt']}{' (resumed session)' if d['resume'] else ''}: {d['reason']}"
    ),
    "ScopeViolated": lambda d: f"changed files outside its own: {_names(d['files'])}",
    "NodeMerged": lambda d: f"merged {d['branch']} ({str(d['sha'])[:10]})",
    "MergeConflicted": lambda d: f"merge conflict merging {d['branch']} in {_names(d['files'])}",
    "DecisionVerified": lambda d: f"decision verified (its feeders are: {_names(d['feeders'])})",
    "StageFinished": _stage,
    "BenchmarkRan": _benchmark,
    "DecisionIgnored": lambda d: f"decision not applied: {d['reason']}",
    "NodeApproved": lambda d: f"approved by {d['who']}" + (f": {d['text']}" if d.get("text") else ""),
    "NodeFailed": lambda d: f"failed ({d['reason']}); not run because of it: {_names(d['dependants'])}",
    "NodeReset": lambda d: f"reset: {d['reason']}",
    "NodeStale": lambda d: f"stale: {d['reason']}",
    "ContractChanged": lambda d: f"post condition added (decided at {d['by']}): {d['text']}",
    "NodeRetried": lambda d: f"started again by {d['who']} (was {d['was']})",
    "SchedulingHeld": lambda d: f"scheduling {'held' if d['held'] else 'resumed'} by {d['who']}",
    "WorkersLeftRunning": lambda d: f"workers left running for the next run: {_names(d['nodes'])}",
    "DisputeRaised": lambda d: f"the worker disputes {d['check']} ({d['desc']}): {d['reason']}",
    "MapReloaded": lambda d: f"map reloaded: {d['reason']}",
    "DiagnosisMade": lambda d: (
        f"{d['stage']} diagnosis: " + (f"first suspect {d['suspect']}" if d.get("suspect") else "no suspect found")
    ),
    "BudgetRaised": lambda d: f"budget raised by ${d['by']:.2f} to ${d['budget']:.2f} by {d['who']}",
}


def readable(kind: str, detail: Detail) -> str | None:
    """The line for an event of ``kind`` with ``detail``, or None when there is no text for it."""
    text = TEXTS.get(kind)
    return text(detail) if text is not None else None
