"""The HTML report's timeline: a row per process node on one time axis, one bar per worker attempt in the order of
the event log, the checks, reviews, a pause with how long it waited for a person, and the merge — an SVG, no
JavaScript."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from .engine_support import DEMO_PROCESS, demo_repo, events, foreman, kinds

SVG = "{http://www.w3.org/2000/svg}"


def timeline(map_path: Path, tmp_path: Path) -> ET.Element:
    out = tmp_path / "report.html"
    assert foreman("report", str(map_path), "--format", "html", "-o", str(out)).returncode == 0
    page = out.read_text()
    assert "<script" not in page
    svg = page[page.index("<svg") : page.index("</svg>") + len("</svg>")]
    return ET.fromstring(svg)


def marks(root: ET.Element, node: str, kind: str) -> list[ET.Element]:
    row = next(g for g in root.iter(f"{SVG}g") if g.get("data-node") == node)
    return [r for r in row.iter(f"{SVG}rect") if r.get("class") == kind]


def test_the_timeline_has_a_bar_per_attempt_in_order_and_each_node_its_merge(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path)
    assert foreman("run", str(map_path), "--headless").returncode == 0
    root = timeline(map_path, tmp_path)
    evs = events(map_path)
    assert [g.get("data-node") for g in root.iter(f"{SVG}g")] == DEMO_PROCESS
    for node in DEMO_PROCESS:
        started = [e["detail"]["attempt"] for e in kinds(evs, "WorkerStarted", node) if e["detail"]["role"] == "worker"]
        bars = marks(root, node, "attempt")
        assert [int(b.get("data-attempt", 0)) for b in bars] == started, node
        xs = [float(b.get("x", 0)) for b in bars]
        assert xs == sorted(xs), node
        assert len(marks(root, node, "merge")) == len(kinds(evs, "NodeMerged", node)) == 1
        assert len(marks(root, node, "review")) == len(kinds(evs, "ReviewFinished", node))
    assert len(marks(root, "04_assign", "attempt")) == 2  # its tie test fails the first attempt
    assert marks(root, "04_assign", "fail") and marks(root, "04_assign", "pass")
    first, second = marks(root, "04_assign", "attempt")
    assert float(first.get("x", 0)) + float(first.get("width", 0)) <= float(second.get("x", 0)) + 0.5


def test_a_pause_shows_how_long_it_waited_for_a_person(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path, with_pause=True)
    assert foreman("run", str(map_path), "--headless").returncode == 3
    node = kinds(events(map_path), "NodePaused")[0]["node"]
    waiting = marks(timeline(map_path, tmp_path), node, "pause")
    assert len(waiting) == 1 and "waiting for a person" in (waiting[0].findtext(f"{SVG}title") or "")
    assert foreman("decide", str(map_path), node, "A").returncode == 0
    assert foreman("run", str(map_path), "--headless").returncode == 0
    waited = marks(timeline(map_path, tmp_path), node, "pause")
    title = waited[0].findtext(f"{SVG}title") or ""
    assert len(waited) == 1 and "waited " in title and title.endswith(" s"), title


def test_a_nested_list_stays_nested_in_the_html_report() -> None:
    """The summary's "Risks:" items (indented under it) are a list inside the list, not items beside it."""
    from html.parser import HTMLParser

    from foreman_tui.engine.report_html import to_html

    class Depths(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.depth, self.items = 0, {}
            self._text: str | None = None

        def handle_starttag(self, tag: str, attrs: object) -> None:
            self.depth += tag == "ul"
            if tag == "li":
                self._text = ""

        def handle_endtag(self, tag: str) -> None:
            self.depth -= tag == "ul"
            if tag == "li" and self._text is not None:
                self.items[self._text] = self.depth
                self._text = None

        def handle_data(self, data: str) -> None:
            if self._text is not None:
                self._text += data

    page = to_html("# R\n- Spend: $0\n- Risks: \n  - one risk\n  - another\n- after\n\ntext\n", "R")
    depths = Depths()
    depths.feed(page)
    assert depths.items == {"Spend: $0": 1, "Risks: ": 1, "one risk": 2, "another": 2, "after": 1}
    assert depths.depth == 0
