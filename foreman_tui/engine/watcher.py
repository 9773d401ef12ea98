"""Commit detection: file-system events on the repository's git metadata (refs, logs, worktree HEADs,
packed-refs) through watchfiles, read back with GitPython in a thread, with a polling fallback.

The supervisor ``track``s each node whose worker is running: in worktree mode by its branch
``foreman/<id>``, in shared mode by the ``Foreman-Node: <id>`` trailer on the integration branch. Each new
commit is reported once, through a callback, with how it was noticed and when.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from watchfiles import Change, awatch

from .gitrepo import CommitInfo, Repo

log = logging.getLogger(__name__)
Found = Callable[[str, CommitInfo, str, float], None]  # (node, commit, detected_by, detected_at)


@dataclass
class Tracked:
    node_id: str
    base: str
    branch: str | None  # worktree mode: the node's branch; shared mode: None (trailer on `ref`)
    ref: str = "HEAD"
    seen: set[str] = field(default_factory=set)


def _interesting(change: Change, path: str) -> bool:
    parts = Path(path).parts
    if "objects" in parts or path.endswith((".lock", "/index", "COMMIT_EDITMSG")):
        return False
    return any(p in parts for p in ("refs", "logs", "worktrees")) or path.endswith(("packed-refs", "HEAD"))


class CommitMonitor:
    def __init__(self, repo: Repo, found: Found, poll_interval: float = 2.0, use_fs_events: bool = True) -> None:
        self.repo = repo
        self.found = found
        self.poll_interval = poll_interval
        self.use_fs_events = use_fs_events
        self._tracked: dict[str, Tracked] = {}
        self._wake = asyncio.Event()
        self._reason = "poll"
        self._stop = asyncio.Event()

    def track(self, node_id: str, base: str, branch: str | None, ref: str = "HEAD") -> None:
        self._tracked[node_id] = Tracked(node_id, base, branch, ref)

    def untrack(self, node_id: str) -> None:
        self._tracked.pop(node_id, None)

    def poke(self, reason: str) -> None:
        self._reason = reason
        self._wake.set()

    async def scan(self, reason: str) -> None:
        """Look for new commits of every tracked node now (GitPython in a thread)."""
        tracked = list(self._tracked.values())
        if not tracked:
            return
        results = await asyncio.to_thread(self._scan_blocking, tracked)
        detected_at = time.time()
        for entry, commits in results:
            for commit in reversed(commits):  # oldest first
                if commit.sha in entry.seen:
                    continue
                entry.seen.add(commit.sha)
                self.found(entry.node_id, commit, reason, detected_at)

    def _scan_blocking(self, tracked: list[Tracked]) -> list[tuple[Tracked, list[CommitInfo]]]:
        out = []
        for entry in tracked:
            try:
                if entry.branch is not None:
                    tip = self.repo.branch_head(entry.branch)
                    commits = self.repo.commits_between(entry.base, tip) if tip else []
                else:
                    commits = self.repo.trailer_commits(entry.base, entry.node_id, entry.ref)
            except Exception as exc:  # a ref caught mid-update: the next event or poll will see it
                log.debug("scan of %s failed: %s", entry.node_id, exc)
                commits = []
            out.append((entry, commits))
        return out

    async def run(self) -> None:
        """Scan whenever git metadata changes or the poll interval passes, until ``close()``."""
        watcher = asyncio.create_task(self._watch()) if self.use_fs_events else None
        try:
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                reason = self._reason if self._wake.is_set() else "poll"
                self._wake.clear()
                self._reason = "poll"
                await self.scan(reason)
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    async def _watch(self) -> None:
        roots = {self.repo.git_dir, self.repo.common_dir}
        try:
            async for changes in awatch(
                *roots,
                watch_filter=_interesting,
                step=10,
                debounce=200,
                stop_event=self._stop,
                recursive=True,
                ignore_permission_denied=True,
            ):
                if changes:
                    self.poke("watch")
        except Exception as exc:  # no inotify, too many watches…: polling still runs
            log.warning("file-system events unavailable (%s); polling every %ss", exc, self.poll_interval)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
