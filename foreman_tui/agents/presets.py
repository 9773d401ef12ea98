"""Agents as command templates: how to start each preset, how to resume it, and how to read its output.

Every agent gets the stable interface of SPEC §5: the ``FOREMAN_*`` environment (set by the supervisor),
the same values as ``{placeholders}`` in an argv template, stdin that is never the terminal. Prompts reach
an agent through a file or its stdin, never through a shell string.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import AgentSettings, Permissions

PLACEHOLDERS = ("node_id", "map", "workdir", "prompt_file", "message_file", "attempt")
INSTRUCTION = "Do the task described on standard input."
KEPT_LINES = 2000
KEPT_CHARS = 2000
"""Characters of one line kept (a hard-pause block or a verdict is far shorter; the log file has every byte)."""


DEFAULT_PERMISSIONS: Permissions = "edit+shell"
"""A worker's profile when ``permissions`` is unset: the narrowest that lets it edit its files, run the checks and
commit."""

PERMISSION_FLAGS: dict[str, dict[str, tuple[str, ...]]] = {
    # Claude Code: --tools is the set of tools the model is given at all (a call to another is refused as "no such
    # tool", never asked); --allowedTools pre-approves calls; dontAsk refuses whatever is not pre-approved.
    # The reviewer also skips the repository's own .claude/settings*.json (hooks, allow rules) and .mcp.json.
    "claude": {
        "reviewer": (
            *("--permission-mode", "dontAsk", "--tools", "Read,Glob,Grep"),
            *("--setting-sources", "user", "--strict-mcp-config"),
        ),
        "edit": (
            *("--permission-mode", "dontAsk", "--tools", "Read,Glob,Grep,Edit,Write,MultiEdit,NotebookEdit,Bash"),
            *("--allowedTools", "Read,Glob,Grep,Edit(./**),Bash(git add *),Bash(git commit *)"),
        ),
        "edit+shell": (
            *("--permission-mode", "acceptEdits"),
            *("--allowedTools", "Bash Edit Write MultiEdit Read Glob Grep"),
        ),
        "full": ("--permission-mode", "bypassPermissions"),
    },
    # Codex: the sandbox its commands run in (read-only: nothing written, no network; workspace-write: the tree).
    "codex": {
        "reviewer": ("--sandbox", "read-only"),
        "edit": ("--sandbox", "workspace-write"),
        "edit+shell": ("--sandbox", "workspace-write"),
        "full": ("--dangerously-bypass-approvals-and-sandbox",),
    },
    # Gemini CLI (>= 0.41: --skip-trust, else it refuses to run headless in a folder nobody trusted): without a
    # person to ask, a tool its approval mode does not approve is refused; default approves no edit and no shell.
    "gemini": {
        "reviewer": ("--skip-trust", "--approval-mode", "default"),
        "edit": (
            *("--skip-trust", "--approval-mode", "auto_edit"),
            *("--allowed-tools", "run_shell_command(git add),run_shell_command(git commit)"),
        ),
        "edit+shell": ("--skip-trust", "--approval-mode", "auto_edit", "--allowed-tools", "run_shell_command"),
        "full": ("--skip-trust", "--approval-mode", "yolo"),
    },
    # Aider edits the files it is given and commits itself; with --yes-always it still declines shell commands.
    "aider": {
        "reviewer": (
            *("--chat-mode", "ask", "--dry-run", "--no-auto-commits"),
            *("--no-suggest-shell-commands", "--no-auto-lint", "--no-detect-urls"),
        ),
        "edit": ("--no-suggest-shell-commands",),
        "edit+shell": (),
        "full": (),
    },
}
"""Each preset's flags per profile: ``reviewer`` (always read-only) and the worker's ``edit`` / ``edit+shell`` /
``full``. ``command`` and ``scripted`` agents run their own argv: no profile applies (docs/agents.md)."""

READ_ONLY = {
    "claude": "read-only (Read, Glob, Grep)",
    "codex": "read-only (sandbox read-only)",
    "gemini": "read-only (no edits, no shell)",
    "aider": "read-only (ask mode, dry run)",
}


def profile_key(agent: Agent, role: str) -> str | None:
    """The key of ``PERMISSION_FLAGS[agent.preset]`` this role runs with; None for an agent with its own argv."""
    if agent.preset not in PERMISSION_FLAGS:
        return None
    return "reviewer" if role == "reviewer" else agent.settings.permissions or DEFAULT_PERMISSIONS


def permission_profile(agent: Agent, role: str) -> str:
    """What ``role`` may do when run by ``agent``, in a few words (for ``plan`` and the TUI)."""
    key = profile_key(agent, role)
    if key is None:
        return "own argv (permissions not applied)"
    return READ_ONLY[agent.preset] if key == "reviewer" else key


def kept(line: str) -> str:
    """A line as the report keeps it: cut at ``KEPT_CHARS`` so the report stays a few MiB whatever is printed."""
    return line if len(line) <= KEPT_CHARS else line[:KEPT_CHARS] + f" … [cut {len(line) - KEPT_CHARS} chars]"


@dataclass(frozen=True, slots=True)
class AgentContext:
    """What one invocation is about."""

    node_id: str
    role: str  # "worker" | "reviewer"
    attempt: int
    map_path: Path
    workdir: Path
    prompt_file: Path
    message_file: Path | None = None
    session_id: str | None = None
    files: tuple[str, ...] = ()

    def values(self) -> dict[str, str]:
        return {
            "node_id": self.node_id,
            "map": str(self.map_path),
            "workdir": str(self.workdir),
            "prompt_file": str(self.prompt_file),
            "message_file": str(self.message_file) if self.message_file else "",
            "attempt": str(self.attempt),
        }


@dataclass(frozen=True, slots=True)
class Invocation:
    argv: list[str]
    stdin: Path | None = None
    resumed: bool = False


@dataclass
class AgentReport:
    """What an agent's output said, as far as its format tells."""

    session_id: str | None = None
    cost_usd: float | None = None
    turns: int | None = None
    steps: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    final_text: str = ""
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=KEPT_LINES))
    """The last lines the agent printed (bounded: an agent may print without end)."""

    def text(self) -> str:
        """The agent's answer: its final message when the format has one, else everything it printed."""
        return self.final_text or "\n".join(self.lines)


