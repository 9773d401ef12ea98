"""The ``foreman`` command's first moments. Signals are taken care of before anything slow is imported: until a
run installs its own handlers (a stop that leaves everything resumable) or the TUI takes the terminal, SIGINT and
SIGTERM end foreman at once and quietly — one line, exit status 130 or 143 — instead of killing it outright or
printing a traceback from the middle of an import. Nothing is half-written at that point: commands that only
read write nothing, a run has not begun writing, and files foreman writes are renamed into place whole.
(A signal in the interpreter's own start-up, the ~20 ms before this module runs, gets the default action.)

At the other end, once the command has returned and its threads are joined, the interpreter gives every Python
signal handler back to the default action before it tears its modules down; a Ctrl+C in those last milliseconds
would kill foreman by the signal after its work was done and printed. The last exit hook ignores SIGINT and
SIGTERM for that window, so the command's own exit status stands.
"""

from __future__ import annotations

import atexit
import os
import signal
from types import FrameType

EARLY = (signal.SIGINT, signal.SIGTERM)


def _stop_now(signum: int, frame: FrameType | None) -> None:
    os.write(2, f"foreman: stopped by {signal.Signals(signum).name}\n".encode())
    os._exit(128 + signum)


def _ignore_late_signals() -> None:
    for sig in EARLY:
        signal.signal(sig, signal.SIG_IGN)


def main() -> int:
    for sig in EARLY:
        signal.signal(sig, _stop_now)
    atexit.register(_ignore_late_signals)  # registered first, so it runs last: after every thread and exit hook
    from .cli import main as cli_main

    return cli_main()
