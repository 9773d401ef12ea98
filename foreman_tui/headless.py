"""The headless face of the engine: one readable line per event (or JSON lines), for CI and scripts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from datetime import datetime
from typing import TextIO

from .config import Settings
from .engine.events import Event, NodePaused
from .engine.pauses import Decision, Pause
from .engine.project import Project
from .engine.supervisor import Outcome, Supervisor


def _line(event: Event, map_path: str) -> str:
    stamp = datetime.fromtimestamp(event.time).strftime("%H:%M:%S")
    who = event.node or "run"
    text = event.describe()
    if isinstance(event, NodePaused):  # the whole block, so a person reading the log can decide
        text += "".join(f"\n    {line}" for line in event.block.splitlines())
        if event.evidence:
            text += "\n    Evidence (tail):" + "".join(f"\n      {line}" for line in event.evidence.splitlines()[-12:])
        text += f'\n    Answer: foreman decide {map_path} {event.node} <OPTION> [--text "your instruction"]'
    return f"{stamp} {who:<20} {text}"


def _notify(event: Event, settings: Settings) -> None:
    if not isinstance(event, NodePaused):
        return
    if settings.notify:
        sys.stderr.write("\a")
        sys.stderr.flush()
    sender = shutil.which("notify-send") if settings.notify_desktop else None
    if sender:  # in a thread, so the child is waited for (no zombies) without blocking the printer
        argv = [sender, f"foreman: {event.node} paused", f"[{event.trigger}] {event.problem}"[:300]]
        threading.Thread(target=_run_quietly, args=(argv,), daemon=True).start()


def _run_quietly(argv: list[str]) -> None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
            check=False,
        )


async def ask_on_terminal(pause: Pause) -> Decision | None:
    """Ask the person at the terminal (stdin is a TTY). Enter alone leaves the pause for later."""
    sys.stderr.write("\n" + pause.block() + "\n")
    prompt = "Choose an option letter (optionally 'B: your words'), or type an instruction; Enter leaves it: "
    try:
        answer = (await asyncio.to_thread(input, prompt)).strip()
    except EOFError:
        return None
    return parse_answer(pause, answer)


def parse_answer(pause: Pause, answer: str) -> Decision | None:
    """ "B" → option B; "B: use a dict" → option B with an instruction; anything else → an instruction."""
    if not answer:
        return None
    head, _, rest = answer.partition(":")
    if pause.option(head.strip()) is not None and (len(head.strip()) == 1):
        return Decision(node=pause.node, option=head.strip().upper(), text=rest.strip())
    return Decision(node=pause.node, text=answer)


async def _print_events(
    queue: asyncio.Queue[Event | None], out: TextIO, as_json: bool, settings: Settings, map_path: str
) -> None:
    """Print until the end-of-run sentinel; a reader that went away (`| head`) stops the printing only."""
    while (event := await queue.get()) is not None:
        _notify(event, settings)
        text = json.dumps(event.to_json(), ensure_ascii=False, default=str) if as_json else _line(event, map_path)
        try:
            out.write(text + "\n")
            out.flush()
        except BrokenPipeError:
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
            return


async def run_headless(
    project: Project,
    settings: Settings,
    *,
    as_json: bool = False,
    use_fs_events: bool = True,
    out: TextIO = sys.stdout,
    interactive: bool | None = None,
) -> Outcome:
    supervisor = Supervisor(project, settings, use_fs_events=use_fs_events)
    queue = supervisor.events.subscribe()
    printer = asyncio.create_task(_print_events(queue, out, as_json, settings, str(supervisor.map_path)))
    if interactive if interactive is not None else sys.stdin.isatty():
        supervisor.ask = ask_on_terminal
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
