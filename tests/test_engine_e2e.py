"""The engine end to end: real git repositories, real `foreman` processes, the scripted agent."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

from foreman_tui.engine.project import Project

from .engine_support import (
    DEMO_PROCESS,
    alive,
    demo_repo,
    events,
    foreman,
    git,
    kinds,
    map_state,
    solution,
    start_foreman,
    wait_for,
)


def test_demo_runs_headless_to_all_verified(tmp_path: Path) -> None:
    result = foreman("demo", "--headless", "--dir", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stdout + result.stderr
    map_path = tmp_path / "demo" / "project" / "algorithm-map.json"
    evs = events(map_path)
    assert kinds(evs, "RunFinished")[-1]["detail"]["outcome"] == "complete"
    for node in DEMO_PROCESS:
        l1 = [e for e in kinds(evs, "CheckFinished", node) if e["detail"]["level"] == "L1"]
        assert any(e["detail"]["status"] == "pass" and e["detail"]["cmd"] for e in l1) or node == "09_cli"
        assert kinds(evs, "ReviewFinished", node)[-1]["detail"]["verdict"] == "CLEAN"
        assert kinds(evs, "NodeMerged", node) and kinds(evs, "NodeVerified", node)
    stages = {e["node"]: e["detail"] for e in kinds(evs, "StageFinished")}
    assert stages["region:prepare"]["passed"] and stages["region:lloyd"]["passed"]
    assert stages["end"]["stage"] == "L3" and stages["end"]["passed"]
    assert kinds(evs, "BenchmarkRan")[0]["detail"]["value"] == 14.307
    # 04_assign's first attempt fails its tie test; the fix task carries the failing output.
    assert [e["detail"]["status"] for e in kinds(evs, "CheckFinished", "04_assign") if e["detail"]["cmd"]] == [
        "fail",
        "pass",
    ]
    message = Path(kinds(evs, "FixTaskSent", "04_assign")[0]["detail"]["message_file"]).read_text()
    assert "test_ties_go_to_the_lower_index" in message
    # The integration branch holds every node's merge and its state commit; nothing is left over.
    log = git(map_path, "log", "--format=%s", "main")
    for node in DEMO_PROCESS:
        assert f"foreman: merge {node}" in log and f"foreman: {node} verified" in log
    assert "foreman: L3 passed" in log
    assert git(map_path, "status", "--porcelain", "--untracked-files=no") == ""
    assert git(map_path, "branch", "--list", "foreman/*") == ""
    state = map_state(map_path)
    assert all(state[n]["status"] == "verified" for n in DEMO_PROCESS)
    assert state["06_converged"]["status"] == "verified"
    assert state["04_assign"]["verify_results"]["core"] == [True]
    # Checks without a command take the worker's self-report from its checkpoint, else stay null.
    assert state["01_load_points"]["verify_results"] == {"pre": [True], "core": [True, True], "post": [True]}
    assert state["04_assign"]["verify_results"]["post"] == [None]
    assert (map_path.parent / "kmeans" / "report.py").read_text().count("def ") == 2


def _spans(evs: list[dict], start_kind: str, end_kinds: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    spans: dict[str, tuple[float, float]] = {}
    for e in evs:
        node = e["node"]
        if e["kind"] == start_kind and node not in spans and e["detail"].get("role", "worker") == "worker":
            spans[node] = (e["ts"], float("inf"))
        elif e["kind"] in end_kinds and node in spans:
            spans[node] = (spans[node][0], e["ts"])
    return spans


def test_shared_files_never_run_together_and_max_parallel_holds(tmp_path: Path) -> None:
    slow = {n: {"files": {}, "sleep": 0.6} for n in ()}
    script_nodes = {}
    for node in DEMO_PROCESS:
        entry = json.loads((Path(__file__).parent.parent / "maps/demo/script.json").read_text())["nodes"][node]
        steps = entry.get("attempts") or [entry]
        script_nodes[node] = {"attempts": [{**step, "sleep": 0.6} for step in steps]}
    script_nodes.update(slow)
    map_path = demo_repo(tmp_path, script_nodes, settings="max_parallel = 2\npoll = 0.5\n")
    result = foreman("run", str(map_path), "--headless")
    assert result.returncode == 0, result.stdout + result.stderr
    evs = events(map_path)
    spans = _spans(evs, "WorkerStarted", ("NodeVerified", "NodePaused"))  # a node, from its worker to verified
    files = Project.load(map_path).files

    def overlap(a: str, b: str) -> bool:
        return spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]

    sharing = [(a, b) for a in spans for b in spans if a < b and set(files[a]) & set(files[b])]
    assert sharing == [("07_inertia", "08_summarize")]
    assert not any(overlap(a, b) for a, b in sharing)  # sharing a file: never at once, checks and merge included
    assert overlap("01_load_points", "02_vector_math")  # independent nodes did run side by side
    # max_parallel counts workers: at most two worker processes at any moment (checks, reviews and merges of
    # nodes whose worker has finished go on beside them).
    workers: list[tuple[float, float]] = []
    started: dict[tuple[str, int], float] = {}
    for e in evs:
        key = (e["node"], e["detail"].get("attempt"))
        if e["kind"] == "WorkerStarted" and e["detail"]["role"] == "worker":
            started[key] = e["ts"]
        elif e["kind"] == "WorkerExited" and e["detail"]["role"] == "worker":
            workers.append((started.pop(key), e["ts"]))
    moments = sorted({t for span in workers for t in span})
    busiest = max(sum(s <= t < e for s, e in workers) for t in moments)
    assert busiest == 2


def test_shared_mode_copes_with_concurrent_commits(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path, settings='isolation = "shared"\npoll = 0.5\n')
    result = foreman("run", str(map_path), "--headless")
    assert result.returncode == 0, result.stdout + result.stderr
    log = git(map_path, "log", "--format=%B", "main")
    for node in DEMO_PROCESS:
        assert f"Foreman-Node: {node}" in log
    assert "foreman: merge" not in log
    assert all(map_state(map_path)[n]["status"] == "verified" for n in DEMO_PROCESS)


def test_a_check_failing_twice_then_passing_is_verified(tmp_path: Path) -> None:
    first = (Path(__file__).parent.parent / "maps/demo/solution/04_assign_first_try/kmeans/assign.py").read_text()
    broken = {"files": {"kmeans/assign.py": first}}
    still_broken = {"files": {"kmeans/assign.py": first + "\n# tried a different tolerance\n"}}
    good = {"files": {"kmeans/assign.py": solution("04_assign", "kmeans/assign.py")}}
    map_path = demo_repo(tmp_path, {"04_assign": {"attempts": [broken, still_broken, good]}})
    result = foreman("run", str(map_path), "--headless")
    assert result.returncode == 0, result.stdout + result.stderr
    evs = events(map_path)
    runs = [e["detail"]["status"] for e in kinds(evs, "CheckFinished", "04_assign") if e["detail"]["cmd"]]
    assert runs == ["fail", "fail", "pass"]
    fixes = kinds(evs, "FixTaskSent", "04_assign")
    assert [f["detail"]["attempt"] for f in fixes] == [2, 3]
    for fix in fixes:
        text = Path(fix["detail"]["message_file"]).read_text()
        assert "FAIL: test_ties_go_to_the_lower_index" in text and "python -m unittest tests/test_assign.py" in text
    worker_log = (map_path.parent / ".foreman/logs/04_assign/3.log").read_text()
    assert "FAIL: test_ties_go_to_the_lower_index" in worker_log  # the worker really received it
    assert map_state(map_path)["04_assign"]["status"] == "verified"


def test_reviewer_flag_then_clean_verifies_after_a_second_review(tmp_path: Path) -> None:
    flag = "FLAG — [2] update() returns hard-coded centroids (kmeans/update.py:9)"
    step = json.loads((Path(__file__).parent.parent / "maps/demo/script.json").read_text())["nodes"]["05_update"]
    update = (Path(__file__).parent.parent / "maps/demo/solution/05_update/kmeans/update.py").read_text()
    fixed = {**step, "files": {**step["files"], "kmeans/update.py": update + "\n# means computed, not stored\n"}}
    map_path = demo_repo(
        tmp_path, {"05_update": {"attempts": [step, fixed]}}, reviews={"05_update": [flag, "CLEAN — looks right"]}
    )
    result = foreman("run", str(map_path), "--headless")
    assert result.returncode == 0, result.stdout + result.stderr
    evs = events(map_path)
    reviews = [(e["detail"]["round"], e["detail"]["verdict"]) for e in kinds(evs, "ReviewFinished", "05_update")]
    assert reviews == [(1, "FLAG"), (2, "CLEAN")]
    fix = kinds(evs, "FixTaskSent", "05_update")[0]
    assert flag in Path(fix["detail"]["message_file"]).read_text()
    roles = [e["detail"]["role"] for e in kinds(evs, "WorkerStarted", "05_update")]
    assert roles == ["worker", "reviewer", "worker", "reviewer"]
    assert map_state(map_path)["05_update"]["status"] == "verified"


def test_a_worker_that_never_commits_ends_paused(tmp_path: Path) -> None:
    map_path = demo_repo(
        tmp_path, {"02_vector_math": {"commit": False, "say": ["thinking…"]}}, settings="retries = 1\npoll = 0.5\n"
    )
    result = foreman("run", str(map_path), "--headless")
    assert result.returncode == 3, result.stdout + result.stderr
    evs = events(map_path)
    assert len(kinds(evs, "AttemptFailed", "02_vector_math")) == 2
    pause = kinds(evs, "NodePaused", "02_vector_math")[0]["detail"]
    assert pause["trigger"] == "worker failed" and "without a commit" in pause["problem"]
    assert [o["key"] for o in pause["options"]] == ["A", "B", "C"] and "HARD PAUSE: [worker failed]" in pause["block"]
    run = json.loads((map_path.parent / ".foreman/run.json").read_text())
    assert run["nodes"]["02_vector_math"]["phase"] == "paused"
    assert "without a commit" in run["nodes"]["02_vector_math"]["pause"]["problem"]
    assert map_state(map_path)["01_load_points"]["status"] == "verified"  # other work went on
    assert "03_seed_centroids" not in {e["node"] for e in kinds(evs, "WorkerStarted")}  # its dependant waited


def test_a_hanging_worker_and_its_grandchild_are_killed_at_the_timeout(tmp_path: Path) -> None:
    pids = tmp_path / "pids.json"
    step = {
        "files": {"kmeans/points.py": solution("01_load_points", "kmeans/points.py")},
        "hang": True,
        "grandchild": True,
        "record_pids": str(pids),
    }
    map_path = demo_repo(tmp_path, {"01_load_points": step}, settings="retries = 0\ntimeout = 3\nstop_grace = 1\n")
    result = foreman("run", str(map_path), "--headless", "--max-parallel", "1")
    assert result.returncode == 3, result.stdout + result.stderr
    recorded = json.loads(pids.read_text())
    assert not alive(recorded["worker"]) and not alive(recorded["grandchild"])
    evs = events(map_path)
    exited = kinds(evs, "WorkerExited", "01_load_points")[0]["detail"]
    assert exited["timed_out"] is True
    assert kinds(evs, "NodePaused", "01_load_points")[0]["detail"]["trigger"] == "worker timed out"


def test_a_merge_conflict_is_aborted_and_pauses_the_node(tmp_path: Path) -> None:
    script = json.loads((Path(__file__).parent.parent / "maps/demo/script.json").read_text())["nodes"]
    nodes = {}
    for node, note in (("01_load_points", "points first\n"), ("02_vector_math", "vectors first\n")):
        nodes[node] = {**script[node], "files": {**script[node]["files"], "NOTES.md": note}, "sleep": 0.3}
    map_path = demo_repo(tmp_path, nodes)
    result = foreman("run", str(map_path), "--headless")
    assert result.returncode == 3, result.stdout + result.stderr
    evs = events(map_path)
    conflicted = kinds(evs, "MergeConflicted")
    assert len(conflicted) == 1 and conflicted[0]["detail"]["files"] == ["NOTES.md"]
    loser = conflicted[0]["node"]
    winner = ({"01_load_points", "02_vector_math"} - {loser}).pop()
    assert kinds(evs, "NodePaused", loser)[0]["detail"]["trigger"] == "merge conflict"
    assert kinds(evs, "ScopeViolated", loser)[0]["detail"]["files"] == ["NOTES.md"]
    review_input = (map_path.parent / ".foreman" / "runs" / loser / "review-1.md").read_text()
    assert "NOTE (scope): these files were changed outside the node's owned files: NOTES.md" in review_input
    root = map_path.parent
    assert not (root / ".git" / "MERGE_HEAD").exists()
    assert git(map_path, "diff", "--name-only", "--diff-filter=U") == ""
    assert git(map_path, "status", "--porcelain", "--untracked-files=no").strip() in ("", "M algorithm-map.json")
    assert (root / "NOTES.md").read_text() == ("points first\n" if winner == "01_load_points" else "vectors first\n")


def test_kill_9_then_run_again_finishes_without_redoing_verified_work(tmp_path: Path) -> None:
    script = json.loads((Path(__file__).parent.parent / "maps/demo/script.json").read_text())["nodes"]
    slow_first = {"attempts": [{**script["03_seed_centroids"], "sleep": 120}, script["03_seed_centroids"]]}
    map_path = demo_repo(tmp_path, {"03_seed_centroids": slow_first})
    invalid: list[str] = []
    stop_reader = threading.Event()

    def read_map_all_the_time() -> None:
        while not stop_reader.is_set():
            try:
                json.loads(map_path.read_bytes())
            except json.JSONDecodeError as exc:
                invalid.append(str(exc))

    reader = threading.Thread(target=read_map_all_the_time, daemon=True)
    reader.start()
    first = start_foreman("run", str(map_path), "--headless")
    try:
        worker_log = map_path.parent / ".foreman" / "logs" / "03_seed_centroids" / "1.log"
        # Kill once the worker is quietly working: a worker that prints after its supervisor died gets EPIPE.
        wait_for(
            lambda: worker_log.exists() and "wrote kmeans/seed.py" in worker_log.read_text(),
            90,
            "03_seed_centroids to be at work",
        )
        before = events(map_path)
        verified_before = {e["node"] for e in kinds(before, "NodeVerified")}
        orphan = kinds(before, "WorkerStarted", "03_seed_centroids")[0]["detail"]["pid"]
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    assert verified_before == {"01_load_points", "02_vector_math"}
    assert alive(orphan)  # the dead run's worker is still there…
    second = foreman("run", str(map_path), "--headless")
    stop_reader.set()
    reader.join(timeout=5)
    assert second.returncode == 0, second.stdout + second.stderr
    assert not alive(orphan)  # …until the next run stops it
    after = events(map_path)[len(before) :]
    assert {e["node"] for e in kinds(after, "OrphanStopped")} == {"03_seed_centroids"}
    restarted = {e["node"] for e in kinds(after, "WorkerStarted")}
    assert not restarted & verified_before
    assert kinds(after, "NodeRecovered", "03_seed_centroids")[0]["detail"]["now"] == "pending"
    assert all(map_state(map_path)[n]["status"] == "verified" for n in DEMO_PROCESS)
    assert invalid == []


def test_a_second_run_on_the_same_repository_is_refused(tmp_path: Path) -> None:
    script = json.loads((Path(__file__).parent.parent / "maps/demo/script.json").read_text())["nodes"]
    map_path = demo_repo(tmp_path, {"01_load_points": {**script["01_load_points"], "sleep": 120}})
    first = start_foreman("run", str(map_path), "--headless")
    try:
        wait_for(lambda: bool(kinds(events(map_path), "WorkerStarted")), 60, "the first run to start a worker")
        second = foreman("run", str(map_path), "--headless", timeout=60)
        assert second.returncode == 2
        assert "another foreman is already running on this repository" in second.stderr
        assert f"pid {first.pid}" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)
    assert first.returncode == 3  # stopped: resumable
    assert kinds(events(map_path), "RunFinished")[-1]["detail"]["outcome"] == "stopped"
