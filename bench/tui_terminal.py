"""The same flood as tui_flood.py, but `foreman run` in a real terminal (tmux) and timed from outside.

    python bench/tui_terminal.py [--workers 8] [--rate 20000] [--seconds 20]

foreman runs as its own process in a 150×44 tmux pane, with Textual's real driver writing to the
terminal. Every 0.25 s the bench types `f` with `tmux send-keys` and polls `capture-pane` until the log
title has turned ("following" ↔ "not following"): the time from key to changed screen, end to end, with
tmux's own delivery and capture inside it (the time one capture takes is reported too: it is the
resolution of the figure). RSS of the foreman process is read from /proc every second.
At the end it quits through the quit dialog ("stop them") and checks that foreman exited.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tui_flood import arguments, key_figures, make_project, rss_mib, spread

FOLLOWING, NOT_FOLLOWING = " · following", " · not following (f)"


class Pane:
    def __init__(self, command: str, cwd: Path) -> None:
        self.server = f"foreman-bench-{uuid.uuid4().hex[:8]}"
        self.captures: list[float] = []  # how long one look at the screen takes: the resolution of the timing
        # Sized first, then the command started in it without the COLUMNS/LINES (80×24) the pane's shell may
        # pass on, which Textual would believe over the terminal.
        self.tmux("new-session", "-d", "-s", "b", "-x", "150", "-y", "44", "-c", str(cwd), "sleep 600")
        self.tmux("respawn-pane", "-k", "-t", "b", "-c", str(cwd), f"unset COLUMNS LINES; {command}")

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.server, *args], capture_output=True, text=True, check=True).stdout

    def screen(self) -> str:
        started = time.monotonic()
        text = self.tmux("capture-pane", "-p", "-t", "b")
        self.captures.append(time.monotonic() - started)
        return text

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while text not in (screen := self.screen()):
            if time.monotonic() > deadline:
                raise SystemExit(f"'{text}' did not appear within {timeout}s:\n{screen}")
            time.sleep(0.05)
        return screen

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.server, "kill-server"], capture_output=True, check=False)


def flood(map_path: Path, workers: int, seconds: float) -> dict[str, object]:
    command = f"exec {shlex.quote(sys.executable)} -m foreman_tui run {shlex.quote(str(map_path))}"
    pane = Pane(command, map_path.parent)
    try:
        pid = int(pane.tmux("display-message", "-p", "-t", "b", "#{pane_pid}").strip())
        pane.wait_for(f"{workers} running")
        pane.captures.clear()
        presses: list[tuple[float, float]] = []
        memory: list[tuple[float, float]] = []
        start = next_mem = time.monotonic()
        while (now := time.monotonic()) - start < seconds:
            if now >= next_mem:
                memory.append((round(now - start, 1), round(rss_mib(pid), 1)))
                next_mem = now + 1.0
            before = pane.screen()
            want = NOT_FOLLOWING if FOLLOWING in before else FOLLOWING
            pressed = time.monotonic()
            pane.tmux("send-keys", "-t", "b", "f")
            while want not in pane.screen():
                if time.monotonic() - pressed > 10:
                    raise SystemExit("the key did not take effect within 10 s")
                time.sleep(0.002)  # the polling must not take the CPU foreman needs
            presses.append((pressed - start, time.monotonic() - pressed))
            time.sleep(0.25)
        pane.tmux("send-keys", "-t", "b", "q")
        pane.wait_for("leave")
        pane.tmux("send-keys", "-t", "b", "s")
        deadline = time.monotonic() + 60
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        exited = not Path(f"/proc/{pid}").exists()
    finally:
        pane.close()
    return {
        "workers": workers,
        "seconds": seconds,
        "key_to_screen_ms": key_figures(presses),
        "one_capture_pane_ms": spread(pane.captures),
        "foreman_rss_mib_over_time": memory,
        "foreman_exited_after_quit": exited,
    }


def main() -> None:
    args = arguments(__doc__)
    if shutil.which("tmux") is None:
        raise SystemExit("needs tmux")
    with tempfile.TemporaryDirectory(prefix="foreman-flood-") as folder:
        map_path = make_project(Path(folder), args.workers, args.rate, args.seconds + 60)
        result = flood(map_path, args.workers, args.seconds)
    result["rate_asked_per_worker"] = args.rate
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
