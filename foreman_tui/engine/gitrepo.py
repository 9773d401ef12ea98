"""The target repository, through GitPython: worktrees and branches per node, finding a node's commits,
merging verified work, committing the map's state. Every call is blocking; the supervisor runs them in
threads (``asyncio.to_thread``). Operations on the main tree retry while git's ``index.lock`` is held by
someone else (a worker committing in shared mode).

foreman's own commits work on any machine: when git has no identity (no ``user.name``/``user.email``), they are
made as ``foreman <foreman@localhost>`` through the environment of each git command, never by writing config."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import git

from ..map.errors import UsageError

BRANCH_PREFIX = "foreman/"
TRAILER = "Foreman-Node"
FALLBACK_IDENTITY = {
    "GIT_AUTHOR_NAME": "foreman",
    "GIT_AUTHOR_EMAIL": "foreman@localhost",
    "GIT_COMMITTER_NAME": "foreman",
    "GIT_COMMITTER_EMAIL": "foreman@localhost",
}
"""Who foreman's own commits (and the workers') are by when git has no identity configured."""
T = TypeVar("T")


class RepoError(UsageError):
    """The repository is not in a state foreman can work with (no git, detached HEAD, …)."""


@dataclass(frozen=True, slots=True)
class CommitInfo:
    sha: str
    subject: str
    committed_at: float


class GitFailed(RuntimeError):
    """A git write of foreman's own failed; the message says what git said. Nothing was left staged."""


@dataclass(frozen=True, slots=True)
class MergeOutcome:
    kind: Literal["merged", "conflict", "refused"]
    """``conflict``: files conflict (aborted, tree as it was); ``refused``: git would not start the merge."""
    sha: str = ""
    conflicts: tuple[str, ...] = ()
    message: str = ""

    @property
    def merged(self) -> bool:
        return self.kind == "merged"


def _retry_locked(action: Callable[[], T], attempts: int = 100) -> T:
    for i in range(attempts):
        try:
            return action()
        except git.GitCommandError as exc:
            if "index.lock" not in str(exc) or i == attempts - 1:
                raise
            time.sleep(0.05 + 0.01 * i)
    raise AssertionError("unreachable")


