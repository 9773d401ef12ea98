"""The attempt actor (foreman_tui/engine/ray_attempt.py) on a real local Ray cluster: a head and two worker nodes.

The actor is driven from the test process, as the supervisor drives it: created detached and named, its module
shipped by value, then ``info``, long ``poll``s, ``stop``, ``cleanup`` and ``ray.kill``. The agents are small shell
scripts; every process they start carries a mark (``FOREMAN_PROCESS_MARK``), so ``/proc`` tells what is left.
"""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")

from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: E402

from .engine_support import alive, init_repo  # noqa: E402
from .ray_support import (  # noqa: E402
    LocalCluster,
    actor_class,
    connect,
    live_group,
    local_cluster,
    processes_with,
    wait_until,
)

pytestmark = pytest.mark.xdist_group("ray")  # one Ray cluster at a time on this 2-core machine (--dist loadgroup)

MARK_VAR = "FOREMAN_PROCESS_MARK"
IDENTITY = {
    "GIT_AUTHOR_NAME": "agent",
    "GIT_AUTHOR_EMAIL": "agent@example.com",
    "GIT_COMMITTER_NAME": "agent",
    "GIT_COMMITTER_EMAIL": "agent@example.com",
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with local_cluster(workers=2) as running:
        connect(running.address)
        yield running
    assert running.killed_at_exit == []  # everything the cluster ran had ended by itself


@pytest.fixture
def source(tmp_path: Path) -> dict[str, Any]:
    """A repository with two commits, and its bundle of HEAD as the supervisor sends it."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.txt").write_text("one\n")
    init_repo(repo, "first")
    (repo / "a.txt").write_text("two\n")
    git(repo, "commit", "-qam", "second")
    git(repo, "bundle", "create", "-q", str(tmp_path / "base.bundle"), "HEAD")
    return {"repo": repo, "head": git(repo, "rev-parse", "HEAD"), "bundle": (tmp_path / "base.bundle").read_bytes()}


class Attempt:
    """An actor, and what its polls have brought so far (as the supervisor keeps ``since`` and ``known_head``)."""

    def __init__(self, actor: Any, spec: dict[str, Any]) -> None:
        self.actor, self.spec = actor, spec
        self.info: dict[str, Any] = ray.get(actor.info.remote(), timeout=60)
        self.since, self.head = 0, None
        self.lines: list[list[str]] = []
        self.bundles: dict[str, bytes] = {}

    @property
    def mark(self) -> str:
        return str(self.spec["mark"])

    @property
    def folder(self) -> Path:
        return Path(self.info["folder"])

    def poll(self, timeout: float = 0.5) -> dict[str, Any]:
        reply: dict[str, Any] = ray.get(self.actor.poll.remote(self.since, self.head, timeout), timeout=timeout + 30)
        assert reply["dropped"] == 0
        self.lines += reply["lines"]
        self.since, self.head = reply["next"], reply["head"]
        if reply["bundle"] is not None:
            self.bundles[reply["head"]] = reply["bundle"]
        return reply

    def until(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20.0) -> dict[str, Any]:
        """Poll until ``predicate(reply)`` holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = self.poll()
            if predicate(reply):
                return reply
        raise AssertionError(f"timed out after {timeout}s; last lines: {self.lines[-5:]}")

    def texts(self, stream: str = "stdout") -> list[str]:
        return [text for name, text in self.lines if name == stream]

    def marked(self) -> list[int]:
        return processes_with(f"{MARK_VAR}={self.mark}")


@pytest.fixture
def start(cluster: LocalCluster, source: dict[str, Any]) -> Iterator[Callable[..., Attempt]]:
    """``start(script, *args, node=None, **spec)``: ``sh -c script args…`` as an attempt on a worker node (that one,
    with ``node``). Every actor is killed at the end of the test (its guard then clears what is left)."""
    actors: list[Any] = []
    cls = actor_class()

    def run(script: str, *args: str, node: str | None = None, **extra: Any) -> Attempt:
        spec = {
            "name": f"t{len(actors)}#{uuid.uuid4().hex[:8]}",
            "bundle": source["bundle"],
            "branch": "foreman/01_load",
            "head": source["head"],
            "argv": ["sh", "-c", script, *args],
            "env": dict(IDENTITY),
            "files": {},
            "stdin": None,
            "mark_var": MARK_VAR,
            "mark": f"test-{uuid.uuid4().hex}",
            "grace": 2.0,
        } | extra
        options = {"name": spec["name"], "lifetime": "detached", "max_restarts": 0, "max_concurrency": 4}
        if node is not None:
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=False)
        actor = cls.options(**options, num_cpus=0, resources={"agent": 1}).remote(spec)
        actors.append(actor)
        return Attempt(actor, spec)

    yield run
    for actor in actors:
        ray.kill(actor)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def fetch(repo: Path, bundle: bytes, tmp: Path) -> str:
    """What the supervisor does with a bundle: fetch its HEAD into the source repository; returns the sha."""
    path = tmp / f"{uuid.uuid4().hex}.bundle"
    path.write_bytes(bundle)
    git(repo, "fetch", "-q", str(path), "HEAD")
    return git(repo, "rev-parse", "FETCH_HEAD")


