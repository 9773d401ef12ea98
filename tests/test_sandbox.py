"""The bubblewrap sandbox (issue 13, item 5): with ``sandbox = "bwrap"`` a map's commands run without the network
and write only their tree and a private temp folder. Real ``bwrap`` (``.ci/run`` installs it), real processes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from foreman_tui.engine.reaper import MARK_VAR, marked_pids, stop_marked
from foreman_tui.engine.sandbox import sandbox_prefix
from foreman_tui.map.store import atomic_write

from .conftest import DEMO_DIR
from .engine_support import DEMO_PROCESS, alive, demo_repo, events, foreman, kinds, trust_map, wait_for


def _run(prefix: list[str], script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, "sh", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )


def _connect(port: int) -> str:
    """A command that exits 0 only when it can open a TCP connection to 127.0.0.1:``port``."""
    return f"{sys.executable} -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5)\""


@pytest.fixture
def server() -> Iterator[int]:
    """A TCP server listening on the loopback of the test's own network; its port. (The kernel completes a
    connection into the backlog: nothing needs to accept it.)"""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def test_a_sandboxed_command_writes_its_folder_but_nothing_outside(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    outside = tmp_path / "outside.txt"
    prefix = sandbox_prefix([tree], network=False)

    inside = _run(prefix, "echo made > made.txt", tree)
    assert inside.returncode == 0, inside.stderr
    assert (tree / "made.txt").read_text() == "made\n"

    escape = _run(prefix, f"echo escaped > {outside}", tree)
    assert escape.returncode != 0
    assert "Read-only file system" in escape.stderr
    assert not outside.exists()


def test_a_sandboxed_command_has_a_private_temp_folder(tmp_path: Path) -> None:
    name = f"/tmp/foreman-sandbox-{uuid.uuid4().hex}"
    done = _run(
        sandbox_prefix([tmp_path], network=False), f'echo private > {name} && cat {name} && echo "$TMPDIR"', tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["private", "/tmp"]
    assert not Path(name).exists()  # the command's /tmp was its own and is gone


def test_what_lies_in_another_temp_folder_is_hidden_unless_given_as_readable(tmp_path: Path) -> None:
    elsewhere = Path(tempfile.mkdtemp(prefix="foreman-sandbox-"))  # another entry of /tmp than the tree's
    try:
        (elsewhere / "python").write_text("an interpreter")
        show = f"cat {elsewhere}/python"
        assert _run(sandbox_prefix([tmp_path], network=False), show, tmp_path).returncode != 0
        prefix = sandbox_prefix([tmp_path], network=False, readable=[elsewhere])
        assert _run(prefix, show, tmp_path).stdout == "an interpreter"
        assert _run(prefix, f"echo changed > {elsewhere}/python", tmp_path).returncode != 0
        assert (elsewhere / "python").read_text() == "an interpreter"
    finally:
        shutil.rmtree(elsewhere)


def test_with_the_network_off_a_server_on_the_loopback_is_unreachable(tmp_path: Path, server: int) -> None:
    assert subprocess.run(_connect(server), shell=True, timeout=30).returncode == 0  # reachable from here
    done = _run(sandbox_prefix([tmp_path], network=False), _connect(server), tmp_path)
    assert done.returncode != 0
    assert "Connection refused" in done.stderr, done.stderr  # the loopback of its own network has nothing on it


def test_with_the_network_on_a_sandboxed_command_connects(tmp_path: Path, server: int) -> None:
    done = _run(sandbox_prefix([tmp_path], network=True), _connect(server), tmp_path)
    assert done.returncode == 0, done.stderr


def test_a_sandboxed_command_cannot_see_or_signal_other_processes(tmp_path: Path) -> None:
    me = os.getpid()
    done = _run(sandbox_prefix([tmp_path], network=False), f"kill -0 {me} || cat /proc/{me}/environ", tmp_path)
    assert done.returncode != 0
    assert MARK_VAR not in done.stdout and "PATH=" not in done.stdout


def test_the_reaper_finds_and_stops_what_runs_in_the_sandbox(tmp_path: Path) -> None:
    """foreman marks its children (``reaper.py``); a sandboxed process that left the group is still found by its
    mark from outside, and stopped."""
    mark = f"test-sandbox-{uuid.uuid4().hex}"
    proc = subprocess.Popen(
        [*sandbox_prefix([tmp_path], network=False), "sh", "-c", "setsid sleep 61 & sleep 60"],
        cwd=tmp_path,
        env={**os.environ, MARK_VAR: mark},
        start_new_session=True,
        stdin=subprocess.DEVNULL,
    )
    try:

        def left_the_group() -> list[int]:
            return [p for p in marked_pids(mark) if _cmdline(p) == "sleep 61" and os.getpgid(p) != proc.pid]

        wait_for(lambda: bool(left_the_group()), 10, "the sandboxed process that called setsid")
        escaped = left_the_group()
        stopped = stop_marked(mark, grace=2.0)
        assert set(escaped) <= set(stopped)
        assert proc.wait(timeout=10) != 0
        assert not any(alive(p) for p in stopped)
        assert marked_pids(mark) == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _sandboxed_demo(tmp_path: Path) -> Path:
    """The demo with ``[checks] sandbox = "bwrap"``; returns its map (committed, not yet approved)."""
    map_path = demo_repo(tmp_path)
    toml = map_path.parent / "foreman.toml"
    toml.write_text(toml.read_text().replace("[checks]\n", '[checks]\nsandbox = "bwrap"\n', 1))
    subprocess.run(["git", "commit", "-qam", "sandbox the checks"], cwd=map_path.parent, check=True)
    return map_path


def test_checks_in_the_sandbox_cannot_reach_the_network_or_write_outside_their_tree(
    tmp_path: Path, server: int
) -> None:
    map_path = _sandboxed_demo(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    escaped = outside / "escaped.txt"
    network = _connect(server)
    write = f"{sys.executable} -c \"open('{escaped}', 'w').write('escaped')\""
    doc = json.loads(map_path.read_text(encoding="utf-8"))
    core = doc["contents"]["09_cli"]["verify"]["core"]
    core += [
        {"desc": "reaches a server on the loopback", "level": "L3", "cmd": network},
        {"desc": "writes outside the project", "level": "L3", "cmd": write},
    ]
    atomic_write(map_path, (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode())
    subprocess.run(["git", "commit", "-qam", "two checks that try to get out"], cwd=map_path.parent, check=True)
    trust_map(map_path)

    result = foreman("run", str(map_path), "--headless")
    assert result.returncode == 3, result.stdout + result.stderr  # the end stage fails: a hard pause
    evs = events(map_path)
    end = {e["detail"]["cmd"]: e["detail"] for e in kinds(evs, "CheckFinished", "end")}
    assert end[network]["status"] == "fail"
    assert "Connection refused" in end[network]["output_tail"], end[network]  # its loopback has no server
    assert end[write]["status"] == "fail"
    assert "Read-only file system" in end[write]["output_tail"], end[write]
    assert not escaped.exists()
    # The demo's own checks, its region checks and the benchmark ran in the same sandbox and passed.
    for node in DEMO_PROCESS:
        assert kinds(evs, "NodeVerified", node), node
    l1 = [(e["node"], e["detail"]["status"]) for e in kinds(evs, "CheckFinished") if e["detail"]["level"] == "L1"]
    ran = [(node, status) for node, status in l1 if node != "04_assign"]
    assert ran and all(status in ("pass", "skipped") for _, status in ran), ran
    assert [status for node, status in l1 if node == "04_assign"][-1] == "pass"  # its first try fails, as always
    stages = {e["node"]: e["detail"] for e in kinds(evs, "StageFinished")}
    assert stages["region:prepare"]["passed"] and stages["region:lloyd"]["passed"]
    assert sorted(stages["end"]["failed"]) == sorted(f"09_cli core[{i}]" for i in (len(core) - 2, len(core) - 1))
    assert kinds(evs, "BenchmarkRan")[0]["detail"]["value"] == 14.307


REFUSED_BY_KERNEL = "bwrap: No permissions to creating new namespace, likely because the kernel does not allow it"


@pytest.mark.parametrize("bwrap", ["missing", "refused"])
def test_a_sandbox_where_bubblewrap_does_not_work_is_refused_with_how_to_fix(tmp_path: Path, bwrap: str) -> None:
    map_path = _sandboxed_demo(tmp_path)
    bin_dir = tmp_path / "bin"  # a PATH with git and python, and no working bwrap
    bin_dir.mkdir()
    for program in ("git", "python3", "sh"):
        found = subprocess.run(["sh", "-c", f"command -v {program}"], capture_output=True, text=True, check=True)
        (bin_dir / program).symlink_to(found.stdout.strip())
    if bwrap == "refused":  # installed, but this kernel allows no user namespaces: what bwrap itself says then
        fake = bin_dir / "bwrap"
        fake.write_text(f"#!/bin/sh\necho '{REFUSED_BY_KERNEL}' >&2\nexit 1\n")
        fake.chmod(0o755)

    result = foreman("run", str(map_path), "--headless", env={"PATH": str(bin_dir)})
    assert result.returncode == 2, result.stdout + result.stderr
    assert '[checks] sandbox = "bwrap" in foreman.toml' in result.stderr
    assert 'sandbox = "none"' in result.stderr
    if bwrap == "missing":
        assert "apt-get install bubblewrap" in result.stderr
    else:
        assert REFUSED_BY_KERNEL in result.stderr and "user namespaces" in result.stderr
    assert not (map_path.parent / ".foreman" / "logs").exists()  # no worker started


def test_a_sandboxed_worker_commits_in_its_tree_and_cannot_write_outside(tmp_path: Path) -> None:
    escaped = tmp_path / "worker-escaped.txt"
    script = json.loads((DEMO_DIR / "script.json").read_text())["nodes"]
    map_path = demo_repo(tmp_path, {"01_load_points": {**script["01_load_points"], "try_write": str(escaped)}})
    toml = map_path.parent / "foreman.toml"
    sandboxed = '[worker]\npreset = "scripted"\nsandbox = "bwrap"'
    toml.write_text(toml.read_text().replace('[worker]\npreset = "scripted"', sandboxed))
    subprocess.run(["git", "commit", "-qam", "the worker in bubblewrap"], cwd=map_path.parent, check=True)
    trust_map(map_path)
    result = foreman("run", str(map_path), "--headless")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    evs = events(map_path)
    workers = [e["detail"]["argv"] for e in kinds(evs, "WorkerStarted") if e["detail"]["role"] == "worker"]
    assert workers and all(Path(argv[0]).name == "bwrap" for argv in workers)
    for node in DEMO_PROCESS:  # each worker committed from inside the sandbox
        assert kinds(evs, "NodeVerified", node), node
    assert not escaped.exists()
    log = (map_path.parent / ".foreman" / "logs" / "01_load_points" / "1.log").read_text()
    assert "could not write" in log and "Read-only file system" in log
