"""Reading a feedback file: the Algorithm Map renderer's "提交反馈" Markdown and foreman's older ``[node:<id>]`` notes.

The renderer (``buildFeedbackMarkdown`` in ``renderer/render.html``; ``server.py`` writes the posted text unchanged,
overwriting ``<map stem>.feedback.md`` next to the map) writes::

    # Feedback: <meta.title>
    - Date: 2026-02-28T10:00:00
    - Source: <map path>
    - Annotations: <N>

    ## Flow
    - [node:<id>] <comment>            (a flow-chart note on a node, an edge or a region)
    - [edge:<from>-><to>] <comment>
    - [region:<region id>] <comment>

    ## <region label>                  (panel notes on a region)
    - [概述] "<anchor, first 60 UTF-16 units>"... → <comment>

    ## <node label, else contents title, else id>
    - [实现] "<anchor>" → <comment>
    - [验证] <comment>                  (no anchor)

Nothing is escaped: anchors and comments may hold quotes, arrows and newlines (their continuation lines follow
the bullet). A note runs from its ``- [..]`` line to the next one, the next ``## `` heading or the next
``[node:<id>]`` marker at the start of a line. Outside bullets, ``[node:<id>]`` markers split the text as foreman's
old format did (several may share a line). Text under a heading that is not a bullet is a note too (no tab).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

_HEADING = re.compile(r"^##[ \t]+(.*?)[ \t]*$")
_TITLE = re.compile(r"^#[ \t]+(.*?)[ \t]*$")
_META = re.compile(r"^- (Date|Source|Annotations):[ \t]*(.*?)[ \t]*$")
_BULLET = re.compile(r"^- \[([^\]\n]+)\][ \t]?(.*)$")
_MARKER = re.compile(r"\[node:([^\]\s]+)\]")
_SEPARATOR = re.compile(r'"(\.\.\.)? →(?: |$)')
_ANCHOR_LIMIT = 60  # the renderer keeps the first 60 UTF-16 code units of an anchor and adds "..."
FLOW = "Flow"


@dataclass(frozen=True, slots=True)
class FeedbackNote:
    section: str  # the "## " heading it sat under ("" when none)
    text: str  # the person's comment, multi-line kept
    tab: str | None  # what the renderer wrote in [..]: "概述", "实现", "验证" (or an older/unknown tab name)
    anchor: str | None  # the quoted text the note was made on
    node: str | None  # an explicit target: "[node:<id>]"
    edge: tuple[str, str] | None  # "[edge:a->b]"
    line: int  # 1-based line of the note's start
    region: str | None = None  # "[region:<id>]" (flow-chart note on a region)
    anchor_cut: bool = False  # the renderer shortened the anchor ("...")

    def for_worker(self) -> str:
        """The note as one readable line (or paragraph) for a worker's task."""
        parts = [f"[{self.tab}]"] if self.tab else []
        if self.section == FLOW and self.node:
            parts.append("[flow chart]")
        if self.edge:
            parts.append(f"[edge {self.edge[0]} -> {self.edge[1]}]")
        if self.region:
            parts.append(f"[region {self.region}]")
        if self.anchor is not None:
            parts.append(f'"{self.anchor}{"..." if self.anchor_cut else ""}" →')
        return " ".join([*parts, self.text])


@dataclass(frozen=True, slots=True)
class FeedbackFile:
    title: str | None  # from "# Feedback: <title>" (or any leading "# " line)
    source: str | None  # "- Source: ..."
    date: str | None  # "- Date: ..."
    declared: int | None  # "- Annotations: N"
    notes: list[FeedbackNote] = field(default_factory=list)

    @property
    def count_differs(self) -> bool:
        """The header promised a different number of annotations than the notes found."""
        return self.declared is not None and self.declared != len(self.notes)


@dataclass(frozen=True, slots=True)
class Route:
    note: FeedbackNote
    kind: Literal["node", "region", "flow", "unmatched"]
    targets: tuple[str, ...]  # node ids (for "region": the region's process nodes); () for flow/unmatched
    region: str | None = None  # the region key for kind "region"
    reason: str = ""  # unmatched: why; "node": set when the node is not a process node


