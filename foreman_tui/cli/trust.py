"""``foreman trust`` and the TUI's question before a run: what the map and foreman.toml would run, approved by the
person (``engine/trust.py`` keeps the approvals)."""

from __future__ import annotations

import argparse
import json
import sys

from ..config import Settings
from ..engine.project import Project
from ..engine.trust import APPROVED, TrustStore, pending, project_items
from . import EXIT_BAD_INPUT, EXIT_OK, load_project, render


def trust(args: argparse.Namespace) -> int:
    """`foreman trust`: list, ask (or --yes), record."""
    project = load_project(args.map)
    store = TrustStore(project.doc.project_dir)
    reviewed = store.review(project_items(project))
    waiting = [item for item, status in reviewed if status != APPROVED]
    approve = args.yes
    if args.json:
        if approve and waiting:
            store.approve(waiting)
        report = {
            "map": project.doc.source,
            "store": str(store.path),
            "items": [item.to_json(status) for item, status in reviewed],
            "approved_now": len(waiting) if approve else 0,
            "pending": 0 if approve else len(waiting),
        }
        sys.stdout.write(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
        return EXIT_OK if approve or not waiting else EXIT_BAD_INPUT
    render.trust(project.doc.source, reviewed)
    if not waiting:
        print(f"\nAll {len(reviewed)} approved; nothing new.")
        return EXIT_OK
    if not approve and sys.stdin.isatty():
        where = project.doc.project_dir
        answer = input(f"\nApprove these {len(waiting)} new or changed command(s) for {where}? [y/N] ")
        approve = answer.strip().lower() in ("y", "yes")
    if not approve:
        how = "" if sys.stdin.isatty() else " (no terminal to ask on: add --yes to approve)"
        print(f"\nNothing approved{how}; `foreman run` refuses these until you do.", file=sys.stderr)
        return EXIT_BAD_INPUT
    store.approve(waiting)
    print(f"\nApproved {len(waiting)}; kept in {store.path}")
    return EXIT_OK


def approved_in_tui(project: Project, settings: Settings) -> bool:
    """Ask in the TUI about anything not approved yet, before the engine exists; True when all is approved."""
    from ..tui.trust_app import TrustApp

    waiting = pending(project, settings)
    if not waiting:
        return True
    if not TrustApp(project.doc.source, waiting).run():
        return False
    TrustStore(project.doc.project_dir).approve(item for item, _ in waiting)
    return True
