"""What a run refuses before it starts anything (exit 2, nothing written): a map git does not have, a worker
or reviewer program that cannot be found, a sandbox asked for where bubblewrap does not work. Each refusal says
what is wrong and the lines that fix it."""

from __future__ import annotations

import os
from pathlib import Path

from ..agents.presets import Agent, missing_program, profile_key
from ..config import Settings
from ..map.errors import UsageError
from .environment import ProjectPython
from .gitrepo import Repo
from .sandbox import sandbox_problem

ALTERNATIVES = '"claude", "codex", "gemini", "aider", or "command" with argv = ["your-agent", "{prompt_file}"]'


class PreflightError(UsageError):
    """A run that would fail later, refused up front."""


def agents_path(python: ProjectPython, settings: Settings) -> str:
    """The ``PATH`` the agents will have (``environment.command_env`` builds the same)."""
    base = settings.checks.env.get("PATH", os.environ.get("PATH", ""))
    if python.path is None or "PATH" in settings.checks.env:
        return base
    return os.pathsep.join([str(python.path.parent), base])


def preflight(repo: Repo, map_path: Path, settings: Settings, python: ProjectPython, agents: dict[str, Agent]) -> None:
    rel = map_path.relative_to(repo.root).as_posix()
    if repo.file_at("HEAD", map_path) is None:
        raise PreflightError(
            f"{rel} is not committed in {repo.root}: the workers' trees start from a commit. "
            f"Commit it first: git add {rel} && git commit -m 'the algorithm map'"
        )
    path = agents_path(python, settings)
    for role, agent in agents.items():
        if settings.executor.kind != "local":
            break  # the agents run on the executor's machines, with their PATH (docs/scale-out.md)
        program = missing_program(agent, map_path.parent, path)
        if program is None:
            continue
        default = ", the default" if role == "reviewer" and "reviewer" not in settings.model_fields_set else ""
        where = "relative to the project" if "/" in program else "on PATH"
        raise PreflightError(
            f'the {role}\'s program `{program}` (preset "{agent.preset}"{default}) is not found {where}. '
            f"Install it, or choose another {role} in foreman.toml:\n"
            f"    [{role}]\n    preset = ...   # {ALTERNATIVES}"
        )
    worker = agents.get("worker")
    confined = worker is not None and profile_key(worker, "worker") in ("edit", "edit+shell")
    if confined and settings.worker.preset == "codex" and settings.worker.sandbox != "bwrap":
        raise PreflightError(
            "a codex worker cannot commit in its own sandbox (`--sandbox workspace-write` makes git's folder "
            "read-only), so every attempt would fail. Choose one in foreman.toml:\n"
            '    [worker]\n    sandbox = "bwrap"     # foreman\'s sandbox: writes its tree and git only '
            "(docs/agents.md#permissions)\n"
            '    permissions = "full"  # or: no sandbox at all (in a container or a VM)'
        )
    sandboxed = [
        section
        for section, chosen in (
            ("checks", settings.checks.sandbox),
            ("worker", settings.worker.sandbox),
            ("reviewer", settings.reviewer.sandbox),
        )
        if chosen == "bwrap"
    ]
    problem = sandbox_problem() if sandboxed else None
    if problem is not None:
        asked = " and ".join(f'[{section}] sandbox = "bwrap"' for section in sandboxed)
        raise PreflightError(f"{asked} in foreman.toml, but {problem}")
