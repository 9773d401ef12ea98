"""The Algorithm Map format (schema 0.1.0) as pydantic models.

The models are a validated *view* of the document. The raw JSON stays the source of truth for writing,
so fields foreman does not know survive a write untouched (see ``store.py``). Every model allows extra
fields; the loader reports the ones outside the schema as warnings.

Fields beyond the public schema that foreman understands: ``contents.<id>.how`` (older name of
``implementation``), ``contents.<id>.code.files``, ``cmd``/``level``/``dispute``/``approve`` on any verify item,
``regions[].id/semantic/verify``, and ``meta.benchmark.cmd``.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StrictBool

SCHEMA_VERSION = "0.1.0"
NODE_ID_PATTERN = r"^[a-z0-9_]+$"

NodeType = Literal["process", "decision", "terminal", "auxiliary"]
Level = Literal["L1", "L2", "L3"]
Status = Literal["not_started", "discussing", "theory_ok", "implemented", "verified"]
Phase = Literal["pre", "core", "post"]

NODE_TYPES: tuple[str, ...] = get_args(NodeType)
LEVELS: tuple[str, ...] = get_args(Level)
STATUSES: tuple[str, ...] = get_args(Status)
PHASES: tuple[Phase, ...] = ("pre", "core", "post")


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True)


class Benchmark(_Part):
    file: str | None = None
    known_optimal: float | None = None
    source: str | None = None
    cmd: str | None = None
    """foreman extension: a command that runs the benchmark and prints its objective."""


class Blueprint(_Part):
    core_idea: str | None = None
    data_flow: str | None = None
    key_assumptions: str | None = None


class Meta(_Part):
    title: str
    phase: str | None = None
    project: str | None = None
    created: str | None = None
    updated: str | None = None
    benchmark: Benchmark | None = None
    blueprint: Blueprint | None = None
    test_instance: str | None = None


class Node(_Part):
    id: str = Field(pattern=NODE_ID_PATTERN)
    label: str
    type: NodeType
    sub: str | None = None


class Edge(_Part):
    from_: str = Field(alias="from")
    to: str
    label: str | None = None


class VerifyItem(_Part):
    """One check. ``pre``/``post`` items are conditions (``check``), ``core`` items carry ``level``/``cmd``;
    foreman accepts every field on every phase."""

    desc: str
    level: Level | None = None
    method: str | None = None
    cmd: str | None = None
    check: str | None = None
    dispute: str | None = None
    approve: bool | None = None
    """foreman extension: this check needs a person's approval (an approval gate) before the node is verified."""


class Verify(_Part):
    pre: list[VerifyItem] = Field(default_factory=list)
    core: list[VerifyItem] = Field(default_factory=list)
    post: list[VerifyItem] = Field(default_factory=list)

    def items(self) -> list[tuple[Phase, int, VerifyItem]]:
        """Every check with its phase and position, in map order."""
        return [(phase, i, item) for phase in PHASES for i, item in enumerate(getattr(self, phase))]


class Region(_Part):
    label: str
    nodes: list[str]
    id: str | None = None
    semantic: str | None = None
    verify: Verify | None = None


class Graph(_Part):
    nodes: list[Node]
    edges: list[Edge]
    regions: list[Region] = Field(default_factory=list)


class CodeSpec(_Part):
    files: list[str] = Field(default_factory=list)


class NodeContent(_Part):
    title: str
    overview: str
    implementation: str | None = None
    how: str | None = None
    code: CodeSpec | None = None
    verify: Verify | None = None
    refs: str | None = None

    @property
    def how_text(self) -> str:
        """The "how" of a node whichever protocol version named it."""
        return self.implementation or self.how or ""

    @property
    def how_field(self) -> str:
        return "implementation" if self.implementation else "how"


class VerifyResults(_Part):
    pre: list[StrictBool | None] = Field(default_factory=list)
    core: list[StrictBool | None] = Field(default_factory=list)
    post: list[StrictBool | None] = Field(default_factory=list)


class NodeState(_Part):
    status: Status = "not_started"
    verify_results: VerifyResults | None = None


class State(_Part):
    nodes: dict[str, NodeState] = Field(default_factory=dict)
    annotations: dict[str, Any] | None = None


class AlgorithmMap(_Part):
    version: str
    meta: Meta
    graph: Graph
    contents: dict[str, NodeContent]
    state: State | None = None
