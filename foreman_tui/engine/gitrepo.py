"""The target repository, through GitPython: worktrees and branches per node, finding a node's commits,
merging verified work, committing the map's state. Every call is blocking; the supervisor runs them in
threads (``asyncio.to_thread``). Operations on the main tree retry while git's ``index.lock`` is held by
someone else (a worker committing in shared mode)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import git

from ..map.errors import UsageError

BRANCH_PREFIX = "foreman/"
TRAILER = "Foreman-Node"
T = TypeVar("T")


class RepoError(UsageError):
    """The repository is not in a state foreman can work with (no git, detached HEAD, …)."""


@dataclass(frozen=True, slots=True)
class CommitInfo:
    sha: str
    subject: str
    committed_at: float


@dataclass(frozen=True, slots=True)
class MergeOutcome:
    merged: bool
    sha: str = ""
    conflicts: tuple[str, ...] = ()
    message: str = ""


def _retry_locked(action: Callable[[], T], attempts: int = 100) -> T:
    for i in range(attempts):
        try:
            return action()
        except git.GitCommandError as exc:
            if "index.lock" not in str(exc) or i == attempts - 1:
                raise
            time.sleep(0.05 + 0.01 * i)
    raise AssertionError("unreachable")


class Repo:
    def __init__(self, path: Path) -> None:
        try:
            self.repo = git.Repo(path, search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise RepoError(f"{path} is not inside a git repository; run `git init` and commit the map first") from None
        if self.repo.bare or self.repo.working_tree_dir is None:
            raise RepoError(f"{path}: a bare repository has no working tree")
        self.root = Path(self.repo.working_tree_dir)
        self.git_dir = Path(self.repo.git_dir)
        self.common_dir = Path(self.repo.common_dir)

    # ----------------------------------------------------------------------------------------- reading

    def current_branch(self) -> str:
        try:
            return self.repo.active_branch.name
        except TypeError:
            raise RepoError("HEAD is detached; check out the branch foreman should integrate into") from None

    def branch_head(self, branch: str) -> str | None:
        try:
            return self.repo.git.rev_parse("--verify", "--quiet", f"refs/heads/{branch}^{{commit}}").strip() or None
        except git.GitCommandError:
            return None

    def head(self) -> str:
        return self.repo.git.rev_parse("HEAD").strip()

    def commits_between(self, base: str, tip: str) -> list[CommitInfo]:
        """Commits reachable from ``tip`` and not from ``base``, newest first."""
        if base == tip:
            return []
        out = self.repo.git.log(f"{base}..{tip}", "--format=%H%x1f%ct%x1f%s")
        commits = []
        for line in out.splitlines():
            sha, stamp, subject = line.split("\x1f", 2)
            commits.append(CommitInfo(sha, subject, float(stamp)))
        return commits

    def trailer_commits(self, base: str, node_id: str, ref: str = "HEAD") -> list[CommitInfo]:
        """Commits after ``base`` on ``ref`` whose message carries ``Foreman-Node: <node_id>``."""
        out = self.repo.git.log(f"{base}..{ref}", "--format=%H%x1f%ct%x1f%s%x1f%B%x1e")
        found = []
        for record in out.split("\x1e"):
            record = record.strip("\n")
            if not record:
                continue
            sha, stamp, subject, body = record.split("\x1f", 3)
            if any(line.strip() == f"{TRAILER}: {node_id}" for line in body.splitlines()):
                found.append(CommitInfo(sha, subject, float(stamp)))
        return found

    def changed_files(self, base: str, tip: str) -> list[str]:
        if base == tip:
            return []
        return [p for p in self.repo.git.diff("--name-only", base, tip).splitlines() if p]

    def changed_files_of(self, commits: list[str]) -> list[str]:
        files: dict[str, None] = {}
        for sha in commits:
            out = self.repo.git.show("--name-only", "--format=", sha)
            files.update(dict.fromkeys(p for p in out.splitlines() if p))
        return list(files)

    def diff_stat(self, base: str, tip: str) -> str:
        return self.repo.git.diff("--stat", base, tip) if base != tip else ""

    def diff(self, base: str, tip: str, limit: int = 200_000) -> str:
        """The patch from ``base`` to ``tip`` (cut at ``limit`` characters), for showing."""
        text = self.repo.git.diff(base, tip) if base != tip else ""
        return text if len(text) <= limit else text[:limit] + "\n… (cut; see git diff)"

    def abort_unfinished_merge(self) -> bool:
        """Abort a merge left half-done (MERGE_HEAD present) by a run that died; True if there was one."""
        if not (self.git_dir / "MERGE_HEAD").exists():
            return False
        with contextlib.suppress(git.GitCommandError):
            self.repo.git.merge("--abort")
        return True

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        try:
            self.repo.git.merge_base("--is-ancestor", ancestor, descendant)
        except git.GitCommandError:
            return False
        return True

    # --------------------------------------------------------------------------------------- worktrees

    def add_worktree(self, node_id: str, path: Path, start: str) -> str:
        """A worktree on ``foreman/<node_id>``: reused if it is there, else created from ``start``.
        Returns the commit the branch started from (its head when created)."""
        branch = BRANCH_PREFIX + node_id
        if path.exists() and (path / ".git").exists():
            return self.branch_head(branch) or self.head()
        self.repo.git.worktree("prune")
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.branch_head(branch):
            self.repo.git.worktree("add", str(path), branch)
        else:
            self.repo.git.worktree("add", "-b", branch, str(path), start)
        head = self.branch_head(branch)
        assert head is not None
        return head

    def remove_worktree(self, node_id: str, path: Path, delete_branch: bool = True) -> None:
        if path.exists():
            with contextlib.suppress(git.GitCommandError):
                self.repo.git.worktree("remove", "--force", str(path))
        with contextlib.suppress(git.GitCommandError):
            self.repo.git.worktree("prune")
        if delete_branch and self.branch_head(BRANCH_PREFIX + node_id):
            with contextlib.suppress(git.GitCommandError):
                self.repo.git.branch("-D", BRANCH_PREFIX + node_id)

    # -------------------------------------------------------------------------------- main-tree writes

    def merge(self, node_id: str) -> MergeOutcome:
        """Merge ``foreman/<node_id>`` into the current branch; on conflict, abort and name the files."""
        branch = BRANCH_PREFIX + node_id

        def attempt() -> MergeOutcome:
            try:
                self.repo.git.merge("--no-ff", "--no-edit", "-m", f"foreman: merge {node_id}", branch)
            except git.GitCommandError as exc:
                if "index.lock" in str(exc):
                    raise
                conflicts = [p for p in self.repo.git.diff("--name-only", "--diff-filter=U").splitlines() if p]
                with contextlib.suppress(git.GitCommandError):
                    self.repo.git.merge("--abort")
                return MergeOutcome(False, conflicts=tuple(conflicts), message=str(exc.stderr or exc).strip())
            return MergeOutcome(True, sha=self.head())

        return _retry_locked(attempt)

    def commit_paths(self, paths: list[Path], message: str) -> str | None:
        """Commit exactly ``paths`` (if they changed). Returns the new commit, or None if nothing changed."""
        rel = [str(p.relative_to(self.root)) for p in paths]

        def attempt() -> str | None:
            self.repo.git.add("--", *rel)
            if not self.repo.git.diff("--cached", "--name-only", "--", *rel).strip():
                return None
            self.repo.git.commit("-m", message, "--", *rel)
            return self.head()

        return _retry_locked(attempt)
