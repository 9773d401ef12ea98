"""A picture of a run for the HTML report: one row per process node on one time axis, with its worker attempts,
checks, reviews, pauses (and how long each waited for a person) and its merge — an SVG drawn from the event
log, no JavaScript. Every mark has a ``<title>`` (a browser shows it on hover) and ``data-*`` attributes saying
what it stands for."""

from __future__ import annotations

from html import escape
from typing import Any

from .event_text import duration

Record = dict[str, Any]

LABEL = 190
"""Pixels of the node-name column."""
WIDTH = 1000
"""Pixels of the time axis."""
ROW = 24
TOP = 28
COLOURS = {
    "attempt": "#4a7fd4",
    "review": "#8a5cc2",
    "pass": "#2e9e4f",
    "fail": "#d2453a",
    "pause": "#e8b730",
    "merge": "#222222",
}


def _spans(events: list[Record], node: str, end: float) -> list[tuple[str, float, float, str, dict[str, str]]]:
    """(kind, start, stop, title, data) of ``node``'s marks, in time order."""
    marks: list[tuple[str, float, float, str, dict[str, str]]] = []
    open_: dict[tuple[str, int], float] = {}
    paused: tuple[float, str] | None = None
    for e in events:
        if e.get("node") != node:
            continue
        kind, d, at = e["kind"], e["detail"], float(e["ts"])
        if kind == "WorkerStarted":
            open_[(d["role"], d["attempt"])] = at
        elif kind == "WorkerExited" and (d["role"], d["attempt"]) in open_:
            began = open_.pop((d["role"], d["attempt"]))
            what = "attempt" if d["role"] == "worker" else "review"
            label = f"{d['role']} {'attempt' if what == 'attempt' else 'round'} {d['attempt']}"
            marks.append((what, began, at, f"{label}: {at - began:.1f} s", {"attempt": str(d["attempt"])}))
        elif kind == "CheckFinished" and d["status"] in ("pass", "fail"):
            began = at - float(d.get("duration") or 0)
            title = f"{d['level']} {d['check']} {d['status']}: {d['desc']}"
            marks.append((d["status"], began, at, title, {"check": str(d["check"])}))
        elif kind == "NodePaused":
            paused = (at, str(d["trigger"]))
        elif kind == "DecisionRecorded" and paused is not None:
            marks.append(("pause", paused[0], at, f"paused [{paused[1]}]: waited {duration(at - paused[0])}", {}))
            paused = None
        elif kind == "NodeMerged":
            marks.append(("merge", at, at, f"merged {d['branch']} ({str(d['sha'])[:10]})", {}))
    for (role, attempt), began in open_.items():  # still running when the log ends
        marks.append(("attempt" if role == "worker" else "review", began, end, f"{role} {attempt}: running", {}))
    if paused is not None:
        marks.append(("pause", paused[0], end, f"paused [{paused[1]}]: waiting for a person", {}))
    return sorted(marks, key=lambda m: m[1])


def timeline_svg(events: list[Record], nodes: list[str]) -> str:
    """The SVG (empty when nothing ran)."""
    stamps = [float(e["ts"]) for e in events if e.get("node") in nodes]
    if not stamps:
        return ""
    start, end = min(stamps), max(stamps)
    span = max(end - start, 1e-3)

    def x(at: float) -> float:
        return LABEL + (at - start) / span * WIDTH

    height = TOP + ROW * len(nodes) + 8
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{LABEL + WIDTH + 10}" height="{height}" '
        f'font-family="system-ui,sans-serif" font-size="12">',
        f'<text x="{LABEL}" y="14">0 s</text>',
        f'<text x="{LABEL + WIDTH}" y="14" text-anchor="end">{duration(span)}</text>',
    ]
    for row, node in enumerate(nodes):
        y = TOP + row * ROW
        parts.append(f'<g class="node" data-node="{escape(node)}">')
        parts.append(f'<text x="4" y="{y + 15}">{escape(node)}</text>')
        parts.append(f'<line x1="{LABEL}" y1="{y + 20}" x2="{LABEL + WIDTH}" y2="{y + 20}" stroke="#ddd"/>')
        for kind, began, stop, title, data in _spans(events, node, end):
            attrs = "".join(f' data-{k}="{escape(v)}"' for k, v in data.items())
            if kind == "merge":
                shape = f'<rect class="merge" x="{x(began) - 1.5:.1f}" y="{y + 2}" width="3" height="18"'
            else:
                top, tall = (y + 6, 10) if kind in ("pass", "fail") else (y + 3, 16)
                width = max(x(stop) - x(began), 2.0)
                shape = f'<rect class="{kind}" x="{x(began):.1f}" y="{top}" width="{width:.1f}" height="{tall}"'
            parts.append(f'{shape} fill="{COLOURS[kind]}"{attrs}><title>{escape(title)}</title></rect>')
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)


LEGEND = (
    '<p class="legend">'
    + " ".join(
        f'<span style="color:{COLOURS[k]}">■</span> {label}'
        for k, label in (
            ("attempt", "worker attempt"),
            ("pass", "check passed"),
            ("fail", "check failed"),
            ("review", "review"),
            ("pause", "waiting for a person"),
            ("merge", "merge"),
        )
    )
    + " — hover a mark for what it was</p>"
)