class OutputParser:
    """Plain text agents: every stdout line is part of the answer."""

    def __init__(self) -> None:
        self.report = AgentReport()

    def feed(self, stream: str, line: str) -> None:
        self.feed_lines(stream, [line])

    def feed_lines(self, stream: str, lines: list[str]) -> None:
        """Take a batch of complete lines from one stream (the process runtime hands them over per chunk)."""
        if stream == "stdout":
            self.report.lines.extend(map(kept, lines))


def _tool_summary(name: str, args: dict[str, Any]) -> tuple[str, str | None]:
    """A one-line description of a tool call, and the file it edits if any."""
    path = args.get("file_path") or args.get("path") or args.get("filePath")
    if name in ("Edit", "Write", "MultiEdit", "NotebookEdit", "write_file", "replace", "edit_file") and path:
        return f"{name} {path}", str(path)
    if "command" in args:
        return f"{name}: {str(args['command'])[:200]}", None
    return f"{name} {json.dumps(args, ensure_ascii=False)[:200]}", None


class JsonLinesParser(OutputParser):
    """Agents that print one JSON object per line; other stdout lines are kept as plain text."""

    def feed_lines(self, stream: str, lines: list[str]) -> None:
        if stream != "stdout":
            return
        text = self.report.lines
        for line in lines:
            if not line.lstrip().startswith("{"):  # cheaper than letting json fail on every text line
                text.append(kept(line))
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                text.append(kept(line))
                continue
            if isinstance(data, dict):
                self.handle(data)

    def handle(self, data: dict[str, Any]) -> None:
        raise NotImplementedError


class ClaudeStreamParser(JsonLinesParser):
    """``claude -p --output-format stream-json --verbose``: system/init, assistant, user, result lines."""

    def handle(self, data: dict[str, Any]) -> None:
        report = self.report
        kind = data.get("type")
        report.session_id = data.get("session_id") or data.get("sessionId") or report.session_id
        if kind == "assistant":
            for block in (data.get("message") or {}).get("content") or []:
                if block.get("type") == "tool_use":
                    step, path = _tool_summary(str(block.get("name")), block.get("input") or {})
                    report.steps.append(step)
                    if path and path not in report.files:
                        report.files.append(path)
                elif block.get("type") == "text" and block.get("text"):
                    report.lines.extend(map(kept, str(block["text"]).splitlines()))
        elif kind == "result":
            report.final_text = str(data.get("result") or "")
            report.cost_usd = data.get("total_cost_usd", report.cost_usd)
            report.turns = data.get("num_turns", report.turns)
            if data.get("is_error"):
                report.errors.append(str(data.get("subtype") or "error"))


