"""The ``foreman`` command line. Exit status: 0 ok, 1 internal error, 2 bad input, 3 paused."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import MIN_POLL, Settings, with_preset
from ..engine.project import Project
from ..engine.reports import plan_report, status_report, validate_report
from ..map._gc import gc_paused
from ..map.errors import BadInput, UsageError
from ..map.load import DEFAULT_MAP_NAME
from ..map.store import FOREMAN_DIR
from . import render

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_PAUSED = 0, 1, 2, 3


WEB_DRIVER = "textual.drivers.web_driver:WebDriver"
"""Textual's driver for a browser, which textual-serve names in ``TEXTUAL_DRIVER`` for the processes it starts."""

PRESETS = ["claude", "codex", "aider", "gemini", "command", "scripted"]


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got '{text}'") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds more than 0, got {text}")
    return value


def _poll(text: str) -> float:
    value = _seconds(text)
    if value < MIN_POLL:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_POLL} seconds, got {text}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got '{text}'") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0 to 65535, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="foreman",
        description="Turn an algorithm map into verified code with parallel coding agents.",
        epilog="Exit status: 0 ok, 1 internal error, 2 bad input (map, foreman.toml or flags), 3 paused.",
    )
    parser.add_argument("--version", action="version", version=f"foreman {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "map",
            nargs="?",
            default=DEFAULT_MAP_NAME,
            metavar="MAP",
            help=f"the map file (default: ./{DEFAULT_MAP_NAME})",
        )
        sub.add_argument("--json", action="store_true", help="print JSON (see docs/json-output.md)")
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        return sub

    command("validate", "Check a map and summarise it: nodes, regions, checks, owned files, warnings.")
    plan = command("plan", "Dry run: the batches foreman would run, back edges, file overlaps, per-node detail.")
    plan.add_argument(
        "--max-parallel", type=_positive, metavar="N", help="workers at once (default: foreman.toml or 3)"
    )
    command("status", "Each node's status, region progress and totals, from the map's state.")
    trust = command(
        "trust",
        "List every command the map and foreman.toml make foreman run, and approve them (kept outside the project).",
    )
    trust.add_argument("--yes", action="store_true", help="approve without asking")

    def run_options(sub: argparse.ArgumentParser, headless: bool = True) -> None:
        if headless:
            sub.add_argument("--headless", action="store_true", help="no TUI: print one line per event")
        sub.add_argument("--max-parallel", type=_positive, metavar="N", help="workers at once")
        sub.add_argument("--isolation", choices=["worktree", "shared"], help="a git worktree per node, or one tree")
        sub.add_argument("--worker", choices=PRESETS, metavar="PRESET", help=f"worker agent: {', '.join(PRESETS)}")
        sub.add_argument("--reviewer", choices=PRESETS, metavar="PRESET", help="reviewer agent preset")
        sub.add_argument("--poll", type=_poll, metavar="SECONDS", help="how often to poll git for commits")
        sub.add_argument("--no-watch", action="store_true", help="poll only; no file-system events")
        sub.add_argument("--timeout", type=_seconds, metavar="SECONDS", help="limit per worker attempt")

    report = command("report", "The ledger: per node gates, hop log, decisions, cost; L2, L3, benchmark; summary.")
    report.add_argument("--format", choices=["md", "html"], default="md", help="Markdown (default) or HTML")
    report.add_argument("-o", "--output", type=Path, metavar="FILE", help="write to FILE instead of stdout")
    report.add_argument(
        "--change-log",
        action="store_true",
        help="append an entry per newly verified node to the project's docs/change_log.md",
    )
    decide = commands.add_parser(
        "decide",
        help="Answer a hard pause: an option's letter, and/or your instruction.",
        description="Answer a hard pause from any terminal. A live run picks the decision up within a second; "
        "otherwise the next `foreman run` applies it. `--text` alone means: retry with this instruction.",
    )
    decide.add_argument("map", metavar="MAP", help="the map file")
    decide.add_argument("node", metavar="NODE", help="the paused node (or region:<key>, end, map)")
    decide.add_argument("option", nargs="?", metavar="OPTION", help="the option's letter: A, B, C…")
    decide.add_argument("--text", default="", help="your instruction (free text), sent to the worker")
    decide.add_argument("--who", help="who decides (default: your user name)")
    reset = commands.add_parser(
        "reset",
        help="Send a process node back to its worker; the verified nodes after it are checked again.",
        description="Send a process node back to not_started: its worker is dispatched on the next run (or at once, "
        "by a live run, which takes this within a second). The verified nodes after it become stale (re-checked "
        "and re-reviewed, their workers only if that fails); with --cascade they are reset too.",
    )
    reset.add_argument("map", metavar="MAP", help="the map file")
    reset.add_argument("node", metavar="NODE", help="the process node")
    reset.add_argument("--cascade", action="store_true", help="reset the nodes after it too")
    reset.add_argument("--who", help="who resets (default: your user name)")

    run = command("run", "Run the map: workers, commit detection, checks, review, merges (exit 0 done, 3 paused).")
    run_options(run)
    demo = commands.add_parser(
        "demo",
        help="Run the bundled k-means demo in a fresh git repository.",
        description="Copy the demo map into a new git repository and run it with the built-in scripted agent.",
    )
    demo.add_argument("--dir", type=Path, help="create the demo here (default: a new temporary folder)")
    demo.add_argument("--json", action="store_true", help="print events as JSON lines")
    demo.add_argument(
        "--pause",
        action="store_true",
        help="with --headless: let the demo reach its hard pause too (the TUI demo always does)",
    )
    run_options(demo)
    serve = commands.add_parser(
        "serve",
        help="The TUI in a web browser: foreman serves it on http://HOST:PORT (see docs/serve.md).",
        description="Serve the TUI of a run to a web browser. Loopback only by default; any other address needs the "
        "token in the URL it prints. Closing the tab leaves the run going; one browser at a time.",
    )
    serve.add_argument(
        "map", nargs="?", default=DEFAULT_MAP_NAME, metavar="MAP", help=f"the map file (default: ./{DEFAULT_MAP_NAME})"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine)")
    serve.add_argument("--port", type=_port, default=8000, help="port to listen on (default: 8000; 0: any free one)")
    serve.add_argument("--token", action="store_true", help="require the URL's token on a loopback address too")
    serve.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    run_options(serve, headless=False)
    return parser


