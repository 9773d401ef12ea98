"""The App: owns the engine's lifetime (one run, as a worker), the keymap, the palette and quitting.
The screens show what the engine service gathers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import shutil
import signal
import subprocess
import threading
from types import FrameType
from typing import ClassVar

from textual import on, work
from textual.app import App
from textual.binding import Binding
from textual.command import Provider
from textual.worker import Worker, WorkerState

from ..config import Settings
from ..engine.events import NodePaused
from ..engine.project import Project
from ..map.errors import ConfigError, Problem
from .commands import ForemanCommands
from .main_screen import MainScreen
from .messages import RunEnded
from .service import EngineService
from .text import printable
from .views import PlanScreen, QuitScreen, ReportScreen, ShellHintScreen

WHO = "tui"
_heap_frozen = False


def binding_ids() -> set[str]:
    """Every binding id a ``[keys]`` table in foreman.toml may name."""
    from .detail import DetailScreen

    screens = (ForemanApp, MainScreen, DetailScreen, PlanScreen, ReportScreen, QuitScreen, ShellHintScreen)
    return {b.id for screen in screens for b in screen.BINDINGS if isinstance(b, Binding) and b.id}


def freeze_startup_heap() -> None:
    """Once per process, when the first screen is up: move everything alive (Textual, the modules, the map,
    the widgets) out of the garbage collector's reach. Those objects live as long as the app, yet every full
    collection walked all ~100k of them, a pause of up to ~160 ms that a keypress had to wait behind under a
    flood of output. Objects made later are collected as usual."""
    global _heap_frozen
    if _heap_frozen:
        return
    _heap_frozen = True
    gc.collect()
    gc.freeze()


def check_keymap(settings: Settings, source: str) -> None:
    """Unknown binding ids in ``[keys]`` are bad input, named with the ones that exist."""
    known = binding_ids()
    unknown = sorted(set(settings.keys) - known)
    if unknown:
        problems = [
            Problem(f"keys.{name}", "unknown binding id", f"use one of: {', '.join(sorted(known))}") for name in unknown
        ]
        raise ConfigError(source, problems)


SIGNALS = (signal.SIGTERM, signal.SIGINT)
"""Signals from outside that stop the run the way quitting with "stop them" does (SIGHUP too: see
``ForemanApp._hung_up``)."""


class ForemanApp(App[int]):
    CSS_PATH = "foreman.tcss"
    TITLE = "foreman"
    COMMANDS: ClassVar[set[type[Provider]]] = {ForemanCommands}  # type: ignore[assignment]
    BINDINGS = [
        Binding("q", "quit", "quit", id="quit", tooltip="Quit (asks about running workers)"),
        Binding("ctrl+c", "quit", "quit", show=False, id="quit_ctrl_c", priority=True),
    ]

    def __init__(self, project: Project, settings: Settings, *, use_fs_events: bool = True) -> None:
        super().__init__()
        self.settings = settings
        self.service = EngineService(project, settings, use_fs_events=use_fs_events)
        self.left_running: list[str] = []
        self._quitting = False
        self.terminal_gone = False

    def get_default_screen(self) -> MainScreen:
        return MainScreen(self.service)

    def on_mount(self) -> None:
        if self.settings.keys:
            self.set_keymap(self.settings.keys)
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:  # from outside: stop as `q` → stop would
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._signalled)
        if threading.current_thread() is threading.main_thread():  # not under a test's pilot in another thread
            self._guard_terminal(loop)

    def on_unmount(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)

    def _guard_terminal(self, loop: asyncio.AbstractEventLoop) -> None:
        """The terminal may go away under foreman (a dropped SSH connection, a closed window): the kernel then
        sends SIGHUP and SIGCONT. Textual takes any SIGCONT for a return from Ctrl+Z and starts writing to the
        terminal again from a new thread, which dies on the first write; the app then blocks for ever on that
        thread's full queue, with its workers still running. So SIGCONT reaches Textual only after a Ctrl+Z, and
        SIGHUP first points foreman's terminal at /dev/null (nothing to draw on any more), then stops the run."""
        on_stop, on_continue = signal.getsignal(signal.SIGTSTP), signal.getsignal(signal.SIGCONT)
        suspended = False

        def stopped(signum: int, frame: FrameType | None) -> None:
            nonlocal suspended
            suspended = True
            if callable(on_stop):
                on_stop(signum, frame)

        def continued(signum: int, frame: FrameType | None) -> None:
            nonlocal suspended
            if suspended and not self.terminal_gone and callable(on_continue):
                suspended = False
                on_continue(signum, frame)

        def hung_up(signum: int, frame: FrameType | None) -> None:
            self.terminal_gone = True
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.close(null)
            loop.call_soon_threadsafe(self._signalled)

        if callable(on_stop) and callable(on_continue):
            signal.signal(signal.SIGTSTP, stopped)
            signal.signal(signal.SIGCONT, continued)
        signal.signal(signal.SIGHUP, hung_up)

    def _signalled(self) -> None:
        """A signal from outside (kill, the terminal closing): stop the workers (resumable) and leave, giving the
        terminal back in order."""
        self._quitting = True
        if self.service.finished:
            self.exit(self.service.outcome.exit_code if self.service.outcome else 1)
        else:
            self.service.supervisor.request_stop()

    def on_ready(self) -> None:
        """The first screen is up: set the startup heap aside, then start the run."""
        freeze_startup_heap()
        self.run_worker(self._run_engine(), name="engine", group="engine", exit_on_error=False)

    async def _run_engine(self) -> None:
        outcome = await self.service.run()
        self.screen.post_message(RunEnded(outcome))
        if self._quitting:
            self.exit(outcome.exit_code)

    @on(Worker.StateChanged)
    def _worker_state(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            message = printable(f"{event.worker.name}: {type(error).__name__}: {error}"[:2000])
            self.notify(message, severity="error", timeout=30, markup=False)
            if event.worker.name == "engine":
                self.screen.post_message(RunEnded(None, str(error)))
                if self._quitting:
                    self.exit(1)

    # ---------------------------------------------------------------------------------- the nodes

    def selected_node(self) -> str | None:
        screen = self.main_screen()
        return screen.node if screen is not None else None

    def main_screen(self) -> MainScreen | None:
        return next((s for s in self.screen_stack if isinstance(s, MainScreen)), None)

    def announce_pause(self, event: NodePaused) -> None:
        """Bell (and a desktop notification when there is one) when a pause opens. No toast: the pause panel
        and the header already say it on this screen, and a toast would cover the feed or the log."""
        if self.settings.notify:
            self.bell()
        sender = shutil.which("notify-send") if self.settings.notify_desktop else None
        if sender:
            argv = [sender, f"foreman: {event.node} paused", printable(f"[{event.trigger}] {event.problem}"[:300])]
            threading.Thread(target=_notify_quietly, args=(argv,), daemon=True).start()

    def _command_done(self, reason: str | None, success: str) -> None:
        if reason:
            self.notify(printable(reason), severity="warning", markup=False)
        else:
            self.notify(printable(success), markup=False)

    def action_toggle_scheduling(self) -> None:
        supervisor = self.service.supervisor
        supervisor.hold_scheduling(not supervisor.held, WHO)
        self.notify("scheduling paused: running nodes go on" if supervisor.held else "scheduling resumed")

    def action_stop_node(self) -> None:
        node = self.selected_node()
        if node is not None:
            self._command_done(self.service.supervisor.stop_node(node, WHO), f"{node}: stopping; it waits for you")

    @work(group="commands", exit_on_error=False, description="retrying a node")
    async def action_retry_node(self) -> None:
        node = self.selected_node()
        if node is not None:
            self._command_done(await self.service.supervisor.retry_node(node, WHO), f"{node}: will run again")

    @work(group="commands", exit_on_error=False, description="resetting a node")
    async def action_reset_node(self) -> None:
        node = self.selected_node()
        if node is not None:
            self._command_done(await self.service.supervisor.reset_node(node, WHO), f"{node}: reset")

    def action_shell_hint(self) -> None:
        node = self.selected_node()
        if node is not None:
            self.push_screen(ShellHintScreen(node, str(self.service.worker_tree(node))))

    def action_show_report(self) -> None:
        self.push_screen(ReportScreen(self.service))

    def action_show_plan(self) -> None:
        self.push_screen(PlanScreen(self.service))

    def action_toggle_raw(self) -> None:
        screen = self.main_screen()
        if screen is not None:
            screen.action_raw()

    # ------------------------------------------------------------------------------------ quitting

    async def action_quit(self) -> None:
        """Quit; with workers still at work, ask first: stop them, or leave them running."""
        if self._quitting:
            return
        running = self.service.running()
        if self.service.finished or not running:
            self._quit("stop")
            return
        self.push_screen(QuitScreen(running), self._quit)

    def _quit(self, choice: str | None) -> None:
        if not choice:
            return
        self._quitting = True
        if self.service.finished:
            self.exit(self.service.outcome.exit_code if self.service.outcome else 1)
            return
        if choice == "leave":
            self.left_running = self.service.leave_running()
            self.notify(f"leaving {', '.join(self.left_running) or 'no worker'} running; quitting")
        else:
            self.service.stop()
            self.notify("stopping the workers; quitting when they have stopped")


def _notify_quietly(argv: list[str]) -> None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10, check=False)
