"""Read a map file into a validated :class:`MapDocument`, or fail with every problem named by JSON path.

Strict on structure (bad JSON, duplicate or malformed ids, references to unknown nodes, enum values,
unsafe owned-file paths), lenient on content: fields outside schema 0.1.0 are kept and reported as
warnings. Loading never writes anything.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ._gc import gc_paused
from .errors import JsonPath, MapError, Problem, did_you_mean, format_path
from .files import explicit_files_problems
from .model import (
    LEVELS,
    NODE_ID_PATTERN,
    NODE_TYPES,
    PHASES,
    SCHEMA_VERSION,
    STATUSES,
    AlgorithmMap,
    NodeContent,
    Verify,
)

DEFAULT_MAP_NAME = "algorithm-map.json"


@dataclass(slots=True)
class MapDocument:
    """A loaded map: the raw JSON (source of truth for writing), its validated model, and warnings."""

    path: Path | None
    raw: dict[str, Any]
    model: AlgorithmMap
    warnings: list[Problem] = field(default_factory=list)

    @property
    def source(self) -> str:
        return str(self.path) if self.path else "<map>"

    @property
    def project_dir(self) -> Path:
        """The target project root: the folder the map lives in."""
        return self.path.parent if self.path else Path.cwd()

    def content(self, node_id: str) -> NodeContent | None:
        return self.model.contents.get(node_id)


def load_map(path: str | Path) -> MapDocument:
    """Read and validate the map at ``path``. Raises :class:`MapError` (exit 2) on any structural problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MapError(
            str(path),
            [Problem("(file)", "no such file", "pass the map's path, or run foreman in the project root")],
        ) from None
    except IsADirectoryError:
        candidate = path / DEFAULT_MAP_NAME
        if candidate.is_file():
            return load_map(candidate)
        raise MapError(
            str(path), [Problem("(file)", "is a folder", f"point at the JSON file, e.g. {candidate}")]
        ) from None
    except OSError as exc:
        raise MapError(str(path), [Problem("(file)", f"cannot be read: {exc.strerror}", "")]) from None
    doc = parse_map(data, source=str(path))
    doc.path = path.resolve()
    return doc


def parse_map(data: bytes | str, source: str = "<map>") -> MapDocument:
    """Validate map text. Never raises anything but :class:`MapError` for bad input."""
    with gc_paused():
        return _parse(data, source)


def _parse(data: bytes | str, source: str) -> MapDocument:
    raw = _decode(data, source)
    if not isinstance(raw, dict):
        raise MapError(
            source,
            [Problem("(document)", f"the map must be a JSON object, got {_kind(raw)}", "wrap it in { … }")],
        )
    try:
        model = AlgorithmMap.model_validate(raw)
    except ValidationError as exc:
        raise MapError(source, [_from_pydantic(err) for err in exc.errors()]) from None
    problems, warnings = _check_structure(model)
    if problems:
        raise MapError(source, problems)
    warnings.extend(_unknown_field_warnings(model))
    return MapDocument(path=None, raw=raw, model=model, warnings=warnings)


# ---------------------------------------------------------------------------------------------- JSON


def _decode(data: bytes | str, source: str) -> Any:
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise MapError(
                source, [Problem("(file)", f"not UTF-8 text (byte {exc.start})", "save the file as UTF-8")]
            ) from None
    else:
        text = data
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        if len(obj) != len(items):
            counts = Counter(key for key, _ in items)
            duplicates.extend(key for key, n in counts.items() if n > 1)
        return obj

    try:
        raw = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise MapError(
            source,
            [Problem(f"(line {exc.lineno}, column {exc.colno})", f"invalid JSON: {exc.msg}", "fix the syntax")],
        ) from None
    except RecursionError:
        raise MapError(source, [Problem("(document)", "JSON nested too deeply", "flatten the document")]) from None
    if duplicates:
        raise MapError(
            source,
            [
                Problem("(document)", f"key '{key}' appears twice in one JSON object", "keep one of them")
                for key in dict.fromkeys(duplicates)
            ],
        )
    return raw


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


_EXPECTED = {
    "string_type": "a string",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "dict_type": "an object",
    "list_type": "an array",
    "bool_type": "true or false",
    "float_type": "a number",
    "int_type": "an integer",
}
_ENUMS = {"type": NODE_TYPES, "level": LEVELS, "status": STATUSES}


def _from_pydantic(err: Any) -> Problem:
    loc: JsonPath = [part for part in err["loc"] if not (isinstance(part, str) and part.startswith("function-"))]
    path = format_path(loc)
    kind = err["type"]
    value = err.get("input")
    if kind == "missing":
        return Problem(path, "required field is missing", f"add '{loc[-1]}'")
    if kind == "literal_error":
        choices = _ENUMS.get(str(loc[-1]), ())
        listed = ", ".join(choices) if choices else err.get("ctx", {}).get("expected", "")
        hint = did_you_mean(str(value), choices) if isinstance(value, str) else ""
        return Problem(path, f"{json.dumps(value, ensure_ascii=False)} is not allowed{hint}", f"use one of: {listed}")
    if kind == "string_pattern_mismatch" and isinstance(value, str):
        suggestion = re.sub(r"[^a-z0-9_]+", "_", value.lower()).strip("_") or "node_1"
        return Problem(path, f"'{value}' must match {NODE_ID_PATTERN}", f"rename it, e.g. '{suggestion}'")
    if kind in _EXPECTED:
        return Problem(path, f"expected {_EXPECTED[kind]}, got {_kind(value)}", f"make it {_EXPECTED[kind]}")
    return Problem(path, err.get("msg", "invalid value"), "")


