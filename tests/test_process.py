"""The child-process runtime: chunked reading of huge lines, bounded tails, stdin, timeouts, and stopping
whole process groups, grandchildren included. Real subprocesses throughout."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from foreman_tui.engine.process import ChildProcess

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
