"""The Ray executor end to end (issue 16): real `foreman` processes driving the demo on a real local Ray cluster
of a head and two worker nodes (``ray_support.local_cluster``), the scripted agent on the worker nodes.

Each test's map asks for the ``agent`` resource, which only the worker nodes have, so nothing runs on the head;
the scripted agent prints where it ran (``FOREMAN_EXECUTOR``, ``FOREMAN_HOST``: the Ray node id)."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .engine_support import (
    DEMO_PROCESS,
    demo_repo,
    events,
    foreman,
    kinds,
    map_state,
    processes_mentioning,
    solution,
    start_foreman,
    wait_for,
)

ray = pytest.importorskip("ray")

from .ray_support import CLUSTER_VAR, connect, local_cluster, processes_with  # noqa: E402

pytestmark = pytest.mark.xdist_group("ray")  # one Ray cluster at a time on this 2-core machine (--dist loadgroup)

WHERE = re.compile(r"scripted (worker|reviewer): node (\S+), (?:attempt|round) (\d+) \(executor (\w+), host (\w+)\)")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with local_cluster(workers=2) as running:
        yield running


def _foreman_actors(cluster: Any) -> list[str]:
    """The live named actors of foreman's namespaces on the cluster (the test process joins it as a driver)."""
    if not ray.is_initialized():
        connect(cluster.address)
    found = ray.util.list_named_actors(all_namespaces=True)
    return sorted(a["name"] for a in found if a["namespace"].startswith("foreman-"))


def _agents_on(cluster: Any) -> list[int]:
    """The scripted agents running on this test's cluster (their environment says which cluster started them)."""
    agents = processes_mentioning("foreman_tui.agents.scripted")
    return [pid for pid in processes_with(f"{CLUSTER_VAR}={cluster.temp_dir}") if pid in agents]


def _on_ray(map_path: Path, **executor: Any) -> Path:
    """The map's foreman.toml asks for the Ray executor (the cluster comes from RAY_ADDRESS)."""
    table = {"kind": "ray", "num_cpus": 0, "resources": {"agent": 1}, "unavailable_timeout": 20, **executor}
    lines = ["", "[executor]"]
    for key, value in table.items():
        if isinstance(value, dict):
            lines.append(f"{key} = {{ {', '.join(f'{k} = {v}' for k, v in value.items())} }}")
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    toml = map_path.parent / "foreman.toml"
    toml.write_text(toml.read_text() + "\n".join(lines) + "\n")
    subprocess.run(["git", "commit", "-qam", "run on Ray"], cwd=map_path.parent, check=True)
    return map_path


def _where(map_path: Path) -> list[tuple[str, str, int, str, str]]:
    """(role, node, attempt, executor, host) of every agent call, from the logs that came back to this machine."""
    found = []
    for log in sorted((map_path.parent / ".foreman" / "logs").glob("*/*.log")):
        for match in WHERE.finditer(log.read_text(errors="replace")):
            role, node, n, executor, host = match.groups()
            found.append((role, node, int(n), executor, host))
    return found