# ----------------------------------------------------------------------------------------------------- tests


def test_runs_on_a_worker_node_with_its_environment(cluster: LocalCluster, start: Callable[..., Attempt]) -> None:
    """The actor lands on a worker node; the agent runs in the clone, on the branch at head, with FOREMAN_HOST =
    that node's id, FOREMAN_EXECUTOR=ray, tokens replaced in argv and env, the files written, stdin fed from one of
    them, no RAY_* variable (nor Ray's PYTHONBREAKPOINT), and the mark."""
    attempt = start(
        'echo "host=$FOREMAN_HOST" "executor=$FOREMAN_EXECUTOR" "hostname=$FOREMAN_HOSTNAME";'
        'echo "pwd=$(pwd)" "work=$WORK" "arg=$0" "files=$FILES";'
        'echo "branch=$(git rev-parse --abbrev-ref HEAD)" "head=$(git rev-parse HEAD)" "a=$(cat a.txt)";'
        'echo "data=$(cat "$0/data.txt")" "stdin=$(cat)";'
        'echo "ray=$(env | grep -c "^RAY_")" "mark=$FOREMAN_PROCESS_MARK" "bp=${PYTHONBREAKPOINT-}${SPT_NOENV-}"',
        "{{files}}",
        env={**IDENTITY, "WORK": "{{work}}", "FILES": "[{{files}}]"},
        files={"data.txt": b"the-data\n", "prompt.txt": b"the-prompt\n"},
        stdin="prompt.txt",
    )
    info = attempt.info
    assert info["node_id"] in cluster.worker_ids
    assert info["hostname"] == socket.gethostname()
    assert info["work"] == str(attempt.folder / "work")
    assert info["pid"] > 0 and info["guard_pid"] > 0 and info["clone_s"] < 30
    files = str(attempt.folder / "files")
    reply = attempt.until(lambda r: r["done"])
    values = dict(word.split("=", 1) for line in attempt.texts() for word in line.split(" "))
    assert values == {
        "host": info["node_id"],
        "executor": "ray",
        "hostname": socket.gethostname(),
        "pwd": info["work"],
        "work": info["work"],
        "arg": files,
        "files": f"[{files}]",
        "branch": "foreman/01_load",
        "head": attempt.spec["head"],
        "a": "two",
        "data": "the-data",
        "stdin": "the-prompt",
        "ray": "0",
        "mark": attempt.mark,
        "bp": "",  # Ray's own PYTHONBREAKPOINT and SPT_NOENV are not the agent's
    }
    assert reply["exit_code"] == 0


def test_output_arrives_in_order_and_from_since(start: Callable[..., Attempt]) -> None:
    """Lines come in order (per stream) with absolute indexes; a poll from an earlier ``since`` gets them again; a
    partial last line is held back until its newline and flushed at the end; ``done`` comes once all is read."""
    attempt = start(
        "i=0; while [ $i -lt 300 ]; do echo out $i; i=$((i+1)); done; echo err line >&2; printf 'part';"
        "while [ ! -e \"$0/go\" ]; do sleep 0.02; done; printf 'ial\\nlast'; exit 3",
        "{{files}}",
    )
    first = attempt.until(lambda r: len(attempt.texts()) >= 300 and attempt.texts("stderr") == ["err line"])
    assert attempt.texts() == [f"out {i}" for i in range(300)]
    assert not first["done"] and first["exit_code"] is None and attempt.since == 301
    began = time.monotonic()  # nothing new: a poll waits out its timeout (the partial line stays back)
    quiet = attempt.poll(timeout=0.3)
    assert quiet["lines"] == [] and quiet["next"] == 301 and not quiet["done"]
    assert time.monotonic() - began >= 0.25
    again = ray.get(attempt.actor.poll.remote(295, attempt.head, 0))
    assert again["lines"] == attempt.lines[295:301]  # (stdout and stderr interleave as they were read)
    assert again["next"] == 301 and again["dropped"] == 0
    (attempt.folder / "files" / "go").touch()
    last = attempt.until(lambda r: r["done"])
    assert attempt.texts()[300:] == ["partial", "last"]
    assert last["exit_code"] == 3 and attempt.since == 303
    began = time.monotonic()  # after the end a poll returns at once, done
    after = ray.get(attempt.actor.poll.remote(303, attempt.head, 5.0))
    assert after == {**after, "lines": [], "next": 303, "done": True, "exit_code": 3, "bundle": None}
    assert time.monotonic() - began < 2.0


