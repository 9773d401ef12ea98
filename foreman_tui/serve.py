"""``foreman serve``: the TUI in a web browser (docs/serve.md). Everything a run would refuse is refused here first, in
the terminal: a bad map or foreman.toml (exit 2 with the problems), commands not approved (asked here, as
``foreman trust`` asks; exit 2 without a terminal to ask on). Then the server listens, on a loopback address
unless told otherwise, and each browser session runs ``python -m foreman_tui run MAP …`` with Textual's web
driver (``tui/serve_web.py``); a token guards any other address (``tui/serve_access.py``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .cli import EXIT_BAD_INPUT, EXIT_OK, render
from .config import Settings
from .engine.project import Project
from .engine.runstate import run_is_live
from .engine.trust import TrustStore, Untrusted, pending, project_items
from .map.errors import BadInput, UsageError

if TYPE_CHECKING:
    from .tui.serve_access import Access
    from .tui.serve_web import WebServer

WILDCARDS = frozenset({"0.0.0.0", "::", ""})

FORWARDED = {
    # run option: flag of `foreman run`
    "max_parallel": "--max-parallel",
    "isolation": "--isolation",
    "worker": "--worker",
    "reviewer": "--reviewer",
    "poll": "--poll",
    "timeout": "--timeout",
}


def served_argv(map_path: Path, args: argparse.Namespace) -> list[str]:
    """The command a browser session runs: ``foreman run`` on the map, with the run options given to serve."""
    argv = [sys.executable, "-m", "foreman_tui"]
    if getattr(args, "debug", False):
        argv.append("--debug")
    argv += ["run", str(map_path)]
    for name, flag in FORWARDED.items():
        value = getattr(args, name, None)
        if value is not None:
            argv += [flag, str(value)]
    if getattr(args, "no_watch", False):
        argv.append("--no-watch")
    return argv


def shell_command(argv: list[str]) -> str:
    """textual-serve starts its command with a shell (``create_subprocess_shell``): every word quoted, and ``exec``
    so that the process it holds (and signals) is foreman itself."""
    return "exec " + shlex.join(argv)


def approved_up_front(project: Project, settings: Settings) -> bool:
    """Approvals are asked for here, in the terminal, so that a served session never needs the TUI's question.
    Without a terminal: refused (exit 2) with the list and `foreman trust`."""
    waiting = pending(project, settings)
    if not waiting:
        return True
    if not sys.stdin.isatty():
        raise Untrusted(project.doc.path or project.doc.project_dir, waiting)
    store = TrustStore(project.doc.project_dir)
    render.trust(project.doc.source, store.review(project_items(project, settings)))
    where = project.doc.project_dir
    answer = input(f"\nApprove these {len(waiting)} new or changed command(s) for {where}? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        return False
    store.approve(item for item, _ in waiting)
    print(f"Approved {len(waiting)}; kept in {store.path}")
    return True


def preflight(map_path: Path, settings_for: Callable[[Project], Settings]) -> Callable[[], str | None]:
    """Before each new session: what `foreman run` would refuse, said in the browser instead (the map may have
    changed since the server started)."""

    def check() -> str | None:
        try:
            project = Project.load(map_path)
            waiting = pending(project, settings_for(project))
        except BadInput as exc:
            return f"the {exc.what} has problems now; see `foreman validate {map_path}`, then reload this page."
        except UsageError as exc:
            return f"{exc}\nThen reload this page."
        if waiting:
            return (
                f"the map or foreman.toml changed: {len(waiting)} command(s) are not approved. Approve them in a "
                f"terminal with `foreman trust {map_path}`, then reload this page."
            )
        if run_is_live(project.doc.project_dir):
            return (
                "another foreman is running on this repository (a terminal's `foreman run`, or a `foreman serve`).\n"
                "Stop it, or wait for it to end, then reload this page."
            )
        return None

    return check


def url(host: str, port: int, token: str | None) -> str:
    shown = socket.gethostname() if host in WILDCARDS else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def serve(args: argparse.Namespace, settings_for: Callable[[Project], Settings]) -> int:
    from .tui.app import check_keymap
    from .tui.serve_access import Access, is_loopback, new_token
    from .tui.serve_web import WebServer

    project = Project.load(args.map)  # a bad map: exit 2 with the problems, before anything listens
    settings = settings_for(project)
    check_keymap(settings, str(project.doc.project_dir / "foreman.toml"))
    if not approved_up_front(project, settings):
        print(
            f"foreman: nothing approved, nothing served; `foreman trust {args.map}` lists them again", file=sys.stderr
        )
        return EXIT_BAD_INPUT
    map_path = (project.doc.path or Path(args.map)).resolve()
    token = new_token() if args.token or not is_loopback(args.host) else None
    access = Access(token)
    command = shell_command(served_argv(map_path, args))
    title = f"foreman: {map_path.name} in {map_path.parent}"
    check = preflight(map_path, settings_for)
    grace = settings.stop_grace + 30  # foreman's own grace for its workers, and some
    return asyncio.run(_serve(args.host, args.port, access, WebServer(command, title, check), grace))


async def _serve(host: str, port: int, access: Access, server: WebServer, grace: float) -> int:
    from aiohttp import web

    app = await server._make_app()  # textual-serve's routes: the page, /ws, /static, /download
    app.middlewares.append(access.middleware())
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            print(f"foreman: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        bound = runner.addresses[0][1] if runner.addresses else port
        _say_where(host, bound, access.token)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        print("foreman serve: stopping (the run's workers are stopped; `foreman run` resumes)", flush=True)
        await server.end(grace)
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()
    return EXIT_OK


def _say_where(host: str, port: int, token: str | None) -> None:
    lines = [f"foreman serve: open {url(host, port, token)}"]
    if token is not None:
        lines.append(
            "  The token in that URL is the key: anyone who has it and reaches this port controls foreman. It travels "
            "over plain HTTP: prefer `ssh -L` or a TLS proxy (docs/serve.md)."
        )
    lines.append("  One browser at a time; closing the tab leaves the run going. Ctrl+C stops.")
    print("\n".join(lines), flush=True)
