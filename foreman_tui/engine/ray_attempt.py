"""One attempt on a Ray node: the actor that clones the tree, runs the agent under a guard and serves long polls.

This module runs ON the Ray nodes. It is shipped by value (``ray.cloudpickle.register_pickle_by_value``), and the
nodes need not have foreman installed, so it imports the standard library only (``ray`` inside a method, for the
node id). The process tree on the node::

    ray::AttemptActor          the Ray worker; keeps the WRITE end of the lifeline pipe (and no one else does)
      launcher                 python -c GUARD_SOURCE: forks the guard and exits at once (the double fork)
    guard                      setsid, nobody's child of the worker; holds the READ end of the lifeline
      └─ agent                 start_new_session: its process group is its pid; it and all it spawns

Why the guard: when Ray kills an actor (``ray.kill``, a node removed, a raylet gone) it kills the worker and at
best its direct children; the agent's own children survive it, and so does the clone. A guard that is the worker's
direct child is killed with it (measured), hence the double fork; and since the guard is then nobody's child of
the worker, it learns of the worker's death from the lifeline: EOF on the read end means that every holder of the
write end is gone, whatever way it died. The guard then stops the agent's process group and the processes that
carry the attempt's mark (``mark_var=mark`` in their environment, found in ``/proc/*/environ``: descendants that
left the group), SIGTERM, ``grace`` seconds, SIGKILL, and removes the attempt folder. When the agent exits on its
own, the guard clears what it left, writes ``exit`` and waits for the lifeline still: the folder (the clone, whose
HEAD the supervisor fetches until the end) goes when the actor goes, by ``cleanup()`` or by its death.

The attempt folder (``foreman-ray-<name>-*`` in the node's temp dir): ``work/`` the clone, ``files/`` the files
the command names (``{{files}}``), ``stdout.log`` and ``stderr.log``, ``pid`` (the agent's), ``exit`` (its status
as subprocess gives it: negative for a signal), ``guard.log`` (the guard's own errors).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

MAX_LINES = 20_000
"""Output lines kept in memory; older ones are counted as ``dropped`` to a poll that asks for them."""
REPLY_LINES = 5_000
"""At most this many lines in one poll reply (the next poll takes the rest)."""
TICK = 0.02
"""Seconds between two reads of the logs; HEAD is checked every ``HEAD_EVERY`` ticks (0.1 s)."""
HEAD_EVERY = 5
LONG_PARTIAL = 1 << 20
"""A line without its newline is handed on once this long."""
START_TIMEOUT = 60.0
RAY_WORKER_VARS = {"PYTHONPATH", "SPT_NOENV"}
"""Besides ``RAY_*``: what a Ray worker's environment has that the node's has not (and the agent must not have)."""

GUARD_SOURCE = (Path(__file__).parent / "ray_guard.py").read_text(encoding="utf-8")
"""The guard's program (``ray_guard.py``), read here and shipped with this module: the node runs it with
``python -I -c``, so it needs nothing installed there."""


class AttemptActor:
    """One attempt: ``ray.remote(AttemptActor)`` with ``max_concurrency=4``; every method is thread-safe."""

    def __init__(self, spec: dict[str, Any]) -> None:
        began = time.monotonic()
        self._spec = spec
        self._base: str = spec["head"]
        self._cond = threading.Condition()
        self._stop_lock = threading.Lock()
        self._wake = threading.Event()
        self._lines: deque[tuple[str, str]] = deque(maxlen=MAX_LINES)
        self._total = 0
        self._head = self._base
        self._stamp: tuple[Any, ...] | None = None
        self._exit_code: int | None = None
        self._done = False
        self._error: str | None = None
        self._lifeline: int | None = None
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", str(spec["name"]))[:60]
        self._folder = Path(tempfile.mkdtemp(prefix=f"foreman-ray-{safe}-"))
        self._work = self._folder / "work"
        self._files = self._folder / "files"
        try:
            self._clone(spec)
            self._clone_s = time.monotonic() - began
            self._node_id = _node_id()
            self._hostname = socket.gethostname()
            self._started = time.time()
            self._pid, self._guard_pid = self._launch(spec)
        except BaseException:
            self._close_lifeline()
            shutil.rmtree(self._folder, ignore_errors=True)
            raise
        self._watcher = threading.Thread(target=self._watch, name="attempt-watch", daemon=True)
        self._watcher.start()

    # ------------------------------------------------------------------------------------------ the calls

    def info(self) -> dict[str, Any]:
        ids = {"node_id": self._node_id, "hostname": self._hostname, "pid": self._pid, "guard_pid": self._guard_pid}
        where = {"work": str(self._work), "folder": str(self._folder)}
        return ids | where | {"started": self._started, "clone_s": self._clone_s}

    def poll(self, since: int, known_head: str | None, timeout: float) -> dict[str, Any]:
        """Wait up to ``timeout`` s for lines from index ``since``, a HEAD other than ``known_head``, or the end."""
        since = max(0, int(since))
        with self._cond:
            self._cond.wait_for(
                lambda: self._total > since or self._head != known_head or self._done, max(0.0, timeout)
            )
            first = self._total - len(self._lines)
            start = max(since, first)
            lines = [list(item) for item in itertools.islice(self._lines, start - first, start - first + REPLY_LINES)]
            end = start + len(lines)
            head, exit_code = self._head, self._exit_code
            done = self._done and end >= self._total
        bundle = None
        if head != known_head and head != self._base:
            bundle, head = self._bundle(head)
        reply = {"lines": lines, "next": max(end, since), "dropped": max(0, first - since), "head": head}
        reply |= {"bundle": bundle, "exit_code": exit_code, "done": done}
        if self._error:
            reply["error"] = self._error
        return reply

    def stop(self, grace: float) -> dict[str, Any]:
        """SIGTERM to the agent's group and marked processes, ``grace`` s for the exit, then SIGKILL."""
        killed = False
        with self._stop_lock:
            if not self._wait_exit(0):
                self._signal(signal.SIGTERM)
                if not self._wait_exit(grace):
                    killed = True
                    self._signal(signal.SIGKILL)
                    self._wait_exit(8.0)  # the guard reaps, clears the rest, writes ``exit``
        with self._cond:
            return {"exit_code": self._exit_code, "killed": killed}

    def cleanup(self) -> None:
        """Stop what is left, let the guard go (lifeline closed) and remove the attempt folder."""
        with contextlib.suppress(Exception):
            self.stop(0.0)
        self._wake.set()
        if self._watcher.is_alive() and self._watcher is not threading.current_thread():
            self._watcher.join(5.0)
        self._close_lifeline()
        deadline = time.monotonic() + 5.0
        while self._folder.exists() and time.monotonic() < deadline:  # the guard may be removing it as well
            shutil.rmtree(self._folder, ignore_errors=True)
            if self._folder.exists():
                time.sleep(0.05)
        with self._cond:
            self._cond.notify_all()

    # ----------------------------------------------------------------------------------------- the start

    def _clone(self, spec: dict[str, Any]) -> None:
        self._files.mkdir()
        for name, data in (spec.get("files") or {}).items():
            if not name or "/" in name or "\0" in name or name in (".", "..") or ".." in name:
                raise ValueError(f"not a plain file name: {name!r}")
            (self._files / name).write_bytes(data)
        bundle = self._folder / "base.bundle"
        bundle.write_bytes(spec["bundle"])
        _git(self._folder, "clone", "-q", "--no-checkout", str(bundle), "work")
        _git(self._work, "checkout", "-q", "-B", spec["branch"], spec["head"])
        _git(self._work, "remote", "remove", "origin")  # it names the bundle, which goes now
        bundle.unlink()

    def _launch(self, spec: dict[str, Any]) -> tuple[int, int]:
        """Start the guard (and through it the agent); returns the agent's and the guard's pids."""
        tokens = {"{{work}}": str(self._work), "{{files}}": str(self._files)}

        def filled(text: str) -> str:
            for token, value in tokens.items():
                text = text.replace(token, value)
            return text

        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_") and k not in RAY_WORKER_VARS}
        if env.get("PYTHONBREAKPOINT", "").startswith("ray."):  # Ray's remote pdb: an agent's breakpoint() would hang
            del env["PYTHONBREAKPOINT"]
        env.update({k: filled(str(v)) for k, v in (spec.get("env") or {}).items()})
        env |= {"FOREMAN_EXECUTOR": "ray", "FOREMAN_HOST": self._node_id, "FOREMAN_HOSTNAME": self._hostname}
        if spec.get("mark_var") and spec.get("mark"):
            env[spec["mark_var"]] = spec["mark"]
        stdin = spec.get("stdin")
        if stdin is not None and stdin not in (spec.get("files") or {}):
            raise ValueError(f"stdin {stdin!r} is not one of the files")
        subdir = str(spec.get("subdir") or ".")
        if subdir.startswith("/") or ".." in Path(subdir).parts:
            raise ValueError(f"not a folder inside the tree: {subdir!r}")
        read_end, self._lifeline = os.pipe()
        config = {"folder": str(self._folder), "lifeline": read_end, "env": env, "cwd": str(self._work / subdir)}
        config |= {"argv": [filled(str(a)) for a in spec["argv"]], "grace": float(spec.get("grace", 10.0))}
        config |= {"stdin": str(self._files / stdin) if stdin is not None else None}
        config |= {"mark_var": spec.get("mark_var") or "", "mark": spec.get("mark") or ""}
        try:
            with open(self._folder / "guard.log", "ab") as log:
                launcher = subprocess.Popen(
                    [sys.executable, "-I", "-c", GUARD_SOURCE, "foreman-ray-guard", str(self._folder)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    pass_fds=(read_end,),
                    cwd=self._folder,
                )
            try:
                out, _ = launcher.communicate(json.dumps(config).encode(), timeout=START_TIMEOUT)
            except subprocess.TimeoutExpired:
                launcher.kill()
                launcher.wait()
                raise RuntimeError("the attempt's guard did not report") from None
        finally:
            os.close(read_end)
        try:
            report = json.loads(out)
        except ValueError:
            log_text = (self._folder / "guard.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the attempt's guard failed: {log_text.strip() or out!r}") from None
        if "error" in report:
            raise RuntimeError(f"the agent did not start: {report['error']}")
        return int(report["pid"]), int(report["guard"])

    # ----------------------------------------------------------------------------------------- the watch

    def _watch(self) -> None:
        """Tail both logs, check HEAD every 0.1 s and watch for ``exit``; wake the polls on every change."""
        tails = {"stdout": _Tail(self._folder / "stdout.log"), "stderr": _Tail(self._folder / "stderr.log")}
        try:
            for n in itertools.count():
                code = self._read_exit()
                if code is None and n % 50 == 49 and not _alive(self._guard_pid):
                    code = self._read_exit()
                    if code is None:  # killed from outside: what it guarded goes too
                        self._error = "the attempt's guard process vanished"
                        self._signal(signal.SIGKILL)
                ended = code is not None or self._error is not None
                new = [(stream, line) for stream, tail in tails.items() for line in tail.read(final=ended)]
                head = self._rev_parse(force=ended or n % 100 == 0) if ended or n % HEAD_EVERY == 0 else None
                with self._cond:
                    changed = bool(new) or ended or (head is not None and head != self._head)
                    self._lines.extend(new)
                    self._total += len(new)
                    if head is not None:
                        self._head = head
                    if ended:
                        self._exit_code, self._done = code, True
                    if changed:
                        self._cond.notify_all()
                if ended or self._wake.wait(TICK):
                    return
        finally:
            for tail in tails.values():
                tail.close()

    def _read_exit(self) -> int | None:
        try:
            return int((self._folder / "exit").read_text().strip())
        except (OSError, ValueError):
            return None

    def _rev_parse(self, force: bool = False) -> str | None:
        """HEAD's commit. git is asked only when HEAD, its branch's ref or packed-refs changed on disk (or every
        2 s, in case a file system's clock is coarse): a ``git`` process ten times a second per attempt would
        cost a node a good part of a core when many attempts run on it."""
        stamp = _ref_stamp(self._work / ".git")
        if not force and stamp is not None and stamp == self._stamp:
            return self._head
        try:
            result = _run(self._work, "rev-parse", "HEAD")
        except OSError:  # the folder is gone
            return None
        self._stamp = stamp
        return (result.stdout.strip() or None) if result.returncode == 0 else None

    def _bundle(self, head: str) -> tuple[bytes | None, str]:
        """``HEAD ^base`` as a bundle, and the sha it holds; (None, head) when git refuses (an empty range)."""
        path = self._folder / f"poll-{uuid.uuid4().hex}.bundle"
        try:
            if _run(self._work, "bundle", "create", "-q", str(path), "HEAD", f"^{self._base}").returncode != 0:
                return None, head
            sha = (_run(self._work, "bundle", "list-heads", str(path), "HEAD").stdout.split() or [head])[0]
            return path.read_bytes(), sha
        except OSError:  # the folder is gone
            return None, head
        finally:
            with contextlib.suppress(OSError):
                path.unlink()

    # ------------------------------------------------------------------------------------------ the stop

    def _wait_exit(self, seconds: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._done, max(0.0, seconds))

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self._pid, sig)
        mark_var, mark = self._spec.get("mark_var"), self._spec.get("mark")
        for pid in _marked(f"{mark_var}={mark}") if mark_var and mark else []:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)

    def _close_lifeline(self) -> None:
        with self._stop_lock:
            fd, self._lifeline = self._lifeline, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


