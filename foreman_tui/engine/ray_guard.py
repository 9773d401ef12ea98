"""The guard of one attempt on a Ray node (``ray_attempt.py`` starts it; docs/design/ray-executor.md §3.2).

Run as ``python -I -c <this file's text> foreman-ray-guard <folder>`` with its settings as JSON on stdin. It
forks and the launcher exits at once, so the guard is nobody's child of the Ray worker (Ray kills a worker's
direct children with it, not their children). The guard starts the agent in a process group of its own, reports
the pids on stdout, and waits for either the agent's exit or EOF on the lifeline (the read end of a pipe whose
write end only the actor holds: EOF means the actor is gone, however it died). Either way it clears the agent's
group and the processes carrying the attempt's mark (SIGTERM, a grace, SIGKILL), writes the agent's status to
``exit``, and once the lifeline breaks removes the attempt folder. Standard library only: nothing of foreman or
Ray is installed where it runs.
"""

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
import traceback
from typing import Any


def survivors(agent: subprocess.Popen[bytes], cfg: dict[str, Any]) -> list[int]:
    """Live processes (not zombies, not this one) in the agent's group or started with mark_var=mark."""
    agent.poll()  # reap the agent
    needle = b"\0" + f"{cfg['mark_var']}={cfg['mark']}".encode() + b"\0"
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            if fields[0] == b"Z":  # dead; pid 1 may take a second to reap an orphan
                continue
            if int(fields[2]) != agent.pid:
                if not cfg["mark"]:
                    continue
                with open(f"/proc/{name}/environ", "rb") as f:
                    if needle not in b"\0" + f.read():
                        continue
        except (OSError, IndexError, ValueError):
            continue
        found.append(int(name))
    return found


def signal_all(agent: subprocess.Popen[bytes], cfg: dict[str, Any], sig: int) -> None:
    for pid in [-agent.pid, *survivors(agent, cfg)]:  # the group, and the marked outside it
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


def vanish(agent: subprocess.Popen[bytes], cfg: dict[str, Any], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while survivors(agent, cfg):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def clear(agent: subprocess.Popen[bytes], cfg: dict[str, Any], wait: float, grace: float) -> None:
    """Let the group and the marked processes end within ``wait`` s; then SIGTERM, ``grace`` s, SIGKILL."""
    if vanish(agent, cfg, wait):
        return
    signal_all(agent, cfg, signal.SIGTERM)
    if not vanish(agent, cfg, grace):
        signal_all(agent, cfg, signal.SIGKILL)
        vanish(agent, cfg, 5.0)


def watch(agent: subprocess.Popen[bytes], lifeline: int) -> bool:
    """Until the agent exits (False) or the lifeline reaches EOF (True)."""
    try:
        pidfd = [os.pidfd_open(agent.pid)]  # readable when the agent exits
    except (AttributeError, OSError):
        pidfd = []
    while agent.poll() is None:
        ready = select.select([lifeline, *pidfd], [], [], None if pidfd else 0.05)[0]
        if lifeline in ready and not os.read(lifeline, 4096):
            return True
    return False


def write(folder: str, name: str, text: str) -> None:
    """``folder/name`` written whole (a reader sees the old file or the new one)."""
    with contextlib.suppress(OSError), open(os.path.join(folder, name + ".tmp"), "w") as f:
        f.write(text)
    with contextlib.suppress(OSError):
        os.replace(os.path.join(folder, name + ".tmp"), os.path.join(folder, name))


def main() -> None:
    cfg = json.loads(sys.stdin.buffer.read())
    if os.fork():
        os._exit(0)  # the launcher goes: the guard is nobody's child of the Ray worker
    os.setsid()
    signal.pthread_sigmask(signal.SIG_SETMASK, [])  # a Ray thread's blocked or ignored signals stop here
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    folder, lifeline = cfg["folder"], cfg["lifeline"]
    agent: subprocess.Popen[bytes] | None
    try:
        with (
            open(os.path.join(folder, "stdout.log"), "ab") as out,
            open(os.path.join(folder, "stderr.log"), "ab") as err,
            open(cfg["stdin"] or os.devnull, "rb") as inp,
        ):
            agent = subprocess.Popen(
                cfg["argv"], cwd=cfg["cwd"], env=cfg["env"], stdin=inp, stdout=out, stderr=err, start_new_session=True
            )
        write(folder, "pid", f"{agent.pid}\n")
        report: dict[str, Any] = {"guard": os.getpid(), "pid": agent.pid}
    except Exception as exc:
        agent, report = None, {"error": f"{type(exc).__name__}: {exc}"}
    os.write(1, json.dumps(report).encode() + b"\n")
    os.dup2(null, 1)  # EOF for the actor, which reads our report until then
    if agent is not None:
        try:
            broken = watch(agent, lifeline)
            grace = float(cfg["grace"])
            clear(agent, cfg, 0.0 if broken else 2.0, grace if broken else min(grace, 2.0))
        except BaseException:
            traceback.print_exc()
            signal_all(agent, cfg, signal.SIGKILL)
            agent.wait()
        if agent.returncode is not None:
            write(folder, "exit", f"{agent.returncode}\n")
    try:  # the folder stays while the actor does (it serves HEAD until cleanup)
        while os.read(lifeline, 4096):
            pass
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
