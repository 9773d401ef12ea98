"""Trust: nothing a map or a repository's ``foreman.toml`` makes foreman run starts before the person approved it.

A map is a file people share, and so is a repository. Every command they make foreman run — each verify ``cmd``
at every level, the benchmark's, an agent ``argv`` or extra ``args``, and the settings that decide what those run
with (``[checks] python``, ``env``, ``pass_env``) — is an *item*. The person approves items with ``foreman trust``
(or in the TUI); an approval is pinned to the item's exact text and kept in their state folder
(``$XDG_STATE_HOME/foreman/trust/``, else ``~/.local/state/foreman/trust/``), one file per project, so a
repository cannot approve itself and an edited command must be approved again.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import CONFIG_NAME, AgentSettings, Settings
from ..map.errors import UsageError
from ..map.store import atomic_write
from .pauses import user_name
from .project import Project
from .reports import commands_report

NEW, CHANGED, APPROVED = "new", "changed", "approved"
AGENT_CONFIG_FILES = (
    ".claude/settings.json",
    ".claude/settings.local.json",
    ".mcp.json",
    ".gemini/settings.json",
    ".codex/config.toml",
    ".aider.conf.yml",
)
"""A repository's own settings for the agent CLIs: their hooks, MCP servers and test commands run when an agent
starts in the repository, so their content is approved like a command (pinned to its digest)."""


@dataclass(frozen=True, slots=True)
class Item:
    """One thing foreman would run (or run with) on the project's behalf."""

    kind: str  # "check" | "benchmark" | "agent" | "setting"
    text: str  # exactly what is approved
    source: str  # a JSON path of the map, or "foreman.toml:LINE [section] key"
    when: str = ""

    @property
    def key(self) -> str:
        return hashlib.sha256(f"{self.kind}\0{self.text}".encode()).hexdigest()

    @property
    def shown(self) -> str:
        """The text as a terminal may show it: every control character (an escape sequence could hide the
        rest of a command) spelled out, e.g. ``\\x1b``."""
        return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode() for c in self.text)

    def to_json(self, status: str | None = None) -> dict[str, str]:
        out = {"kind": self.kind, "text": self.text, "source": self.source, "when": self.when}
        return out | ({"status": status} if status else {})


class Untrusted(UsageError):
    """A run refused before anything started: some items are not approved."""

    def __init__(self, map_path: Path, pending: list[tuple[Item, str]]) -> None:
        self.pending = pending
        lines = [f"{len(pending)} command(s) from this map and foreman.toml are not approved; nothing was started:"]
        lines += [f"  {status:<8} {item.kind:<12} {item.shown}    ({item.source})" for item, status in pending]
        lines.append(f"Read them, then approve them with: foreman trust {map_path}")
        super().__init__("\n".join(lines))


def project_items(project: Project, settings: Settings | None = None) -> list[Item]:
    """Everything of ``project`` that needs the person's approval, in the order it runs."""
    settings = settings or project.settings
    items = [
        Item("benchmark" if c["source"] == "meta.benchmark.cmd" else "check", c["cmd"], c["source"], c["when"])
        for c in commands_report(project)
    ]
    folder = project.doc.project_dir
    return items + agent_items(settings, folder) + setting_items(settings, folder) + agent_config_items(folder)


def agent_config_items(project_dir: Path) -> list[Item]:
    """The agent CLIs' settings files the project (or its repository's root) holds, each pinned to its digest."""
    roots = [project_dir]
    if not (project_dir / ".git").exists():  # a project in a folder of a repository: its root's files count too
        roots += [parent for parent in project_dir.parents if (parent / ".git").exists()][:1]
    items = []
    for root in roots:
        for rel in AGENT_CONFIG_FILES:
            path = root / rel
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:  # absent (or unreadable: then the CLI cannot read it either)
                continue
            shown = rel if root == project_dir else str(path)
            items.append(Item("agent-config", f"{shown} sha256:{digest}", shown, "read by an agent CLI as it starts"))
    return items


def agent_items(settings: Settings, project_dir: Path) -> list[Item]:
    """The agent commands ``foreman.toml`` (or a ``FOREMAN_*`` variable) adds to the presets: an ``argv``, ``args``."""
    lines = _TomlLines(project_dir / CONFIG_NAME)
    items = []
    for role in ("worker", "reviewer"):
        agent: AgentSettings = getattr(settings, role)
        if agent.argv:  # whichever preset: a flag may switch to "command" at run time
            text = json.dumps(agent.argv, ensure_ascii=False)
            items.append(Item("agent", text, lines.find(role, "argv"), f"starts the {role}"))
        if agent.args:
            text = f"{agent.preset} + " + json.dumps(agent.args, ensure_ascii=False)
            items.append(Item("agent", text, lines.find(role, "args"), f"extra arguments of the {role}"))
    return items


