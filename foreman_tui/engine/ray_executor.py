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
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config import ExecutorSettings, memory_bytes
from ..map.errors import ConfigError, Problem
from . import ray_attempt
from .executor import EXECUTOR_VAR, AttemptSpec
from .process import LinesHandler
from .ray_handle import RayAttempt
from .runstate import REMOTE

log = logging.getLogger(__name__)


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

    def can_adopt(self, record: dict[str, Any]) -> bool:
        remote = record.get(REMOTE) or {}
        return remote.get("executor") == self.kind and str(remote.get("name", "")) in self.live

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

    def create(self, name: str, payload: dict[str, Any]) -> Any:
        """A new attempt actor named ``name`` (detached, in the namespace, with the attempt's resources)."""
        return self._actor_class.options(**self.options(name)).remote(payload)

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


def _current_cluster() -> str | None:
    """The address of a cluster `ray start` began on this machine (Ray's own "auto"), if it left one."""
    try:
        return (Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster").read_text().strip() or None
    except OSError:
        return None


def _unreachable(address: str, why: str) -> ConfigError:
    problem = Problem("executor.address", f"cannot use the Ray cluster at {address}: {why}", "see docs/scale-out.md")
    return ConfigError("foreman.toml", [problem])


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
