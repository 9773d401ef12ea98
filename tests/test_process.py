"""The child-process runtime: chunked reading of huge lines, bounded tails, stdin, timeouts, and stopping
whole process groups, grandchildren included. Real subprocesses throughout."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pytest

from foreman_tui.engine.process import MAX_LINE, ChildProcess

from .engine_support import alive, wait_for


def child(tmp_path: Path, code: str, **kwargs: object) -> ChildProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return ChildProcess([sys.executable, "-c", code], tmp_path, env, tmp_path / "child.log", **kwargs)  # type: ignore[arg-type]


def test_lines_longer_than_64_kib_arrive_whole(tmp_path: Path) -> None:
    lines: list[tuple[str, str]] = []
    code = "import sys; sys.stdout.write('x' * 300000 + '\\n' + 'done\\n'); sys.stderr.write('warn\\n')"
    proc = child(tmp_path, code, on_lines=lambda s, batch: lines.extend((s, t) for t in batch))

    async def go() -> int | None:
        await proc.start()
        return (await proc.wait(30)).exit_code

    assert asyncio.run(go()) == 0
    stdout = [t for s, t in lines if s == "stdout"]
    assert [len(t) for t in stdout] == [300000, 4]
    assert ("stderr", "warn") in lines
    assert (tmp_path / "child.log").stat().st_size == 300000 + 1 + 5 + 5


def test_lines_arrive_exactly_whatever_the_chunks(tmp_path: Path) -> None:
    """Lines are handed over a chunk at a time; the batches must still add up to the exact lines: CRLF
    endings stripped, a character split across two reads intact, the last line kept without its newline."""
    batches: list[list[str]] = []
    # 65,535 ASCII bytes put the 3-byte 表 across the first 64 KiB read; then many small lines, CRLF ones
    # and a last line with no newline.
    code = (
        "import sys\n"
        "out = sys.stdout.buffer\n"
        "out.write(b'a' * 65535 + '表格'.encode() + b'\\n')\n"
        "out.write(b''.join(b'%d\\n' % i for i in range(50000)))\n"
        "out.write(b'dos\\r\\nline\\r\\n\\nlast')\n"
    )
    proc = child(tmp_path, code, on_lines=lambda s, batch: batches.append(batch) if s == "stdout" else None)

    async def go() -> int | None:
        await proc.start()
        return (await proc.wait(30)).exit_code

    assert asyncio.run(go()) == 0
    lines = [line for batch in batches for line in batch]
    assert lines == ["a" * 65535 + "表格", *map(str, range(50000)), "dos", "line", "", "last"]
    assert len(batches) < 200  # per chunk, not per line
    assert list(proc.tail)[-4:] == ["dos", "line", "", "last"]


def test_the_tail_stays_bounded(tmp_path: Path) -> None:
    proc = child(tmp_path, "for i in range(20000): print(i)", tail_lines=100)

    async def go() -> None:
        await proc.start()
        await proc.wait(30)

    asyncio.run(go())
    assert len(proc.tail) == 100 and proc.tail[-1] == "19999" and proc.tail[0] == "19900"


def test_stdin_is_never_the_terminal(tmp_path: Path) -> None:
    prompt = tmp_path / "prompt.md"
    prompt.write_text("the task")
    code = "import sys; print(sys.stdin.isatty(), repr(sys.stdin.read()))"
    for stdin, expected in ((None, "False ''"), (prompt, "False 'the task'")):
        proc = child(tmp_path, code, stdin_path=stdin)

        async def go(p: ChildProcess = proc) -> None:
            await p.start()
            await p.wait(30)

        asyncio.run(go())
        assert list(proc.tail) == [expected]


def test_a_timeout_stops_the_whole_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids.json"
    code = (
        "import json, os, subprocess, sys, time\n"
        "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        f"open({str(pids)!r}, 'w').write(json.dumps([os.getpid(), g.pid]))\n"
        "time.sleep(300)\n"
    )
    proc = child(tmp_path, code)

    async def go():
        await proc.start()
        return await proc.wait(timeout=1.5)

    result = asyncio.run(go())
    assert result.timed_out and result.exit_code is not None
    leader, grandchild = json.loads(pids.read_text())
    wait_for(lambda: not alive(grandchild), 5, "the grandchild to be gone")
    assert not alive(leader)


def test_a_term_ignoring_child_is_killed_after_the_grace(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
        "time.sleep(300)"
    )
    proc = child(tmp_path, code)

    async def go() -> float:
        await proc.start()
        while "ready" not in proc.tail:
            await asyncio.sleep(0.02)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await proc.stop(grace=0.5)
        await proc.wait()
        return loop.time() - started

    took = asyncio.run(go())
    assert 0.4 < took < 5 and not proc.running


def test_a_background_grandchild_does_not_outlive_a_clean_exit(tmp_path: Path) -> None:
    pid_file = tmp_path / "g.pid"
    code = (
        "import subprocess, sys\n"
        "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'],\n"
        "                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        f"open({str(pid_file)!r}, 'w').write(str(g.pid))\n"
    )
    proc = child(tmp_path, code)

    async def go():
        await proc.start()
        return await proc.wait(30)

    assert asyncio.run(go()).exit_code == 0
    wait_for(lambda: not alive(int(pid_file.read_text())), 5, "the background grandchild to be gone")


# --- Descendants that escape the process group, pipes held by grandchildren, runaway lines ------------------


@pytest.fixture
def strays() -> Iterator[list[int]]:
    """Pids a test started that must not outlive it, whatever the outcome (they would sleep for 300 s)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def escaping(ready: Path, stdout: str = "subprocess.DEVNULL") -> str:
    """Worker code that starts a grandchild which leaves the worker's session (``setsid``) and writes its
    pid to ``ready`` once it has; the worker waits for that file."""
    grandchild = (
        f"import os, time; os.setsid(); open({str(ready)!r} + '.tmp', 'w').write(str(os.getpid())); "
        f"os.replace({str(ready)!r} + '.tmp', {str(ready)!r}); time.sleep(300)"
    )
    return (
        "import os, subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', {grandchild!r}], stdout={stdout}, stderr=subprocess.DEVNULL)\n"
        f"while not os.path.exists({str(ready)!r}): time.sleep(0.01)\n"
        "print('escaped', flush=True)\n"
    )


