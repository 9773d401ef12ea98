"""What a node was verified against, and what has changed since: staleness (SPEC §11).

When a node is verified foreman records its *fingerprint*: a digest of its own contract (the implementation/how
text, its pre and core verify items, its owned files), a digest of its post conditions, and the post digests of
the upstream nodes it was verified against. Later (at start, and whenever the map changes on disk) the map is
compared with it. A verified node whose own contract or post changed is stale; a changed **post** makes every
verified node downstream of it stale too (through decision nodes, never through back edges). A ``dispute`` a
worker writes on an item is not part of the contract. Overview, title and other prose are not either.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, Field

from .project import Project

NOT_CONTRACT = frozenset({"dispute"})
"""Fields of a verify item that are not part of what the node is checked against."""


class Fingerprint(BaseModel):
    own: str
    """Digest of the how text, the pre and core items and the owned files."""
    post: str
    """Digest of the post conditions (what the nodes downstream rely on)."""
    upstream: dict[str, str] = Field(default_factory=dict)
    """Each upstream process node's post digest when this node was verified."""


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def _items(project: Project, node: str, phases: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {"phase": c.phase, **c.item.model_dump(exclude=set(NOT_CONTRACT), exclude_none=True)}
        for c in project.node_checks(node)
        if c.phase in phases
    ]


def post_digest(project: Project, node: str) -> str:
    return _digest(_items(project, node, ("post",)))


def fingerprint(project: Project, node: str) -> Fingerprint:
    content = project.doc.content(node)
    own = {
        "how": content.how_text if content is not None else "",
        "checks": _items(project, node, ("pre", "core")),
        "files": list(project.owned[node].files) if node in project.owned else [],
    }
    upstream = {up: post_digest(project, up) for up in project.graph.upstream.get(node, ())}
    return Fingerprint(own=_digest(own), post=post_digest(project, node), upstream=upstream)


def find_stale(project: Project, verified: dict[str, Fingerprint]) -> dict[str, str]:
    """The verified nodes (with the fingerprint each was verified against) that are stale now, each with why,
    in implementation order."""
    graph = project.graph
    reasons: dict[str, str] = {}
    current = {node: fingerprint(project, node) for node in verified if node in graph.types}
    for node in graph.process_order:
        was = verified.get(node)
        now = current.get(node)
        if was is None or now is None:
            continue
        if was.post != now.post:
            reasons.setdefault(node, f"{node}'s post changed")
            for after in graph.dependants(node):
                if after in verified:
                    reasons.setdefault(after, f"{node}'s post changed")
        if was.own != now.own:
            reasons.setdefault(node, f"{node}'s implementation, checks or files changed")
        for up, digest in was.upstream.items():
            if up in now.upstream and now.upstream[up] != digest:
                reasons.setdefault(node, f"{up}'s post changed")
    return {node: reasons[node] for node in graph.process_order if node in reasons}
