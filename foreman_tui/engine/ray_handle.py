"""The supervisor's handle on one attempt running as a Ray actor (``ray_executor.py`` makes them; the actor is
``ray_attempt.py``). To the engine it is a process like any other (``executor.Attempt``): it starts the actor with
the node's tree as a git bundle, follows it by long polls (output lines into the node's log and the TUI, each new
head fetched into the node's worktree), stops it, hands it off, and takes one over that a last run left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .executor import AttemptSpec, ExecutorError
from .process import LINE_LIMIT, ProcessResult
from .reaper import MARK_VAR
from .runstate import REMOTE

if TYPE_CHECKING:
    from .ray_executor import RayExecutor

log = logging.getLogger(__name__)
POLL_WAIT = 1.0
"""Seconds one long poll may wait on the actor for something new."""
WORK, FILES = "{{work}}", "{{files}}"


class RayAttempt:
    """One attempt's actor, as the engine sees a process (``executor.Attempt``)."""

    def __init__(self, executor: RayExecutor, spec: AttemptSpec) -> None:
        self.executor = executor
        self.spec = spec
        self.log_path = spec.log
        self.pid: int | None = None
        self.name = ""
        self.base = ""
        self.host = ""
        self._actor: Any = None
        self._next = 0
        self._head = ""
        self._exit: int | None = None
        self._lost = ""
        self._started = 0.0
        self._ended = asyncio.Event()
        self._follower: asyncio.Task[None] | None = None
        self._stopping = False
        self._handed_off = False
        self._finished = False

    # ------------------------------------------------------------------------------- the engine's view

    @property
    def running(self) -> bool:
        return self._actor is not None and not self._ended.is_set()

    @property
    def returncode(self) -> int | None:
        return self._exit

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started if self._started else 0.0

    def record(self) -> dict[str, Any]:
        s = self.spec
        remote: dict[str, Any] = {"executor": "ray", "name": self.name, "namespace": self.executor.namespace}
        remote |= {"base": self.base, "node": s.node, "role": s.role, "attempt": s.attempt}
        remote |= {"log": str(s.log), "cwd": str(s.cwd)}
        return {REMOTE: remote, "host": self.host}

    async def start(self) -> int:
        import ray

        s = self.spec
        self._started = time.monotonic()
        s.log.parent.mkdir(parents=True, exist_ok=True)
        self.name = f"{s.node}.{s.role}#{s.attempt}.{uuid.uuid4().hex[:6]}"
        payload = await asyncio.to_thread(self._payload)
        actor = self.executor.create(self.name, payload)
        self._actor = actor
        wait = self.executor.settings.start_timeout
        try:  # constructed means cloned, the agent started under its guard
            info = await asyncio.wait_for(actor.info.remote(), wait)
        except TimeoutError:
            self.executor.kill(self.name)
            asked = self.executor.options(self.name)
            need = ", ".join(f"{k}={asked[k]}" for k in ("num_cpus", "memory", "resources") if k in asked)
            raise ExecutorError(f"no Ray node took it within {wait:g}s (it asks {need})") from None
        except ray.exceptions.RayError as exc:
            self.executor.kill(self.name)
            raise ExecutorError(f"its Ray actor did not start: {short(exc)}") from None
        except asyncio.CancelledError:
            self.executor.kill(self.name)  # stopped while it waited for a node: it never ran
            raise
        self.pid, self.host = int(info["pid"]), str(info["node_id"])
        self._follower = asyncio.create_task(self._follow(), name=f"ray:{self.name}")
        return self.pid

    def follow(self, name: str, base: str, started: float) -> None:
        """Take over the actor ``name`` (left by an earlier run): follow it from the lines its log already has."""
        import ray

        self.name, self.base, self._head = name, base, ""
        self._actor = ray.get_actor(name)
        self._started = time.monotonic() - max(0.0, time.time() - started)
        self._next = _lines_in(self.spec.log)
        self._follower = asyncio.create_task(self._follow(), name=f"ray:{name}")

    async def wait(self, timeout: float | None = None) -> ProcessResult:
        timed_out = False
        try:
            await asyncio.wait_for(self._ended.wait(), timeout)
        except TimeoutError:
            timed_out = True
            await self.stop(self.executor.stop_grace)
        await self._finish()
        return ProcessResult(self._exit, self.elapsed, timed_out, self._stopping, lost=self._lost)

    async def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the agent's group on its node, SIGKILL after ``grace``; then the last head is fetched and
        the actor goes (its clone with it)."""
        if self._actor is None:
            return
        self._stopping = True
        if not self._ended.is_set():
            try:
                await asyncio.wait_for(self._actor.stop.remote(grace), grace + self.executor.settings.connect_timeout)
            except Exception as exc:  # unreachable or dead: killing the actor ends its guard's lifeline
                log.info("stopping %s: %s", self.name, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ended.wait(), POLL_WAIT + 5)  # its last lines and head
        await self._finish()

    def hand_off(self) -> int | None:
        if self._actor is None or self._ended.is_set():
            return None
        self._handed_off = True
        if self._follower is not None:
            self._follower.cancel()
        return self.pid or 0

    # ------------------------------------------------------------------------------------ the follow

    async def _follow(self) -> None:
        """Long-poll the actor until its agent has exited and everything it printed and committed is here."""
        import ray

        unreachable_since: float | None = None
        try:
            while True:
                try:
                    reply = await self._actor.poll.remote(self._next, self._head or None, POLL_WAIT)
                except ray.exceptions.ActorUnavailableError as exc:  # maybe its node is gone, maybe not yet
                    now = time.monotonic()
                    unreachable_since = unreachable_since or now
                    if now - unreachable_since > self.executor.settings.unavailable_timeout:
                        self._lost = f"its Ray actor was unreachable for {now - unreachable_since:.0f}s: {short(exc)}"
                        self.executor.kill(self.name)
                        return
                    await asyncio.sleep(0.5)
                    continue
                unreachable_since = None
                if await self._take(reply):
                    return
        except ray.exceptions.RayActorError as exc:
            self._lost = f"lost on Ray: {short(exc)}"
        except Exception as exc:  # a bug of ours, a Ray we do not know: fail the attempt and say why
            log.exception("following %s", self.name)
            self._lost = f"foreman could not follow its Ray actor: {type(exc).__name__}: {short(exc)}"
            self.executor.kill(self.name)
        finally:
            self._ended.set()

    async def _take(self, reply: dict[str, Any]) -> bool:
        """One poll's lines and head; whether the attempt is over."""
        self._take_lines(reply["lines"])
        self._next = int(reply["next"])
        head = str(reply.get("head") or "")
        if head and head != self._head:
            if self.spec.role == "worker":
                await asyncio.to_thread(self._fetch, reply.get("bundle"), head)
            self._head = head
        if reply.get("done"):
            self._exit = reply.get("exit_code")
            return True
        return False

    def _take_lines(self, lines: list[list[str]]) -> None:
        if not lines:
            return
        with open(self.spec.log, "a", encoding="utf-8", errors="replace") as out:
            out.writelines(text + "\n" for _, text in lines)
        if self.spec.on_lines is None:
            return
        run: list[str] = []
        stream = lines[0][0]
        for name, text in lines:
            if name != stream and run:
                self.spec.on_lines(stream, run)
                run = []
            stream = name
            run.append(text if len(text) <= LINE_LIMIT else text[:LINE_LIMIT] + " …[cut]")
        self.spec.on_lines(stream, run)

    def _fetch(self, bundle: bytes | None, head: str) -> None:
        """The actor's head into the node's worktree: its branch moves there (the commit monitor sees it) and the
        files are what the checks will run on."""
        tree = self.spec.cwd
        if bundle:
            with tempfile.NamedTemporaryFile(suffix=".bundle", dir=self.spec.log.parent) as handle:
                handle.write(bundle)
                handle.flush()
                _git(tree, "fetch", "-q", handle.name, "HEAD")
        _git(tree, "reset", "-q", "--hard", head)

    async def _finish(self) -> None:
        """Once the last head is here: the actor removes its clone and goes (a handed-off one is left)."""
        if self._finished or self._handed_off or self._actor is None:
            return
        self._finished = True
        if self._follower is not None and not self._follower.done():
            self._follower.cancel()
        try:
            await asyncio.wait_for(self._actor.cleanup.remote(), self.executor.settings.connect_timeout)
        except Exception as exc:  # gone already, or unreachable: the kill below ends its guard's lifeline
            log.info("cleaning up %s: %s", self.name, exc)
        self.executor.kill(self.name)

    # ------------------------------------------------------------------------------------- the payload

    def _payload(self) -> dict[str, Any]:
        """What the actor needs: the tree as a bundle, the command pointed at its copies of our files."""
        s = self.spec
        top = Path(_git(s.cwd, "rev-parse", "--show-toplevel").strip())
        self.base = _git(s.cwd, "rev-parse", "HEAD").strip()
        branch = _git(s.cwd, "rev-parse", "--abbrev-ref", "HEAD").strip()
        with tempfile.TemporaryDirectory(prefix="foreman-bundle-") as folder:
            bundle = Path(folder) / "tree.bundle"
            _git(s.cwd, "bundle", "create", "-q", str(bundle), "HEAD")
            data = bundle.read_bytes()
        files: dict[str, bytes] = {}
        swaps: list[tuple[str, str]] = []
        for i, path in enumerate(s.files):
            name = f"{i}-{path.name}"
            files[name] = path.read_bytes()
            swaps.append((str(path), f"{FILES}/{name}"))
        swaps.append((str(top), WORK))

        def moved(text: str) -> str:
            for old, new in swaps:
                text = text.replace(old, new)
            return text

        stdin = next((f"{i}-{p.name}" for i, p in enumerate(s.files) if p == s.stdin), None)
        # What foreman adds to its own environment goes along (FOREMAN_*, the project's env, git's identity); the
        # rest, PATH and secrets included, is the Ray node's own.
        ours = {k: moved(v) for k, v in s.env.items() if os.environ.get(k) != v and k != "PATH"}
        env = _identity(s.cwd) | ours
        return {
            "name": self.name,
            "bundle": data,
            "branch": branch if branch != "HEAD" else f"foreman/{s.node}",
            "head": self.base,
            "subdir": s.cwd.resolve().relative_to(top.resolve()).as_posix(),
            "argv": [moved(a) for a in s.argv],
            "env": env,
            "files": files,
            "stdin": stdin,
            "mark_var": MARK_VAR,
            "mark": s.mark or "",
            "grace": self.executor.stop_grace,
        }


def _git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
    )
    if result.returncode != 0:
        raise ExecutorError(f"git {args[0]} in {cwd}: {result.stderr.strip() or result.returncode}")
    return result.stdout


def _identity(tree: Path) -> dict[str, str]:
    """The git identity commits get in ``tree`` (the repository's own config, or the person's), for a clone on a
    machine that may have none: commits there are made as they would be here."""
    found: dict[str, str] = {}
    for key, names in (
        ("user.name", ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME")),
        ("user.email", ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL")),
    ):
        done = subprocess.run(
            ["git", "config", key], cwd=tree, capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
        if done.returncode == 0 and done.stdout.strip():
            found |= dict.fromkeys(names, done.stdout.strip())
    return found


def _lines_in(path: Path) -> int:
    try:
        with open(path, "rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    except OSError:
        return 0


def short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("…" if len(text) > 300 else "")