# ---------------------------------------------------------------------------------------- structure


def _check_structure(model: AlgorithmMap) -> tuple[list[Problem], list[Problem]]:
    problems: list[Problem] = []
    warnings: list[Problem] = []
    if model.version != SCHEMA_VERSION:
        warnings.append(
            Problem("version", f"'{model.version}' is not {SCHEMA_VERSION}", "foreman reads it as schema 0.1.0")
        )

    ids: dict[str, int] = {}
    for i, node in enumerate(model.graph.nodes):
        where = f"graph.nodes[{i}].id"
        if node.id in ids:
            problems.append(
                Problem(where, f"duplicate node id '{node.id}' (first at graph.nodes[{ids[node.id]}])", "rename one")
            )
        else:
            ids[node.id] = i

    def unknown(path: str, name: str, what: str = "node") -> Problem:
        return Problem(path, f"unknown {what} '{name}'{did_you_mean(name, ids)}", "use an id from graph.nodes")

    seen_edges: set[tuple[str, str]] = set()
    for i, edge in enumerate(model.graph.edges):
        for end, name in (("from", edge.from_), ("to", edge.to)):
            if name not in ids:
                problems.append(unknown(f"graph.edges[{i}].{end}", name))
        if (edge.from_, edge.to) in seen_edges:
            warnings.append(Problem(f"graph.edges[{i}]", f"edge {edge.from_}→{edge.to} is listed twice", "drop one"))
        seen_edges.add((edge.from_, edge.to))

    region_ids: set[str] = set()
    for r, region in enumerate(model.graph.regions):
        for j, name in enumerate(region.nodes):
            if name not in ids:
                problems.append(unknown(f"graph.regions[{r}].nodes[{j}]", name))
        if region.id is not None:
            if region.id in region_ids:
                problems.append(Problem(f"graph.regions[{r}].id", f"duplicate region id '{region.id}'", "rename one"))
            region_ids.add(region.id)

    for node_id, content in model.contents.items():
        if node_id not in ids:
            problems.append(unknown(f"contents.{node_id}", node_id, "node (contents key)"))
            continue
        problems.extend(explicit_files_problems(node_id, content))

    if model.state is not None:
        for node_id in model.state.nodes:
            if node_id not in ids:
                problems.append(unknown(f"state.nodes.{node_id}", node_id, "node (state key)"))

    for i, node in enumerate(model.graph.nodes):
        if node.type == "process" and node.id not in model.contents:
            warnings.append(
                Problem(f"graph.nodes[{i}]", f"process node '{node.id}' has no contents", f"add contents.{node.id}")
            )
    return problems, warnings


# ------------------------------------------------------------------------------------ unknown fields


def _extras(obj: BaseModel | None, path: list[str | int]) -> Iterator[tuple[list[str | int], str]]:
    if obj is not None and obj.__pydantic_extra__:
        for key in obj.__pydantic_extra__:
            yield path, key


def _verify_extras(verify: Verify | None, path: list[str | int]) -> Iterator[tuple[list[str | int], str]]:
    if verify is None:
        return
    yield from _extras(verify, path)
    for phase in PHASES:
        for i, item in enumerate(getattr(verify, phase)):
            if item.__pydantic_extra__:
                yield from _extras(item, [*path, phase, i])


def _walk_extras(model: AlgorithmMap) -> Iterator[tuple[list[str | int], str]]:
    """Every field outside the models, walking the known structure (fast on maps of thousands of nodes: the
    path of an object is built only when it has an unknown field)."""
    yield from _extras(model, [])
    meta = model.meta
    yield from _extras(meta, ["meta"])
    yield from _extras(meta.benchmark, ["meta", "benchmark"])
    yield from _extras(meta.blueprint, ["meta", "blueprint"])
    graph = model.graph
    yield from _extras(graph, ["graph"])
    for i, node in enumerate(graph.nodes):
        if node.__pydantic_extra__:
            yield from _extras(node, ["graph", "nodes", i])
    for i, edge in enumerate(graph.edges):
        if edge.__pydantic_extra__:
            yield from _extras(edge, ["graph", "edges", i])
    for i, region in enumerate(graph.regions):
        yield from _extras(region, ["graph", "regions", i])
        yield from _verify_extras(region.verify, ["graph", "regions", i, "verify"])
    for node_id, content in model.contents.items():
        if content.__pydantic_extra__:
            yield from _extras(content, ["contents", node_id])
        code = content.code
        if code is not None and code.__pydantic_extra__:
            yield from _extras(code, ["contents", node_id, "code"])
        verify = content.verify
        if verify is not None:
            yield from _verify_extras(verify, ["contents", node_id, "verify"])
    if model.state is not None:
        yield from _extras(model.state, ["state"])
        for node_id, entry in model.state.nodes.items():
            yield from _extras(entry, ["state", "nodes", node_id])
            yield from _extras(entry.verify_results, ["state", "nodes", node_id, "verify_results"])


def _unknown_field_warnings(model: AlgorithmMap) -> list[Problem]:
    """One warning per unknown field name, counting repeats, so a real map's 70 ``category`` fields read
    as one line that names the first place."""
    groups: dict[str, list[str]] = defaultdict(list)
    for path, key in _walk_extras(model):
        groups[key].append(format_path([*path, key]))
    warnings = []
    for key, places in groups.items():
        count = f" ({len(places)} places)" if len(places) > 1 else ""
        warnings.append(
            Problem(places[0], f"field '{key}' is not in schema {SCHEMA_VERSION}{count}", "kept and written back as is")
        )
    return warnings