class CodexJsonParser(JsonLinesParser):
    """``codex exec --json``: thread.started, item.* (agent_message, command_execution, file_change), turn.*"""

    def handle(self, data: dict[str, Any]) -> None:
        report = self.report
        kind = data.get("type")
        if kind in ("thread.started", "thread.resumed"):
            report.session_id = data.get("thread_id") or report.session_id
        elif kind == "item.completed":
            item = data.get("item") or {}
            item_type = item.get("type") or item.get("item_type")
            if item_type == "agent_message":
                report.final_text = str(item.get("text") or "")
            elif item_type == "command_execution":
                report.steps.append(f"run: {str(item.get('command'))[:200]}")
            elif item_type == "file_change":
                for change in item.get("changes") or []:
                    path = change.get("path")
                    if path and path not in report.files:
                        report.files.append(path)
                        report.steps.append(f"{change.get('kind', 'edit')} {path}")
        elif kind == "turn.completed":
            report.turns = (report.turns or 0) + 1
        elif kind in ("turn.failed", "error"):
            error = data.get("error") or {}
            report.errors.append(str(error.get("message") if isinstance(error, dict) else error or data))


class GeminiStreamParser(JsonLinesParser):
    """``gemini --output-format stream-json``: init, message, tool_use, tool_result, error, result."""

    def handle(self, data: dict[str, Any]) -> None:
        report = self.report
        kind = data.get("type")
        if kind == "init":
            report.session_id = data.get("session_id") or data.get("sessionId") or report.session_id
        elif kind == "tool_use":
            step, path = _tool_summary(
                str(data.get("tool_name") or data.get("name")), data.get("parameters") or data.get("args") or {}
            )
            report.steps.append(step)
            if path and path not in report.files:
                report.files.append(path)
        elif kind == "message" and data.get("role") == "assistant":
            report.final_text += str(data.get("content") or "")
        elif kind == "error":
            report.errors.append(str(data.get("message") or data))


@dataclass(frozen=True)
class Agent:
    """One configured agent. ``command(ctx)`` builds the invocation; ``parser()`` reads its output."""

    preset: str
    settings: AgentSettings

    @property
    def resumable(self) -> bool:
        """Whether a fix task can go back into the same conversation (else: a fresh run with history)."""
        return self.preset in ("claude", "codex", "gemini")

    def parser(self) -> OutputParser:
        return {"claude": ClaudeStreamParser, "codex": CodexJsonParser, "gemini": GeminiStreamParser}.get(
            self.preset, OutputParser
        )()

    def command(self, ctx: AgentContext) -> Invocation:
        s = self.settings
        model = ["--model", s.model] if s.model else []
        resume = ctx.session_id is not None and self.resumable and ctx.message_file is not None
        key = profile_key(self, ctx.role)
        profile = list(PERMISSION_FLAGS[self.preset][key]) if key is not None else []
        if self.preset == "claude":
            argv = ["claude", "-p", "--output-format", "stream-json", "--verbose", *model, *profile]
            if resume:
                argv += ["--resume", str(ctx.session_id)]
            return Invocation([*argv, *s.args], ctx.message_file if resume else ctx.prompt_file, resume)
        if self.preset == "codex":
            argv = ["codex", "exec", "--json", *profile, "--skip-git-repo-check", *model, *s.args]
            if resume:
                argv += ["resume", str(ctx.session_id)]
            return Invocation([*argv, "-"], ctx.message_file if resume else ctx.prompt_file, resume)
        if self.preset == "gemini":
            argv = ["gemini", "--output-format", "stream-json", *profile, *model, *s.args]
            if resume:
                argv += ["--resume", str(ctx.session_id)]
            return Invocation([*argv, "--prompt", INSTRUCTION], ctx.message_file if resume else ctx.prompt_file, resume)
        if self.preset == "aider":
            argv = ["aider", *profile, "--yes-always", "--no-pretty", "--no-stream", "--no-check-update", *model]
            argv += [*s.args, "--message-file", str(ctx.prompt_file), *ctx.files]
            return Invocation(argv)
        if self.preset == "scripted":
            return Invocation([sys.executable, "-m", "foreman_tui.agents.scripted", *s.args])
        template = s.argv or []
        return Invocation([fill(part, ctx.values()) for part in template])


def fill(part: str, values: dict[str, str]) -> str:
    """Replace ``{placeholder}``s in one argv element. Values stay one argument each: no shell is involved."""
    for key in PLACEHOLDERS:
        part = part.replace("{" + key + "}", values[key])
    return part


def make_agent(settings: AgentSettings) -> Agent:
    return Agent(settings.preset, settings)


def missing_program(agent: Agent, workdir: Path, path: str) -> str | None:
    """The program ``agent`` would start, when it cannot be found: on ``path`` (a ``PATH`` value) for a bare
    name, relative to ``workdir`` for a relative path; None when it is there."""
    probe = AgentContext("node", "worker", 1, workdir / "map.json", workdir, workdir / "prompt.md")
    program = agent.command(probe).argv[0]
    if "/" in program:
        found = Path(program) if Path(program).is_absolute() else workdir / program
        return None if found.is_file() and os.access(found, os.X_OK) else program
    return None if shutil.which(program, path=path) else program
