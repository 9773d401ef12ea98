"""Human output of the CLI reports: Rich tables and colour on a terminal, plain aligned text when piped.

Rich lays out some 20,000 table cells a second, so a 50,000-node map took half a minute to print. Reports are
therefore written through :class:`_Out`: when the output is not a terminal, every line and table that Rich would
print unchanged by anything but padding (no markup, no control characters) is laid out here — the same column
widths, wrapping and padding as Rich, byte for byte, with Rich's own code doing any wrapping — and anything
else goes to Rich. On a terminal Rich prints everything, unless the report has more than ``RICH_ROWS_MAX``
rows: then it is written the same way, without colour or bold (the layout, table rule included, stays).
"""

from __future__ import annotations

import sys
from collections.abc import Collection
from typing import Any

from rich.console import Console
from rich.text import Text

from ..map._gc import gc_paused
from ..map.errors import Problem
from .writer import Cell, _Literal, _Out

STATUS_STYLE = {
    "verified": ("✓", "green"),
    "implemented": ("●", "yellow"),
    "theory_ok": ("◐", "cyan"),
    "discussing": ("◐", "cyan"),
    "not_started": ("○", "dim"),
}


def _console(stream: Any) -> Console:
    console = Console(file=stream, highlight=False)
    if not console.is_terminal:
        console = Console(file=stream, highlight=False, width=200, no_color=True, emoji=False)
    return console


def _status(console: Console, status: str) -> Text:
    icon, style = STATUS_STYLE.get(status, ("?", ""))
    return Text(f"{icon} {status}", style=style) if console.is_terminal else Text(status)


def _warnings(out: _Out, warnings: list[dict[str, str]]) -> None:
    if not warnings:
        return
    terminal = out.console.is_terminal
    out.line(f"\n[bold yellow]Warnings ({len(warnings)})[/]" if terminal else f"\nWarnings ({len(warnings)})")
    for w in warnings:
        fix = f" — {w['fix']}" if w.get("fix") else ""
        out.line(_Literal(f"  ! {w['path']}: {w['message']}{fix}"), style="yellow" if terminal else "")


def _back_edges(edges: list[dict[str, Any]]) -> str:
    if not edges:
        return "none"
    return ", ".join(f"{e['from']}→{e['to']}" + (f" ({e['label']})" if e.get("label") else "") for e in edges)


def _commands(out: _Out, commands: list[dict[str, Any]]) -> None:
    """Every command the map makes foreman run, where it comes from and when it runs."""
    out.line(f"\nCommands foreman will run ({len(commands)})")
    if not commands:
        out.line("  none")
        return
    out.table(("command", "from", "when"), [(c["cmd"], c["source"], c["when"]) for c in commands])


def trust(source: str, reviewed: list[tuple[Any, str]]) -> None:
    """``foreman trust``: each item with its status, where it comes from and when it runs, then its exact text
    on a line of its own (never wrapped or cut: the person approves exactly what they read)."""
    console = _console(sys.stdout)
    terminal = console.is_terminal
    marks = {"new": ("+ new", "bold yellow"), "changed": ("~ changed", "bold red"), "approved": ("  approved", "dim")}
    with gc_paused(), _Out(console, len(reviewed)) as out:
        out.print(Text("Commands and settings foreman would run", style="bold"), Text(f"  {source}", style="dim"))
        if not reviewed:
            out.line("  none")
        for item, status in reviewed:
            mark, style = marks[status]
            out.line(
                _Literal(f"{mark:<10} {item.kind:<9} {item.source} — {item.when}"), style=style if terminal else ""
            )
            out.line(_Literal(f"    {item.shown}"))


def _agents(out: _Out, report: dict[str, Any]) -> None:
    """Who runs, with which permissions, and the settings every map command runs with."""
    out.line("\nAgents")
    for agent in report["agents"]:
        sandbox = ", in bubblewrap" if agent["sandbox"] == "bwrap" else ""
        out.line(_Literal(f"  {agent['role']:<9}{agent['preset']} — permissions: {agent['permissions']}{sandbox}"))
        for item in agent["commands"]:
            out.line(_Literal(f"             runs {item['text']}  ({item['source']})"))
    sandbox = "in bubblewrap, network off" if report["checks_sandbox"] == "bwrap" else "no sandbox"
    out.line(_Literal(f"Map commands run without your secrets, {sandbox} (docs/security.md)"))
    for item in report["settings"]:
        out.line(_Literal(f"  with {item['text']}  ({item['source']})"))
    if report["agent_files"]:
        out.line("Agent CLI settings in the repository (their hooks and servers run when an agent starts)")
        for item in report["agent_files"]:
            out.line(_Literal(f"  {item['text']}"))


