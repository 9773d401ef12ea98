"""foreman survives interruptions: a few seeded runs of the chaos harness (bench/chaos.py, docs/reliability.md).

Each case is a real demo repository and real `foreman run --headless` processes, interrupted at a chosen
moment (SIGKILL right after a worker's commit was seen; SIGTERM during start-up, then again right after a
merge; SIGINT during a review, then again while Python is still importing), then run to the end. Every
invariant the harness checks must hold: no seen commit lost, no verified node redone, each node merged once,
no debris, a valid map after each interruption, no pause, no traceback, SIGTERM/SIGINT handled.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .conftest import REPO

sys.path.insert(0, str(REPO / "bench"))

import chaos  # bench/ is not a package: imported from its folder
from chaos import Interruption

CASES = {
    "sigkill-after-commit": [Interruption("SIGKILL", "commit", nth=2, delay=0.03)],
    "sigterm-start-up-then-after-merge": [
        Interruption("SIGTERM", "start-up", delay=0.25),
        Interruption("SIGTERM", "merged", nth=1, delay=0.0),
    ],
    "sigint-review-then-imports": [
        Interruption("SIGINT", "review", nth=2, delay=0.05),
        Interruption("SIGINT", "start-up", delay=0.15),
    ],
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_foreman_survives_interruptions(case: str, tmp_path: Path) -> None:
    index = list(CASES).index(case)
    result = chaos.run_one(index, 7, tmp_path, plan=CASES[case], timing=chaos.QUICK)
    assert result.interruptions, chaos.describe(result)  # the planned moments came (foreman did not end first)
    assert result.violations == [], chaos.describe(result)
    assert result.complete, chaos.describe(result)
