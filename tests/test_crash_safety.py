"""Crash safety: foreman killed or stopped at the unlucky moments keeps what was done and leaves nothing behind
(the node lifecycle, engine/lifecycle.py; the chaos harness, bench/chaos.py, does the same at random)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from foreman_tui.engine.gitrepo import Repo
from foreman_tui.engine.lifecycle import RECOVERY, TRANSITIONS, InvalidTransition, Lifecycle, Phase
from foreman_tui.engine.runstate import RunState, RunStore
from foreman_tui.engine.workspace import Workspace, finish
from foreman_tui.map.store import MapStore

from .conftest import REPO
from .engine_support import DEMO_PROCESS, demo_repo, events, foreman, git, init_repo, kinds, start_foreman, wait_for

DEMO = REPO / "maps" / "demo"
SCRIPT = json.loads((DEMO / "script.json").read_text())["nodes"]


def _debris(map_path: Path) -> list[str]:
    """What a finished run must not leave: worktrees, foreman/* branches, git locks, a dirty index."""
    found = [str(p) for p in (map_path.parent / ".foreman" / "worktrees").glob("*")]
    found += git(map_path, "for-each-ref", "--format=%(refname:short)", "refs/heads/foreman/").split()
    found += [str(p) for p in (map_path.parent / ".git").glob("index.lock")]
    found += git(map_path, "status", "--porcelain", "--untracked-files=no").splitlines()
    return found


def _interrupted_when(map_path: Path, kind: str, sig: signal.Signals, node: str | None = None) -> None:
    """Run foreman on ``map_path`` and send it ``sig`` as soon as an event ``kind`` (of ``node``) is logged."""
    run = start_foreman("run", str(map_path), "--headless")
    try:
        wait_for(lambda: bool(kinds(events(map_path), kind, node)), 60, f"{kind} {node or ''}")
        run.send_signal(sig)
        run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()


def test_the_lifecycle_table_is_whole_and_refuses_other_moves(tmp_path: Path) -> None:
    assert set(TRANSITIONS) == set(Phase) == set(RECOVERY)
    lifecycle = Lifecycle(RunState(), RunStore(tmp_path))
    lifecycle.move("a", Phase.RUNNING, attempt=1)
    assert json.loads((tmp_path / "run.json").read_text())["nodes"]["a"]["phase"] == "running"  # written ahead
    with pytest.raises(InvalidTransition):
        lifecycle.move("a", Phase.VERIFIED)  # a node is verified only through its merge and its record
    old = RunStore(tmp_path)
    (tmp_path / "run.json").write_text(
        json.dumps({"nodes": {"b": {"phase": "implemented"}, "c": {"phase": "integrating"}}})
    )
    loaded = old.load()
    assert loaded is not None and (loaded.nodes["b"].phase, loaded.nodes["c"].phase) == (Phase.CHECKING, Phase.MERGING)


def test_a_commit_seen_before_a_kill_is_kept(tmp_path: Path) -> None:
    talkative = {**SCRIPT["02_vector_math"], "linger": 30}  # commits, then goes on talking
    map_path = demo_repo(tmp_path, {"02_vector_math": talkative}, settings="poll = 0.5\nstop_grace = 1\n")
    _interrupted_when(map_path, "CommitDetected", signal.SIGKILL, node="02_vector_math")
    result = foreman("run", str(map_path), "--headless")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    evs = events(map_path)
    recovered = [e["detail"]["reason"] for e in kinds(evs, "NodeRecovered", "02_vector_math")]
    assert any("is there: kept" in r for r in recovered), recovered
    starts = [e for e in kinds(evs, "WorkerStarted", "02_vector_math") if e["detail"]["role"] == "worker"]
    assert len(starts) == 1, "the commit was kept: no second attempt, nothing paid twice"
    assert kinds(evs, "OrphanStopped", "02_vector_math")  # the talkative worker the kill left was stopped
    assert _debris(map_path) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_a_stop_right_after_a_merge_leaves_nothing_behind(tmp_path: Path, sig: signal.Signals) -> None:
    map_path = demo_repo(tmp_path, settings="poll = 0.5\nstop_grace = 1\nmax_parallel = 1\n")
    _interrupted_when(map_path, "NodeMerged", sig)
    result = foreman("run", str(map_path), "--headless")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    log = git(map_path, "log", "--format=%s", "main")
    assert all(log.count(f"foreman: merge {n}\n") == 1 for n in DEMO_PROCESS), log
    assert _debris(map_path) == []


def test_a_workers_escaped_descendant_holding_its_output_neither_holds_the_attempt_nor_survives(tmp_path: Path) -> None:
    daemon = {**SCRIPT["01_load_points"], "daemon": True}  # setsid, stdout inherited, sleeps 300 s
    map_path = demo_repo(tmp_path, {"01_load_points": daemon}, settings="timeout = 120\n")
    result = foreman("run", str(map_path), "--headless", timeout=200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    exited = [e["detail"] for e in kinds(events(map_path), "WorkerExited", "01_load_points")]
    assert exited[0]["duration"] < 15 and not exited[0]["timed_out"]  # not held until the timeout
    left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p).endswith("foreman-scripted-daemon")]
    assert not [p for p in left if str(tmp_path) in _environ(p)], "the escaped descendant was stopped"


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _environ(proc: Path) -> str:
    try:
        return (proc / "environ").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def test_verified_nodes_left_with_their_trees_are_cleaned_at_start(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path, settings="keep_worktrees = true\n")
    assert foreman("run", str(map_path), "--headless").returncode == 0
    kept = git(map_path, "for-each-ref", "--format=%(refname:short)", "refs/heads/foreman/").split()
    assert len(kept) == len(DEMO_PROCESS)
    toml = map_path.parent / "foreman.toml"
    toml.write_text(toml.read_text().replace("keep_worktrees = true\n", ""))
    subprocess.run(["git", "commit", "-qam", "no more kept trees"], cwd=map_path.parent, check=True)
    assert foreman("run", str(map_path), "--headless").returncode == 0
    assert _debris(map_path) == []
    cleaned = [e for e in kinds(events(map_path), "NodeRecovered") if "left behind; removed" in e["detail"]["reason"]]
    assert len(cleaned) == len(DEMO_PROCESS)


def _foreman_catches_sigterm(pid: int) -> bool:
    """Whether the process has reached foreman's first line (it catches SIGTERM from there on; before it, the
    interpreter's own start-up, ~20 ms, nothing of foreman's has run and a signal has its default action)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True  # gone already
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


@pytest.mark.parametrize("after", [0.0, 0.1, 0.3, 0.8])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_at_start_up_stops_foreman_quietly(tmp_path: Path, sig: signal.Signals, after: float) -> None:
    map_path = demo_repo(tmp_path, settings="poll = 0.5\nstop_grace = 1\n")
    run = start_foreman("run", str(map_path), "--headless")
    wait_for(lambda: _foreman_catches_sigterm(run.pid), 30, "foreman's first line")
    time.sleep(after)  # the moment is the point: imports, loading, start-up, the first dispatch
    run.send_signal(sig)
    out, err = run.communicate(timeout=60)
    assert "Traceback" not in err and "internal error" not in err, err
    # 3: the run had begun and stopped (resumable); 128+n: stopped before it began.
    assert run.returncode in (3, 128 + sig), (run.returncode, out[-2000:], err)
    result = foreman("run", str(map_path), "--headless")  # and the next run completes with nothing left over
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert _debris(map_path) == []


def test_finish_runs_a_write_to_its_end_through_a_cancellation() -> None:
    lock = threading.Lock()
    done: list[float] = []

    def write() -> None:
        with lock:
            time.sleep(0.3)
            done.append(time.monotonic())

    async def scenario() -> float:
        task = asyncio.create_task(finish(write))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic()

    cancelled_at = asyncio.run(scenario())
    assert done and done[0] <= cancelled_at and not lock.locked()  # the write ended before the cancel went on


def _branch_with_file(root: Path, branch: str, name: str, scratch: Path) -> None:
    """``branch`` = main plus one commit adding ``name``, made with git's plumbing (the working tree untouched)."""

    def run(*args: str, **env: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True, env={**os.environ, **env}
        )
        return done.stdout.strip()

    blob = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"], cwd=root, input=f"{name}\n", capture_output=True, text=True, check=True
    ).stdout.strip()
    run("read-tree", "main", GIT_INDEX_FILE=str(scratch))
    run("update-index", "--add", "--cacheinfo", f"100644,{blob},{name}", GIT_INDEX_FILE=str(scratch))
    tree = run("write-tree", GIT_INDEX_FILE=str(scratch))
    run("update-ref", f"refs/heads/{branch}", run("commit-tree", "-m", name, "-p", "main", tree))


def test_map_writes_racing_merges_and_state_commits_never_leave_the_map_staged(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    init_repo(root)
    map_path = root / "algorithm-map.json"
    nodes = [{"id": f"n{i}", "label": f"N{i}", "type": "process"} for i in range(40)]
    doc = {"version": "0.1.0", "meta": {"title": "T"}, "graph": {"nodes": nodes, "edges": []}, "contents": {}}
    map_path.write_text(json.dumps(doc, indent=2) + "\n")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "map"], cwd=root, check=True)
    ws = Workspace(Repo(root), MapStore(map_path), root / ".foreman")
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:  # state writes as fast as they come, from another thread, as the engine's do
        i = 0
        while not stop.is_set():
            ws.write_states({f"n{i % 40}": {"status": "implemented"}}, now=True)
            written.append(i)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for i in range(40):
            _branch_with_file(root, f"foreman/n{i}", f"f{i}.txt", tmp_path / "index")
            outcome = ws.merge(f"n{i}")
            assert outcome.kind == "merged", (i, outcome.message)
            ws.record({f"n{i}": {"status": "verified"}}, f"foreman: n{i} verified")
            staged = git(map_path, "diff", "--cached", "--name-only")
            assert staged == "", (i, staged)
    finally:
        stop.set()
        thread.join()
    ws.commit_state("the end")
    committed = json.loads(git(map_path, "show", "HEAD:algorithm-map.json"))["state"]["nodes"]
    on_disk = json.loads(map_path.read_text())["state"]["nodes"]
    assert committed == on_disk and len(written) > 40
    assert all(on_disk[f"n{i}"]["status"] in ("verified", "implemented") for i in range(40))


def test_a_state_commit_cut_short_before_the_index_caught_up_is_repaired(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path)
    root = map_path.parent
    repo = Repo(root)
    store = MapStore(map_path)
    store.set_states({"01_load_points": {"verify_results": {"pre": [True]}}})
    repo.commit_file(map_path, store.state_over, "foreman: 01_load_points checked")
    before = git(map_path, "ls-tree", "HEAD^", "--", "algorithm-map.json").split()[2]
    # What a kill between the ref update and the index update leaves: git takes it for a staged change.
    subprocess.run(["git", "update-index", "--cacheinfo", f"100644,{before},algorithm-map.json"], cwd=root, check=True)
    assert git(map_path, "diff", "--cached", "--name-only") == "algorithm-map.json\n"
    result = foreman("run", str(map_path), "--headless")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert any("index behind HEAD" in e["detail"]["reason"] for e in kinds(events(map_path), "NodeRecovered"))
    assert _debris(map_path) == []
    # A person's own staged change of the map is theirs: not touched.
    other = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"], cwd=root, input="{}\n", capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run(["git", "update-index", "--cacheinfo", f"100644,{other},algorithm-map.json"], cwd=root, check=True)
    assert not repo.repair_index(map_path)


def test_a_merge_cut_short_before_its_commit_is_undone_and_done_again(tmp_path: Path) -> None:
    flag = "FLAG — [1] not what the how says"  # stops 01 after its review, its branch ready to merge
    map_path = demo_repo(tmp_path, reviews={"01_load_points": [flag]})
    root = map_path.parent
    assert foreman("run", str(map_path), "--headless").returncode == 3
    # As a kill inside `git merge` leaves it: the branch's files written, nothing committed, no MERGE_HEAD.
    run_json = root / ".foreman" / "run.json"
    state = json.loads(run_json.read_text())
    state["nodes"]["01_load_points"].update(phase="merging", pause=None)
    run_json.write_text(json.dumps(state))
    branch_files = git(map_path, "diff", "--name-only", "HEAD...foreman/01_load_points").split()
    subprocess.run(["git", "checkout", "foreman/01_load_points", "--", *branch_files], cwd=root, check=True)
    (root / "README.txt").write_text("the person's own work in progress\n")
    result = foreman("run", str(map_path), "--headless")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    reasons = [e["detail"]["reason"] for e in kinds(events(map_path), "NodeRecovered", "01_load_points")]
    assert any("a merge cut short was undone" in r for r in reasons), reasons
    assert git(map_path, "log", "--format=%s", "main").count("foreman: merge 01_load_points\n") == 1
    assert (root / "README.txt").read_text() == "the person's own work in progress\n"
    assert _debris(map_path) == []


def test_sigint_during_imports_prints_no_traceback() -> None:
    for after in (0.0, 0.01, 0.03, 0.06, 0.1, 0.2):  # somewhere in foreman's imports, or just after
        proc = subprocess.Popen(
            [sys.executable, "-m", "foreman_tui", "validate", str(DEMO / "algorithm-map.json")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        wait_for(lambda: _foreman_catches_sigterm(proc.pid), 30, "foreman's first line")  # noqa: B023
        time.sleep(after)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert "Traceback" not in err, (after, err)
        assert proc.returncode in (0, 130), (after, proc.returncode, err)


LATE_SIGNAL = """
import os, signal, sys
from foreman_tui.launch import main

class Late:  # destroyed with the modules, after the interpreter has given its signal handlers back
    def __del__(self, kill=os.kill, pid=os.getpid(), sig=signal.SIGINT):
        kill(pid, sig)

sys.modules["late"] = type(sys)("late")
sys.modules["late"].x = Late()
sys.argv = ["foreman", *sys.argv[1:]]
sys.exit(main())
"""


def test_a_signal_while_the_interpreter_shuts_down_keeps_the_commands_exit_status(tmp_path: Path) -> None:
    """The command's work is done and printed; a Ctrl+C in the last moments of the interpreter's shutdown (after it
    restored the default actions) must not turn exit 0 into death by signal (CI saw -2 for `validate`)."""
    driver = tmp_path / "late.py"
    driver.write_text(LATE_SIGNAL)
    result = subprocess.run(
        [sys.executable, str(driver), "validate", str(DEMO / "algorithm-map.json")],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert result.stdout.rstrip().endswith("valid")
