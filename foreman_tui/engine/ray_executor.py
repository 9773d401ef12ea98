"""Attempts on a Ray cluster (``[executor] kind = "ray"``; docs/scale-out.md, docs/design/ray-executor.md).

Each attempt is one named, detached Ray actor (``ray_attempt.py``, shipped by value: the nodes need Ray and git,
not foreman). It gets the node's tree as a git bundle, clones it on its Ray node, and runs the agent there under
a guard process that stops the agent's whole process group when the actor goes. foreman long-polls it: output
lines come back as they are printed, and each new head comes back as a bundle that is fetched into the node's
worktree at once, so the commit monitor sees ``foreman/<id>`` move as it would for a local worker and the checks
run here on what was fetched. The clone is removed only after foreman has the last head.

A supervisor that dies leaves its actors running (they are detached); the next run finds each by the name in its
pid record and takes it over. An actor whose Ray node dies is a failed attempt (tried again, wherever Ray places
it); one that stays unreachable past ``unavailable_timeout`` too. foreman never starts Ray itself: a cluster it
started would die with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config import ExecutorSettings, memory_bytes
from ..map.errors import ConfigError, Problem
from . import ray_attempt
from .executor import EXECUTOR_VAR, AttemptSpec, ExecutorError
from .process import LINE_LIMIT, LinesHandler, ProcessResult
from .runstate import REMOTE

log = logging.getLogger(__name__)
POLL_WAIT = 1.0
"""Seconds one long poll may wait on the actor for something new."""
WORK, FILES = "{{work}}", "{{files}}"


class RayExecutor:
    kind = "ray"

    def __init__(self, settings: ExecutorSettings, *, namespace: str, stop_grace: float) -> None:
        self.settings = settings
        self.namespace = namespace
        self.stop_grace = stop_grace
        self.live: set[str] = set()
        """The names of foreman's actors alive in the namespace when the run began."""
        self._actor_class: Any = None

    # ------------------------------------------------------------------------------------ connecting

    async def open(self) -> None:
        address = self._address()
        # ray.init cannot be cancelled: it runs in a thread of its own that the process does not wait for at exit.
        connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        threading.Thread(target=_settle, args=(connected, self._connect, address), daemon=True).start()
        try:
            await asyncio.wait_for(asyncio.shield(connected), self.settings.connect_timeout)
        except TimeoutError:
            raise _unreachable(address, f"no answer from Ray within {self.settings.connect_timeout:g}s") from None
        _reinstall_signal_handlers()  # ray.init puts its own in (an exit on SIGTERM, a C++ dump)
        self.live = set(await asyncio.to_thread(self._named_actors))

    def _address(self) -> str:
        """The address to connect to, probed first: ``ray.init`` on an address where nothing listens hangs for
        minutes, one whose cluster is up answers in well under a second."""
        address = self.settings.address
        if address == "auto":
            address = os.environ.get("RAY_ADDRESS", "") or _current_cluster() or ""
        if not address:
            raise _unreachable("auto", "no RAY_ADDRESS and no cluster started on this machine (`ray start --head`)")
        host, _, port = address.removeprefix("ray://").rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=self.settings.connect_timeout).close()
        except (OSError, ValueError) as exc:
            raise _unreachable(address, str(exc) or type(exc).__name__) from None
        return address

    def _connect(self, address: str) -> None:
        try:
            import ray
            import ray._private.worker as ray_worker
        except ImportError:
            raise _unreachable(
                address, 'Ray is not installed here: pip install "foreman-tui[ray]" (ray[client]==2.60.*)'
            ) from None
        ray_worker.print_to_stdstream = _log_cluster_message  # cluster errors would land on foreman's stdout
        logging.getLogger("ray").setLevel(logging.ERROR)  # its warnings (a thread without signal handlers) on stderr
        try:
            if not ray.is_initialized():
                with _real_stdio():
                    ray.init(
                        address=address,
                        namespace=self.namespace,
                        log_to_driver=False,
                        logging_level=logging.ERROR,
                        configure_logging=False,
                    )
        except Exception as exc:  # ConnectionError, an auth refusal, a version mismatch: all "cannot use it"
            raise _unreachable(address, f"{type(exc).__name__}: {exc}") from None
        ray.cloudpickle.register_pickle_by_value(ray_attempt)  # the nodes need Ray and git, not foreman
        self._actor_class = ray.remote(ray_attempt.AttemptActor)

    def _named_actors(self) -> list[str]:
        import ray

        return [str(a["name"] if isinstance(a, dict) else a) for a in ray.util.list_named_actors()]

    def env(self) -> dict[str, str]:
        return {EXECUTOR_VAR: self.kind}  # FOREMAN_HOST is set on the node: the Ray node it landed on

    async def close(self) -> None:
        return None  # attempts are stopped one by one; leaving the cluster connected costs nothing at exit

    # -------------------------------------------------------------------------------------- attempts

    def attempt(self, spec: AttemptSpec) -> RayAttempt:
        return RayAttempt(self, spec)

    def adopt(self, record: dict[str, Any], on_lines: LinesHandler | None) -> RayAttempt | None:
        """The attempt behind a pid record, if its actor is still alive (a run left it; this run follows it)."""
        remote = record.get(REMOTE) or {}
        name = str(remote.get("name", ""))
        if name not in self.live:
            return None
        log_path = Path(str(remote.get("log", "")))
        spec = AttemptSpec(
            node=str(remote.get("node", "")),
            role=str(remote.get("role", "worker")),
            attempt=int(remote.get("attempt", 0)),
            argv=list(record.get("argv") or []),
            cwd=Path(str(remote.get("cwd", "."))),
            env={},
            log=log_path,
            on_lines=on_lines,
        )
        found = RayAttempt(self, spec)
        found.follow(name, str(remote.get("base", "")), float(record.get("started", time.time())))
        return found

    def discard(self, record: dict[str, Any]) -> bool:
        """Stop the actor behind a pid record (its guard then stops the agent's group and removes the clone);
        whether one was alive."""
        name = str((record.get(REMOTE) or {}).get("name", ""))
        return self.kill(name) if name in self.live else False

    def strays(self, known: set[str]) -> list[str]:
        """Live actors of this namespace no record knows: started by a run that died before it recorded them,
        so never counted as started. They are stopped; their nodes are dispatched again."""
        return sorted(name for name in self.live - known if self.kill(name))

    def kill(self, name: str) -> bool:
        import ray

        try:
            ray.kill(ray.get_actor(name), no_restart=True)
        except ValueError:
            return False
        self.live.discard(name)
        return True

    def options(self, name: str) -> dict[str, Any]:
        s = self.settings
        options: dict[str, Any] = {
            "name": name,
            "namespace": self.namespace,
            "lifetime": "detached",
            "max_restarts": 0,  # a restart would start the agent again behind foreman's back: retries are ours
            "max_concurrency": 4,  # a long poll must not hold up a stop
            "num_cpus": s.num_cpus,
            "resources": dict(s.resources),
        }
        if s.memory is not None:
            options["memory"] = memory_bytes(s.memory)
        return options


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
        self._started_wall = time.time()
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
        actor = self.executor._actor_class.options(**self.executor.options(self.name)).remote(payload)
        self._actor = actor
        wait = self.executor.settings.start_timeout
        try:  # constructed means cloned, the agent started under its guard
            info = await asyncio.wait_for(asyncio.shield(asyncio.ensure_future(actor.info.remote())), wait)
        except TimeoutError:
            self.executor.kill(self.name)
            asked = self.executor.options(self.name)
            need = ", ".join(f"{k}={asked[k]}" for k in ("num_cpus", "memory", "resources") if k in asked)
            raise ExecutorError(f"no Ray node took it within {wait:g}s (it asks {need})") from None
        except ray.exceptions.RayError as exc:
            self.executor.kill(self.name)
            raise ExecutorError(f"its Ray actor did not start: {_short(exc)}") from None
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
                        self._lost = f"its Ray actor was unreachable for {now - unreachable_since:.0f}s: {_short(exc)}"
                        self.executor.kill(self.name)
                        return
                    await asyncio.sleep(0.5)
                    continue
                unreachable_since = None
                if await self._take(reply):
                    return
        except ray.exceptions.RayActorError as exc:
            self._lost = f"lost on Ray: {_short(exc)}"
        except Exception as exc:  # a bug of ours, a Ray we do not know: fail the attempt and say why
            log.exception("following %s", self.name)
            self._lost = f"foreman could not follow its Ray actor: {type(exc).__name__}: {_short(exc)}"
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
            "mark_var": "FOREMAN_PROCESS_MARK",
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


