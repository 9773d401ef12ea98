"""The repository and the map, as a run writes them: every git write (worktrees, merges, commits) and every map
write happens under one lock, in a thread, and once started is never cut short.

Why one lock: a map write (a temp file renamed over the map) racing ``git`` reading the same file could leave the
index and the working tree out of step; a merge racing a state commit could fail "your local changes would be
overwritten". Why a *thread* lock: a cancelled ``asyncio.to_thread`` keeps running after its awaiting task has
gone, so an ``asyncio.Lock`` would be released under a write still in progress. ``finish`` runs such a write to
its end even when the task awaiting it is cancelled (a stop, a reset), and only then lets the cancellation through.

Map writes that only keep the person informed between steps (a node's ``implemented`` status, its
``verify_results``) are coalesced: they are kept in memory and written together at most every ``MAP_FLUSH``
seconds, and always before a commit of the map and at the end of the run, so a run on a 20 MB map does not rewrite
it for every check. Each write stays atomic (``MapStore``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from ..map.store import MapStore, dump_map
from .gitrepo import BRANCH_PREFIX, MergeOutcome, Repo

T = TypeVar("T")
MAP_FLUSH = 1.0
"""Seconds a coalesced map write may wait."""


async def finish(action: Callable[..., T], *args: Any) -> T:
    """Run ``action(*args)`` in a thread to its end. A cancellation that arrives meanwhile is delivered once the
    action is done (its result is then dropped)."""
    return await finish_async(asyncio.to_thread(action, *args))


async def finish_async(work: Awaitable[T]) -> T:
    """``finish`` for work that is already a coroutine (stopping a process): it runs to its end even when the
    task awaiting it is cancelled; the cancellation is delivered afterwards."""
    future = asyncio.ensure_future(work)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(future)
        except asyncio.CancelledError:
            if future.done():
                raise
            cancelled = True
            continue
        if cancelled:
            raise asyncio.CancelledError
        return result


class Workspace:
    """One repository and one map, written under one lock (see the module docstring). Every method blocks:
    call it through ``finish`` (or ``asyncio.to_thread`` for reads)."""

    def __init__(self, repo: Repo, store: MapStore, home: Path) -> None:
        self.repo = repo
        self.store = store
        self.map_path = store.path
        self.home = home
        self.lock = threading.RLock()
        self._pending: dict[str, dict[str, Any]] = {}
        self._pending_since = 0.0

    # ------------------------------------------------------------------------------------------ trees

    def tree_root(self, node: str) -> Path:
        return self.home / "worktrees" / node

    def add_tree(self, node: str) -> str:
        """The node's worktree on ``foreman/<node>`` from the integration branch's head (reused when it is there).
        Returns the commit its branch started from."""
        with self.lock:
            return self.repo.add_worktree(node, self.tree_root(node), self.repo.head())

    def remove_tree(self, node: str) -> None:
        with self.lock:
            self.repo.remove_worktree(node, self.tree_root(node))

    def review_root(self, node: str) -> Path:
        return self.home / "reviews" / node

    def add_review_tree(self, node: str, commit: str) -> Path:
        """A throwaway checkout of the node's commit for its reviewer: whatever the reviewer does there, the node's
        own tree is not touched. Returns its root."""
        with self.lock:
            self.repo.add_snapshot(self.review_root(node), commit)
            return self.review_root(node)

    def remove_review_tree(self, node: str) -> None:
        with self.lock:
            self.repo.remove_snapshot(self.review_root(node))

    def remove_review_trees(self) -> list[str]:
        """Every review checkout a killed run left behind; returns their nodes."""
        folder = self.home / "reviews"
        left = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        for node in left:
            self.remove_review_tree(node)
        return left

    def tree_left(self, node: str) -> bool:
        """Whether the node's worktree or branch is still there."""
        return self.tree_root(node).exists() or self.repo.branch_head(BRANCH_PREFIX + node) is not None

    # ---------------------------------------------------------------------------------------- merging

    def merge(self, node: str) -> MergeOutcome:
        with self.lock:
            self._flush()
            return self.repo.merge(node)

    def merged(self, node: str) -> str | None:
        """The integration branch's head if ``foreman/<node>`` is in it already (a merge a crash cut off from
        its record), else None."""
        with self.lock:
            tip = self.repo.branch_head(BRANCH_PREFIX + node)
            if tip is not None and self.repo.is_ancestor(tip, "HEAD"):
                return self.repo.head()
            return None

    # ------------------------------------------------------------------------------------------- map

    def write_states(self, changes: Mapping[str, Mapping[str, Any]], *, now: bool = False) -> None:
        """Change ``state.nodes`` in the map: coalesced (written within ``MAP_FLUSH`` seconds) unless ``now``."""
        with self.lock:
            if not self._pending:
                self._pending_since = time.monotonic()
            for node, entry in changes.items():
                merged = self._pending.setdefault(node, {})
                for key, value in entry.items():
                    if key == "verify_results":
                        merged.setdefault("verify_results", {}).update(value)
                    else:
                        merged[key] = value
            if now or time.monotonic() - self._pending_since >= MAP_FLUSH:
                self._flush()

    def flush_due(self) -> bool:
        return bool(self._pending) and time.monotonic() - self._pending_since >= MAP_FLUSH

    def flush(self) -> None:
        with self.lock:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, {}
            self.store.set_states(pending)

    def record(self, changes: Mapping[str, Mapping[str, Any]], message: str) -> str | None:
        """Write ``changes`` into the map's state and commit the state, as one step."""
        with self.lock:
            self.write_states(changes, now=True)
            return self.commit_state(message)

    def commit_state(self, message: str) -> str | None:
        """Commit the map's state (only its state, over the map as committed: a person's uncommitted edit of the
        map stays out). Returns the commit, or None when nothing changed."""
        with self.lock:
            self._flush()
            return self.repo.commit_file(self.map_path, self.store.state_over, message)

    def edit_contents(self, change: Callable[[dict[str, Any]], None], message: str) -> str | None:
        """An edit of the map's contents that foreman makes for a person (a post condition they decided): applied
        to the file and, with the state, over the map as committed — committed as one step."""
        with self.lock:
            self._flush()
            self.store.update(change)

            def committed_with_change(base: bytes | None) -> bytes:
                state_only = self.store.state_over(base)
                doc = json.loads(state_only)
                change(doc)
                return dump_map(doc, state_only.endswith(b"\n"))

            return self.repo.commit_file(self.map_path, committed_with_change, message)

    def current_results(self, node: str, sizes: Mapping[str, int]) -> dict[str, list[bool | None]]:
        """The node's ``verify_results`` as they are (on disk, with what is still to be written), sized to its
        verify items."""
        with self.lock:
            raw = self.store.read().get("state", {}).get("nodes", {}).get(node, {}).get("verify_results", {})
            raw = {**raw, **self._pending.get(node, {}).get("verify_results", {})}
        out: dict[str, list[bool | None]] = {}
        for phase, size in sizes.items():
            values = list(raw.get(phase, []))[:size]
            out[phase] = values + [None] * (size - len(values))
        return out


def drop_index_lock(repo: Repo) -> bool:
    """Remove an ``index.lock`` a killed git left behind (nothing else of ours runs git now: we hold the run
    lock). True if there was one."""
    lock = repo.git_dir / "index.lock"
    with contextlib.suppress(FileNotFoundError):
        lock.unlink()
        return True
    return False
