"""What agents are told: the worker's task, fix tasks, and the locked reviewer template (SPEC §7)."""

from __future__ import annotations

import json
from pathlib import Path

from ..map.files import NOT_READ, LeavesRoot, read_inside
from .project import CheckRef, Project, checkpoint_path

MAX_FILE_CHARS = 60_000

# SPEC §7 — fixed; only {node_id}, {how} and {code_files} are filled. Not editable from the map.
REVIEW_TEMPLATE = """You are a code reviewer. Read the code only: do not run tests, do not change code.

## What to review
Node: {node_id}
Algorithm spec (how):
{how}

Implementation files:
{code_files}

## Checklist (answer each item OK or FLAG with evidence)
1. Does the algorithm's structure match the steps the how describes?
2. Is the core computation real, not hard-coded or a stub?
3. Is there special-casing (an if) for particular inputs?
4. Is any key step skipped or commented out?
5. Does the data come from the upstream checkpoint, not made up?
6. If this is the last process node of a region, was the L2 check run?

## Answer format
First line exactly one of:
CLEAN — no problems
FLAG — [item number] concrete description + code location
"""

PROTOCOL = """## Protocol (foreman checks you against it)
- Write code only in the files you own (listed above) and their tests. Anything else is reported as a scope
  violation.
- Save `_checkpoints/{node_id}.json` = {{"node_id": "{node_id}", "input_from": [upstream ids], "output": {{...}}}}
  with real output data of this node on the map's test instance.
- Commit your work (never push) with this trailer line in the message:  Foreman-Node: {node_id}
  Commit only your own paths (`git add <paths>` then `git commit -m "…" -- <paths>`): other workers may be
  committing in the same repository at the same time.
- If you cannot go on without a person's decision, print this block and exit:
    HARD PAUSE: [#<n> <trigger name>]
    Node: {node_id}
    Problem: ...
    Tried: ...
    Options: A) ... / B) ... / C) your instruction
- If you believe a check's expected value is wrong, set "dispute": "<reason>" on that verify item in the map
  and go on; do not change the expected value.
"""


def _checks_text(checks: list[CheckRef]) -> str:
    lines = []
    for check in checks:
        cmd = f"  `{check.item.cmd}`" if check.item.cmd else "  (no command: verify it yourself and say so)"
        lines.append(f"- [{check.phase}[{check.index}]] {check.item.desc}{cmd}")
    return "\n".join(lines) or "- (none)"


def worker_prompt(project: Project, node_id: str, tree: Path, python: str = "") -> str:
    """The worker's task. ``python`` says which Python the checks run with (``ProjectPython.describe``)."""
    content = project.doc.content(node_id)
    graph = project.graph
    owned = project.owned[node_id]
    upstream = graph.upstream.get(node_id, ())
    parts = [
        f"# Task: implement node `{node_id}` — {graph.labels[node_id]}",
        f"Map: {project.doc.source}  (title: {project.doc.model.meta.title})",
        "",
        "## Overview",
        content.overview if content else "(no overview in the map)",
        "",
        "## How",
        (content.how_text if content else "") or "(no implementation notes in the map)",
        "",
        "## Files you own",
        "\n".join(f"- {f}" for f in owned.files) or "- (none declared: keep your changes small and say which files)",
        "",
        "## Upstream checkpoints (your input)",
    ]
    for up in upstream:
        text, why = _read(tree, checkpoint_path(up))
        text = why if text is None else text[:4000]
        parts += [f"### {checkpoint_path(up)}", "```json", text.rstrip(), "```"]
    if not upstream:
        parts.append("- (none: this node starts from the map's test instance)")
    test_instance = project.doc.model.meta.test_instance
    if test_instance:
        parts += ["", "## Test instance", test_instance]
    l1 = [c for c in project.node_checks(node_id) if c.level == "L1"]
    parts += ["", "## L1 checks (must pass)", _checks_text(l1)]
    if python:
        parts.append(f"They run in your tree; {python}.")
    parts += ["", PROTOCOL.format(node_id=node_id)]
    return "\n".join(parts)


def fix_message(reason: str, details: str, history: list[str]) -> str:
    parts = ["# Fix task", "", reason, "", details.rstrip()]
    if history:
        parts += ["", "## Earlier in this node"] + [f"- {h}" for h in history[-10:]]
    parts += ["", "Fix the code, keep the checkpoint true, and commit again with the Foreman-Node trailer."]
    return "\n".join(parts)


def _read(tree: Path, rel: str) -> tuple[str | None, str]:
    """A file of the node's tree for a prompt: (its text, "") or (None, why not: "(missing)" or NOT_READ for a
    symbolic link leading out of the tree, which is never opened)."""
    try:
        return read_inside(tree / rel, tree, errors="replace"), ""
    except LeavesRoot:
        return None, NOT_READ
    except OSError:  # missing, a folder, unreadable
        return None, "(missing)"


def code_files_text(tree: Path, files: list[str], outside: list[str]) -> str:
    chunks = []
    for rel in files + outside:
        text, why = _read(tree, rel)
        if text is None:
            chunks.append(f"### {rel}\n{why}")
            continue
        if len(text) > MAX_FILE_CHARS:
            text = text[:MAX_FILE_CHARS] + "\n… (cut)"
        chunks.append(f"### {rel}\n```\n{text.rstrip()}\n```")
    if outside:
        chunks.append("NOTE (scope): these files were changed outside the node's owned files: " + ", ".join(outside))
    return "\n\n".join(chunks) or "(no files)"


def review_prompt(node_id: str, how: str, code_files: str) -> str:
    return REVIEW_TEMPLATE.format(node_id=node_id, how=how or "(none)", code_files=code_files)


def parse_verdict(text: str) -> tuple[str, str]:
    """The reviewer's verdict: the first line starting with CLEAN or FLAG; ("NONE", "") if there is none."""
    for line in text.splitlines():
        stripped = line.strip().lstrip("*#>` ").strip()
        if stripped.startswith("CLEAN"):
            return "CLEAN", stripped
        if stripped.startswith("FLAG"):
            return "FLAG", stripped
    return "NONE", ""


def checkpoint_problem(tree: Path, node_id: str) -> str | None:
    """Why the node's checkpoint is not acceptable, or None if it is."""
    path = tree / checkpoint_path(node_id)
    if not path.is_file():
        return f"{checkpoint_path(node_id)} is missing"
    try:
        data = json.loads(read_inside(path, tree))
    except LeavesRoot:
        return f"{checkpoint_path(node_id)} is a symbolic link leading outside the project (not read)"
    except OSError as exc:
        return f"{checkpoint_path(node_id)} cannot be read: {exc.strerror or exc}"
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return f"{checkpoint_path(node_id)} is not valid JSON: {exc}"
    if not isinstance(data, dict):
        return f"{checkpoint_path(node_id)} must be a JSON object"
    if data.get("node_id") != node_id:
        return f"{checkpoint_path(node_id)}: node_id is {data.get('node_id')!r}, expected {node_id!r}"
    if "output" not in data:
        return f'{checkpoint_path(node_id)} has no "output"'
    return None