def _rows(*parts: Collection[Any]) -> int:
    return max(len(part) for part in parts)


def validate(report: dict[str, Any]) -> None:
    console = _console(sys.stdout)
    size = _rows(report["files"], report["commands"], report["regions"], report["warnings"])
    with gc_paused(), _Out(console, size) as out:
        out.print(Text(f"{report['title']}", style="bold"), Text(f"  {report['map']}", style="dim"))
        counts = report["nodes"]
        total = sum(counts.values())
        out.line(
            f"Nodes      {total}: " + ", ".join(f"{n} {t}" for t, n in counts.items()) + f"; {report['edges']} edges"
        )
        out.line(f"Back edges {_back_edges(report['back_edges'])}")
        regions = report["regions"]
        out.line(
            f"Regions    {len(regions)}"
            + "".join(
                f"\n  {r['label']} ({r['key']}): {r['nodes']} nodes, {r['process_nodes']} process" for r in regions
            )
        )
        checks = report["checks"]
        out.line(
            "Checks     "
            + "; ".join(f"{level}: {c['with_cmd']} with cmd, {c['without_cmd']} without" for level, c in checks.items())
        )
        rows = []
        for node, info in report["files"].items():
            detail = f"{info['source']} ({info['detail']})" if info["detail"] else info["source"]
            rows.append((node, ", ".join(info["files"]) or "—", detail))
        out.line("\nOwned files")
        out.table(("node", "owned files", "from"), rows)
        _commands(out, report["commands"])
        _agents(out, report)
        _warnings(out, report["warnings"])
        verdict = "valid" + (f", {len(report['warnings'])} warning(s)" if report["warnings"] else "")
        out.line(Text(f"\n✓ {verdict}", style="bold green") if console.is_terminal else f"\n{verdict}")


def _check_summary(checks: list[dict[str, Any]]) -> str:
    """``1 (1 cmd) / 2 (0 cmd) / 0``: a node's checks by level, and how many of them have a command."""
    by_level = {"L1": [0, 0], "L2": [0, 0], "L3": [0, 0]}
    for check in checks:
        counts = by_level[check["level"]]
        counts[0] += 1
        if check["cmd"]:
            counts[1] += 1
    return " / ".join([f"{n} ({cmd} cmd)" if n else "0" for n, cmd in by_level.values()])