class _Tail:
    """New complete lines of a growing file (the last, partial one kept back until its newline or the end)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self.partial = b""

    def read(self, final: bool = False) -> list[str]:
        if self.fd is None:
            try:
                self.fd = os.open(self.path, os.O_RDONLY)
            except OSError:
                return []
        chunks = [self.partial]
        with contextlib.suppress(OSError):
            while chunk := os.read(self.fd, 1 << 16):
                chunks.append(chunk)
        *lines, self.partial = b"".join(chunks).split(b"\n")
        if self.partial and (final or len(self.partial) >= LONG_PARTIAL):
            lines.append(self.partial)
            self.partial = b""
        return [line.decode("utf-8", errors="replace") for line in lines]

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)


def _git(cwd: Path, *args: str) -> None:
    result = _run(cwd, *args)
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args[:2])} failed: {result.stderr.strip() or result.returncode}")


def _ref_stamp(git: Path) -> tuple[Any, ...] | None:
    """When HEAD, the ref it names and packed-refs last changed (None: cannot tell, ask git)."""
    try:
        head = (git / "HEAD").read_text(encoding="utf-8").strip()
        stamp: list[Any] = [head]
        names = [git / "HEAD", git / "packed-refs"]
        if head.startswith("ref: "):
            names.append(git / head[5:])
        for path in names:
            try:
                stat = path.stat()
                stamp.append((stat.st_mtime_ns, stat.st_size, stat.st_ino))
            except FileNotFoundError:
                stamp.append(None)
    except OSError:
        return None
    return tuple(stamp)


def _node_id() -> str:
    try:
        import ray

        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # not in a Ray worker (a direct test)
        return ""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not: pid 1 may take a second to reap one)."""
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def _marked(entry: str) -> list[int]:
    """Live processes (not this one, not zombies) whose starting environment holds ``entry`` exactly."""
    needle = b"\0" + entry.encode() + b"\0"
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            environ = b"\0" + Path(f"/proc/{name}/environ").read_bytes()
            state = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != b"Z" and needle in environ:
            found.append(int(name))
    return found
