"""A real multi-node Ray cluster for tests, started by the test process (``ray.cluster_utils.Cluster``).

Every cluster has a temp folder of its own (``/tmp/frt-*``: short, because Ray's socket paths live under it), so
two pytest-xdist workers, or another engineer's ``ray start``, never share a session folder. All its ports are
chosen by the kernel (GCS, raylet, agents: port 0), nothing is written to ``/tmp/ray/ray_current_cluster`` (and
nothing is deleted there), and tests use the explicit ``.address`` only, never ``"auto"``.

Every process of the cluster, and every process those start (Ray workers, the attempt guard, agents), carries
``TEST_RAY_CLUSTER=<its temp folder>`` in its environment: that is how ``leftovers()`` finds what is still
running, and what the exit of ``local_cluster`` waits for (and at last kills, by pid).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import foreman_tui.engine.ray_attempt as ray_attempt

CLUSTER_VAR = "TEST_RAY_CLUSTER"
"""In the environment of every process a test cluster starts (and of their descendants)."""

HEALTH = {"health_check_period_ms": 500, "health_check_timeout_ms": 500, "health_check_failure_threshold": 3}
"""A killed node is declared dead in about 4 s instead of 15 (docs/design/ray-executor.md §2)."""

_ENV_LOCK = threading.Lock()


class LocalCluster:
    """A head (``{"head": 1}``, no CPUs) and worker nodes (4 CPUs and ``{"agent": 8}`` each)."""

    def __init__(self, temp_dir: str) -> None:
        from ray.cluster_utils import Cluster

        self.temp_dir = temp_dir
        self.killed_at_exit: list[int] = []
        """Processes still running 15 s after the shutdown, then SIGKILLed (there should be none)."""
        self._cluster = Cluster(initialize_head=False, shutdown_at_exit=True)
        self._nodes: dict[str, Any] = {}
        head = self._add(
            num_cpus=0,
            resources={"head": 1},
            include_dashboard=False,
            dashboard_agent_listen_port=0,  # the default (52365) would clash with a second cluster's head
            object_store_memory=100 * 1024 * 1024,
            _system_config=HEALTH,
        )
        self.head_id: str = head.node_id
        self.address: str = self._cluster.address
        self.env = {"RAY_ADDRESS": self.address, "RAY_AUTH_MODE": "disabled"}
        """For a supervisor subprocess: ``{**os.environ, **cluster.env}``."""

    @property
    def worker_ids(self) -> list[str]:
        return [node_id for node_id in self._nodes if node_id != self.head_id]

    def add_worker(self) -> str:
        """Start one more worker node; returns its node id (hex)."""
        node = self._add(num_cpus=4, resources={"agent": 8}, object_store_memory=100 * 1024 * 1024)
        return str(node.node_id)

    def remove(self, node_id: str, graceful: bool = True) -> None:
        """Stop a node: gracefully, or by SIGKILL of its raylet and the rest (a node that died)."""
        node = self._nodes.pop(node_id)
        self._cluster.remove_node(node, allow_graceful=graceful)

    def wait_dead(self, node_id: str, timeout: float = 30.0) -> None:
        """Until the GCS counts a removed node as dead. A node whose raylet was SIGKILLed stays "alive" until its
        health checks fail (about 2-4 s here), and Ray may place a new actor on it meanwhile (that actor then dies
        unstarted)."""
        wait_until(lambda: node_id not in self._cluster.global_state._live_node_ids(), timeout, f"node {node_id}")

    def leftovers(self) -> list[int]:
        """The pids of live processes started by this cluster (or by what runs on it), this process excepted."""
        return processes_with(f"{CLUSTER_VAR}={self.temp_dir}")

    def _add(self, **node_args: Any) -> Any:
        with _ENV_LOCK, _no_address_file():  # the node's processes inherit this process's environment
            before = os.environ.get(CLUSTER_VAR)
            os.environ[CLUSTER_VAR] = self.temp_dir
            try:
                node = self._cluster.add_node(wait=True, temp_dir=self.temp_dir, **node_args)
            finally:
                if before is None:
                    del os.environ[CLUSTER_VAR]
                else:
                    os.environ[CLUSTER_VAR] = before
        self._nodes[node.node_id] = node
        return node

    def shutdown(self) -> None:
        with _no_address_file():
            for node_id in self.worker_ids:
                with contextlib.suppress(Exception):
                    self.remove(node_id, graceful=True)
            with contextlib.suppress(Exception):
                self._cluster.shutdown()


@contextlib.contextmanager
def local_cluster(workers: int = 2) -> Iterator[LocalCluster]:
    """A head and ``workers`` worker nodes; on exit everything is stopped and the cluster's temp folder removed."""
    os.environ["RAY_AUTH_MODE"] = "disabled"  # design note §6.3: a stray ~/.ray/auth_token must not turn auth on
    temp_dir = tempfile.mkdtemp(prefix="frt-", dir="/tmp")
    # Ray's own exit hooks (registered later, so run earlier) write an empty session folder here again.
    atexit.register(shutil.rmtree, temp_dir, True)
    cluster: LocalCluster | None = None
    try:
        cluster = LocalCluster(temp_dir)
        for _ in range(workers):
            cluster.add_worker()
        yield cluster
    finally:
        disconnect()
        if cluster is not None:
            cluster.shutdown()
        killed = _reap(f"{CLUSTER_VAR}={temp_dir}")
        if cluster is not None:
            cluster.killed_at_exit = killed
        shutil.rmtree(temp_dir, ignore_errors=True)


def connect(address: str, namespace: str = "foreman-tests") -> None:
    """Join the cluster as a driver from the test process (explicit address; quiet)."""
    import ray

    ray.init(address=address, namespace=namespace, log_to_driver=False, logging_level="ERROR")


def disconnect() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def actor_class() -> Any:
    """``ray.remote(AttemptActor)``, its module shipped by value (as the supervisor does)."""
    import ray

    ray.cloudpickle.register_pickle_by_value(ray_attempt)
    return ray.remote(ray_attempt.AttemptActor)


def processes_with(entry: str) -> list[int]:
    """Live processes (not zombies, not this one) whose starting environment holds ``entry`` (``NAME=value``)."""
    needle = entry.encode() + b"\0"
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{name}/environ").read_bytes()
            state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and (environ.startswith(needle) or b"\0" + needle in environ):
            found.append(int(name))
    return found


def live_group(pgid: int) -> list[int]:
    """Live processes (not zombies) of process group ``pgid``."""
    found = []
    for name in os.listdir("/proc"):
        try:
            fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(name))
    return found


def wait_until(predicate: Any, timeout: float, what: str, step: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


def _reap(entry: str, timeout: float = 15.0) -> list[int]:
    """Wait for what the cluster started to end; whatever is left after ``timeout`` is SIGKILLed by pid (and
    returned)."""
    deadline = time.monotonic() + timeout
    while (pids := processes_with(entry)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return pids


@contextlib.contextmanager
def _no_address_file() -> Iterator[None]:
    """``Cluster`` writes its address to /tmp/ray/ray_current_cluster and deletes that file at shutdown, whoever
    wrote it: another cluster on this machine (``address = "auto"``) would lose its address. Neither happens here."""
    import ray._common.utils
    import ray._private.utils

    with (
        mock.patch.object(ray._private.utils, "write_ray_address", lambda *a, **k: None),
        mock.patch.object(ray._common.utils, "reset_ray_address", lambda *a, **k: None),
    ):
        yield
