"""Writing the map file: ``state.nodes`` changes, atomically, never losing anyone else's edit.

Every write takes an exclusive lock (``.foreman/map.lock`` beside the map, shared by every foreman
process), re-reads the file, applies the change to what is on disk *now*, writes a temp file in the
same folder, fsyncs it, checks the file did not change under it (a worker editing ``contents`` does not
take our lock), and renames it into place. The file is valid JSON at every moment, keys keep their
order, text stays UTF-8 (``ensure_ascii=False``, indent 2), and everything but the change is untouched.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import MapError, Problem, UsageError, format_path
from .files import within
from .model import PHASES, STATUSES, NodeState

FOREMAN_DIR = ".foreman"
_RETRIES = 20


class StateConflict(RuntimeError):
    """The map kept changing under a write; nothing was written."""


_SAFE_HOMES: set[str] = set()
"""Foreman folders this process found free of links out (``check_home``): it looks once per folder."""

_TREES = frozenset({"worktrees", "reviews"})
"""Folders of ``.foreman`` holding checkouts of the repository: their links are the project's, not foreman's."""


def check_home(folder: Path) -> None:
    """Refuse a foreman folder that would make foreman write outside the project: ``.foreman`` being a symbolic
    link leading out of the project, or a link in it (``.foreman/logs``…) leading out of it — a repository can
    commit either. The checkouts in ``worktrees/`` and ``reviews/`` are the project's and not looked into.
    Raises ``UsageError``."""
    if str(folder) in _SAFE_HOMES:
        return
    real = os.path.realpath(folder)
    if os.path.islink(folder) and not within(real, os.path.realpath(folder.parent)):
        raise UsageError(
            f"{folder} is a symbolic link to {real}, outside the project: foreman keeps its logs, prompts and "
            f"state there and would write outside the project; remove the link (a repository must not commit "
            f"{FOREMAN_DIR}) and run again"
        )
    for where, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            path = os.path.join(where, name)
            if os.path.islink(path) and not within(os.path.realpath(path), real):
                raise UsageError(
                    f"{path} is a symbolic link to {os.path.realpath(path)}, outside {folder}: foreman writes "
                    "there and would write outside the project; remove the link and run again"
                )
        if os.path.dirname(where) == str(folder) and os.path.basename(where) in _TREES:
            dirs[:] = []
    _SAFE_HOMES.add(str(folder))


def foreman_dir(project_dir: Path) -> Path:
    """``.foreman/`` in the project, created with a ``.gitignore`` that ignores all of it. Raises ``UsageError``
    when it, or a link in it, leads outside (``check_home``)."""
    folder = project_dir / FOREMAN_DIR
    check_home(folder)
    folder.mkdir(exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n", encoding="utf-8")
    return folder


def dump_map(raw: Mapping[str, Any], trailing_newline: bool = True) -> bytes:
    """The canonical text of a map: UTF-8, ``ensure_ascii=False``, indent 2, keys in their order."""
    text = json.dumps(raw, ensure_ascii=False, indent=2)
    return (text + "\n" if trailing_newline else text).encode("utf-8")


def _temp_copy(path: Path, data: bytes) -> Path:
    """``data`` in a synced temp file beside ``path`` (same folder, so a rename is atomic), same mode."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


Record = TypeVar("Record", bound=BaseModel)


