"""The headless face of the engine: one readable line per event (or JSON lines), for CI and scripts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from typing import TextIO

from .config import Settings
from .engine.event_text import duration
from .engine.events import Event, NodePaused
from .engine.pauses import Decision, Pause
from .engine.project import Project
from .engine.supervisor import Outcome, Supervisor

_TERMINAL_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_JSON_UNSAFE = re.compile("[\x7f-\x9f\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return "\\r" if char == "\r" else f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def visible(text: str) -> str:
    """``text`` with every control character a terminal acts on (all C0 and C1 controls but newline and tab)
    written out as an escape, ``\\x1b``: what a worker wrote (a commit subject, a step, a pause's problem)
    can then neither move the cursor, set the title or the clipboard (OSC 52), nor be a lone surrogate that
    the terminal's encoding cannot take."""
    return _TERMINAL_CONTROLS.sub(_escape, text)


def _json_line(event: Event) -> str:
    """The event as one line of JSON, the same value as in events.jsonl; C1 controls, DEL and lone
    surrogates written as ``\\u`` escapes (JSON's own escaping leaves them raw)."""
    text = json.dumps(event.to_json(), ensure_ascii=False, default=str)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _line(event: Event, map_path: str) -> str:
    stamp = datetime.fromtimestamp(event.time).strftime("%H:%M:%S")
    who = event.node or "run"
    text = event.describe()
    if isinstance(event, NodePaused):  # the whole block, so a person reading the log can decide
        text += "".join(f"\n    {line}" for line in event.block.splitlines())
        if event.evidence:
            text += "\n    Evidence (tail):" + "".join(f"\n      {line}" for line in event.evidence.splitlines()[-12:])
        text += f'\n    Answer: foreman decide {map_path} {event.node} <OPTION> [--text "your instruction"]'
    return visible(f"{stamp} {who:<20} {text}")  # foreman adds no control codes of its own here


def _notify(event: Event, settings: Settings) -> None:
    if not isinstance(event, NodePaused):
        return
    if settings.notify:
        sys.stderr.write("\a")
        sys.stderr.flush()
    sender = shutil.which("notify-send") if settings.notify_desktop else None
    if sender:  # in a thread, so the child is waited for (no zombies) without blocking the printer
        argv = [sender, visible(f"foreman: {event.node} paused"), visible(f"[{event.trigger}] {event.problem}"[:300])]
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
    sys.stderr.write("\n" + visible(pause.block()) + "\n")
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
        text = _json_line(event) if as_json else _line(event, map_path)
        try:
            _write(out, text + "\n")
        except BrokenPipeError:
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
            return


def _write(out: TextIO, text: str) -> None:
    """Write and flush; a character the output's encoding cannot take is written as an escape instead
    of ending the printing."""
    try:
        out.write(text)
    except UnicodeEncodeError:
        encoding = getattr(out, "encoding", None) or "utf-8"
        out.write(text.encode(encoding, "backslashreplace").decode(encoding))
    out.flush()


def closing_summary(supervisor: Supervisor, outcome: Outcome, seconds: float) -> str:
    """What a person reading the log last wants: how the run ended, what is verified, each open pause with the
    command that answers it, the spend, the wall time, and how to go on."""
    map_path = str(supervisor.map_path)
    lines = [f"── run {outcome.status}: {outcome.verified}/{outcome.total} verified in {duration(seconds)}"]
    spent, budget = supervisor.state.spent(), supervisor.settings.budget_usd
    if spent or budget is not None:
        raised = supervisor.state.budget_raised
        lines.append(f"   spend ${spent:.2f}" + (f" of a ${budget + raised:.2f} budget" if budget is not None else ""))
    pauses = supervisor.open_pauses()
    if pauses:
        lines.append(f"   {len(pauses)} pause{'s' if len(pauses) > 1 else ''} waiting for you:")
    for pause in pauses:
        options = " / ".join(f"{o.key}) {o.label}" for o in pause.options)
        lines.append(f"   - {pause.node} [{pause.trigger}] {pause.problem[:200]}")
        if options:
            lines.append(f"     options: {options}")
        lines.append(f'     foreman decide {map_path} {pause.node} <OPTION> [--text "your instruction"]')
    if outcome.status != "complete":
        why = "after deciding, rerun" if pauses else "rerun"
        lines.append(f"   {why} `foreman run {map_path} --headless` to resume where it stopped")
    return visible("\n".join(lines))


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
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in before:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, supervisor.request_stop)
    started = time.monotonic()
    outcome: Outcome | None = None
    try:
        outcome = await supervisor.run()
        return outcome
    finally:
        for sig, handler in before.items():  # asyncio would leave the default (an outright kill) behind
            with contextlib.suppress(NotImplementedError, RuntimeError, TypeError):
                loop.remove_signal_handler(sig)
                signal.signal(sig, handler)
        queue.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(printer, 10)
        if outcome is not None and not as_json:  # --json stays one event per line, nothing else
            with contextlib.suppress(OSError):
                _write(out, closing_summary(supervisor, outcome, time.monotonic() - started) + "\n")