def test_a_long_output_keeps_the_last_lines(start: Callable[..., Attempt]) -> None:
    """Of 20,500 lines the actor keeps the last 20,000: a poll from 0 is told 500 were dropped; replies are cut at
    5,000 lines and ``done`` waits for the last of them."""
    attempt = start("seq 1 20500")
    end = ray.get(attempt.actor.poll.remote(20500, attempt.spec["head"], 20.0), timeout=40)
    assert end["done"] and end["next"] == 20500 and end["lines"] == []
    reply = ray.get(attempt.actor.poll.remote(0, attempt.spec["head"], 0))
    assert reply["dropped"] == 500 and reply["lines"][0] == ["stdout", "501"]
    assert len(reply["lines"]) == 5000 and reply["next"] == 5500 and not reply["done"]
    reply = ray.get(attempt.actor.poll.remote(15500, attempt.spec["head"], 0))
    assert reply["dropped"] == 0 and reply["lines"][-1] == ["stdout", "20500"] and reply["done"]


def test_commits_arrive_as_bundles(tmp_path: Path, source: dict[str, Any], start: Callable[..., Attempt]) -> None:
    """Each commit reaches the poller as a bundle of ``HEAD ^base`` that ``git fetch <bundle> HEAD`` applies in the
    source repository; the final head is the agent's last commit; a head behind the base comes without a bundle."""
    repo, base = source["repo"], source["head"]
    attempt = start(
        "for n in 1 2 3 4; do echo $n > b.txt; git add b.txt; git commit -qm c$n; echo committed $n;"
        '  while [ ! -e "$0/go$n" ]; do sleep 0.02; done; done;'
        "git rev-parse HEAD; git reset -q --hard HEAD~5",
        "{{files}}",
    )
    fetched: list[str] = []
    for n in range(1, 5):
        attempt.until(
            lambda r, n=n: (
                f"committed {n}" in attempt.texts() and attempt.head in attempt.bundles and attempt.head not in fetched
            )
        )
        sha = fetch(repo, attempt.bundles[attempt.head], tmp_path)
        assert sha == attempt.head
        assert git(repo, "rev-list", "--count", f"{base}..{sha}") == str(n)
        assert git(repo, "show", f"{sha}:b.txt") == str(n)
        fetched.append(sha)
        assert attempt.poll(timeout=0)["bundle"] is None  # the head it knows: no bundle
        (attempt.folder / "files" / f"go{n}").touch()
    last = attempt.until(lambda r: r["done"])
    assert attempt.texts()[4] == fetched[-1]  # the agent's own last commit
    assert last["head"] == git(repo, "rev-parse", f"{base}~1") and last["bundle"] is None  # behind base
    assert last["exit_code"] == 0


def test_stop_an_agent_that_obeys_term(start: Callable[..., Attempt]) -> None:
    """``stop`` sends SIGTERM to the group and to marked processes outside it (a ``setsid`` child): all end well
    within the grace, exit -15, nothing SIGKILLed; a second stop changes nothing."""
    attempt = start("sleep 300 & setsid sleep 301 & echo started; wait")
    attempt.until(lambda r: "started" in attempt.texts())
    wait_until(lambda: len(attempt.marked()) >= 3, 10, "the agent and its two children")
    began = time.monotonic()
    assert ray.get(attempt.actor.stop.remote(10.0), timeout=40) == {"exit_code": -15, "killed": False}
    assert time.monotonic() - began < 1.5
    assert attempt.marked() == [] and live_group(attempt.info["pid"]) == []
    assert attempt.until(lambda r: r["done"])["exit_code"] == -15
    assert ray.get(attempt.actor.stop.remote(1.0), timeout=40) == {"exit_code": -15, "killed": False}