@dataclass(slots=True)
class _Open:
    line: int
    section: str
    bracket: str | None
    bullet: bool
    parts: list[str]


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _split_anchor(body: str) -> tuple[str | None, bool, str]:
    """``"anchor"... → comment`` → (anchor, cut, comment). Quotes and arrows are not escaped, so of the possible
    separators one that fits the renderer's cut is taken (a cut anchor, "...", is exactly 60 UTF-16 units, an uncut
    one at most 60; if none fits, as in a hand-written file, any), preferring the first whose anchor holds an even
    number of '"', else the first."""
    if not body.startswith('"'):
        return None, False, body
    seps = list(_SEPARATOR.finditer(body, 1))
    sizes = [_utf16_len(body[1 : m.start()]) for m in seps]
    fits = [m for m, n in zip(seps, sizes, strict=True) if (n == _ANCHOR_LIMIT if m.group(1) else n <= _ANCHOR_LIMIT)]
    if not (fits or seps):
        return None, False, body
    m = min(fits or seps, key=lambda m: body.count('"', 1, m.start()) % 2)  # first with balanced quotes, else first
    return body[1 : m.start()], bool(m.group(1)), body[m.end() :].strip()


def _finish(note: _Open | None) -> FeedbackNote | None:
    if note is None:
        return None
    body = "\n".join(note.parts).strip()
    tab = node = region = None
    edge: tuple[str, str] | None = None
    anchor, cut = None, False
    kind, _, value = (note.bracket or "").partition(":")
    if note.bracket is None:
        pass
    elif kind == "node" and value:
        node = value.strip()
    elif kind == "region" and value:
        region = value.strip()
    elif kind == "edge" and value.count("->") == 1 and all(p.strip() for p in value.split("->")):
        a, b = value.split("->")
        edge = (a.strip(), b.strip())
    else:
        tab = note.bracket.strip()
        anchor, cut, body = _split_anchor(body)
    if not body and anchor is None:
        return None
    return FeedbackNote(note.section, body, tab, anchor, node, edge, note.line, region, cut)


def parse_feedback_file(text: str) -> FeedbackFile:
    """Split a feedback file into its header and notes (see the module docstring for the layout)."""
    title = source = date = None
    declared: int | None = None
    notes: list[FeedbackNote] = []
    section, started = "", False
    current: _Open | None = None

    def close(new: _Open | None) -> None:
        nonlocal current
        done = _finish(current)
        if done is not None:
            notes.append(done)
        current = new

    for lineno, raw in enumerate(text.splitlines(), 1):
        if heading := _HEADING.match(raw):
            close(None)
            section, started = heading.group(1), True
            continue
        if not started and current is None:
            if h1 := _TITLE.match(raw):
                title = h1.group(1).removeprefix("Feedback:").strip()
                continue
            if meta := _META.match(raw):
                name, value = meta.groups()
                if name == "Date":
                    date = value
                elif name == "Source":
                    source = value
                elif value.isdigit():
                    declared = int(value)
                continue
        if bullet := _BULLET.match(raw):
            close(_Open(lineno, section, bullet.group(1), True, [bullet.group(2)]))
            started = True
            continue
        markers = list(_MARKER.finditer(raw))
        if markers and current is not None and current.bullet and markers[0].start() != len(raw) - len(raw.lstrip()):
            markers = []  # a bullet's comment that mentions another node stays one note
        head = raw[: markers[0].start()] if markers else raw
        if current is not None:
            current.parts.append(head)
        elif head.strip():
            current = _Open(lineno, section, None, False, [head])
        for i, marker in enumerate(markers):
            end = markers[i + 1].start() if i + 1 < len(markers) else len(raw)
            close(_Open(lineno, section, f"node:{marker.group(1)}", False, [raw[marker.end() : end]]))
            started = True
    close(None)
    return FeedbackFile(title, source, date, declared, notes)


