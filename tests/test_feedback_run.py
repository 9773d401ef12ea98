"""The renderer's feedback file in a real run: every note reaches its node's task, a pause, the report, or is
reported as unrouted with its file kept (the format: tests/test_feedback_format.py, foreman_tui/engine/feedback.py)."""

from __future__ import annotations

import json
from pathlib import Path

from .engine_support import demo_repo, events, foreman, kinds

RUN_1 = """# Feedback: k-means demo
- Date: 2026-11-27T10:00:00
- Source: algorithm-map.json
- Annotations: 5

## Flow
- [edge:06_converged->04_assign] stop after 100 rounds whatever happens

## Lloyd iteration
- [实现] "Assign each point to its nearest centroid, then move each centroid to the..." → keep the loop bounded

## 4. Assign
- [概述] "Ties go to the lower index" → say so in a comment, "lower" means the smaller index
- [验证] check an empty cluster too

## 5. Uptade
- [实现] a note on a label nobody has
"""

RUN_2 = (
    RUN_1.replace("- Annotations: 5", "- Annotations: 7")
    + """
## Load points
- [实现] also accept TSV files

## Prepare
- [概述] the three preparation steps could share one module
"""
)


def _prompt(map_path: Path, node: str) -> str:
    return (map_path.parent / ".foreman" / "runs" / node / "prompt-1.md").read_text(encoding="utf-8")


def test_a_renderer_feedback_file_reaches_tasks_pauses_and_the_report(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path)
    feedback = map_path.parent / "algorithm-map.feedback.md"
    feedback.write_text(RUN_1, encoding="utf-8")
    first = foreman("run", str(map_path), "--headless")
    assert first.returncode == 0, first.stdout + first.stderr

    # By label, with the tab name and the anchor; the region's note reaches each of its process nodes.
    assign = _prompt(map_path, "04_assign")
    assert '[概述] "Ties go to the lower index" → say so in a comment, "lower" means the smaller index' in assign
    assert "[验证] check an empty cluster too" in assign
    for node in ("04_assign", "05_update"):
        assert "→ keep the loop bounded" in _prompt(map_path, node)
    assert "keep the loop bounded" not in _prompt(map_path, "07_inertia")  # not in the region
    evs = events(map_path)
    routed = [(e["node"], e["detail"]["section"], e["detail"]["routed_as"]) for e in kinds(evs, "FeedbackRouted")]
    assert (None, "Flow", "recorded for the report (flow)") in routed
    assert (None, "5. Uptade", 'not routed: no node or region is labelled "5. Uptade"') in routed
    assert len(routed) == 6  # flow, the region's note twice (04, 05), 04's two, the unknown one

    # The unknown label is reported and the file kept; the flow note is in the report.
    assert feedback.exists()
    status = json.loads(foreman("status", str(map_path), "--json").stdout)
    assert [m["section"] for m in status["feedback_unmatched"]] == ["5. Uptade"]
    report = foreman("report", str(map_path)).stdout
    assert "stop after 100 rounds whatever happens" in report and "5. Uptade" in report

    # The renderer rewrites the file with every annotation: old notes are not taken again; new notes on
    # verified work open pauses (a node's own, and a region's that names each of its nodes).
    feedback.write_text(RUN_2, encoding="utf-8")
    second = foreman("run", str(map_path), "--headless")
    assert second.returncode == 3, second.stdout + second.stderr
    evs = events(map_path)
    assert len(kinds(evs, "FeedbackRouted", "04_assign")) == 3  # still only the first run's
    node_pause = kinds(evs, "NodePaused", "01_load_points")[-1]["detail"]
    assert (
        node_pause["trigger"] == "feedback on a verified node"
        and "[实现] also accept TSV files" in node_pause["problem"]
    )
    region_pause = kinds(evs, "NodePaused", "region:prepare")[-1]["detail"]
    assert [o["label"] for o in region_pause["options"]] == [
        "redo 01_load_points with this note",
        "redo 02_vector_math with this note",
        "redo 03_seed_centroids with this note",
        "keep the region as it is",
    ]
    decided = foreman("decide", str(map_path), "region:prepare", "B")
    assert decided.returncode == 0, decided.stderr
    foreman("decide", str(map_path), "01_load_points", "B")  # keep 01 verified
    third = foreman("run", str(map_path), "--headless")
    assert third.returncode == 0, third.stdout + third.stderr
    evs = events(map_path)
    assert kinds(evs, "NodeReset", "02_vector_math") and not kinds(evs, "NodeReset", "01_load_points")
    redo = [e["detail"] for e in kinds(evs, "WorkerStarted", "02_vector_math") if e["detail"]["role"] == "worker"][-1]
    assert "could share one module" in Path(redo["log"]).read_text(encoding="utf-8")
    assert feedback.exists()  # the unknown label is still there
