"""Human output of the CLI reports: Rich tables and colour on a terminal, plain aligned text when piped."""

from __future__ import annotations

import sys
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..map.errors import Problem

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


def _table(console: Console, *columns: str) -> Table:
    fancy = console.is_terminal
    table = Table(
        box=box.SIMPLE_HEAD if fancy else None,
        show_header=True,
        header_style="bold" if fancy else "",
        pad_edge=False,
        show_edge=False,
    )
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _status(console: Console, status: str) -> Text:
    icon, style = STATUS_STYLE.get(status, ("?", ""))
    return Text(f"{icon} {status}", style=style) if console.is_terminal else Text(status)


def _warnings(console: Console, warnings: list[dict[str, str]]) -> None:
    if not warnings:
        return
    console.print(
        f"\n[bold yellow]Warnings ({len(warnings)})[/]" if console.is_terminal else f"\nWarnings ({len(warnings)})"
    )
    for w in warnings:
        fix = f" — {w['fix']}" if w.get("fix") else ""
        console.print(Text(f"  ! {w['path']}: {w['message']}{fix}", style="yellow" if console.is_terminal else ""))


def _back_edges(edges: list[dict[str, Any]]) -> str:
    if not edges:
        return "none"
    return ", ".join(f"{e['from']}→{e['to']}" + (f" ({e['label']})" if e.get("label") else "") for e in edges)


def _commands(console: Console, commands: list[dict[str, Any]]) -> None:
    """Every command the map makes foreman run, where it comes from and when it runs."""
    console.print(f"\nCommands foreman will run ({len(commands)})")
    if not commands:
        console.print("  none")
    table = _table(console, "command", "from", "when")
    for command in commands:
        table.add_row(command["cmd"], command["source"], command["when"])
    if commands:
        console.print(table)


def validate(report: dict[str, Any]) -> None:
    console = _console(sys.stdout)
    out = console.print
    out(Text(f"{report['title']}", style="bold"), Text(f"  {report['map']}", style="dim"))
    counts = report["nodes"]
    total = sum(counts.values())
    out(f"Nodes      {total}: " + ", ".join(f"{n} {t}" for t, n in counts.items()) + f"; {report['edges']} edges")
    out(f"Back edges {_back_edges(report['back_edges'])}")
    regions = report["regions"]
    out(
        f"Regions    {len(regions)}"
        + "".join(f"\n  {r['label']} ({r['key']}): {r['nodes']} nodes, {r['process_nodes']} process" for r in regions)
    )
    checks = report["checks"]
    out(
        "Checks     "
        + "; ".join(f"{level}: {c['with_cmd']} with cmd, {c['without_cmd']} without" for level, c in checks.items())
    )
    table = _table(console, "node", "owned files", "from")
    for node, info in report["files"].items():
        detail = f"{info['source']} ({info['detail']})" if info["detail"] else info["source"]
        table.add_row(node, ", ".join(info["files"]) or "—", detail)
    out("\nOwned files")
    out(table)
    _commands(console, report["commands"])
    _warnings(console, report["warnings"])
    verdict = "valid" + (f", {len(report['warnings'])} warning(s)" if report["warnings"] else "")
    out(Text(f"\n✓ {verdict}", style="bold green") if console.is_terminal else f"\n{verdict}")