def load_project(path: str) -> Project:
    """Load for a one-shot command: the loaded map is frozen out of the garbage collector's sight, since
    the process ends right after (see ``map/_gc.py``)."""
    with gc_paused():
        project = Project.load(path)
        gc.freeze()
    return project


def _validate(args: argparse.Namespace) -> int:
    report = validate_report(load_project(args.map))
    _emit(args, report, render.validate)
    return EXIT_OK


def _plan(args: argparse.Namespace) -> int:
    report = plan_report(load_project(args.map), args.max_parallel)
    _emit(args, report, render.plan)
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    report = status_report(load_project(args.map))
    _emit(args, report, render.status)
    return EXIT_OK


def _overrides(args: argparse.Namespace, settings: Settings) -> Settings:
    update: dict[str, object] = {}
    for name in ("max_parallel", "isolation", "poll", "timeout"):
        if getattr(args, name, None) is not None:
            update[name] = getattr(args, name)
    if args.worker:
        update["worker"] = with_preset(settings.worker, args.worker, "--worker")
    if args.reviewer:
        update["reviewer"] = with_preset(settings.reviewer, args.reviewer, "--reviewer")
    return settings.model_copy(update=update)


def _start(map_path: str, args: argparse.Namespace) -> int:
    from ..headless import run_headless  # the engine runtime (git, file watching) only when a run needs it

    project = Project.load(map_path)
    settings = _overrides(args, project.settings)
    outcome = asyncio.run(run_headless(project, settings, as_json=args.json, use_fs_events=not args.no_watch))
    return outcome.exit_code