def gone(pid: int) -> None:
    wait_for(lambda: not alive(pid), 3, f"process {pid} to be gone")


def mark() -> str:
    return f"test-{uuid.uuid4().hex}"


def test_stop_reaches_a_grandchild_that_left_the_group(tmp_path: Path, strays: list[int]) -> None:
    ready = tmp_path / "g.pid"
    proc = child(tmp_path, escaping(ready) + "time.sleep(300)\n", mark=mark())

    async def go() -> None:
        await proc.start()
        while "escaped" not in proc.tail:
            await asyncio.sleep(0.02)
        strays.append(int(ready.read_text()))
        await proc.stop(grace=2)
        await proc.wait()

    asyncio.run(go())
    gone(strays[0])


def test_a_clean_exit_reaches_a_grandchild_that_left_the_group(tmp_path: Path, strays: list[int]) -> None:
    ready = tmp_path / "g.pid"
    proc = child(tmp_path, escaping(ready), mark=mark())

    async def go() -> int | None:
        await proc.start()
        return (await proc.wait(30)).exit_code

    assert asyncio.run(go()) == 0
    strays.append(int(ready.read_text()))
    gone(strays[0])


def test_a_timeout_reaches_a_grandchild_that_left_the_group(tmp_path: Path, strays: list[int]) -> None:
    ready = tmp_path / "g.pid"
    proc = child(tmp_path, escaping(ready) + "time.sleep(300)\n", mark=mark())

    async def go() -> bool:
        await proc.start()
        return (await proc.wait(timeout=3)).timed_out

    assert asyncio.run(go())
    strays.append(int(ready.read_text()))
    gone(strays[0])


