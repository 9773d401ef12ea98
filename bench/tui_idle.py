"""What foreman costs while nothing much happens: N quiet workers, each printing one line a second.

    python bench/tui_idle.py [--workers 8] [--seconds 30] [--mode tui|headless|both] [--settle 3]

The map of tui_flood.py (N independent nodes, the `command` preset running a small Python printer per node),
at one line a second per worker, for longer than the measurement (the workers never commit). For `tui`,
`foreman run MAP` runs in a real terminal, a 150×44 tmux pane as in tui_terminal.py; for `headless`,
`foreman run --headless MAP` with its output to a file. Once all N workers are running (and ``--settle``
seconds more, for start-up to finish), the bench reads foreman's own CPU time from /proc/<pid>/stat
(utime + stime, all its threads, not its workers': they are other processes) over ``--seconds`` seconds
and reports it as a share of one core: overall, split into user and system time, for the main thread alone
(the event loop: engine and Textual; the rest is git's and Textual's threads), and per 5-second window; with
foreman's RSS. The workers' own CPU is reported beside it, for scale. The machine is shared: run it more than
once (the load average before and after is in the output). Then it quits as a person would (the TUI: `q`,
then `s` in the quit dialog; headless: SIGTERM) and checks that foreman and every worker are gone.
Targets (issue 17): the TUI under 3% of a core, headless under 2%.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tui_flood import make_project, rss_mib
from tui_terminal import Pane

TICK = os.sysconf("SC_CLK_TCK")
WINDOW = 5.0
"""Seconds of one window in the per-window figures."""


def cpu_times(pid: int | str) -> tuple[float, float]:
    """The CPU time ``pid`` itself used so far, (user, system) seconds (all threads; children not included)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": fields from the 3rd (state) on
    return int(fields[11]) / TICK, int(fields[12]) / TICK  # utime, stime: the 14th and 15th fields


def cpu_seconds(pid: int) -> float:
    return sum(cpu_times(pid))


def main_thread_seconds(pid: int) -> float:
    """The CPU time of ``pid``'s main thread (the event loop), user + system."""
    return sum(cpu_times(f"{pid}/task/{pid}"))


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, theirs, ...), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def printers(pid: int, folder: Path) -> list[int]:
    """The workers (the bench's printer) below ``pid``."""
    found = []
    for child in descendants(pid):
        with contextlib.suppress(OSError):
            if str(folder / "printer.py") in Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace"):
                found.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


def wait_workers(pid: int, folder: Path, workers: int, timeout: float = 90) -> list[int]:
    deadline = time.monotonic() + timeout
    while len(found := printers(pid, folder)) < workers:
        if not alive(pid):
            raise SystemExit("foreman ended before its workers were running")
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(found)} of {workers} workers running after {timeout}s")
        time.sleep(0.1)
    return found