def _start_tui(map_path: str, args: argparse.Namespace) -> int:
    from ..tui.app import ForemanApp, check_keymap  # Textual only when the TUI is wanted

    project = Project.load(map_path)
    settings = _overrides(args, project.settings)
    check_keymap(settings, str(Path(map_path).resolve().parent / "foreman.toml"))
    served = os.environ.get("TEXTUAL_DRIVER") == WEB_DRIVER  # a `foreman serve` session: the browser is the terminal
    if not served and not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("foreman: the TUI needs a terminal; run with --headless (or give it a terminal)", file=sys.stderr)
        return EXIT_BAD_INPUT
    from .trust import approved_in_tui

    if served:  # `foreman serve` asked before serving; a second app in a served process would break its protocol
        from ..engine.trust import pending

        if pending(project, settings):
            print(f"foreman: commands not approved; run `foreman trust {map_path}`", file=sys.stderr)
            return EXIT_BAD_INPUT
    if not approved_in_tui(project, settings):
        print(f"foreman: nothing approved, nothing run; `foreman trust {map_path}` lists them again", file=sys.stderr)
        return EXIT_BAD_INPUT
    app = ForemanApp(project, settings, use_fs_events=not args.no_watch)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    code = app.run()
    for sig, handler in before.items():  # the app's loop left the defaults behind
        signal.signal(sig, handler)
    error = app.service.error
    if error is not None and not isinstance(error, asyncio.CancelledError):
        # The screen that showed it is gone: say it where the person is now.
        if isinstance(error, BadInput):
            render.problems(error.source, error.problems, what=error.what)
            return EXIT_BAD_INPUT
        print(f"foreman: {error}" if isinstance(error, UsageError) else _internal(error), file=sys.stderr)
        return EXIT_BAD_INPUT if isinstance(error, UsageError) else EXIT_FAILURE
    outcome = app.service.outcome
    if outcome is not None:
        print(f"foreman: run {outcome.status} ({outcome.verified}/{outcome.total} verified)", file=sys.stderr)
    if app.left_running:
        print(
            f"foreman: left running: {', '.join(app.left_running)}; run `foreman` again to take them over",
            file=sys.stderr,
        )
        sys.stderr.flush()
        sys.stdout.flush()
        # Exit now: the normal interpreter shutdown would close asyncio's process transports, which kills
        # the children we just promised to leave running.
        os._exit(EXIT_PAUSED)
    return code if code is not None else EXIT_FAILURE


def _serve(args: argparse.Namespace) -> int:
    from ..serve import serve  # aiohttp and textual-serve only when serving

    return serve(args, lambda project: _overrides(args, project.settings))


def _run(args: argparse.Namespace) -> int:
    if not args.headless:
        return _start_tui(args.map, args)
    return _start(args.map, args)


def _demo(args: argparse.Namespace) -> int:
    if args.dir is not None and args.dir.exists() and any(args.dir.iterdir()):
        print(f"foreman: {args.dir} is not empty; pick a new folder", file=sys.stderr)
        return EXIT_BAD_INPUT
    from ..demo import create_demo

    map_path = create_demo(args.dir, with_pause=not args.headless or args.pause)
    print(f"demo repository: {map_path.parent}", file=sys.stderr)
    if not args.headless:
        return _start_tui(str(map_path), args)
    return _start(str(map_path), args)


def _report(args: argparse.Namespace) -> int:
    from ..engine.ledger import write_report

    project = load_project(args.map)
    text = write_report(project, args.format, args.output, args.change_log or project.settings.change_log)
    if args.output is None:
        sys.stdout.write(text)
    else:
        print(f"report written to {args.output}", file=sys.stderr)
    return EXIT_OK