def test_a_grandchild_holding_stdout_does_not_hold_the_attempt(tmp_path: Path, strays: list[int]) -> None:
    """The worker exits at once, its background ``sleep`` keeps the pipe open for 300 s: the attempt ends
    about ``drain_grace`` after the worker, with every line the worker printed."""
    gpid = tmp_path / "g.pid"
    script = f"seq 1 3000; sleep 300 & echo $! > {gpid}; echo started"
    proc = ChildProcess(["sh", "-c", script], tmp_path, dict(os.environ), tmp_path / "child.log", drain_grace=1.0)
    proc.tail = deque(maxlen=5000)

    async def go() -> float:
        await proc.start()
        started = time.monotonic()
        result = await proc.wait(timeout=15)
        assert result.exit_code == 0 and not result.timed_out
        return time.monotonic() - started

    took = asyncio.run(go())
    strays.append(int(gpid.read_text()))
    expected = [*map(str, range(1, 3001)), "started"]
    assert took < 1.0 + 2, took
    assert (tmp_path / "child.log").read_text().splitlines() == expected
    assert list(proc.tail) == expected
    assert not Path(f"/proc/{proc.pid}").exists(), "the leader is reaped, not left a zombie"
    gone(strays[0])


def test_without_a_pidfd_the_leader_is_still_watched(
    tmp_path: Path, strays: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where ``os.pidfd_open`` is missing (an old kernel or Python, a seccomp filter), polling finds the exit."""
    monkeypatch.delattr(os, "pidfd_open")
    gpid = tmp_path / "g.pid"
    script = f"sleep 300 & echo $! > {gpid}; echo started"
    proc = ChildProcess(["sh", "-c", script], tmp_path, dict(os.environ), tmp_path / "child.log", drain_grace=0.5)

    async def go() -> float:
        await proc.start()
        started = time.monotonic()
        assert (await proc.wait(timeout=15)).exit_code == 0
        return time.monotonic() - started

    took = asyncio.run(go())
    strays.append(int(gpid.read_text()))
    assert took < 0.5 + 2 and list(proc.tail) == ["started"]
    assert not Path(f"/proc/{proc.pid}").exists()
    gone(strays[0])


def test_hand_off_leaves_the_child_running_and_logging(tmp_path: Path, strays: list[int]) -> None:
    """Leaving a worker running: its pipes go to a drain process that appends to the same log; nothing of
    it is stopped, though it carries a mark."""
    go_on = tmp_path / "go"
    code = (
        "import os, time\nprint('before', flush=True)\n"
        f"while not os.path.exists({str(go_on)!r}): time.sleep(0.01)\n"
        "print('after', flush=True)\n"
    )
    proc = child(tmp_path, code, mark=mark())
    log_file = tmp_path / "child.log"

    async def go() -> int:
        await proc.start()
        while "before" not in proc.tail:
            await asyncio.sleep(0.02)
        drain = proc.hand_off()
        assert drain is not None and drain != proc.pid
        strays.append(drain)
        go_on.touch()
        while log_file.read_text() != "before\nafter\n" or proc.running:  # the worker is still reaped here
            await asyncio.sleep(0.02)
        return drain

    drain = asyncio.run(asyncio.wait_for(go(), 20))
    gone(drain)  # the drain ends when the worker's pipes close
    assert list(proc.tail) == ["before"]


@pytest.mark.parametrize("marked", [True, False], ids=["marked", "unmarked"])
def test_stop_is_not_held_by_grandchildren_holding_stdout(tmp_path: Path, strays: list[int], marked: bool) -> None:
    """Two grandchildren keep the worker's stdout open: one in its group, one that left it. ``stop()``
    waits for the worker, not for the pipes; with a mark the escaped one is stopped too."""
    ready, inside = tmp_path / "g.pid", tmp_path / "inside.pid"
    code = (
        escaping(ready, stdout="None")
        + "g = subprocess.Popen(['sleep', '300'])\n"
        + f"open({str(inside)!r}, 'w').write(str(g.pid))\n"
        + "print('both', flush=True)\ntime.sleep(300)\n"
    )
    proc = child(tmp_path, "print('before', flush=True)\n" + code, mark=mark() if marked else None)

    async def go() -> float:
        await proc.start()
        while "both" not in proc.tail:
            await asyncio.sleep(0.02)
        strays.extend([int(ready.read_text()), int(inside.read_text())])
        started = time.monotonic()
        await asyncio.wait_for(proc.stop(grace=1), 20)
        result = await asyncio.wait_for(proc.wait(), 5)
        assert result.stopped
        return time.monotonic() - started

    took = asyncio.run(go())
    assert took < 1 + 2 + 2, took  # the grace, the drain grace, slack
    assert not Path(f"/proc/{proc.pid}").exists(), "the leader is reaped"
    assert list(proc.tail) == ["before", "escaped", "both"]
    assert (tmp_path / "child.log").read_text() == "before\nescaped\nboth\n"
    gone(strays[1])
    if marked:
        gone(strays[0])
    else:
        assert alive(strays[0]), "an unmarked escapee cannot be found; it only must not hold the stop"


def memory_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def test_a_300_mib_line_costs_megabytes_not_hundreds(tmp_path: Path) -> None:
    """A 300 MiB line with no newline is held only up to MAX_LINE: consumers get its first MAX_LINE bytes and
    a marker once, then the next line; the log gets every byte; the memory of this process hardly grows."""
    seen: list[tuple[str, int, str]] = []
    code = (
        "import sys\nout = sys.stdout.buffer\nblock = b'x' * (1 << 20)\n"
        "for _ in range(300): out.write(block)\n"
        "out.write(b'\\nok\\n')\n"
    )
    proc = child(tmp_path, code, on_lines=lambda s, batch: seen.extend((s, len(t), t[-80:]) for t in batch))
    before = memory_kib("VmRSS")
    reset = True
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        reset, before = False, memory_kib("VmHWM")

    async def go() -> int | None:
        await proc.start()
        return (await proc.wait(120)).exit_code

    try:
        assert asyncio.run(go()) == 0
        growth_mib = (memory_kib("VmHWM") - before) / 1024
        print(f"peak RSS growth: {growth_mib:.1f} MiB (VmHWM reset: {reset})")
        assert (tmp_path / "child.log").stat().st_size == 300 * (1 << 20) + len(b"\nok\n")
    finally:
        (tmp_path / "child.log").unlink(missing_ok=True)
    assert growth_mib < 60, growth_mib
    stdout = [entry for entry in seen if entry[0] == "stdout"]
    assert len(stdout) == 2, [entry[:2] for entry in stdout]
    (_, size, end), (_, _, ok) = stdout
    assert ok == "ok"
    assert MAX_LINE <= size <= MAX_LINE + 100
    assert end.endswith(f"[cut: {300 * (1 << 20) - MAX_LINE} more bytes; the log has every byte]"), end
    assert len(proc.tail) == 2 and proc.tail[-1] == "ok"
    assert len(proc.tail[0]) <= 4096 + 100 and proc.tail[0].startswith("x" * 4096)


def test_the_tail_cuts_long_lines(tmp_path: Path) -> None:
    lines: list[str] = []
    code = "print('y' * 100000); print('short')"
    proc = child(tmp_path, code, line_limit=1000, on_lines=lambda s, batch: lines.extend(batch))

    async def go() -> None:
        await proc.start()
        await proc.wait(30)

    asyncio.run(go())
    assert [len(line) for line in lines] == [100000, 5], "consumers get whole lines"
    assert proc.tail[0].startswith("y" * 1000) and 1000 < len(proc.tail[0]) < 1100 and proc.tail[1] == "short"


def test_stop_does_not_hang_when_the_exit_watcher_is_gone(tmp_path: Path) -> None:
    """A loop shutting down cancels every task, the exit watcher too; a stop begun afterwards must still end."""

    async def scenario() -> float:
        proc = child(tmp_path, "import time; time.sleep(60)")
        await proc.start()
        assert proc._watcher is not None
        proc._watcher.cancel()
        started = time.monotonic()
        await asyncio.wait_for(proc.stop(grace=1.0), 15)
        assert not proc.running
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 10