def measure(pid: int, workers: list[int], seconds: float) -> dict[str, object]:
    """foreman's CPU over ``seconds``, as % of one core: overall and per window; the workers' beside it."""

    def workers_cpu() -> float:
        total = 0.0
        for worker in workers:
            with contextlib.suppress(OSError, ValueError):
                total += cpu_seconds(worker)
        return total

    load_before = os.getloadavg()[0]
    start, (user0, system0), others0 = time.monotonic(), cpu_times(pid), workers_cpu()
    used0, loop0 = user0 + system0, main_thread_seconds(pid)
    windows: list[float] = []
    rss: list[float] = []
    mark, used_mark = start, used0
    while (now := time.monotonic()) - start < seconds:
        time.sleep(min(WINDOW, seconds - (now - start)))
        now, used = time.monotonic(), cpu_seconds(pid)
        windows.append(round(100 * (used - used_mark) / (now - mark), 2))
        rss.append(round(rss_mib(pid), 1))
        mark, used_mark = now, used
    wall = time.monotonic() - start
    user, system = cpu_times(pid)
    used = user + system - used0
    loop = main_thread_seconds(pid) - loop0
    return {
        "cpu_percent_of_one_core": round(100 * used / wall, 2),
        "main_thread_percent": round(100 * loop / wall, 2),
        "user_system_percent": [round(100 * (user - user0) / wall, 2), round(100 * (system - system0) / wall, 2)],
        "cpu_seconds": round(used, 2),
        "wall_seconds": round(wall, 1),
        "cpu_percent_per_window": windows,
        "window_seconds": WINDOW,
        "workers_cpu_percent_of_one_core": round(100 * (workers_cpu() - others0) / wall, 2),
        "rss_mib": rss[-1] if rss else round(rss_mib(pid), 1),
        "rss_mib_max": max(rss) if rss else None,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def finish(pid: int, workers: list[int], timeout: float = 60) -> dict[str, bool]:
    """Wait for foreman to end, then make sure no worker outlives the bench (killed if one does)."""
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    exited = not alive(pid)
    leftover = [w for w in workers if alive(w)]
    for worker in leftover:
        with contextlib.suppress(OSError):
            os.kill(worker, signal.SIGKILL)
    return {"foreman_exited_after_quit": exited, "workers_all_stopped": not leftover}


def foreman_argv(map_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "foreman_tui", "run", str(map_path), *extra]


def tui(map_path: Path, workers: int, seconds: float, settle: float) -> dict[str, object]:
    folder = map_path.parent.parent
    pane = Pane("exec " + shlex.join(foreman_argv(map_path)), map_path.parent)
    found: list[int] = []
    pid = 0
    try:
        pid = int(pane.tmux("display-message", "-p", "-t", "b", "#{pane_pid}").strip())
        pane.wait_for(f"{workers} running", timeout=90)
        found = wait_workers(pid, folder, workers)
        time.sleep(settle)
        result = measure(pid, found, seconds)
        pane.tmux("send-keys", "-t", "b", "q")
        pane.wait_for("leave")
        pane.tmux("send-keys", "-t", "b", "s")
        result |= finish(pid, found)
    finally:
        pane.close()
        with contextlib.suppress(OSError):  # kill-server leaves the server's socket behind
            (Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}" / pane.server).unlink()
        if pid and alive(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for worker in found:
            with contextlib.suppress(OSError):
                os.kill(worker, signal.SIGKILL)
    return result


def headless(map_path: Path, workers: int, seconds: float, settle: float) -> dict[str, object]:
    folder = map_path.parent.parent
    out = folder / "headless.out"
    found: list[int] = []
    with out.open("w") as sink:
        process = subprocess.Popen(
            foreman_argv(map_path, "--headless"),
            cwd=map_path.parent,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the bench can end all of it
        )
    try:
        found = wait_workers(process.pid, folder, workers)
        time.sleep(settle)
        result = measure(process.pid, found, seconds)
        process.send_signal(signal.SIGTERM)  # as `kill` would: the workers stop, resumable
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(60)
        result |= finish(process.pid, found)
        result["exit_code"] = process.returncode
    finally:
        if process.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for worker in found:
            with contextlib.suppress(OSError):
                os.kill(worker, signal.SIGKILL)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30, help="seconds measured")
    parser.add_argument("--mode", choices=("tui", "headless", "both"), default="both")
    parser.add_argument("--settle", type=float, default=3, help="seconds after all workers run before measuring")
    args = parser.parse_args()
    if args.mode != "headless" and shutil.which("tmux") is None:
        raise SystemExit("needs tmux")
    results: dict[str, object] = {"workers": args.workers, "lines_per_second_per_worker": 1}
    for mode in ("tui", "headless") if args.mode == "both" else (args.mode,):
        with tempfile.TemporaryDirectory(prefix="foreman-idle-") as folder:
            # the workers print for longer than the bench lasts, then sleep: they never commit
            map_path = make_project(Path(folder), args.workers, 1, args.settle + args.seconds + 600)
            run = tui if mode == "tui" else headless
            results[mode] = run(map_path, args.workers, args.seconds, args.settle)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