def _decide(args: argparse.Namespace) -> int:
    from ..engine.pauses import Decision, write_decision
    from ..engine.runstate import RunStore

    home = Path(args.map).resolve().parent / FOREMAN_DIR
    state = RunStore(home).load()
    nr = state.nodes.get(args.node) if state else None
    pause = nr.pause if nr is not None and nr.phase == "paused" else None
    if pause is None:
        open_ = [n for n, r in (state.nodes.items() if state else []) if r.phase == "paused"]
        hint = f"open pauses: {', '.join(open_)}" if open_ else "there is no open pause"
        print(f"foreman: {args.node} is not paused ({hint})", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.option and pause.option(args.option) is None:
        keys = ", ".join(f"{o.key}) {o.label}" for o in pause.options)
        print(f"foreman: {args.node} has no option {args.option}; choose one of: {keys}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not args.option and not args.text.strip():
        print("foreman: give an OPTION, or --text with your instruction, or both", file=sys.stderr)
        return EXIT_BAD_INPUT
    decision = Decision(
        node=args.node,
        option=args.option.upper() if args.option else None,
        text=args.text,
        **({"who": args.who} if args.who else {}),
    )
    write_decision(home, decision)
    chosen = pause.option(args.option) if args.option else None
    what = f"{chosen.key}) {chosen.label}" if chosen else f"instruction: {args.text}"
    print(
        f"recorded for {args.node} [{pause.trigger}]: {what}\n"
        "a live run picks it up within a second; otherwise the next `foreman run` applies it"
    )
    return EXIT_OK


def _trust(args: argparse.Namespace) -> int:
    from .trust import trust

    return trust(args)


def _reset(args: argparse.Namespace) -> int:
    from ..engine.pauses import user_name
    from ..engine.reset import ResetCommand, describe, plan_reset, reset_offline, send_reset
    from ..engine.runstate import run_is_live

    project = load_project(args.map)
    who = args.who or user_name()
    plan_reset(project.graph, {}, args.node, args.cascade)  # an unknown or non-process node: exit 2 here
    if run_is_live(project.doc.project_dir):
        send_reset(project.doc.project_dir / FOREMAN_DIR, ResetCommand(node=args.node, cascade=args.cascade, who=who))
        print(f"sent to the live run: reset {args.node}" + (" and what follows" if args.cascade else ""))
        return EXIT_OK
    map_path = project.doc.path or Path(args.map).resolve()
    print(describe(reset_offline(map_path, project.graph, args.node, args.cascade, who)))
    return EXIT_OK


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "reset": _reset,
    "trust": _trust,
    "decide": _decide,
    "report": _report,
    "validate": _validate,
    "plan": _plan,
    "status": _status,
    "run": _run,
    "demo": _demo,
    "serve": _serve,
}


def _emit(args: argparse.Namespace, report: dict[str, Any], renderer: Callable[[dict[str, Any]], None]) -> None:
    if args.json:
        sys.stdout.write(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    else:
        renderer(report)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # `foreman` alone = `foreman run` on ./algorithm-map.json, in the TUI
        if not Path(DEFAULT_MAP_NAME).exists():
            parser.print_help(sys.stderr)
            print(f"\nforeman: no ./{DEFAULT_MAP_NAME} here; give a map: foreman run MAP", file=sys.stderr)
            return EXIT_BAD_INPUT
        args = parser.parse_args(["run", *(argv or sys.argv[1:])])
    try:
        return HANDLERS[args.command](args)
    except UsageError as exc:
        print(f"foreman: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BadInput as exc:
        if getattr(args, "json", False):
            payload = {"ok": False, "source": exc.source, "errors": [p.to_json() for p in exc.problems]}
            sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
        render.problems(exc.source, exc.problems, what=exc.what)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`foreman plan | head`): stop quietly, without a second error at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        else:
            print(_internal(exc), file=sys.stderr)
        return EXIT_FAILURE


def _internal(exc: BaseException) -> str:
    return f"foreman: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)"
