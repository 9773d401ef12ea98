"""The loader takes any JSON at all: it either returns a map or raises MapError, never anything else."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foreman_tui.engine.graph import build_graph
from foreman_tui.engine.scheduler import simulate
from foreman_tui.map.errors import MapError
from foreman_tui.map.files import infer_owned_files
from foreman_tui.map.load import parse_map

from .conftest import minimal_map

KEYS = [
    "version",
    "meta",
    "graph",
    "contents",
    "state",
    "nodes",
    "edges",
    "regions",
    "id",
    "label",
    "type",
    "from",
    "to",
    "title",
    "overview",
    "verify",
    "core",
    "pre",
    "post",
    "level",
    "cmd",
    "desc",
    "status",
    "code",
    "files",
    "implementation",
    "how",
    "verify_results",
    "benchmark",
    "a",
    "b",
    "start",
    "process",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.sampled_from(KEYS),
    st.sampled_from(["L1", "L4", "process", "../x.py"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)),
    max_leaves=40,
)


def _loads_or_refuses(doc: Any) -> None:
    try:
        loaded = parse_map(json.dumps(doc))
    except MapError as exc:
        assert exc.problems, "a MapError always names at least one problem"
        for problem in exc.problems:
            assert problem.path and problem.message
        return
    graph = build_graph(loaded.model)
    files = {n: infer_owned_files(loaded.content(n)).files for n in graph.process_order}
    simulate(graph, files)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(json_values)
def test_arbitrary_json_never_raises_anything_but_map_error(doc: Any) -> None:
    _loads_or_refuses(doc)


@st.composite
def mutated_maps(draw: st.DrawFn) -> Any:
    """A valid map with one random part replaced by arbitrary JSON: exercises the deeper checks."""
    doc = minimal_map()
    paths = [
        ["version"],
        ["meta"],
        ["graph", "nodes"],
        ["graph", "edges"],
        ["graph", "nodes", 1],
        ["graph", "edges", 0],
        ["contents", "a"],
        ["contents", "a", "verify"],
        ["contents", "b", "code"],
        ["graph", "regions"],
        ["state"],
        ["graph", "nodes", 1, "type"],
        ["contents", "a", "implementation"],
    ]
    path = draw(st.sampled_from(paths))
    target = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = draw(json_values)
    return doc


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(mutated_maps())
def test_a_valid_map_with_one_part_garbled_never_crashes(doc: Any) -> None:
    _loads_or_refuses(doc)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    with contextlib.suppress(MapError):
        parse_map(data)