def test_stop_an_agent_that_ignores_term(start: Callable[..., Attempt]) -> None:
    """An agent that runs ``trap '' TERM`` (its background child inherits that) is SIGKILLed after the grace, with
    its whole group."""
    attempt = start("trap '' TERM; sleep 300 & echo started; while :; do sleep 0.05; done")
    attempt.until(lambda r: "started" in attempt.texts())
    wait_until(lambda: len(attempt.marked()) >= 2, 10, "the agent and its child")
    began = time.monotonic()
    assert ray.get(attempt.actor.stop.remote(1.0), timeout=40) == {"exit_code": -9, "killed": True}
    assert 1.0 <= time.monotonic() - began < 10.0
    assert attempt.marked() == [] and live_group(attempt.info["pid"]) == []


def test_ray_kill_without_cleanup(start: Callable[..., Attempt]) -> None:
    """``ray.kill`` of the actor breaks the lifeline: the guard stops the agent's group and its escaped child,
    removes the attempt folder and exits; the same for an attempt whose agent had already finished."""
    running = start("sleep 300 & setsid sleep 301 & echo started; wait", grace=1.0)
    finished = start("echo bye")
    running.until(lambda r: "started" in running.texts())
    wait_until(lambda: len(running.marked()) >= 3, 10, "the agent and its two children")
    finished.until(lambda r: r["done"])
    assert finished.folder.exists()  # it stays while the actor does: the actor serves HEAD until cleanup
    for attempt in (running, finished):
        ray.kill(attempt.actor)
    for attempt in (running, finished):
        wait_until(lambda a=attempt: not a.marked(), 15, "the agent's processes to go")
        wait_until(lambda a=attempt: not a.folder.exists(), 15, "the attempt folder to go")
        wait_until(lambda a=attempt: not alive(a.info["guard_pid"]), 15, "the guard to exit")


def test_a_node_that_dies_takes_its_attempt_along(cluster: LocalCluster, start: Callable[..., Attempt]) -> None:
    """When a node dies (its raylet and the rest SIGKILLed), its Ray worker goes, the lifeline breaks, and the guard
    stops the agent with its escaped child and removes the clone."""
    node = cluster.add_worker()
    attempt = start("sleep 300 & setsid sleep 301 & echo started; wait", node=node, grace=1.0)
    assert attempt.info["node_id"] == node
    attempt.until(lambda r: "started" in attempt.texts())
    wait_until(lambda: len(attempt.marked()) >= 3, 10, "the agent and its two children")
    cluster.remove(node, graceful=False)
    cluster.wait_dead(node)  # else the next test's actor could be placed there
    wait_until(lambda: not attempt.marked(), 20, "the agent's processes to go")
    wait_until(lambda: not attempt.folder.exists(), 20, "the attempt folder to go")
    wait_until(lambda: not alive(attempt.info["guard_pid"]), 20, "the guard to exit")


def test_cleanup_removes_everything(start: Callable[..., Attempt]) -> None:
    """``cleanup`` of a running attempt kills the agent, lets the guard go and removes the folder; twice is fine."""
    attempt = start("sleep 300 & echo started; wait")
    attempt.until(lambda r: "started" in attempt.texts())
    assert (attempt.folder / "work" / ".git").is_dir()
    ray.get(attempt.actor.cleanup.remote(), timeout=40)
    assert not attempt.folder.exists()
    assert attempt.marked() == []
    wait_until(lambda: not alive(attempt.info["guard_pid"]), 15, "the guard to exit")
    ray.get(attempt.actor.cleanup.remote(), timeout=40)


def test_exit_by_signal_and_a_fresh_poll(start: Callable[..., Attempt]) -> None:
    """An agent killed by a signal reports it as subprocess does (negative); a finished attempt answers ``done``,
    its lines and its head even to a poll that knows nothing yet (a takeover)."""
    attempt = start("echo going; kill -KILL $$")
    assert attempt.until(lambda r: r["done"])["exit_code"] == -9
    assert attempt.texts() == ["going"]
    fresh = ray.get(attempt.actor.poll.remote(0, None, 1.0), timeout=30)
    assert fresh["done"] and fresh["lines"] == [["stdout", "going"]] and fresh["head"] == attempt.spec["head"]
    assert fresh["bundle"] is None  # head is still the base


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"argv": ["/nonexistent/agent"]}, "the agent did not start"),
        ({"files": {"../x": b""}}, "not a plain file name"),
    ],
)
def test_a_failed_start_leaves_nothing(start: Callable[..., Attempt], extra: dict[str, Any], message: str) -> None:
    """An agent that cannot start, or a bad file name, fails the actor's creation, and its folder is removed."""
    name = f"bad-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ray.exceptions.RayActorError, match=message):
        start("true", name=name, **extra)
    assert not list(Path("/tmp").glob(f"foreman-ray-{name}-*"))
