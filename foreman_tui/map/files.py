"""Which files a process node owns, and where that list came from.

In order of precedence: a ``foreman.toml`` override; ``contents.<id>.code.files``; a declaration in the
implementation/how text (``**关联文件**：`a.py``` or a ``Files:`` line); backticked source paths in that
text; the source/test files named by the node's verify commands. Paths are project-relative POSIX paths;
an explicit path that is absolute or leaves the project is an error, an inferred one is ignored.
"""

from __future__ import annotations

import functools
import posixpath
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

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