def parse_feedback(text: str) -> list[FeedbackNote]:
    return parse_feedback_file(text).notes


def _norm(text: str) -> str:
    """Compare names regardless of case, runs of whitespace and full-width/half-width forms."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _miss(note: FeedbackNote, reason: str) -> Route:
    return Route(note, "unmatched", (), reason=reason)


def route_notes(
    notes: Iterable[FeedbackNote],
    *,
    labels: Mapping[str, str],
    titles: Mapping[str, str],
    types: Mapping[str, str],
    regions: Sequence[tuple[str, str, tuple[str, ...]]],
) -> list[Route]:
    """Say where each note goes. ``labels``/``titles``/``types`` are per node id; ``regions`` are
    (key, label, process node ids) with key = region id, else its label.

    - ``[node:<id>]`` (anywhere, also the old plain format and the renderer's ``## Flow`` node notes) → that node.
    - ``[region:<key>]`` → that region; ``[edge:a->b]`` and other ``## Flow`` notes → kind "flow".
    - otherwise the ``## `` heading is matched (case, whitespace and full-width insensitive) against node labels
      and region labels, then node titles (contents.<id>.title), then node ids and region keys. A region gives
      kind "region" with its process nodes as targets. Several candidates at one step: the one whose id equals the
      heading wins, else the note is unmatched as ambiguous.
    - A node that is not a process node (decision, terminal, auxiliary) is still kind "node" with that id; the
      ``reason`` names its type and the caller decides (e.g. hand it to the process nodes feeding the decision).
    - Anything else is kind "unmatched" with a reason; no note is dropped.
    """
    ids = {_norm(n): n for n in types}
    members_of = {key: members for key, _, members in regions}
    region_keys = {_norm(key): key for key, _, _ in regions}
    region_labels = {_norm(label): key for key, label, _ in reversed(regions) if label}

    def node_route(note: FeedbackNote, node: str) -> Route:
        kind = types.get(node, "process")
        reason = "" if kind == "process" else f"{node} is a {kind} node, not a process node"
        return Route(note, "node", (node,), reason=reason)

    def region_route(note: FeedbackNote, key: str) -> Route:
        members = members_of[key]
        return Route(note, "region", tuple(members), region=key, reason="" if members else "no process nodes")

    def by_heading(note: FeedbackNote) -> Route:
        wanted = _norm(note.section)
        steps = [
            [("node", n) for n, label in labels.items() if label and _norm(label) == wanted]
            + [("region", key) for key, label, _ in regions if label and _norm(label) == wanted],
            [("node", n) for n, title in titles.items() if title and _norm(title) == wanted],
            [("node", n) for n in types if _norm(n) == wanted]
            + [("region", key) for key, _, _ in regions if _norm(key) == wanted],
        ]
        for found in steps:
            found = list(dict.fromkeys(found))
            if len(found) > 1:
                exact = [c for c in found if _norm(c[1]) == wanted]
                if len(exact) != 1:
                    names = " and ".join(name for _, name in found)
                    return _miss(note, f'ambiguous: {names} share the label "{note.section}"')
                found = exact
            if found:
                what, name = found[0]
                return node_route(note, name) if what == "node" else region_route(note, name)
        return _miss(note, f'no node or region is labelled "{note.section}"')

    def route(note: FeedbackNote) -> Route:
        if note.node is not None:
            node = note.node if note.node in types else ids.get(_norm(note.node))
            return node_route(note, node) if node else _miss(note, f'no node has the id "{note.node}"')
        if note.region is not None:
            key = region_keys.get(_norm(note.region)) or region_labels.get(_norm(note.region))
            return region_route(note, key) if key else _miss(note, f'no region has the id "{note.region}"')
        if note.edge is not None or _norm(note.section) == _norm(FLOW):
            return Route(note, "flow", ())
        if not note.section.strip():
            return _miss(note, "not under a ## heading and names no node ([node:<id>])")
        return by_heading(note)

    return [route(note) for note in notes]