def take_records(folder: Path, pattern: str, model: type[Record]) -> list[Record]:
    """Read and remove the JSON records other processes left in ``folder`` for a run (decisions, resets), oldest
    first by name; a file that cannot be read as ``model`` (half written by hand, taken already) is dropped."""
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob(pattern)):
        with suppress(OSError, ValueError):
            found.append(model.model_validate_json(path.read_bytes()))
        path.unlink(missing_ok=True)
    return found


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix."""
    tmp = _temp_copy(path, data)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class MapStore:
    """Reads and writes one map file on behalf of every foreman process working on it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()

    @contextmanager
    def lock(self) -> Iterator[None]:
        """The write lock: held across read-modify-write so two foreman writers never interleave."""
        lock_path = foreman_dir(self.path.parent) / "map.lock"
        with open(lock_path, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def read(self) -> dict[str, Any]:
        return json.loads(self.path.read_bytes())

    def update(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Apply ``change`` to the document as it is on disk now, and write it back atomically.

        Returns the document written. Raises :class:`StateConflict` if the file keeps changing between
        our read and our rename (someone else writing without the lock) after several tries."""
        with self.lock():
            for _ in range(_RETRIES):
                before = self.path.read_bytes()
                try:
                    doc = json.loads(before)
                except json.JSONDecodeError as exc:
                    raise MapError(
                        str(self.path),
                        [
                            Problem(
                                f"(line {exc.lineno}, column {exc.colno})",
                                f"invalid JSON: {exc.msg}",
                                "fix the file; foreman did not write it",
                            )
                        ],
                    ) from None
                change(doc)
                data = dump_map(doc, before.endswith(b"\n"))
                if data == before:
                    return doc
                if self._replace_if_unchanged(before, data):
                    return doc
            raise StateConflict(f"{self.path} kept changing while foreman tried to write it; nothing was written")

    def _replace_if_unchanged(self, before: bytes, data: bytes) -> bool:
        tmp = _temp_copy(self.path, data)
        try:
            if self.path.read_bytes() != before:
                return False
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(self.path.parent)
        return True

    def state_over(self, base: bytes | None) -> bytes:
        """``base`` (the map as committed) carrying the ``state`` the file has now: what foreman commits, so
        that nobody's uncommitted edit of anything else in the map is folded into foreman's commit."""
        with self.lock():
            current = self.path.read_bytes()
        if base is None:
            return current
        try:
            doc = json.loads(base)
            state = json.loads(current).get("state")
        except (ValueError, AttributeError):
            return current
        if not isinstance(doc, dict):
            return current
        if state is None:
            doc.pop("state", None)
        else:
            doc["state"] = state
        return dump_map(doc, base.endswith(b"\n"))

    def set_states(self, changes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """Merge ``{node_id: {"status": ..., "verify_results": {...}}}`` into ``state.nodes``.

        Only the given keys of each node's entry change; ``verify_results`` phases are replaced whole.
        Values are checked against the schema first, so the map's state stays schema-valid."""
        for node_id, entry in changes.items():
            _check_entry(node_id, entry)

        def change(doc: dict[str, Any]) -> None:
            known = {n.get("id") for n in doc.get("graph", {}).get("nodes", []) if isinstance(n, dict)}
            unknown = [n for n in changes if n not in known]
            if unknown:
                raise MapError(str(self.path), [Problem(f"state.nodes.{n}", "unknown node", "") for n in unknown])
            state = doc.setdefault("state", {})
            nodes = state.setdefault("nodes", {})
            for node_id, entry in changes.items():
                current = nodes.setdefault(node_id, {})
                for key, value in entry.items():
                    if key == "verify_results":
                        results = current.setdefault("verify_results", {})
                        results.update({phase: list(value[phase]) for phase in PHASES if phase in value})
                    else:
                        current[key] = value

        return self.update(change)

    def set_status(self, node_id: str, status: str) -> dict[str, Any]:
        return self.set_states({node_id: {"status": status}})


def _check_entry(node_id: str, entry: Mapping[str, Any]) -> None:
    unknown = set(entry) - {"status", "verify_results"}
    if unknown:
        raise ValueError(f"state.nodes.{node_id}: cannot set {sorted(unknown)}; only status and verify_results")
    if "status" in entry and entry["status"] not in STATUSES:
        raise ValueError(f"state.nodes.{node_id}.status: '{entry['status']}' is not one of {', '.join(STATUSES)}")
    try:
        NodeState.model_validate(dict(entry))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = format_path(["state", "nodes", node_id, *first["loc"]])
        raise ValueError(f"{where}: {first['msg']}") from None
