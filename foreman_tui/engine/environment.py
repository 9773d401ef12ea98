"""The environment the project's own commands run in: checks, the benchmark and the agents.

They run with the *project's* Python, not foreman's: ``[checks] python`` in ``foreman.toml`` when set, else the
project's ``.venv`` when it has one, else ``PATH`` as the person has it. When an interpreter is chosen, its folder
goes first on ``PATH`` (so a venv's ``pytest`` is found) behind a small folder of shims in which ``python`` and
``python3`` both run exactly that interpreter. ``[checks] env`` adds variables; foreman's own ``FOREMAN_*``
settings never leak into a child.
"""

from __future__ import annotations

import fnmatch
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..config import CheckSettings, configured_python
from ..map.store import atomic_write

VENV = ".venv"
SECRET_PATTERNS = (
    "*_API_KEY",
    "*_APIKEY",
    "*_API_KEY_*",
    "*_TOKEN",
    "*_TOKEN_*",
    "*_SECRET",
    "*_SECRET_*",
    "*_SECRETS",
    "*SECRET_KEY*",
    "*PASSWORD*",
    "*PASSWD*",
    "*_CREDENTIALS",
    "*_PRIVATE_KEY",
    "*_ACCESS_KEY*",
    "*_AUTH",
    "*_DSN",
    "DATABASE_URL",
    "AWS_*",
    "AZURE_*",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GH_*",
    "SSH_AUTH_SOCK",
    "GPG_AGENT_INFO",
    "NETRC",
)
"""Environment variables map commands never get (``fnmatch`` patterns, any case): the person's keys, tokens and
passwords, and the sockets that hand out their SSH or GPG keys. ``[checks] secrets`` adds patterns,
``[checks] pass_env`` lets named ones through."""


@dataclass(frozen=True, slots=True)
class ProjectPython:
    """The interpreter the project's commands get as ``python``; ``path`` None means whatever ``PATH`` finds."""

    path: Path | None
    source: str

    def describe(self) -> str:
        if self.path is None:
            return "`python` is whatever PATH finds (no [checks] python in foreman.toml, no .venv in the project)"
        return f"`python` is {self.path} ({self.source})"


def project_python(project_dir: Path, checks: CheckSettings) -> ProjectPython:
    """Which Python the project's commands run with (``load_settings`` checked a configured one exists)."""
    configured = configured_python(project_dir, checks)
    if configured is not None:
        return ProjectPython(configured, "foreman.toml [checks] python")
    venv = project_dir / VENV / "bin" / "python"
    if venv.is_file() and os.access(venv, os.X_OK):
        return ProjectPython(venv, f"the project's {VENV}")
    return ProjectPython(None, "PATH")


def _write_shims(folder: Path, interpreter: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    script = f'#!/bin/sh\nexec {shlex.quote(str(interpreter))} "$@"\n'.encode()
    for name in ("python", "python3"):
        shim = folder / name
        if not shim.is_file() or shim.read_bytes() != script:
            atomic_write(shim, script)
        shim.chmod(0o755)


def command_env(
    python: ProjectPython, checks: CheckSettings, shims: Path, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment for the project's commands (``base`` defaults to foreman's own)."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("FOREMAN_")}
    env["PYTHONUNBUFFERED"] = "1"
    if python.path is not None:
        _write_shims(shims, python.path)
        folder = python.path.parent
        env["PATH"] = os.pathsep.join([str(shims), str(folder), env.get("PATH", "")])
        if (folder.parent / "pyvenv.cfg").is_file():
            env["VIRTUAL_ENV"] = str(folder.parent)
    env.update(checks.env)
    return env


def is_secret(name: str, checks: CheckSettings) -> bool:
    """Whether a variable of this name is kept from map commands."""
    upper = name.upper()
    if any(fnmatch.fnmatchcase(upper, pattern.upper()) for pattern in checks.pass_env):
        return False
    return any(fnmatch.fnmatchcase(upper, pattern.upper()) for pattern in (*SECRET_PATTERNS, *checks.secrets))


def without_secrets(env: Mapping[str, str], checks: CheckSettings) -> dict[str, str]:
    """``env`` minus every secret (``[checks] env`` values stay: the project set them itself)."""
    return {k: v for k, v in env.items() if k in checks.env or not is_secret(k, checks)}
