"""The quick commands load nothing of the TUI, git or the engine's runtime (what makes them answer in a fifth of a
second: bench/quick_commands.py has the times)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import REPO

HEAVY = ("textual", "git", "watchfiles", "foreman_tui.engine.supervisor", "foreman_tui.tui")


@pytest.mark.parametrize(
    "args",
    [["--help"], ["status", "maps/demo/algorithm-map.json"], ["validate", "maps/demo/algorithm-map.json"]],
)
def test_a_quick_command_imports_nothing_heavy(args: list[str]) -> None:
    probe = (
        "import runpy, sys\n"
        f"sys.argv = ['foreman', *{args!r}]\n"
        "try:\n    runpy.run_module('foreman_tui', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        f"print('HEAVY', sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or m in {HEAVY!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in done.stdout, done.stdout[-500:] + done.stderr[-2000:]