def plan(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or _console(sys.stdout)
    out = console.print
    out(Text("Plan", style="bold"), Text(f"  {report['map']}  max_parallel {report['max_parallel']}", style="dim"))
    out(f"Back edges (ignored for ordering): {_back_edges(report['back_edges'])}")
    if report["already_verified"]:
        out(f"Already verified: {', '.join(report['already_verified'])}")
    out("")
    for batch in report["batches"]:
        out(Text(f"Batch {batch['index']}: ", style="bold") + Text(", ".join(batch["nodes"])))
        for wait in batch["waits"]:
            out(Text(f"    {wait['node']} {wait['reason']}", style="yellow" if console.is_terminal else ""))
    if not report["batches"]:
        out("Nothing to run: every process node is verified.")
    if report["overlaps"]:
        out("\nFile overlaps (never run at the same time)")
        for overlap in report["overlaps"]:
            out(f"  {' ↔ '.join(overlap['nodes'])}: {', '.join(overlap['files'])}")
    table = _table(console, "node", "status", "owned files", "upstream (checkpoint each)", "checks L1 / L2 / L3")
    for node, info in report["nodes"].items():
        by_level = {"L1": [0, 0], "L2": [0, 0], "L3": [0, 0]}
        for check in info["checks"]:
            by_level[check["level"]][0] += 1
            by_level[check["level"]][1] += bool(check["cmd"])
        checks = " / ".join(f"{n} ({cmd} cmd)" if n else "0" for n, cmd in by_level.values())
        files = Text("\n".join(info["files"]) or "—")
        files.append(f"\nfrom {info['source']}", style="dim" if console.is_terminal else "")
        table.add_row(node, _status(console, info["status"]), files, "\n".join(info["upstream"]) or "—", checks)
    out("\nNodes")
    out(table)
    if report["regions"]:
        out("\nRegion checks (L2, when all of a region's process nodes are verified)")
        for region in report["regions"]:
            runnable = sum(bool(c["cmd"]) for c in region["checks"])
            out(
                f"  {region['label']}: {len(region['checks'])} check(s), {runnable} with cmd"
                f" — after {', '.join(region['process_nodes']) or 'nothing'}"
            )
    end = report["end_checks"]
    out(f"\nEnd checks (L3): {len(end)}, {sum(bool(c['cmd']) for c in end)} with cmd")
    bench = report["benchmark"]
    if bench:
        out("Benchmark: " + ", ".join(f"{k} {v}" for k, v in bench.items()))
    _commands(console, report["commands"])
    _warnings(console, report["warnings"])


def status(report: dict[str, Any]) -> None:
    console = _console(sys.stdout)
    out = console.print
    out(Text(f"{report['title']}", style="bold"), Text(f"  {report['map']}", style="dim"))
    if report.get("live"):
        out("A run is going on now; the phases below are its own.")
    if report.get("live"):
        out("A run is going on now; the phases below are its own.")
    table = _table(console, "node", "type", "status", "note")
    for node in report["nodes"]:
        if node["type"] == "terminal":
            continue
        note = ""
        if node.get("phase"):
            note = node["phase"] + (f" (attempt {node['attempt']})" if node.get("attempt") else "")
        elif node["status"] == "implemented" and node["type"] == "process":
            note = "implemented: checks and review next"
        elif node.get("waiting_on"):
            note = "waits for " + ", ".join(node["waiting_on"])
        elif node["type"] == "decision":
            note = "feeders verified" if node["feeders_verified"] else "feeders not all verified"
        table.add_row(node["id"], node["type"], _status(console, node["status"]), note)
    out(table)
    for region in report["regions"]:
        out(region["line"])
    for pause in report.get("pauses", []):
        out(Text(f"\nPAUSED {pause['node']} [{pause['trigger']}]", style="bold yellow" if console.is_terminal else ""))
        out(f"  {pause['problem']}")
        for option in pause["options"]:
            out(f"  {option['key']}) {option['label']}")
        out(f'  answer: foreman decide {report["map"]} {pause["node"]} <OPTION> [--text "your instruction"]')
    if report.get("failed"):
        out(f"Failed by decision: {', '.join(report['failed'])}")
    for miss in report.get("feedback_unmatched", []):
        out(f"Feedback not routed ({miss['file']} line {miss['line']}): {miss['reason']} — {miss['note'][:80]}")
    totals = report["totals"]
    by_status = ", ".join(f"{n} {s}" for s, n in totals["by_status"].items())
    out(f"Total: {totals['verified']}/{totals['process_nodes']} process nodes verified ({by_status})")
    if totals["complete"]:
        out(Text("Build complete.", style="bold green") if console.is_terminal else "Build complete.")


def problems(source: str, found: list[Problem], what: str) -> None:
    console = _console(sys.stderr)
    console.print(Text(f"foreman: the {what} is not valid: {source}", style="bold red" if console.is_terminal else ""))
    for problem in found:
        console.print(Text(f"  ✗ {problem.path}: {problem.message}", style="red" if console.is_terminal else ""))
        if problem.fix:
            console.print(Text(f"      fix: {problem.fix}", style="dim" if console.is_terminal else ""))
    console.print("Nothing was written (exit status 2).")
