"""Agents as command templates: how to start each preset, how to resume it, and how to read its output.

Every agent gets the stable interface of SPEC §5: the ``FOREMAN_*`` environment (set by the supervisor),
the same values as ``{placeholders}`` in an argv template, stdin that is never the terminal. Prompts reach
an agent through a file or its stdin, never through a shell string.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from ..config import AgentSettings, Permissions
from .output import (
    AgentReport,
    ClaudeStreamParser,
    CodexJsonParser,
    GeminiStreamParser,
    OutputParser,
    RateLimit,
    Tokens,
)

__all__ = ["AgentReport", "OutputParser", "RateLimit", "Tokens"]

PLACEHOLDERS = ("node_id", "map", "workdir", "prompt_file", "message_file", "attempt")
INSTRUCTION = "Do the task described on standard input."


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
    # Codex: the sandbox its commands run in (read-only: nothing written, no network; workspace-write: the tree,
    # but never a .git folder, nor the git folder a worktree's .git names: a worker there cannot commit; so a codex
    # worker runs in foreman's sandbox instead — see CODEX_IN_BWRAP — and foreman refuses it without one).
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

CODEX_IN_BWRAP = ("--dangerously-bypass-approvals-and-sandbox",)
"""A codex ``edit``/``edit+shell`` worker inside ``[worker] sandbox = "bwrap"``: foreman's sandbox lets it write its
tree and git's folder (so it can commit) and nothing else; codex's own sandbox would forbid the commit and cannot
nest inside bubblewrap."""

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
    budget_usd: float | None = None
    """What this call may still spend, when a budget is set: CLIs with a per-call cap get it."""

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
        if self.preset == "codex" and key in ("edit", "edit+shell") and s.sandbox == "bwrap":
            profile = list(CODEX_IN_BWRAP)
        if self.preset == "claude":
            argv = ["claude", "-p", "--output-format", "stream-json", "--verbose", *model, *profile]
            if resume:
                argv += ["--resume", str(ctx.session_id)]
            if ctx.budget_usd is not None:
                argv += ["--max-budget-usd", f"{max(ctx.budget_usd, 0.0):.4f}"]
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
            # Unattended: no .gitignore edit in the node's tree, no release notes or model pages opened in a browser.
            argv += ["--no-gitignore", "--no-show-release-notes", "--no-show-model-warnings"]
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
