"""`GeminiStreamParser` on output recorded from the real Gemini CLI 0.61 (`--output-format stream-json`): a worker
run against the scripted model (foreman_tui/testing/gemini_server.py) that writes a file, commits, is denied a
command, and answers; and runs the API refused with 429 and with 503 until the CLI gave up. The recordings are checked
against the CLI as installed: it must still print the same events with the same fields.

Re-record with ``FOREMAN_RECORD=1 .venv/bin/python -m pytest tests/test_gemini_stream.py -k still_prints``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from foreman_tui.agents.output import GeminiStreamParser
from foreman_tui.agents.presets import AgentContext, make_agent
from foreman_tui.config import AgentSettings
from foreman_tui.testing.gemini_server import USAGE

from .claude_support import run_gemini
from .engine_support import init_repo

DATA = Path(__file__).parent / "data"
RECORDED = DATA / "gemini_stream_real.jsonl"
RECORDED_429 = DATA / "gemini_429_real.jsonl"
"""The CLI's output when every request got HTTP 429 ``RESOURCE_EXHAUSTED`` with a ``RetryInfo`` of 1 s: it retried
10 times over about 4 minutes on its own (its stderr: "Attempt n failed … Retrying after …ms"), then printed this and
exited with the HTTP status as its exit status (429 & 255 = 173). Too slow to re-record in a test."""
RECORDED_503 = DATA / "gemini_503_real.jsonl"
"""Likewise for HTTP 503 ``UNAVAILABLE`` "The model is overloaded." (exit status 503 & 255 = 247)."""

SEED = "kmeans/seed.py"
COMMIT = f"git add -- {SEED} && git commit -q -m 'n1: seeding' -m 'Foreman-Node: n1' -- {SEED}"
DENIED = "touch not-allowed"
SCRIPT = {
    "workers": {
        "n1": [
            [
                {"write": {SEED: "def seed(points, k):\n    return points[:k]\n"}},
                {"bash": COMMIT},
                {"bash": DENIED},
                {"say": "Seeding implemented and committed."},
            ]
        ]
    }
}
"""Four requests: three tool calls (the last one refused by the ``edit`` profile) and the final answer."""


def feed(lines: list[str]) -> GeminiStreamParser:
    parser = GeminiStreamParser()
    for line in lines:
        parser.feed("stdout", line)
    return parser


def test_the_parser_reads_the_recorded_cli_output() -> None:
    lines = RECORDED.read_text().splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["type"] for e in events] == [
        "init",
        "message",
        *("tool_use", "tool_result") * 3,
        "message",
        "result",
    ]
    report = feed(lines).report
    assert report.session_id == events[0]["session_id"] and len(report.session_id) == 36
    assert report.model == "gemini-test"
    assert report.steps == [f"write_file {SEED}", f"run_shell_command: {COMMIT}", f"run_shell_command: {DENIED}"]
    assert report.files == [SEED]
    assert report.text() == "Seeding implemented and committed."
    assert report.done and not report.errors and report.rate_limit is None
    # The `result` event's stats: the sums over the run's four requests (input counts the cached tokens).
    assert (report.tokens.input, report.tokens.cached_input, report.tokens.output) == (
        4 * USAGE["promptTokenCount"],
        4 * USAGE["cachedContentTokenCount"],
        4 * USAGE["candidatesTokenCount"],
    )
    denied = events[7]
    assert denied["status"] == "error" and denied["error"]["message"] == "Tool execution denied by policy."


def test_a_429_recorded_from_the_cli_is_an_error_and_the_run_is_over() -> None:
    lines = RECORDED_429.read_text().splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["type"] for e in events] == ["init", "message", "result"]
    assert events[-1]["status"] == "error" and events[-1]["error"]["type"] == "unknown"
    report = feed(lines).report
    assert report.done and report.session_id == events[0]["session_id"]
    assert len(report.errors) == 1 and report.errors[0].startswith("[API Error: Resource has been exhausted")
    assert not report.tokens


def test_a_429_recorded_from_the_cli_is_a_rate_limit() -> None:
    report = feed(RECORDED_429.read_text().splitlines()).report
    assert report.rate_limit is not None
    assert report.rate_limit.retry_after == 1.0  # "Suggested retry after 1s." (the RetryInfo)


def test_a_503_recorded_from_the_cli_is_an_overload() -> None:
    lines = RECORDED_503.read_text().splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["init", "message", "result"]
    report = feed(lines).report
    assert report.done and report.errors == ["[API Error: The model is overloaded. Please try again later.]"]
    assert report.rate_limit is not None and report.rate_limit.retry_after is None


def shape(event: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """What a recording is compared on: an event's type and its fields (and the fields of its stats)."""
    fields = sorted(event) + sorted(f"stats.{key}" for key in event.get("stats") or {})
    return str(event["type"]), tuple(fields)


def test_the_cli_still_prints_what_was_recorded(tmp_path: Path) -> None:
    """The installed CLI, with the ``edit`` profile's argv, against the same script: the same events, fields and
    report as the recording."""
    (tmp_path / "tree").mkdir()
    tree = init_repo(tmp_path / "tree", None)
    (tree / "README").write_text("demo\n")
    agent = make_agent(
        AgentSettings.model_validate({"preset": "gemini", "model": "gemini-test", "permissions": "edit"})
    )
    argv = agent.command(AgentContext("n1", "worker", 1, tmp_path / "m.json", tree, tmp_path / "p.md")).argv
    lines, requests, stdout = run_gemini(argv, tree, SCRIPT, "# Task: implement node `n1` — seeding\n", tmp_path / "h")
    if os.environ.get("FOREMAN_RECORD") == "1":
        RECORDED.write_text(stdout)
    recorded = [json.loads(line) for line in RECORDED.read_text().splitlines()]
    assert [shape(e) for e in lines] == [shape(e) for e in recorded]
    assert len(requests) == 4 and (tree / SEED).is_file() and not (tree / "not-allowed").exists()
    ran, kept = feed(stdout.splitlines()).report, feed(RECORDED.read_text().splitlines()).report
    assert (ran.steps, ran.files, ran.text(), ran.tokens) == (kept.steps, kept.files, kept.text(), kept.tokens)