def setting_items(settings: Settings, project_dir: Path) -> list[Item]:
    """The settings every map command runs with: ``[checks] python``, ``env``, ``pass_env``; and the
    ``notify_command``."""
    lines = _TomlLines(project_dir / CONFIG_NAME)
    checks = settings.checks
    items = []
    if checks.python:
        items.append(Item("setting", f"python = {checks.python}", lines.find("checks", "python"), "runs every check"))
    for name, value in checks.env.items():
        items.append(Item("setting", f"env {name}={value}", lines.find("checks", "env"), "set for every command"))
    for name in checks.pass_env:
        items.append(Item("setting", f"pass_env {name}", lines.find("checks", "pass_env"), "a secret checks get"))
    if settings.notify_command:
        text = json.dumps(settings.notify_command, ensure_ascii=False)
        items.append(Item("notify", text, lines.find("", "notify_command"), "runs when a hard pause opens"))
    return items


class _TomlLines:
    """Where a key is in ``foreman.toml`` (for the person reading the list), found by reading its lines."""

    def __init__(self, path: Path) -> None:
        try:
            self.lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            self.lines = []

    def find(self, section: str, key: str) -> str:
        current = ""
        for number, line in enumerate(self.lines, start=1):
            text = line.strip()
            if text.startswith("[") and text.endswith("]"):
                current = text.strip("[] ")
                if current == f"{section}.{key}":  # a table of its own: [checks.env]
                    return f"{CONFIG_NAME}:{number} {section}.{key}"
                continue
            name = text.split("=", 1)[0].strip()
            if (current == section and name == key) or (current == "" and name == f"{section}.{key}"):
                return f"{CONFIG_NAME}:{number} {section}.{key}"
        return f"{section}.{key} (FOREMAN_* environment or a flag)"


def state_home() -> Path:
    """The person's state folder: ``$XDG_STATE_HOME``, else ``~/.local/state``."""
    configured = os.environ.get("XDG_STATE_HOME", "")
    if configured and Path(configured).is_absolute():
        return Path(configured)
    home = os.environ.get("HOME", "")
    if not home or not Path(home).is_absolute():
        raise UsageError("neither XDG_STATE_HOME nor HOME names a folder; foreman keeps approvals there — set one")
    return Path(home) / ".local" / "state"


class TrustStore:
    """The person's approvals for one project (its folder, resolved)."""

    def __init__(self, project_dir: Path, root: Path | None = None) -> None:
        self.project_dir = project_dir.resolve()
        folder = (root or state_home()).resolve() / "foreman" / "trust"
        if folder == self.project_dir or self.project_dir in folder.parents:
            raise UsageError(
                f"the approvals folder {folder} is inside the project {self.project_dir}: the project could "
                "approve itself. Point XDG_STATE_HOME at a folder outside it"
            )
        digest = hashlib.sha256(str(self.project_dir).encode()).hexdigest()[:24]
        self.path = folder / f"{digest}.json"

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {"project": str(self.project_dir), "approved": {}, "sources": {}}
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read the approvals in {self.path}: {exc}; remove it to start over") from None
        if not isinstance(data, dict) or data.get("project") != str(self.project_dir):
            raise UsageError(f"{self.path} is not foreman's approvals for {self.project_dir}; remove it to start over")
        data.setdefault("approved", {})
        data.setdefault("sources", {})
        return data

    def review(self, items: Iterable[Item]) -> list[tuple[Item, str]]:
        """Each item with its status: approved, new, or changed (its place held other text when approved)."""
        data = self.load()
        approved, sources = data["approved"], data["sources"]
        out = []
        for item in items:
            if item.key in approved:
                out.append((item, APPROVED))
            else:
                out.append((item, CHANGED if item.source in sources else NEW))
        return out

    def approve(self, items: Iterable[Item], who: str | None = None) -> int:
        """Record approvals (atomically); returns how many were new."""
        data = self.load()
        who = who or user_name()
        added = 0
        for item in items:
            if item.key not in data["approved"]:
                added += 1
                data["approved"][item.key] = {"kind": item.kind, "text": item.text, "at": time.time(), "who": who}
            data["sources"][item.source] = item.key
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(self.path, json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8"))
        return added


@dataclass(frozen=True, slots=True)
class TrustGate:
    """What a run may start: the approved check and benchmark texts (read at start, and again on a map edit)."""

    commands: frozenset[str]

    def allows(self, cmd: str) -> bool:
        return cmd in self.commands


def pending(project: Project, settings: Settings | None = None) -> list[tuple[Item, str]]:
    """The items of ``project`` not approved yet (new or changed)."""
    return _unapproved(project, project_items(project, settings))


def _unapproved(project: Project, items: list[Item]) -> list[tuple[Item, str]]:
    store = TrustStore(project.doc.project_dir)
    return [(item, status) for item, status in store.review(items) if status != APPROVED]


def require_trust(project: Project, settings: Settings | None = None) -> TrustGate:
    """The gate of a run; raises :class:`Untrusted` (exit 2, the list) when anything is not approved."""
    items = project_items(project, settings)
    waiting = _unapproved(project, items)
    if waiting:
        raise Untrusted(project.doc.path or project.doc.project_dir, waiting)
    return TrustGate(frozenset(i.text for i in items if i.kind in ("check", "benchmark", "notify")))


def approve_project(project: Project, settings: Settings | None = None, who: str | None = None) -> int:
    """Approve everything ``project`` would run (``foreman trust --yes``; the bundled demo, which foreman wrote)."""
    return TrustStore(project.doc.project_dir).approve(project_items(project, settings), who)