def _retry_ref(action: Callable[[], T], attempts: int = 50) -> T:
    """Retry when HEAD moved under us (another committer in shared mode) or the index was locked."""
    for i in range(attempts):
        try:
            return action()
        except git.GitCommandError as exc:
            text = str(exc)
            moved = "cannot lock ref" in text or "but expected" in text or "index.lock" in text
            if not moved or i == attempts - 1:
                raise
            time.sleep(0.02 + 0.01 * i)
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
        self.identity_env: dict[str, str] = {}
        """The fallback identity when git has none (also for the workers' environment); empty otherwise."""
        if not self._has_identity():
            self.identity_env = dict(FALLBACK_IDENTITY)
            self.repo.git.update_environment(**self.identity_env)

    def _has_identity(self) -> bool:
        try:
            self.repo.git.var("GIT_AUTHOR_IDENT")
            self.repo.git.var("GIT_COMMITTER_IDENT")
        except git.GitCommandError:
            return False
        return True

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

    def file_at(self, ref: str, path: Path) -> bytes | None:
        """The content of ``path`` (in the working tree) at ``ref``, or None if it is not there."""
        rel = path.relative_to(self.root).as_posix()
        try:
            data = self.repo.git.cat_file("blob", f"{ref}:{rel}", stdout_as_string=False, strip_newline_in_stdout=False)
        except git.GitCommandError:
            return None
        return bytes(data)

    def changed_paths(self) -> list[str]:
        """Tracked files with uncommitted changes (staged or not), repository-relative."""
        out = self.repo.git.status("--porcelain=v1", "-z", "--untracked-files=no")
        entries = [e for e in out.split("\0") if e]
        paths = []
        skip = False
        for entry in entries:
            if skip:  # the source path of a rename
                skip = False
                continue
            paths.append(entry[3:])
            skip = entry[0] in "RC"
        return paths

    def repair_index(self, path: Path) -> bool:
        """Undo what a kill inside ``commit_file`` can leave: HEAD moved to foreman's state commit but the index
        still holding the file as it was before it (which git would take for a staged change and refuse merges
        over). Only that exact case is repaired (a person's own staged change is left alone). True if it was."""
        rel = path.relative_to(self.root).as_posix()
        staged = self.repo.git.ls_files("-s", "--", rel).split()
        head = self.repo.git.ls_tree("HEAD", "--", rel).split()
        if not staged or not head or staged[1] == head[2]:
            return False
        subject = self.repo.git.log("-1", "--format=%s", "HEAD").strip()
        before = self.repo.git.ls_tree("HEAD^", "--", rel).split() if subject.startswith("foreman: ") else []
        if not before or before[2] != staged[1]:
            return False
        _retry_locked(lambda: self.repo.git.update_index("--cacheinfo", f"{head[0]},{head[2]},{rel}"))
        return True

    def undo_half_merge(self, node_id: str) -> list[str]:
        """Undo what a kill inside ``git merge`` of ``foreman/<node_id>`` can leave without a MERGE_HEAD: the
        branch's version of its files in the index or the working tree, not committed. Only paths the branch
        changed whose content is the branch's are set back to HEAD's (a person's own edit is left alone).
        Returns the paths set back."""
        branch = BRANCH_PREFIX + node_id
        if self.branch_head(branch) is None:
            return []
        changed = [p for p in self.repo.git.diff("--name-only", f"HEAD...{branch}").splitlines() if p]
        restored = []
        for rel in changed:
            theirs = self._blob_at(branch, rel)
            ours = self._blob_at("HEAD", rel)
            staged = (self.repo.git.ls_files("-s", "--", rel).split() or [None, None])[1]
            on_disk = self.root / rel
            current = self.repo.git.hash_object("--no-filters", "--", rel).strip() if on_disk.is_file() else None
            if (staged, current) == (ours, ours) or staged not in (ours, theirs) or current not in (ours, theirs):
                continue  # as HEAD has it, or someone else's change
            if ours is None:
                self.repo.git.rm("--cached", "-q", "--ignore-unmatch", "--", rel)
                on_disk.unlink(missing_ok=True)
            else:
                self.repo.git.checkout("HEAD", "--", rel)
            restored.append(rel)
        return restored

    def _blob_at(self, ref: str, rel: str) -> str | None:
        entry = self.repo.git.ls_tree(ref, "--", rel).split()
        return entry[2] if entry else None

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
        """A worktree on ``foreman/<node_id>``: reused if it is there, else made (on the branch if it exists,
        else on a new branch at the commit ``start``). Returns the commit the branch is at."""
        branch = BRANCH_PREFIX + node_id
        head = self.branch_head(branch)
        if (path / ".git").is_file():
            return head or self.head()
        if path.exists():  # a creation a kill cut short: make it again
            shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        args = ["add", str(path), branch] if head else ["add", "-b", branch, str(path), start]
        try:
            self.repo.git.worktree(*args)
        except git.GitCommandError as exc:
            if "already" not in str(exc):  # "already registered", "already checked out": a stale registration
                raise
            self.repo.git.worktree("prune")
            self.repo.git.worktree(*args)
        return head or start

    def remove_worktree(self, node_id: str, path: Path, delete_branch: bool = True) -> None:
        if path.exists():
            with contextlib.suppress(git.GitCommandError):
                self.repo.git.worktree("remove", "--force", str(path))
        with contextlib.suppress(git.GitCommandError):
            self.repo.git.worktree("prune")
        if delete_branch and self.branch_head(BRANCH_PREFIX + node_id):
            with contextlib.suppress(git.GitCommandError):
                self.repo.git.branch("-D", BRANCH_PREFIX + node_id)

    def add_snapshot(self, path: Path, commit: str) -> None:
        """A detached worktree of ``commit`` at ``path`` (made again if a kill left one half made)."""
        self.remove_snapshot(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.repo.git.worktree("add", "--detach", str(path), commit)

    def remove_snapshot(self, path: Path) -> None:
        if path.exists():
            with contextlib.suppress(git.GitCommandError):
                self.repo.git.worktree("remove", "--force", str(path))
            shutil.rmtree(path, ignore_errors=True)
        with contextlib.suppress(git.GitCommandError):
            self.repo.git.worktree("prune")

    # -------------------------------------------------------------------------------- main-tree writes

    def merge(self, node_id: str) -> MergeOutcome:
        """Merge ``foreman/<node_id>`` into the current branch. A conflict is aborted (the tree is left as it
        was) and names its files; a merge git refuses to start says what git said."""
        branch = BRANCH_PREFIX + node_id

        def attempt() -> MergeOutcome:
            try:
                self.repo.git.merge("--no-ff", "--no-edit", "-m", f"foreman: merge {node_id}", branch)
            except git.GitCommandError as exc:
                if "index.lock" in str(exc):
                    raise
                said = str(exc.stderr or exc.stdout or exc).strip()
                conflicts = [p for p in self.repo.git.diff("--name-only", "--diff-filter=U").splitlines() if p]
                if (self.git_dir / "MERGE_HEAD").exists():
                    with contextlib.suppress(git.GitCommandError):
                        self.repo.git.merge("--abort")
                kind: Literal["conflict", "refused"] = "conflict" if conflicts else "refused"
                return MergeOutcome(kind, conflicts=tuple(conflicts), message=said)
            return MergeOutcome("merged", sha=self.head())

        return _retry_locked(attempt)

    def _git_input(self, data: bytes, *args: str) -> str:
        """Run git with ``data`` on its stdin; its output, stripped."""
        done = subprocess.run(
            ["git", *args],
            cwd=self.root,
            input=data,
            capture_output=True,
            env={**os.environ, **self.identity_env},
            check=False,
        )
        if done.returncode != 0:
            raise git.GitCommandError(["git", *args], done.returncode, done.stderr, done.stdout)
        return done.stdout.decode("utf-8", "surrogateescape").strip()

    def _tree_with(self, tree: str | None, parts: list[str], blob: str) -> tuple[str, str, str | None]:
        """The tree ``tree`` (None: empty) with the file ``parts`` set to ``blob``: (new tree, the file's mode, its
        old blob or None). One ``ls-tree`` and one ``mktree`` per folder on the way down, whatever the repo's size."""
        listed = self.repo.git.ls_tree("-z", tree, stdout_as_string=False) if tree else b""
        entries = {}
        for record in bytes(listed).split(b"\0"):
            if record:
                meta, entry = record.split(b"\t", 1)
                entries[entry.decode("utf-8", "surrogateescape")] = meta.decode()
        name = parts[0]
        current = entries.get(name, "").split()
        if len(parts) == 1:
            mode, old = (current[0], current[2]) if current else ("100644", None)
            entries[name] = f"{mode} blob {blob}"
        else:
            sub, mode, old = self._tree_with(current[2] if current else None, parts[1:], blob)
            entries[name] = f"040000 tree {sub}"
        listing = b"".join(
            f"{meta}\t{entry}".encode("utf-8", "surrogateescape") + b"\0" for entry, meta in entries.items()
        )
        return self._git_input(listing, "mktree", "-z"), mode, old

    def commit_file(self, path: Path, content: Callable[[bytes | None], bytes], message: str) -> str | None:
        """Commit ``content(<the file at HEAD>)`` as ``path`` on the current branch, touching nothing else: not
        the working tree (uncommitted edits of the file stay uncommitted), not other staged files, no hooks.
        Returns the new commit, or None if HEAD already has exactly that content. Raises ``GitFailed``."""
        rel = path.relative_to(self.root).as_posix()

        def attempt() -> str | None:
            head = self.head()
            blob = self._git_input(content(self.file_at(head, path)), "hash-object", "-w", "--no-filters", "--stdin")
            tree, mode, old = self._tree_with(f"{head}^{{tree}}", rel.split("/"), blob)
            if old == blob:
                return None
            commit = self.repo.git.commit_tree(tree, "-p", head, "-m", message).strip()
            self.repo.git.update_ref("-m", f"foreman: {message}", "HEAD", commit, head)
            # The main index learns the committed content for this path only (its working copy is untouched).
            _retry_locked(lambda: self.repo.git.update_index("--add", "--cacheinfo", f"{mode},{blob},{rel}"))
            return commit

        try:
            return _retry_ref(attempt)
        except git.GitCommandError as exc:
            raise GitFailed(f"git could not commit {rel}: {str(exc.stderr or exc).strip()}") from None
