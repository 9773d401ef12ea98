"""Which files a process node owns, and where that list came from; and the two guards that keep paths from map
content inside the project: ``safe_name`` (a file name made from free text) and ``read_inside`` (a read that
never follows a symbolic link out of its folder).

In order of precedence: a ``foreman.toml`` override; ``contents.<id>.code.files``; a declaration in the
implementation/how text (``**关联文件**：`a.py``` or a ``Files:`` line); backticked source paths in that
text; the source/test files named by the node's verify commands. Paths are project-relative POSIX paths;
an explicit path that is absolute or leaves the project is an error, an inferred one is ignored.
"""

from __future__ import annotations

import functools
import hashlib
import os
import posixpath
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import Problem
from .model import NodeContent

SOURCE_EXTENSIONS = frozenset(
    "py pyi pyx js mjs cjs ts tsx jsx go rs java kt kts scala c h cc cpp cxx hpp hh cs fs rb php swift "
    "m mm jl r lua sh bash zsh ps1 sql zig nim ex exs erl hs ml dart vue svelte".split()
)
_EXT = "|".join(sorted(SOURCE_EXTENSIONS, key=len, reverse=True))
_PATH_RE = re.compile(rf"^[\w.\-/\\]+\.(?:{_EXT})$", re.IGNORECASE)
_FENCE_RE = re.compile(r"^\s*(```|~~~).*?^\s*\1", re.MULTILINE | re.DOTALL)
_TICKED_RE = re.compile(r"`([^`\n]+)`")
_DECLARATION_RE = re.compile(
    r"^[ \t>*\-]*(?:\*\*)?(?:关联文件|相关文件|文件|files|owned files|code files)(?:\*\*)?"
    r"[ \t]*[:：][ \t]*(?:\*\*)?(.+)$",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass(frozen=True, slots=True)
class OwnedFiles:
    """A node's owned files and their provenance, e.g. source ``implementation``, detail ``关联文件 line``."""

    files: tuple[str, ...]
    source: str
    detail: str = ""

    def describe(self) -> str:
        return f"{self.source} ({self.detail})" if self.detail else self.source


NO_FILES = OwnedFiles((), "none", "nothing declared or inferred")


_CACHED = 1 << 18
"""Entries of the caches below: above the paths and texts of a 100,000-node map, since a load asks for each
of them twice (the structure check, then the owned files) and an LRU cache smaller than that misses on all."""


@functools.lru_cache(maxsize=_CACHED)
def clean_path(path: str) -> str:
    """Normalise a project-relative path. Raises ``ValueError`` naming why it cannot be owned."""
    text = path.strip().strip("'\"`").replace("\\", "/")
    if not text:
        raise ValueError("empty path")
    if text.startswith(("/", "~")) or re.match(r"^[A-Za-z]:/", text):
        raise ValueError(f"'{path}' is absolute")
    normal = posixpath.normpath(text)
    if normal == ".." or normal.startswith("../"):
        raise ValueError(f"'{path}' leaves the project")
    if normal == ".":
        raise ValueError(f"'{path}' names the project itself")
    return normal


def _unique(paths: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(paths))


def _without_fences(text: str) -> str:
    """The text minus fenced code blocks (paths in example code are not declarations)."""
    return _FENCE_RE.sub("", text) if "```" in text or "~~~" in text else text


@functools.lru_cache(maxsize=_CACHED)
def _declared(text: str) -> tuple[str, ...] | None:
    """Paths on declaration lines (``**关联文件**：`a`, `b```, ``Files: a, b``), or None if there is none."""
    lowered = text.lower()
    if "files" not in lowered and "文件" not in text:
        return None
    found = None
    for match in _DECLARATION_RE.finditer(_without_fences(text)):
        rest = match.group(1)
        ticked = _TICKED_RE.findall(rest)
        items = ticked or [part for part in re.split(r"[,，、;；]\s*|\s+", rest) if part]
        found = (*(found or ()), *(item.strip("*").strip() for item in items if item.strip("*").strip()))
    return found


def _ticked_source_paths(text: str) -> list[str]:
    return [span.strip() for span in _TICKED_RE.findall(_without_fences(text)) if _PATH_RE.match(span.strip())]


def _command_paths(commands: Iterable[str]) -> list[str]:
    paths = []
    for cmd in commands:
        try:
            tokens = shlex.split(cmd)
        except ValueError:
            tokens = cmd.split()
        for token in tokens:
            candidate = token.split("::", 1)[0]
            if not token.startswith("-") and _PATH_RE.match(candidate):
                paths.append(candidate)
    return paths


def _safe(paths: Iterable[str]) -> tuple[str, ...]:
    kept = []
    for path in paths:
        try:
            kept.append(clean_path(path))
        except ValueError:
            continue
    return _unique(kept)


def explicit_files_problems(node_id: str, content: NodeContent) -> list[Problem]:
    """Errors for explicitly declared owned files that are absolute or leave the project."""
    problems = []
    if content.code is not None:
        for i, path in enumerate(content.code.files):
            try:
                clean_path(path)
            except ValueError as exc:
                problems.append(
                    Problem(f"contents.{node_id}.code.files[{i}]", str(exc), "use a path inside the project")
                )
    declared = _declared(content.how_text) or ()
    for path in declared:
        try:
            clean_path(path)
        except ValueError as exc:
            problems.append(
                Problem(
                    f"contents.{node_id}.{content.how_field}", f"declared file {exc}", "use a path inside the project"
                )
            )
    return problems


def infer_owned_files(content: NodeContent | None, override: list[str] | None = None) -> OwnedFiles:
    """The files a node owns. Assumes explicit paths were checked (``explicit_files_problems``)."""
    if override is not None:
        return OwnedFiles(_safe(override), "foreman.toml", "nodes override")
    if content is None:
        return NO_FILES
    if content.code is not None and content.code.files:
        return OwnedFiles(_safe(content.code.files), "code.files")
    text = content.how_text
    declared = _declared(text)
    if declared:
        return OwnedFiles(_safe(declared), content.how_field, "files declared in the text")
    ticked = _safe(_ticked_source_paths(text))
    if ticked:
        return OwnedFiles(ticked, content.how_field, "source paths named in the text")
    if content.verify is not None:
        commands = [item.cmd for _, _, item in content.verify.items() if item.cmd]
        from_checks = _safe(_command_paths(commands))
        if from_checks:
            return OwnedFiles(from_checks, "verify", "files named by check commands")
    return NO_FILES


# ------------------------------------------------------------------------------- paths that stay inside

NAME_BYTES = 80
"""UTF-8 bytes of a name kept from its text (a hash suffix and foreman's own prefixes stay far below the 255 a
file name may have)."""

NOT_READ = "(not read: a symbolic link leading outside the project)"
"""What a prompt says in place of a file that leads outside the project."""


@functools.lru_cache(maxsize=4096)
def safe_name(text: str) -> str:
    """``text`` as one file-name component: letters (CJK too), digits and ``._-`` stay, anything else (``/``,
    ``\\``, NUL, spaces, ``:``) becomes ``_``; never empty, never hidden (no leading dot), never ``.`` or ``..``, at
    most NAME_BYTES bytes before its suffix. When anything changed, a short hash of ``text`` follows, so two texts
    never share a name: ``prepare`` stays ``prepare``, ``../../tmp/x`` becomes ``_._.._tmp_x-7a65a130``."""
    kept = "".join(c if c.isalnum() or c in "._-" else "_" for c in text)
    if kept.startswith("."):
        kept = "_" + kept[1:]
    cut = kept.encode("utf-8")[:NAME_BYTES].decode("utf-8", errors="ignore")
    if cut == text and text:
        return text
    digest = hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()[:8]
    return f"{cut}-{digest}" if cut else digest


def owner_name(owner: str) -> str:
    """The file name of what a log or a decision belongs to: a node id as it is, ``region:<key>`` as
    ``region_<safe key>`` (``decision:<id>`` as ``decision_<id>``, ``end`` as ``end``)."""
    kind, colon, rest = owner.partition(":")
    return f"{safe_name(kind)}_{safe_name(rest)}" if colon else safe_name(owner)


class LeavesRoot(OSError):
    """A path that really (symbolic links followed) lies outside the folder it is read from."""


def within(real: str, real_root: str) -> bool:
    """Whether the real path ``real`` is ``real_root`` or lies below it."""
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def inside(path: Path, root: Path) -> Path:
    """Where ``path`` really is, when that is inside ``root`` (symbolic links followed on both); raises
    ``LeavesRoot`` otherwise."""
    real = os.path.realpath(path)
    if not within(real, os.path.realpath(root)):
        raise LeavesRoot(f"{path} is a symbolic link leading outside {root} (to {real})")
    return Path(real)


def read_inside(path: Path, root: Path, errors: str = "strict") -> str:
    """The text of ``path``, read only when it really lies inside ``root``: a symbolic link out of it (at the
    file or on its way) raises ``LeavesRoot`` and is never opened; a missing file raises ``FileNotFoundError``."""
    return inside(path, root).read_text(encoding="utf-8", errors=errors)


class LinksOut:
    """Which project-relative paths lead outside ``root`` through a symbolic link, at their end or on their way.
    One ``lstat`` per distinct part of the way: a link is resolved only when there is one."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._real_root = os.path.realpath(root)
        self._seen: dict[str, tuple[str, str] | None] = {}

    def of(self, rel: str) -> tuple[str, str] | None:
        """(the link, where it really leads) when ``rel`` leaves the root through a link; else None."""
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            way = "/".join(parts[:i])
            if way not in self._seen:
                self._seen[way] = self._leaves(way)
            found = self._seen[way]
            if found is not None:
                return found
        return None

    def _leaves(self, way: str) -> tuple[str, str] | None:
        path = os.path.join(self.root, way)
        if not os.path.islink(path):
            return None
        real = os.path.realpath(path)
        return None if within(real, self._real_root) else (way, real)
