"""The headless face of the engine: one readable line per event (or JSON lines), for CI and scripts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from datetime import datetime
from typing import TextIO

from .config import Settings
from .engine.events import Event
from .engine.project import Project
from .engine.supervisor import Outcome, Supervisor


def _line(event: Event) -> str:
    stamp = datetime.fromtimestamp(event.time).strftime("%H:%M:%S")
    who = event.node or "run"
    text = event.describe()
    return f"{stamp} {who:<20} {text}"


async def _print_events(queue: asyncio.Queue[Event | None], out: TextIO, as_json: bool) -> None:
    """Print until the end-of-run sentinel; a reader that went away (`| head`) stops the printing only."""
    while (event := await queue.get()) is not None:
        text = json.dumps(event.to_json(), ensure_ascii=False, default=str) if as_json else _line(event)
        try:
            out.write(text + "\n")
            out.flush()
        except BrokenPipeError:
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
            return


async def run_headless(
    project: Project, settings: Settings, *, as_json: bool = False, use_fs_events: bool = True, out: TextIO = sys.stdout
) -> Outcome:
    supervisor = Supervisor(project, settings, use_fs_events=use_fs_events)
    queue = supervisor.events.subscribe()
    printer = asyncio.create_task(_print_events(queue, out, as_json))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, supervisor.request_stop)
    try:
        return await supervisor.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        queue.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(printer, 10)
