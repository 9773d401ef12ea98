"""Shared fixtures: the reference maps from ../shared/reference, the bundled demo, and a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

# Every test sees git as a fresh machine does: no global or system configuration, hence no identity, unless the
# test's repository sets one. (foreman's own commits must work without one; see test_fresh_machine.py.)
_GIT_CONFIG = Path(tempfile.mkdtemp(prefix="foreman-tests-git-")) / "gitconfig"
_GIT_CONFIG.write_text("[init]\n\tdefaultBranch = main\n")
os.environ["GIT_CONFIG_GLOBAL"] = str(_GIT_CONFIG)
os.environ["GIT_CONFIG_NOSYSTEM"] = "1"
# Approvals of map commands (`foreman trust`) go to a state folder of the tests' own, never the person's.
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="foreman-tests-state-")

REPO = Path(__file__).resolve().parent.parent
SHARED_REFERENCE = REPO.parent / "shared" / "reference"
BPC_MAP = SHARED_REFERENCE / "bpc-phase1.json"
DEMO_DIR = REPO / "maps" / "demo"
DEMO_MAP = DEMO_DIR / "algorithm-map.json"


@pytest.fixture
def bpc_copy(tmp_path: Path) -> Path:
    """A private copy of the real BPC map (tests never write to ../shared)."""
    target = tmp_path / "algorithm-map.json"
    target.write_bytes(BPC_MAP.read_bytes())
    return target


def write_map(folder: Path, doc: Any, name: str = "algorithm-map.json") -> Path:
    path = folder / name
    text = doc if isinstance(doc, str) else json.dumps(doc, ensure_ascii=False, indent=2)
    path.write_text(text, encoding="utf-8")
    return path


def minimal_map(**graph: Any) -> dict[str, Any]:
    """A small valid map: start → a → b → end, with contents for a and b."""
    nodes = graph.get("nodes") or [
        {"id": "start", "label": "Start", "type": "terminal"},
        {"id": "a", "label": "A", "type": "process"},
        {"id": "b", "label": "B", "type": "process"},
        {"id": "end", "label": "End", "type": "terminal"},
    ]
    edges = graph.get("edges") or [
        {"from": "start", "to": "a"},
        {"from": "a", "to": "b"},
        {"from": "b", "to": "end"},
    ]
    default_contents = {
        "a": {"title": "A", "overview": "does a", "code": {"files": ["src/a.py"]}},
        "b": {"title": "B", "overview": "does b", "code": {"files": ["src/b.py"]}},
    }
    contents = graph.get("contents", default_contents)
    doc: dict[str, Any] = {"version": "0.1.0", "meta": {"title": "T"}, "graph": {"nodes": nodes, "edges": edges}}
    if "regions" in graph:
        doc["graph"]["regions"] = graph["regions"]
    doc["contents"] = contents
    return doc


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``foreman`` entry point in a subprocess (no terminal: output is plain), without any
    ``FOREMAN_*`` settings of the calling environment; ``env`` adds to it."""
    env = (
        {k: v for k, v in os.environ.items() if not k.startswith("FOREMAN_")}
        | {"PYTHONIOENCODING": "utf-8"}
        | (env or {})
    )
    return subprocess.run(
        [sys.executable, "-m", "foreman_tui", *args],
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def pytest_configure(config: pytest.Config) -> None:
    """With ``-n`` (xdist's "load"), tests marked with one ``xdist_group`` go to one worker: the Ray tests start a
    local cluster per module, and one at a time is what 2 cores take."""
    if getattr(config.option, "dist", "no") == "load":
        config.option.dist = "loadgroup"
