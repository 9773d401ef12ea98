"""Bubblewrap (``bwrap``) around the project's commands: ``sandbox = "bwrap"`` in ``foreman.toml``.

What a sandboxed command gets:
- the whole file system read-only; write access only to the folders it is given (a node's tree) and to a
  private, empty ``/tmp`` (``TMPDIR`` points there; it is thrown away when the command ends). ``/var/tmp`` and
  ``/run`` are private and empty too, so the sockets there (the SSH and GPG agents, the session bus that can
  start programs outside the sandbox, Docker) cannot be reached. A project that itself lives under one of these
  folders stays visible, read-only, with the rest of the top-level entry that holds it (``/tmp/work/…``);
- with ``network=False`` (checks, the benchmark): no network at all, not even the loopback of the machine;
- its own process table (a pid namespace): it sees, signals and reads the environment of no other process of
  the person's. foreman still finds and stops it: its processes keep foreman's process group and mark
  (``reaper.py`` reads ``/proc`` from outside, where they are ordinary processes), and when the sandbox's first
  process ends or foreman stops it, the kernel ends everything left inside; if foreman dies, so does the sandbox
  (``--die-with-parent``). No ``--new-session``: foreman already starts each child in a session of its own
  without a terminal, and a new one would take the command out of the group foreman stops.

What it does not do: hide files from reading (the person's home, keys and configuration stay readable: it stops
writes and the network, not reads, so a command that writes into its own tree can copy what it read there);
limit CPU, memory or disk; contain a kernel exploit; close sockets outside ``/tmp``, ``/var/tmp`` and ``/run``
(one under the home folder stays reachable); and with ``network=True`` (agents, which need their model) it
leaves the network open. Linux only, where unprivileged user namespaces are allowed (``sandbox_problem``).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

PRIVATE = ("/tmp", "/var/tmp", "/run")
"""Folders replaced by an empty private tmpfs: shared temp space and the sockets of the person's daemons."""
RESOLV_CONF = Path("/etc/resolv.conf")
PROBE_TIMEOUT = 20.0
INSTALL = "install bubblewrap: apt-get install bubblewrap"
FOREMANS_OWN = (Path(sys.prefix), Path(sys.base_prefix), Path(__file__).resolve().parents[2])
"""foreman's interpreter and its own source: shown read-only when they lie in a private folder (a checkout under
``/tmp``), since the commands it starts (the ``python`` shims, the scripted agent) run them."""


def sandbox_prefix(writable: Sequence[Path], *, network: bool, readable: Sequence[Path] = ()) -> list[str]:
    """The argv that runs a command in the sandbox: ``[*sandbox_prefix(...), *argv]``. ``writable``: the folders
    the command may write (symlinks resolved; a missing one is left out). ``readable``: paths it must see that may
    lie in a private folder (a Python under ``/tmp`` for a project elsewhere), shown read-only, symlinks resolved.
    Its working directory stays the one it is started in (bwrap keeps it when it is visible in the sandbox: give
    the tree as a writable folder)."""
    args = [_bwrap() or "bwrap", "--die-with-parent", "--unshare-pid", "--unshare-ipc"]
    if not network:
        args.append("--unshare-net")
    args += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    private = [Path(p).resolve() for p in PRIVATE if os.path.isdir(p)]
    for folder in private:
        args += ["--tmpfs", str(folder)]
    rw = _existing(writable)
    own = [p for p in _existing(FOREMANS_OWN) if any(p.is_relative_to(folder) for folder in private)]
    ro = _existing([*readable, *own, RESOLV_CONF] if network else [*readable, *own])  # lookups read resolv.conf
    for path in [*_hidden_entries(rw, private), *ro]:
        args += ["--ro-bind", str(path), str(path)]
    for path in rw:
        args += ["--bind", str(path), str(path)]
    return [*args, "--setenv", "TMPDIR", "/tmp", "--"]


def _existing(paths: Sequence[Path]) -> list[Path]:
    """The paths that exist, symlinks resolved, each once."""
    return list(dict.fromkeys(p for p in (Path(path).resolve() for path in paths) if p.exists()))


def _hidden_entries(paths: Sequence[Path], private: Sequence[Path]) -> list[Path]:
    """The top-level entries of the private folders that hold one of ``paths``: shown again, read-only, so a
    project under ``/tmp`` keeps its repository, its ``.venv`` and the rest of its tree. A path that is itself
    a private folder needs nothing: it is bound over the tmpfs whole."""
    entries: list[Path] = []
    for path in paths:
        for folder in private:
            if path != folder and path.is_relative_to(folder):
                entry = folder / path.relative_to(folder).parts[0]
                if entry.exists() and entry not in entries:
                    entries.append(entry)
    return entries


@functools.cache
def _bwrap() -> str | None:
    return shutil.which("bwrap")


@functools.cache
def sandbox_problem() -> str | None:
    """None when bubblewrap works here; else why not and what to do. Probed once per process with the flags
    ``sandbox_prefix`` uses: bwrap must be on ``PATH`` and really start a sandbox."""
    bwrap = _bwrap()
    if bwrap is None:
        return f'bubblewrap (`bwrap`) is not on PATH; {INSTALL} (or set sandbox = "none")'
    probe = [*sandbox_prefix([], network=False), "true"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=PROBE_TIMEOUT, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f'bubblewrap ({bwrap}) cannot be started: {exc}. Fix it, or set sandbox = "none"'
    if done.returncode == 0:
        return None
    said = done.stderr.strip() or f"exit status {done.returncode}"
    return (
        f"bubblewrap ({bwrap}) is installed but cannot make a sandbox here: {said}. It needs unprivileged user "
        "namespaces (sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces > 0; on Ubuntu 24.04 "
        'an AppArmor profile allowing bwrap), or a set-uid bwrap; or set sandbox = "none"'
    )


def agent_writable(tree: Path, git_dir: Path) -> list[Path]:
    """What a sandboxed agent may write: its whole worktree (found from ``tree``, the project folder in it), git's
    folder (its commits land there), and its CLI's own state in the home folder — never foreman's approvals."""
    root = next((parent for parent in (tree, *tree.parents) if (parent / ".git").exists()), tree)
    home = Path.home()
    cli_state = [home / name for name in (".claude", ".claude.json", ".codex", ".gemini", ".aider")]
    moved = [Path(os.environ[name]) for name in ("CODEX_HOME", "CLAUDE_CONFIG_DIR") if os.environ.get(name)]
    return [root, git_dir, *cli_state, *moved]