def _trace(map_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Each node's life as the events tell it, without times, pids or paths: what must be the same wherever the
    attempts ran."""
    keep = {
        "WorkerStarted": ("role", "attempt"),
        "CheckFinished": ("level", "check", "status"),
        "ReviewFinished": ("round", "verdict"),
        "NodePaused": ("trigger",),
        "FixTaskSent": (),
        "AttemptFailed": ("attempt",),
        "NodeMerged": (),
        "NodeVerified": (),
        "DecisionApplied": ("option",),
    }
    trace: dict[str, list[tuple[Any, ...]]] = {}
    for e in events(map_path):
        if e["kind"] in keep and e["node"] in DEMO_PROCESS:
            trace.setdefault(e["node"], []).append((e["kind"], *(e["detail"].get(k) for k in keep[e["kind"]])))
    return trace


def _demo_with_everything(tmp_path: Path) -> Path:
    """The demo with its hard pause (05_update asks first), 04_assign's fix on the second attempt, and a review
    of 05_update that flags, then passes the fix."""
    flag = "FLAG — [2] update() returns hard-coded centroids (kmeans/update.py:9)"
    map_path = demo_repo(tmp_path, reviews={"05_update": [flag, "CLEAN — looks right"]}, with_pause=True)
    script_path = tmp_path / "demo" / "script" / "script.json"
    script = json.loads(script_path.read_text())
    asks, works = script["nodes"]["05_update"]["attempts"]
    update = (script_path.parent / works["files"]["kmeans/update.py"][1:]).read_text()
    fixed = {**works, "files": {**works["files"], "kmeans/update.py": update + "\n# means computed, not stored\n"}}
    script["nodes"]["05_update"]["attempts"] = [asks, works, fixed]
    script_path.write_text(json.dumps(script, indent=1))
    return map_path


def _run_to_the_end(map_path: Path, env: dict[str, str]) -> None:
    first = foreman("run", str(map_path), "--headless", env=env, timeout=300)
    assert first.returncode == 3, first.stdout[-3000:] + first.stderr[-3000:]
    assert kinds(events(map_path), "NodePaused", "05_update")
    decided = foreman("decide", str(map_path), "05_update", "A", env=env)
    assert decided.returncode == 0, decided.stdout + decided.stderr
    second = foreman("run", str(map_path), "--headless", env=env, timeout=300)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]


def test_the_demo_runs_on_worker_nodes_exactly_as_it_does_locally(tmp_path: Path, cluster: Any) -> None:
    """Every worker and reviewer of the demo runs on a non-head Ray node (its FOREMAN_HOST is a worker node's
    id, FOREMAN_EXECUTOR is ray); the hard pause, the fix on the second attempt and the review FLAG → CLEAN
    happen as they do with the local executor, event for event; the run ends complete with every node verified."""
    local = _demo_with_everything(tmp_path / "local")
    _run_to_the_end(local, {})
    on_ray = _on_ray(_demo_with_everything(tmp_path / "ray"))
    _run_to_the_end(on_ray, cluster.env)

    assert _trace(on_ray) == _trace(local)
    where = _where(on_ray)
    assert {w[0] for w in where} == {"worker", "reviewer"}
    assert {node for _, node, *_ in where} == set(DEMO_PROCESS)
    assert all(executor == "ray" and host in cluster.worker_ids for *_, executor, host in where), where
    assert _where(local) == []  # the local agents were told they run here (not shown in their output)
    assert {e["detail"]["executor"] for e in kinds(events(local), "WorkerStarted")} == {"local"}
    assert {e["detail"]["executor"] for e in kinds(events(on_ray), "WorkerStarted")} == {"ray"}
    assert all(map_state(on_ray)[n]["status"] == "verified" for n in DEMO_PROCESS)
    assert (on_ray.parent / "kmeans" / "update.py").read_text().endswith("# means computed, not stored\n")
    assert _foreman_actors(cluster) == []  # every attempt's actor went when its attempt ended
    # One supervisor schedules the cluster: nodes that share a file never work at once, nor more than max_parallel.
    spans = _worker_spans(on_ray)
    assert max(sum(s <= t < e for s, e in spans.values()) for t, _ in spans.values()) <= 3
    (a0, a1), (b0, b1) = spans["07_inertia"], spans["08_summarize"]  # both own kmeans/report.py
    assert a1 <= b0 or b1 <= a0


def _worker_spans(map_path: Path) -> dict[str, tuple[float, float]]:
    """Each node's worker attempts, from the first start to the last exit (event times)."""
    spans: dict[str, tuple[float, float]] = {}
    for e in events(map_path):
        if e["kind"] in ("WorkerStarted", "WorkerExited") and e["detail"].get("role") == "worker":
            start, end = spans.get(e["node"], (e["ts"], e["ts"]))
            spans[e["node"]] = (min(start, e["ts"]), max(end, e["ts"]))
    return spans


def test_a_supervisor_killed_mid_attempt_is_taken_over_and_nothing_is_redone(tmp_path: Path, cluster: Any) -> None:
    """kill -9 of foreman while 01_load_points' worker works on a Ray node: the worker goes on and commits
    with nobody watching; the next run finds its actor by name, follows it, fetches its commit and finishes the
    run; the node had one attempt, its worker ran once."""
    step = {
        "files": {"kmeans/points.py": solution("01_load_points", "kmeans/points.py")},
        "say": ["working slowly"],
        "sleep": 6,
        "checkpoint": {"output": {"count": 30}},
    }
    map_path = _on_ray(demo_repo(tmp_path, nodes={"01_load_points": step}, settings="poll = 0.5\nmax_parallel = 1\n"))
    run = start_foreman("run", str(map_path), "--headless", env=cluster.env)
    try:
        wait_for(lambda: any(w[1] == "01_load_points" for w in _where(map_path)), 90, "the worker's first line")
        run.send_signal(signal.SIGKILL)
        run.wait(30)
    finally:
        if run.poll() is None:
            run.kill()
    assert not kinds(events(map_path), "CommitDetected", "01_load_points")  # it commits only later
    result = foreman("run", str(map_path), "--headless", env=cluster.env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    evs = events(map_path)
    recovered = [e["detail"]["reason"] for e in kinds(evs, "NodeRecovered", "01_load_points")]
    assert any("still at work: following it" in r for r in recovered), recovered
    starts = [
        e["detail"]["attempt"] for e in kinds(evs, "WorkerStarted", "01_load_points") if e["detail"]["role"] == "worker"
    ]
    assert starts == [1]
    ran = [w for w in _where(map_path) if w[:2] == ("worker", "01_load_points")]
    assert [(n, executor) for _, _, n, executor, _ in ran] == [(1, "ray")]  # its worker ran once
    assert kinds(evs, "CommitDetected", "01_load_points")
    assert map_state(map_path)["01_load_points"]["status"] == "verified"
    assert _foreman_actors(cluster) == []


def test_a_ray_node_lost_mid_attempt_fails_the_attempt_and_it_runs_again_elsewhere(
    tmp_path: Path, cluster: Any
) -> None:
    """The Ray node running 01_load_points' first attempt dies (its raylet killed, no goodbye): the attempt
    counts as failed (lost on Ray), the second runs on the other worker node, and the run completes."""
    slow = {"files": {}, "say": ["working slowly"], "hang": True}
    normal = {
        "files": {"kmeans/points.py": solution("01_load_points", "kmeans/points.py")},
        "checkpoint": {"output": {"count": 30}},
    }
    map_path = _on_ray(
        demo_repo(
            tmp_path,
            nodes={"01_load_points": {"attempts": [slow, normal]}},
            settings="poll = 0.5\nmax_parallel = 1\nstop_grace = 1\n",
        )
    )
    run = start_foreman("run", str(map_path), "--headless", env=cluster.env)
    try:
        wait_for(lambda: any(w[1] == "01_load_points" for w in _where(map_path)), 90, "the first attempt's first line")
        first_host = next(w[4] for w in _where(map_path) if w[1] == "01_load_points")
        cluster.remove(first_host, graceful=False)
        out, err = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
        cluster.add_worker()  # as many worker nodes as before, for whatever runs next
    assert run.returncode == 0, out[-3000:] + err[-3000:]
    evs = events(map_path)
    failed = kinds(evs, "AttemptFailed", "01_load_points")
    assert [e["detail"]["attempt"] for e in failed] == [1]
    assert "Ray" in failed[0]["detail"]["reason"], failed[0]["detail"]["reason"]
    second = [w for w in _where(map_path) if w[:3] == ("worker", "01_load_points", 2)]
    assert second and second[0][4] != first_host and second[0][4] in cluster.worker_ids
    assert map_state(map_path)["01_load_points"]["status"] == "verified"


def test_stopping_foreman_stops_its_attempts_on_the_cluster(tmp_path: Path, cluster: Any) -> None:
    """SIGTERM to foreman while a worker hangs on a Ray node: foreman stops as it does locally (exit 3,
    resumable, no Ray noise on its stderr), the agent's process group on the node is gone with its clone, and
    no actor of foreman is left on the cluster."""
    hang = {"files": {}, "say": ["working for ever"], "hang": True}
    map_path = _on_ray(
        demo_repo(tmp_path, nodes={"01_load_points": hang}, settings="poll = 0.5\nmax_parallel = 1\nstop_grace = 1\n")
    )
    run = start_foreman("run", str(map_path), "--headless", env=cluster.env)
    try:
        wait_for(lambda: any(w[1] == "01_load_points" for w in _where(map_path)), 90, "the worker's first line")
        wait_for(lambda: "hanging" in (map_path.parent / ".foreman/logs/01_load_points/1.log").read_text(), 30, "hang")
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 3, out[-3000:] + err[-3000:]
    assert "SIGTERM" not in err and "Traceback" not in err, err
    assert _foreman_actors(cluster) == []
    stopped = kinds(events(map_path), "WorkerExited", "01_load_points")
    assert stopped and stopped[-1]["detail"]["stopped"]
    wait_for(lambda: not _agents_on(cluster), 15, "the agent to be gone from its node")
    clones = Path(tempfile.gettempdir()).glob  # the actor removes its clone as it goes
    wait_for(lambda: not list(clones("foreman-ray-01_load_points.*/work/kmeans")), 15, "the clone to be removed")


def test_an_attempt_no_ray_node_can_take_fails_to_start_and_the_node_pauses(tmp_path: Path, cluster: Any) -> None:
    """An attempt asking for a resource no node has waits ``start_timeout`` for a node, then counts as an
    attempt that could not start (saying what it asked for); with no retries left the node pauses, nothing of it
    is left on the cluster."""
    map_path = _on_ray(
        demo_repo(tmp_path, settings="poll = 0.5\nmax_parallel = 1\nretries = 0\n"),
        resources={"tpu_pod": 1},
        start_timeout=3,
    )
    result = foreman("run", str(map_path), "--headless", env=cluster.env, timeout=120)
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr[-3000:]
    failed = kinds(events(map_path), "AttemptFailed")
    assert failed and "no Ray node took it within 3s" in failed[0]["detail"]["reason"], failed
    assert "tpu_pod" in failed[0]["detail"]["reason"]
    assert kinds(events(map_path), "NodePaused")
    assert _foreman_actors(cluster) == []


def test_a_cluster_that_is_not_there_is_refused_with_exit_2(tmp_path: Path) -> None:
    """No Ray listening at the address: exit 2 at once, naming executor.address, before anything is written."""
    map_path = _on_ray(demo_repo(tmp_path), address="127.0.0.1:9", connect_timeout=5)
    result = foreman("run", str(map_path), "--headless", env={"RAY_AUTH_MODE": "disabled"}, timeout=60)
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert "executor.address" in result.stderr and "127.0.0.1:9" in result.stderr, result.stderr
    assert not (map_path.parent / ".foreman" / "run.json").exists()


def test_leaving_ray_workers_running_on_quit_and_the_next_run_takes_them_over(tmp_path: Path, cluster: Any) -> None:
    """In the TUI, `q` then "leave the workers running": foreman exits 3 and the worker's actor works on, on its
    Ray node, with nobody following it; the next run follows it from where the log stopped (the lines it printed
    meanwhile arrive once), fetches its commit, and the node had one attempt."""
    from .test_terminal import Terminal

    step = {
        "files": {"kmeans/points.py": solution("01_load_points", "kmeans/points.py")},
        "say": ["working slowly"],
        "sleep": 8,
        "checkpoint": {"output": {"count": 30}},
    }
    map_path = _on_ray(demo_repo(tmp_path, nodes={"01_load_points": step}, settings="poll = 0.5\nmax_parallel = 1\n"))
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in cluster.env.items())
    command = f"{env} {shlex.quote(sys.executable)} -m foreman_tui run {shlex.quote(str(map_path))}; echo EXIT=$?"
    term = Terminal(command + "; sleep 600", map_path.parent)
    try:
        term.wait_for("1 running")
        wait_for(lambda: any(w[1] == "01_load_points" for w in _where(map_path)), 60, "the worker's first line")
        term.keys("q")
        term.wait_for("leave the workers running")
        term.keys("l")
        screen = term.wait_for("EXIT=3", timeout=30)
        assert "left running: 01_load_points" in screen
        left = _foreman_actors(cluster)
        assert len(left) == 1 and left[0].startswith("01_load_points.worker#1"), left
    finally:
        term.close()
    done = foreman("run", str(map_path), "--headless", env=cluster.env, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    evs = events(map_path)
    taken = [e["detail"]["reason"] for e in kinds(evs, "NodeRecovered", "01_load_points")]
    assert any("still at work: following it" in r for r in taken), taken
    starts = [e for e in kinds(evs, "WorkerStarted", "01_load_points") if e["detail"]["role"] == "worker"]
    assert len(starts) == 1
    log = (map_path.parent / ".foreman" / "logs" / "01_load_points" / "1.log").read_text()
    assert log.count("working slowly") == 1 and log.count("committed") == 1, log
    assert _foreman_actors(cluster) == []
