"""Chaos: interrupt real `foreman run` processes at random moments and check, from the outside, that nothing broke.

    python bench/chaos.py --runs N [--seed S] [--keep DIR] [--json]

Each run makes a fresh copy of the bundled demo (k-means, 8 process nodes, two regions, an end stage) in which
the scripted worker sleeps 0.2-1.5 s before committing, the project's checks and the reviewer start a little
late (a `python` wrapper and a reviewer wrapper that sleep first), so every phase lasts long enough to be hit.
It starts `python -m foreman_tui run MAP --headless` as a plain subprocess (foreman's own pid receives the
signal), waits for a chosen event in `.foreman/events.jsonl` (or a random moment of start-up), waits a random
few milliseconds more, and sends SIGKILL, SIGTERM or SIGINT; some runs are interrupted twice. Then it runs
foreman again until it exits 0 (at most a few times) and checks the result with git, the file system, /proc
and the event log only. See docs/reliability.md for the invariants.

Exit status 1 if any run showed a violation. `--keep DIR` makes the runs in DIR and keeps the folders of runs
that failed (each with `chaos-report.json`); without it everything goes in a temporary folder that is removed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from foreman_tui.demo import create_demo
from foreman_tui.engine.project import Project
from foreman_tui.engine.trust import approve_project

SIGNALS: dict[str, signal.Signals] = {
    "SIGKILL": signal.SIGKILL,
    "SIGTERM": signal.SIGTERM,
    "SIGINT": signal.SIGINT,
}

TRIGGERS = ("start-up", "worker", "commit", "checks", "review", "merge", "merged", "stage")
"""Where an interruption is aimed: a random moment of start-up, or a random few ms after the n-th event of a
kind (``worker``: a worker started; ``commit``: a commit detected, the worker still running; ``checks``: a
worker exited (its node's checks start); ``review``: a reviewer started;
``merge``: a CLEAN review; ``merged``: a merge done; ``stage``: the node that completes a region/the map
verified)."""

PHASES = (
    "start-up",
    "worker running",
    "after commit",
    "checks",
    "review",
    "merge",
    "after merge",
    "stage checks",
    "finishing",
    "other",
)
"""Where an interruption landed, inferred from the last events before it (see ``infer_phase``)."""

VIOLATIONS = {
    "lost": "a seen commit lost (not in the final history, or thrown away and the node dispatched again)",
    "redone": "a verified node dispatched again",
    "merged_not_once": "a node not merged exactly once",
    "debris": "left behind: worktree, foreman/* branch, index.lock, git worktree entry, process, dirty tree, "
    "unmerged paths",
    "invalid_map": "the map (or .foreman/run.json) not JSON, or `foreman validate` failing, after an interruption",
    "stuck": "did not reach the end: paused, failed, hung, refused, not every node verified",
    "crashed": "a Python traceback in foreman's stderr",
    "unhandled_signal": "SIGTERM/SIGINT ended foreman without its own stop (killed by the signal, or exit not "
    "0, 3 or 128+signal)",
}

STOP_WAIT = 60.0
"""Seconds foreman gets to stop after SIGTERM/SIGINT before the harness calls it stuck."""
RUN_WAIT = 240.0
"""Seconds one uninterrupted `foreman run` of the demo may take."""
MAX_FINAL_RUNS = 4
"""How many times foreman is started after the interruptions to reach the end."""
LINGER = 6.0
"""Seconds processes and locks left by a killed foreman get to go away on their own."""


@dataclass(frozen=True)
class Timing:
    """How slow the demo is made, in seconds (each value drawn once per node or per run from the range)."""

    worker_sleep: tuple[float, float] = (0.2, 1.5)
    """Before the worker commits (the script's ``sleep``), per node and attempt."""
    worker_linger: tuple[float, float] = (0.1, 0.5)
    """After the worker committed, before it exits (as a real agent sums up), per run."""
    check_delay: tuple[float, float] = (0.05, 0.3)
    """Before each check or benchmark command starts (the project's `python` is a wrapper), per run."""
    review_delay: tuple[float, float] = (0.05, 0.4)
    """Before the reviewer answers, per run."""


QUICK = Timing(worker_sleep=(0.15, 0.6), worker_linger=(0.1, 0.2), check_delay=(0.05, 0.15), review_delay=(0.05, 0.2))
"""A faster demo for the test suite."""


@dataclass
class Interruption:
    """One planned interruption, then what happened."""

    signal: str
    trigger: str
    nth: int = 1
    delay: float = 0.0
    landed: bool = False
    phase: str = ""
    exit_code: int | None = None
    seconds_in: float = 0.0
    """Seconds after that foreman process started."""
    last_events: list[str] = field(default_factory=list)


@dataclass
class Violation:
    kind: str
    message: str
    node: str | None = None
    evidence: list[str] = field(default_factory=list)


@dataclass
class RunResult:
    index: int
    seed: str
    folder: str
    plan: list[Interruption]
    violations: list[Violation] = field(default_factory=list)
    foreman_runs: int = 0
    seconds: float = 0.0
    complete: bool = False
    kept: bool = False

    @property
    def interruptions(self) -> list[Interruption]:
        return [i for i in self.plan if i.landed]


# ------------------------------------------------------------------------------------------------ the demo


def _git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=check, stdin=subprocess.DEVNULL
    )


def _executable(path: Path, script: str) -> None:
    path.write_text(script, encoding="utf-8")
    path.chmod(0o755)


def make_demo(folder: Path, rng: random.Random, timing: Timing) -> Path:
    """The demo in ``folder``, slowed down: the worker sleeps before its commit (per node and attempt) and
    lingers after it, the checks' `python` and the reviewer start late. Committed; returns the map's path."""
    map_path = create_demo(folder / "demo")
    script_dir = folder / "demo" / "script"
    script_path = script_dir / "script.json"
    script = json.loads(script_path.read_text(encoding="utf-8"))
    for entry in script["nodes"].values():
        for step in entry.get("attempts") or [entry]:
            step["sleep"] = round(rng.uniform(*timing.worker_sleep), 3)
    script_path.write_text(json.dumps(script, indent=1), encoding="utf-8")
    real = shlex.quote(sys.executable)
    slow_python = folder / "demo" / "slowpy" / "python"
    slow_python.parent.mkdir()
    _executable(slow_python, f'#!/bin/sh\nsleep {rng.uniform(*timing.check_delay):.3f}\nexec {real} "$@"\n')
    agent = f"{real} -m foreman_tui.agents.scripted --script {shlex.quote(str(script_path))}"
    reviewer = script_dir / "reviewer"
    _executable(reviewer, f"#!/bin/sh\nsleep {rng.uniform(*timing.review_delay):.3f}\nexec {agent}\n")
    worker = script_dir / "worker"
    linger = rng.uniform(*timing.worker_linger)
    _executable(worker, f"#!/bin/sh\n{agent}\nstatus=$?\nsleep {linger:.3f}\nexit $status\n")
    toml = map_path.parent / "foreman.toml"
    toml.write_text(
        "# chaos harness: the demo, slowed down (bench/chaos.py)\n"
        "poll = 0.5\nstop_grace = 1\n\n"
        f'[worker]\npreset = "command"\nargv = [{json.dumps(str(worker))}]\n\n'
        f'[reviewer]\npreset = "command"\nargv = [{json.dumps(str(reviewer))}]\n\n'
        f"[checks]\npython = {json.dumps(str(slow_python))}\n",
        encoding="utf-8",
    )
    _git(map_path.parent, "commit", "-qam", "chaos: slowed down")
    # The harness wrote these commands itself: approved as `foreman trust --yes` would (in the state folder the
    # harness runs foreman with, see main()).
    approve_project(Project.load(map_path), who="chaos harness")
    return map_path


def process_nodes(map_path: Path) -> list[str]:
    doc = json.loads(map_path.read_text(encoding="utf-8"))
    return [n["id"] for n in doc["graph"]["nodes"] if n.get("type") == "process"]


def stage_nodes(map_path: Path) -> set[str]:
    """Process nodes whose verification makes a stage due: the last of each region (in the map's order of
    nodes, which is the demo's order of work), and the last of all (the end stage)."""
    doc = json.loads(map_path.read_text(encoding="utf-8"))
    order = process_nodes(map_path)
    found = {order[-1]} if order else set()
    for region in doc["graph"].get("regions", []):
        members = [n for n in order if n in set(region.get("nodes", []))]
        if members:
            found.add(members[-1])
    return found


# ------------------------------------------------------------------------------------------- the event log


def events_path(map_path: Path) -> Path:
    return map_path.parent / ".foreman" / "events.jsonl"


def read_events(path: Path, offset: int = 0) -> list[dict[str, Any]]:
    """The log's records from byte ``offset``, skipping torn lines (a write cut by a kill)."""
    if not path.exists():
        return []
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read()
    found = []
    for line in data.split(b"\n"):
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and "kind" in record:
                found.append(record)
    return found


class EventTail:
    """New complete lines of the event log since a byte offset."""

    def __init__(self, path: Path, offset: int) -> None:
        self.path = path
        self.offset = offset
        self.partial = b""

    def poll(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        found = []
        for line in lines:
            with contextlib.suppress(ValueError):
                found.append(json.loads(line))
        return found


def fmt(event: dict[str, Any]) -> str:
    """One short line per event for evidence."""
    d = event.get("detail") or {}
    keep = (
        "role",
        "attempt",
        "sha",
        "check",
        "status",
        "verdict",
        "stage",
        "outcome",
        "was",
        "now",
        "reason",
        "trigger",
        "problem",
        "pid",
        "exit_code",
        "stopped",
        "detected_by",
        "branch",
    )
    parts = []
    for key in keep:
        if key in d and d[key] not in (None, "", [], {}):
            value = d[key]
            if key == "sha":
                value = str(value)[:10]
            text = str(value).replace("\n", " ")
            parts.append(f"{key}={text[:140]}")
    stamp = str(event.get("time", ""))[11:23]
    return f"{stamp} {event.get('node') or 'run'} {event.get('kind')} {' '.join(parts)}".rstrip()


def role(event: dict[str, Any]) -> str | None:
    return (event.get("detail") or {}).get("role")


_STAGE_KEYS = ("region:", "decision:", "end")


def _is_stage_node(node: str | None) -> bool:
    return bool(node) and any(str(node).startswith(k) for k in _STAGE_KEYS)


def infer_phase(events: list[dict[str, Any]], stages: set[str]) -> str:
    """Where a kill landed, from the events this foreman process wrote before it: its last event's kind."""
    if not any(e["kind"] == "RunStarted" for e in events):
        return "start-up"
    last = events[-1]
    kind, node = last["kind"], last.get("node")
    if kind in ("RunStarted", "RunNoted", "NodeRecovered", "OrphanStopped"):
        return "start-up"
    if kind == "RunFinished" or (kind == "StageFinished" and node == "end"):
        return "finishing"
    if _is_stage_node(node) or kind in ("StageFinished", "BenchmarkRan", "DiagnosisMade"):
        return "stage checks"
    if kind in ("WorkerStarted", "AgentStep"):
        return "review" if role(last) == "reviewer" else "worker running"
    if kind == "WorkerExited":
        return "review" if role(last) == "reviewer" else "after commit"
    if kind in ("CommitDetected", "AgentReported"):
        return "after commit"
    if kind in ("CheckFinished", "FixTaskSent", "ScopeViolated", "AttemptFailed"):
        return "checks"
    if kind == "ReviewFinished":
        return "merge" if (last.get("detail") or {}).get("verdict") == "CLEAN" else "review"
    if kind == "NodeMerged":
        return "after merge"
    if kind in ("NodeVerified", "DecisionVerified"):
        return "stage checks" if node in stages else "after merge"
    return "other"


def foreman_children(pid: int) -> list[dict[str, str]]:
    """What foreman is running right now: its descendants, each with a class (``worker``, ``reviewer``,
    ``check`` in a node's tree, ``stage check`` in the main tree, ``merge``, ``git``) from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for child in (p for p, pp in parents.items() if pp == parent):
            todo.append(child)
            try:
                cmd = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                cwd = os.readlink(f"/proc/{child}/cwd")
                environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            found.append({"pid": str(child), "cmd": cmd, "cwd": cwd, "class": _classify(cmd, cwd, environ)})
    return found


def _classify(cmd: str, cwd: str, environ: list[bytes]) -> str:
    words = cmd.split()
    if words and Path(words[0]).name == "git":
        return "merge" if "merge" in words[1:3] else "git"
    if "slowpy/python" in cmd or " -m unittest" in cmd or "objective.py" in cmd:
        return "check" if "/.foreman/worktrees/" in cwd + "/" else "stage check"
    if cmd.endswith("/script/reviewer") or b"FOREMAN_ROLE=reviewer" in environ:
        return "reviewer"
    if cmd.endswith("/script/worker") or b"FOREMAN_ROLE=worker" in environ:
        return "worker"
    return "other"


def refine_phase(phase: str, children: list[dict[str, str]]) -> str:
    """The events' phase, made precise by what foreman was running at the kill: a check process after a
    commit means checks; a stage check process means stage checks; a `git merge` means a merge."""
    running = {c["class"] for c in children}
    if "merge" in running:
        return "merge"
    if "stage check" in running and phase in ("after merge", "stage checks", "start-up", "other"):
        return "stage checks"
    if "check" in running and phase == "after commit":
        return "checks"
    return phase


def _trigger_matches(trigger: str, event: dict[str, Any], stages: set[str]) -> bool:
    kind = event.get("kind")
    if trigger == "worker":
        return kind == "WorkerStarted" and role(event) == "worker"
    if trigger == "commit":
        return kind == "CommitDetected"
    if trigger == "checks":
        return kind == "WorkerExited" and role(event) == "worker"
    if trigger == "review":
        return kind == "WorkerStarted" and role(event) == "reviewer"
    if trigger == "merge":
        return kind == "ReviewFinished" and (event.get("detail") or {}).get("verdict") == "CLEAN"
    if trigger == "merged":
        return kind == "NodeMerged"
    if trigger == "stage":
        return kind == "NodeVerified" and event.get("node") in stages
    return False


# --------------------------------------------------------------------------------------------- the plan

MAX_NTH = {"worker": 8, "commit": 8, "checks": 8, "review": 7, "merge": 7, "merged": 7, "stage": 2}
"""How many events of each trigger kind a whole demo run has, minus one (the n-th is drawn up to this)."""


def draw_delay(rng: random.Random, trigger: str, timing: Timing) -> float:
    """The wait after the trigger event: small where the phase is short (a merge), longer where it is long."""
    ranges = {
        "start-up": (0.05, 1.2),
        "worker": (0.03, max(0.05, timing.worker_sleep[0] * 0.9)),
        "commit": (0.0, timing.worker_linger[0] * 0.8),
        "checks": (0.02, 0.05 + timing.check_delay[0]),
        "review": (0.0, timing.review_delay[0]),
        "merge": (0.0, 0.015),
        "merged": (0.0, 0.01),
        "stage": (0.01, 0.05 + timing.check_delay[0]),
    }
    low, high = ranges[trigger]
    return round(rng.uniform(low, high), 4)


def make_plan(seed: int, index: int, timing: Timing = Timing()) -> list[Interruption]:
    """The interruptions of run ``index``: signals and triggers rotate over the runs (so a few runs cover
    all three signals and every trigger), the n-th event and the delay are random; about a third of the runs
    are interrupted twice."""
    rng = random.Random(f"chaos-plan:{seed}:{index}")
    triggers = list(TRIGGERS)
    random.Random(f"chaos-order:{seed}").shuffle(triggers)
    names = list(SIGNALS)
    first_trigger = triggers[index % len(triggers)]
    first = Interruption(
        signal=names[(index + seed) % len(names)],
        trigger=first_trigger,
        nth=rng.randint(1, MAX_NTH.get(first_trigger, 1)),
        delay=draw_delay(rng, first_trigger, timing),
    )
    plan = [first]
    if rng.random() < 0.35:
        trigger = rng.choice(TRIGGERS)
        plan.append(
            Interruption(
                signal=rng.choice(names),
                trigger=trigger,
                nth=rng.randint(1, 2 if trigger != "stage" else 1),
                delay=draw_delay(rng, trigger, timing),
            )
        )
    return plan


# -------------------------------------------------------------------------------------- running foreman


SOURCE: Path | None = None
"""A foreman source tree to run instead of the installed package (``--source``; goes first on PYTHONPATH)."""


def foreman_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOREMAN_")}
    env["PYTHONIOENCODING"] = "utf-8"
    if SOURCE is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SOURCE), env.get("PYTHONPATH", "")) if p)
    return env


_LIVE: list[ForemanProcess] = []
"""Every foreman process started, so that a harness stopped half-way (Ctrl-C) leaves none running."""


class ForemanProcess:
    """One `foreman run MAP --headless`, its output in files, the event log's size when it started."""

    def __init__(self, map_path: Path, logs: Path, number: int) -> None:
        self.map_path = map_path
        self.number = number
        self.log = events_path(map_path)
        self.offset = self.log.stat().st_size if self.log.exists() else 0
        logs.mkdir(parents=True, exist_ok=True)
        self.out_path = logs / f"foreman-{number}.out"
        self.err_path = logs / f"foreman-{number}.err"
        self.started = time.monotonic()
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "foreman_tui", "run", str(map_path), "--headless"],
                cwd=map_path.parent,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=foreman_env(),
            )
        _LIVE.append(self)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill_hard(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait(30)

    def events(self) -> list[dict[str, Any]]:
        return read_events(self.log, self.offset)

    def stderr(self) -> str:
        return self.err_path.read_text(encoding="utf-8", errors="replace")

    def traceback(self) -> list[str]:
        text = self.stderr()
        if "Traceback (most recent call last)" not in text:
            return []
        lines = text[text.index("Traceback (most recent call last)") :].splitlines()
        return lines if len(lines) <= 24 else [*lines[:9], "      ...", *lines[-14:]]


def wait_for_trigger(fm: ForemanProcess, plan: Interruption, stages: set[str], timeout: float) -> bool:
    """Block until the planned moment; False if foreman ended (or the moment never came) first."""
    if plan.trigger == "start-up":
        time.sleep(plan.delay)
        return fm.proc.poll() is None
    tail = EventTail(fm.log, fm.offset)
    seen = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in tail.poll():
            if _trigger_matches(plan.trigger, event, stages):
                seen += 1
                if seen >= plan.nth:
                    time.sleep(plan.delay)
                    return fm.proc.poll() is None
        if fm.proc.poll() is not None:
            return False
        time.sleep(0.004)
    return False


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


# ---------------------------------------------------------------------------------------------- checks


def git_dir(repo: Path) -> Path:
    return repo / ".git"


def index_locks(repo: Path) -> list[str]:
    root = git_dir(repo)
    locks = [root / "index.lock", *sorted((root / "worktrees").glob("*/index.lock"))]
    return [str(p.relative_to(repo)) for p in locks if p.exists()]


def processes_under(folder: Path) -> list[str]:
    """Live processes whose command line or working directory is under ``folder`` (not this one)."""
    root = str(folder.resolve())
    found = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            stat = (entry / "stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            try:
                cwd = os.readlink(entry / "cwd")
            except OSError:
                cwd = ""
        except (OSError, IndexError):
            continue
        if root in cmdline or cwd == root or cwd.startswith(root + "/"):
            found.append(f"pid {entry.name} cwd={cwd} cmd={cmdline[:200]}")
    return found


def check_after_interruption(map_path: Path, number: int) -> list[Violation]:
    """The map is JSON and validates; git has no unmerged paths and no index.lock (after a moment for a git
    process a SIGKILL left running to finish)."""
    found: list[Violation] = []
    repo = map_path.parent
    where = f"after interruption {number}"
    try:
        json.loads(map_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        found.append(Violation("invalid_map", f"{where}: the map is not JSON: {exc}"))
    else:
        done = subprocess.run(
            [sys.executable, "-m", "foreman_tui", "validate", str(map_path)],
            cwd=repo,
            capture_output=True,
            text=True,
            env=foreman_env(),
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
        if done.returncode != 0:
            found.append(
                Violation(
                    "invalid_map",
                    f"{where}: foreman validate exited {done.returncode}",
                    evidence=(done.stdout + done.stderr).splitlines()[-15:],
                )
            )
    run_json = repo / ".foreman" / "run.json"
    if run_json.exists():
        try:
            json.loads(run_json.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            found.append(Violation("invalid_map", f"{where}: .foreman/run.json is not JSON: {exc}"))
    if not wait_until(lambda: not index_locks(repo), LINGER):
        found.append(Violation("debris", f"{where}: index.lock left: {', '.join(index_locks(repo))}"))
    unmerged = _git(repo, "diff", "--name-only", "--diff-filter=U", check=False).stdout.split()
    if unmerged:
        found.append(
            Violation(
                "debris",
                f"{where}: unmerged paths in the main tree: {', '.join(unmerged)}",
                evidence=_git(repo, "status", "--short", check=False).stdout.splitlines()[:20],
            )
        )
    return found


def _node_events(events: list[dict[str, Any]], node: str, upto: int, after: int = -1) -> list[str]:
    return [fmt(e) for i, e in enumerate(events) if after < i <= upto and e.get("node") == node][-12:]


def map_statuses(map_path: Path) -> dict[str, str | None]:
    """Each node's status in the map's state (empty when the map cannot be read)."""
    try:
        nodes = json.loads(map_path.read_text(encoding="utf-8")).get("state", {}).get("nodes", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return {k: (v or {}).get("status") for k, v in nodes.items()} if isinstance(nodes, dict) else {}


def check_event_log(
    events: list[dict[str, Any]], repo: Path, branch: str, map_name: str = "algorithm-map.json"
) -> list[Violation]:
    """Redone verified nodes, lost seen commits, from the whole event log and git."""
    found: list[Violation] = []
    verified_at: dict[str, int] = {}
    for i, e in enumerate(events):
        node, kind = e.get("node"), e["kind"]
        if kind == "NodeVerified" and node:
            verified_at[node] = i
        elif kind == "NodeReset" and node:
            verified_at.pop(node, None)
        elif kind == "WorkerStarted" and role(e) == "worker" and node in verified_at:
            found.append(
                Violation(
                    "redone",
                    f"{node} dispatched again (attempt {e['detail'].get('attempt')}) after it was verified",
                    node,
                    _node_events(events, node, i, verified_at[node] - 1),
                )
            )
    head = _git(repo, "rev-parse", branch, check=False).stdout.strip()
    statuses = map_statuses(repo / map_name)
    lost: set[tuple[str, str]] = set()
    for i, e in enumerate(events):
        if e["kind"] != "CommitDetected" or not e.get("node"):
            continue
        node, sha = e["node"], e["detail"]["sha"]
        if any(x["kind"] == "NodeReset" and x.get("node") == node for x in events[i + 1 :]):
            continue
        tips = [head]
        if statuses.get(node) != "verified":  # the run did not get there (reported as stuck): its branch counts
            tips.append(f"refs/heads/foreman/{node}")
        kept = any(_git(repo, "merge-base", "--is-ancestor", sha, tip, check=False).returncode == 0 for tip in tips)
        if not kept and (node, sha) not in lost:
            lost.add((node, sha))
            where = " or foreman/" + node if len(tips) > 1 else ""
            found.append(
                Violation(
                    "lost",
                    f"{node}'s commit {sha[:10]} (attempt {e['detail'].get('attempt')}) is not in {branch}{where}",
                    node,
                    _node_events(events, node, len(events) - 1, i - 1),
                )
            )
    # A seen commit thrown away: the node's worker dispatched again after a CommitDetected of the attempt
    # in flight, with no fix task (nor reset, retry, decision) in between; or a restart saying the
    # interrupted attempt left no commit when one had been detected.
    excuses = ("FixTaskSent", "NodeReset", "NodeRetried", "DecisionRecorded")
    pending_commit: dict[str, int] = {}  # node -> index of a CommitDetected of its latest worker attempt
    for i, e in enumerate(events):
        node, kind = e.get("node"), e["kind"]
        if not node:
            continue
        if kind == "CommitDetected":
            pending_commit[node] = i
        elif kind in excuses:
            pending_commit.pop(node, None)
        elif kind == "NodeRecovered" and node in pending_commit:
            detail = e.get("detail") or {}
            said_none = "no commit" in str(detail.get("reason", "")) or detail.get("now") in ("pending", "not_started")
            if said_none:
                sha = events[pending_commit[node]]["detail"]["sha"]
                found.append(
                    Violation(
                        "lost",
                        f"{node}: restart said '{detail.get('reason')}' although commit {sha[:10]} of the "
                        "interrupted attempt had been detected",
                        node,
                        _node_events(events, node, i, pending_commit[node] - 4),
                    )
                )
                lost.add((node, sha))
                pending_commit.pop(node)
        elif kind == "WorkerStarted" and role(e) == "worker" and node in pending_commit:
            sha = events[pending_commit[node]]["detail"]["sha"]
            if (node, sha) not in lost:
                found.append(
                    Violation(
                        "lost",
                        f"{node}: worker dispatched again (attempt {e['detail'].get('attempt')}) after its "
                        f"commit {sha[:10]} had been detected, without a fix task",
                        node,
                        _node_events(events, node, i, pending_commit[node] - 4),
                    )
                )
                lost.add((node, sha))
            pending_commit.pop(node)
    return found


def check_final(map_path: Path, folder: Path, branch: str) -> list[Violation]:
    """After the last run: merges, debris, processes, the map's state."""
    found: list[Violation] = []
    repo = map_path.parent
    nodes = process_nodes(map_path)
    subjects = _git(repo, "log", branch, "--format=%s", check=False).stdout.splitlines()
    statuses = map_statuses(map_path)
    for node in nodes:
        count = subjects.count(f"foreman: merge {node}")
        # Not merged and not verified: the run did not get there, which "stuck" reports.
        if count > 1 or (count == 0 and statuses.get(node) == "verified"):
            found.append(Violation("merged_not_once", f"{node} merged {count} times into {branch}", node))
    debris: list[str] = []
    worktrees = repo / ".foreman" / "worktrees"
    if worktrees.is_dir():
        debris += [f"worktree folder .foreman/worktrees/{p.name}" for p in sorted(worktrees.iterdir())]
    branches = _git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/foreman/", check=False).stdout
    debris += [f"branch {b}" for b in branches.split()]
    debris += [f"lock {p}" for p in index_locks(repo)]
    entries = git_dir(repo) / "worktrees"
    if entries.is_dir():
        debris += [f"git worktree entry .git/worktrees/{p.name}" for p in sorted(entries.iterdir())]
    dirty = _git(repo, "status", "--porcelain", "--untracked-files=no", check=False).stdout.splitlines()
    debris += [f"uncommitted change: {line}" for line in dirty]
    if debris:
        found.append(Violation("debris", "left behind after the final run", evidence=debris))
    if not wait_until(lambda: not processes_under(folder), LINGER, 0.2):
        found.append(
            Violation("debris", "processes still running under the run's folder", evidence=processes_under(folder))
        )
    try:
        state = json.loads(map_path.read_text(encoding="utf-8")).get("state", {}).get("nodes", {})
    except (OSError, ValueError) as exc:
        found.append(Violation("invalid_map", f"the map is not JSON after the final run: {exc}"))
        return found
    unverified = [n for n in nodes if (state.get(n) or {}).get("status") != "verified"]
    if unverified:
        found.append(
            Violation(
                "stuck",
                "not verified in the map's state: "
                + ", ".join(f"{n} ({(state.get(n) or {}).get('status')})" for n in unverified),
            )
        )
    return found


# ------------------------------------------------------------------------------------------------ a run


def _exit_problems(fm: ForemanProcess, code: int | None, sent: str | None) -> list[Violation]:
    """A traceback, a SIGTERM/SIGINT foreman did not handle."""
    found = []
    where = f"foreman run #{fm.number}"
    trace = fm.traceback()
    if trace:
        found.append(Violation("crashed", f"{where} (exit {code}) printed a traceback", evidence=trace))
    handled = (0, 3, None, 128 + SIGNALS[sent]) if sent in SIGNALS else ()
    if sent in ("SIGTERM", "SIGINT") and code not in handled and not trace:
        how = f"was killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exited {code}"
        found.append(
            Violation(
                "unhandled_signal",
                f"{where} {how} after {sent} (a handled stop exits 3, or 128+signal before the run began)",
                evidence=[fmt(e) for e in fm.events()[-6:]] + fm.stderr().splitlines()[-6:],
            )
        )
    return found


def _paused_evidence(fm: ForemanProcess) -> list[str]:
    events = fm.events()
    pauses = [e for e in events if e["kind"] == "NodePaused"]
    lines = [f"PAUSE {e.get('node')}: [{e['detail'].get('trigger')}] {e['detail'].get('problem')}" for e in pauses]
    return lines + [fmt(e) for e in events[-20:]]


def run_one(
    index: int,
    seed: int,
    base: Path,
    plan: list[Interruption] | None = None,
    timing: Timing = Timing(),
) -> RunResult:
    """One demo repository, its interruptions, the final run and every check."""
    try:
        return _run_one(index, seed, base, plan, timing)
    finally:
        while _LIVE:
            fm = _LIVE.pop()
            if fm.proc.poll() is None:
                fm.kill_hard()


def _run_one(index: int, seed: int, base: Path, plan: list[Interruption] | None, timing: Timing) -> RunResult:
    started = time.monotonic()
    folder = base / f"run-{index:03d}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    rng = random.Random(f"chaos-demo:{seed}:{index}")
    plan = plan if plan is not None else make_plan(seed, index, timing)
    result = RunResult(index=index, seed=f"{seed}:{index}", folder=str(folder), plan=plan)
    map_path = make_demo(folder, rng, timing)
    repo = map_path.parent
    stages = stage_nodes(map_path)
    branch = _git(repo, "branch", "--show-current").stdout.strip()
    logs = folder / "logs"
    complete = False
    stopped_for_good = False

    def add(found: Iterable[Violation]) -> None:
        result.violations.extend(found)

    for number, step in enumerate(plan, 1):
        result.foreman_runs += 1
        fm = ForemanProcess(map_path, logs, result.foreman_runs)
        if not wait_for_trigger(fm, step, stages, RUN_WAIT):
            code = fm.wait(RUN_WAIT)
            if code is None:
                fm.kill_hard()
                add(
                    [
                        Violation(
                            "stuck",
                            f"foreman run #{fm.number} neither reached the planned moment nor ended",
                            evidence=[fmt(e) for e in fm.events()[-20:]],
                        )
                    ]
                )
                stopped_for_good = True
                break
            add(_exit_problems(fm, code, None))
            if code == 0:
                complete = True
            elif code == 3:
                add(
                    [
                        Violation(
                            "stuck",
                            f"foreman run #{fm.number} paused (exit 3) with no interruption",
                            evidence=_paused_evidence(fm),
                        )
                    ]
                )
                stopped_for_good = True
            break  # the run ended before the moment: no more interruptions
        children = foreman_children(fm.proc.pid)
        kill_time = time.time()
        step.seconds_in = round(time.monotonic() - fm.started, 3)
        with contextlib.suppress(ProcessLookupError):
            fm.proc.send_signal(SIGNALS[step.signal])
        code = fm.wait(10 if step.signal == "SIGKILL" else STOP_WAIT)
        if code is None:
            add(
                [
                    Violation(
                        "stuck",
                        f"foreman run #{fm.number} did not stop within {STOP_WAIT:g}s of {step.signal}",
                        evidence=[fmt(e) for e in fm.events()[-15:]],
                    )
                ]
            )
            fm.kill_hard()
            code = fm.proc.returncode
        step.landed = True
        step.exit_code = code
        before = [e for e in fm.events() if float(e.get("ts", 0)) <= kill_time]
        step.phase = refine_phase(infer_phase(before, stages), children)
        step.last_events = [fmt(e) for e in before[-4:]]
        step.last_events += [f"running: {c['class']}: {c['cmd'][:120]}" for c in children if c["class"] != "other"]
        add(_exit_problems(fm, code, step.signal))
        add(check_after_interruption(map_path, number))

    if not stopped_for_good and not complete:
        for _ in range(MAX_FINAL_RUNS):
            result.foreman_runs += 1
            fm = ForemanProcess(map_path, logs, result.foreman_runs)
            code = fm.wait(RUN_WAIT)
            if code is None:
                add(
                    [
                        Violation(
                            "stuck",
                            f"foreman run #{fm.number} still running after {RUN_WAIT:g}s",
                            evidence=[fmt(e) for e in fm.events()[-20:]],
                        )
                    ]
                )
                fm.kill_hard()
                break
            add(_exit_problems(fm, code, None))
            if code == 0:
                complete = True
                break
            if code == 3:
                add([Violation("stuck", f"foreman run #{fm.number} paused (exit 3)", evidence=_paused_evidence(fm))])
                break
            if code == 2:
                add(
                    [
                        Violation(
                            "stuck",
                            f"foreman run #{fm.number} refused to start (exit 2)",
                            evidence=fm.stderr().splitlines()[-10:],
                        )
                    ]
                )
                break
        else:
            add([Violation("stuck", f"no run exited 0 in {MAX_FINAL_RUNS} tries after the interruptions")])
    result.complete = complete
    events = read_events(events_path(map_path))
    add(check_event_log(events, repo, branch, map_path.name))
    final = check_final(map_path, folder, branch)
    already_stuck = any(v.kind == "stuck" for v in result.violations)
    add(v for v in final if not (already_stuck and v.kind == "stuck" and v.message.startswith("not verified")))
    result.seconds = round(time.monotonic() - started, 2)
    return result


# ------------------------------------------------------------------------------------------------ report


def summary(results: list[RunResult], seconds: float) -> dict[str, Any]:
    landed = [i for r in results for i in r.interruptions]
    violations = Counter(v.kind for r in results for v in r.violations)
    return {
        "runs": len(results),
        "seconds": round(seconds, 1),
        "seconds_per_run": round(seconds / len(results), 1) if results else 0,
        "foreman_processes": sum(r.foreman_runs for r in results),
        "interruptions": {
            "total": len(landed),
            "missed": sum(1 for r in results for i in r.plan if not i.landed),
            "by_signal": {name: sum(1 for i in landed if i.signal == name) for name in SIGNALS},
            "by_phase": {p: n for p in PHASES if (n := sum(1 for i in landed if i.phase == p))},
            "by_signal_and_phase": dict(Counter(f"{i.signal} / {i.phase}" for i in landed)),
        },
        "violations": {kind: violations.get(kind, 0) for kind in VIOLATIONS},
        "runs_with": {kind: sum(1 for r in results if kind in {v.kind for v in r.violations}) for kind in VIOLATIONS},
        "failed_runs": [r.seed for r in results if r.violations],
        "results": [_result_json(r) for r in results],
    }


def _result_json(r: RunResult) -> dict[str, Any]:
    data = asdict(r)
    data["plan"] = [asdict(i) for i in r.plan]
    return data


def print_table(report: dict[str, Any], out: Any = sys.stdout) -> None:
    w = out.write
    intr = report["interruptions"]
    w(
        f"chaos: {report['runs']} runs, {report['foreman_processes']} foreman processes, "
        f"{report['seconds']:.0f} s ({report['seconds_per_run']:.1f} s per run)\n\n"
    )
    w(f"interruptions: {intr['total']} landed, {intr['missed']} missed (foreman ended first)\n")
    w("  by signal : " + ", ".join(f"{k} {v}" for k, v in intr["by_signal"].items()) + "\n")
    w("  by phase  : " + ", ".join(f"{k} {v}" for k, v in intr["by_phase"].items()) + "\n\n")
    w(f"{'violation':<18} {'count':>5} {'runs':>5}  meaning\n")
    for kind, count in report["violations"].items():
        w(f"{kind:<18} {count:>5} {report['runs_with'][kind]:>5}  {VIOLATIONS[kind]}\n")
    w("\n")
    w(f"{'run':<8} {'secs':>6} {'fm':>3}  interruptions (signal@trigger#n → phase, exit)  violations\n")
    for r in report["results"]:
        shown = "; ".join(
            f"{i['signal']}@{i['trigger']}#{i['nth']}→{i['phase']},{i['exit_code']}"
            if i["landed"]
            else f"{i['signal']}@{i['trigger']}#{i['nth']}: missed"
            for i in r["plan"]
        )
        kinds = Counter(v["kind"] for v in r["violations"])
        w(
            f"{r['seed']:<8} {r['seconds']:>6.1f} {r['foreman_runs']:>3}  {shown}  "
            f"{', '.join(f'{k}×{n}' for k, n in kinds.items()) or 'ok'}\n"
        )
    for r in report["results"]:
        if r["violations"]:
            w("\n" + describe(r))


def describe(result: RunResult | dict[str, Any]) -> str:
    """A run's interruptions and violations with their evidence (the events around them)."""
    r = _result_json(result) if isinstance(result, RunResult) else result
    lines = [f"--- run {r['seed']} ({r['folder']}{', kept' if r['kept'] else ''})"]
    for i in r["plan"]:
        if not i["landed"]:
            lines.append(f"  {i['signal']} planned at {i['trigger']}#{i['nth']}: missed (foreman ended first)")
            continue
        lines.append(
            f"  {i['signal']} at {i['seconds_in']:.2f}s ({i['trigger']}#{i['nth']}+{i['delay']}s), "
            f"landed in {i['phase']}, exit {i['exit_code']}; last events:"
        )
        lines += [f"      {line}" for line in i["last_events"]]
    for v in r["violations"]:
        lines.append(f"  [{v['kind']}] {v['message']}")
        lines += [f"      {line}" for line in v["evidence"][:25]]
    return "\n".join(lines) + "\n"


def _isolate_git(base: Path) -> None:
    """git as a fresh machine has it: no global or system configuration (the demo sets its own identity)."""
    if "GIT_CONFIG_GLOBAL" in os.environ:
        return
    config = base / "gitconfig"
    config.write_text("[init]\n\tdefaultBranch = main\n", encoding="utf-8")
    os.environ["GIT_CONFIG_GLOBAL"] = str(config)
    os.environ["GIT_CONFIG_NOSYSTEM"] = "1"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, metavar="DIR", help="make the runs here and keep those that failed")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--quick", action="store_true", help="a faster demo (shorter sleeps), as the tests use")
    parser.add_argument(
        "--source", type=Path, metavar="DIR", help="run foreman from this source tree (a `git archive` of a commit)"
    )
    args = parser.parse_args(argv)
    global SOURCE
    SOURCE = args.source.resolve() if args.source else None
    timing = QUICK if args.quick else Timing()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        base = args.keep.resolve()
    else:
        base = Path(tempfile.mkdtemp(prefix="foreman-chaos-"))
    os.environ["XDG_STATE_HOME"] = str(base / "state")  # the approvals of throwaway demos stay with them
    _isolate_git(base)
    started = time.monotonic()
    results = []
    try:
        for index in range(args.runs):
            result = run_one(index, args.seed, base, timing=timing)
            keep = args.keep is not None and bool(result.violations)
            if keep:
                result.kept = True
                Path(result.folder, "chaos-report.json").write_text(
                    json.dumps(_result_json(result), indent=2), encoding="utf-8"
                )
            else:
                shutil.rmtree(result.folder, ignore_errors=True)
            results.append(result)
            if not args.json:
                kinds = Counter(v.kind for v in result.violations)
                print(
                    f"run {result.seed}: {result.seconds:.1f}s, "
                    + ", ".join(f"{i.signal}@{i.trigger}→{i.phase or 'missed'}" for i in result.plan)
                    + (" — " + ", ".join(f"{k}×{n}" for k, n in kinds.items()) if kinds else " — ok"),
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    report = summary(results, time.monotonic() - started)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print_table(report)
    return 1 if any(r.violations for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