def plan(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or _console(sys.stdout)
    size = _rows(report["batches"], report["nodes"], report["overlaps"], report["commands"], report["regions"])
    with gc_paused(), _Out(console, size) as out:
        _plan(out, report)


def _plan(out: _Out, report: dict[str, Any]) -> None:
    console = out.console
    terminal = console.is_terminal
    out.print(
        Text("Plan", style="bold"), Text(f"  {report['map']}  max_parallel {report['max_parallel']}", style="dim")
    )
    out.line(f"Back edges (ignored for ordering): {_back_edges(report['back_edges'])}")
    if report["already_verified"]:
        out.line(f"Already verified: {', '.join(report['already_verified'])}")
    out.line("")
    for batch in report["batches"]:
        if out.fast:
            out.line(_Literal(f"Batch {batch['index']}: {', '.join(batch['nodes'])}"))
        else:
            out.line(Text(f"Batch {batch['index']}: ", style="bold") + Text(", ".join(batch["nodes"])))
        for wait in batch["waits"]:
            out.line(_Literal(f"    {wait['node']} {wait['reason']}"), style="yellow" if terminal else "")
    if not report["batches"]:
        out.line("Nothing to run: every process node is verified.")
    if report["overlaps"]:
        out.line("\nFile overlaps (never run at the same time)")
        for overlap in report["overlaps"]:
            out.line(f"  {' ↔ '.join(overlap['nodes'])}: {', '.join(overlap['files'])}")
    rows: list[tuple[Cell, ...]] = []
    for node, info in report["nodes"].items():
        checks = _check_summary(info["checks"])
        if out.fast:
            files: Cell = _Literal(f"{chr(10).join(info['files']) or '—'}\nfrom {info['source']}")
            status: Cell = _Literal(info["status"] if not terminal else _status(console, info["status"]).plain)
        else:
            files = Text("\n".join(info["files"]) or "—")
            files.append(f"\nfrom {info['source']}", style="dim" if terminal else "")
            status = _status(console, info["status"])
        rows.append((node, status, files, "\n".join(info["upstream"]) or "—", checks))
    out.line("\nNodes")
    out.table(("node", "status", "owned files", "upstream (checkpoint each)", "checks L1 / L2 / L3"), rows)
    if report["regions"]:
        out.line("\nRegion checks (L2, when all of a region's process nodes are verified)")
        for region in report["regions"]:
            runnable = sum(bool(c["cmd"]) for c in region["checks"])
            out.line(
                f"  {region['label']}: {len(region['checks'])} check(s), {runnable} with cmd"
                f" — after {', '.join(region['process_nodes']) or 'nothing'}"
            )
    end = report["end_checks"]
    out.line(f"\nEnd checks (L3): {len(end)}, {sum(bool(c['cmd']) for c in end)} with cmd")
    bench = report["benchmark"]
    if bench:
        out.line("Benchmark: " + ", ".join(f"{k} {v}" for k, v in bench.items()))
    _commands(out, report["commands"])
    _agents(out, report)
    _warnings(out, report["warnings"])


def status(report: dict[str, Any]) -> None:
    console = _console(sys.stdout)
    with gc_paused(), _Out(console, _rows(report["nodes"], report["regions"])) as out:
        _status_lines(out, report)


def _status_lines(out: _Out, report: dict[str, Any]) -> None:
    console = out.console
    terminal = console.is_terminal
    out.print(Text(f"{report['title']}", style="bold"), Text(f"  {report['map']}", style="dim"))
    if report.get("live"):
        out.line("A run is going on now; the phases below are its own.")
    rows: list[tuple[Cell, ...]] = []
    for node in report["nodes"]:
        if node["type"] == "terminal":
            continue
        note = ""
        if node.get("stale"):
            note = f"stale: {node['stale']} — the next run checks and reviews it again"
        elif node.get("phase"):
            note = node["phase"] + (f" (attempt {node['attempt']})" if node.get("attempt") else "")
        elif node["status"] == "implemented" and node["type"] == "process":
            note = "implemented: checks and review next"
        elif node.get("waiting_on"):
            note = "waits for " + ", ".join(node["waiting_on"])
        elif node["type"] == "decision":
            note = "feeders verified" if node["feeders_verified"] else "feeders not all verified"
        if out.fast:
            status: Cell = _Literal(node["status"] if not terminal else _status(console, node["status"]).plain)
        else:
            status = _status(console, node["status"])
        rows.append((node["id"], node["type"], status, note))
    out.table(("node", "type", "status", "note"), rows)
    for region in report["regions"]:
        out.line(region["line"])
    for pause in report.get("pauses", []):
        out.line(_Literal(f"\nPAUSED {pause['node']} [{pause['trigger']}]"), style="bold yellow" if terminal else "")
        out.line(f"  {pause['problem']}")
        for option in pause["options"]:
            out.line(f"  {option['key']}) {option['label']}")
        out.line(f'  answer: foreman decide {report["map"]} {pause["node"]} <OPTION> [--text "your instruction"]')
    if report.get("failed"):
        out.line(f"Failed by decision: {', '.join(report['failed'])}")
    for miss in report.get("feedback_unmatched", []):
        out.line(f"Feedback not routed ({miss['file']} line {miss['line']}): {miss['reason']} — {miss['note'][:80]}")
    totals = report["totals"]
    by_status = ", ".join(f"{n} {s}" for s, n in totals["by_status"].items())
    out.line(f"Total: {totals['verified']}/{totals['process_nodes']} process nodes verified ({by_status})")
    if totals.get("stale"):
        out.line(f"{totals['stale']} node(s) are stale: the next run checks and reviews them again.")
    elif totals["complete"]:
        out.line(Text("Build complete.", style="bold green") if terminal else "Build complete.")


def problems(source: str, found: list[Problem], what: str) -> None:
    console = _console(sys.stderr)
    terminal = console.is_terminal
    with gc_paused(), _Out(console, len(found)) as out:
        out.line(_Literal(f"foreman: the {what} is not valid: {source}"), style="bold red" if terminal else "")
        for problem in found:
            out.line(_Literal(f"  ✗ {problem.path}: {problem.message}"), style="red" if terminal else "")
            if problem.fix:
                out.line(_Literal(f"      fix: {problem.fix}"), style="dim" if terminal else "")
        out.line("Nothing was written (exit status 2).")