@contextlib.contextmanager
def _real_stdio() -> Iterator[None]:
    """``ray.init`` hands ``sys.stderr`` to faulthandler, which needs a real file descriptor; the TUI has put its
    own capture there. The process's own streams stand in while Ray connects."""
    swapped = {}
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        try:
            real = stream.fileno() >= 0
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            real = False
        if not real:  # Textual's capture says -1
            swapped[name] = stream
            setattr(sys, name, getattr(sys, f"__{name}__"))
    try:
        yield
    finally:
        for name, stream in swapped.items():
            setattr(sys, name, stream)


def _settle(future: asyncio.Future[None], call: Any, *args: Any) -> None:
    """Run ``call`` in this thread and settle ``future`` (on its loop) with how it went."""
    loop = future.get_loop()

    def settle(error: BaseException | None) -> None:
        if future.done():
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)

    try:
        call(*args)
    except BaseException as exc:
        loop.call_soon_threadsafe(settle, exc)
        return
    loop.call_soon_threadsafe(settle, None)


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


def _current_cluster() -> str | None:
    """The address of a cluster `ray start` began on this machine (Ray's own "auto"), if it left one."""
    try:
        return (Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster").read_text().strip() or None
    except OSError:
        return None


def _unreachable(address: str, why: str) -> ConfigError:
    problem = Problem("executor.address", f"cannot use the Ray cluster at {address}: {why}", "see docs/scale-out.md")
    return ConfigError("foreman.toml", [problem])


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("…" if len(text) > 300 else "")


def _log_cluster_message(data: Any, ignore_prefix: bool) -> None:
    """Where Ray's driver would print the cluster's errors: foreman's log, not its stdout."""
    for line in (data or {}).get("lines", []) if isinstance(data, dict) else []:
        log.warning("ray: %s", line)


def _reinstall_signal_handlers() -> None:
    """Put foreman's handlers back over what ``ray.init`` installed (Python's and its core worker's)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        handler = signal.getsignal(sig)
        if handler is not None:
            try:
                signal.signal(sig, handler)
            except (ValueError, OSError):  # not the main thread
                return
