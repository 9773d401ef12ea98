"""What the real-CLI end-to-end tests (codex, gemini) check alike: each call's tokens and their price against what
the scripted server answered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .engine_support import foreman, kinds

PRICES = {"input": 1.25, "cached_input": 0.125, "output": 10.0}
"""USD per million tokens, the tests' ``[prices.<model>]``."""


def of_role(evs: list[dict[str, Any]], kind: str, node: str, role: str = "worker") -> list[dict[str, Any]]:
    """The details of ``node``'s ``kind`` events (``WorkerStarted``, ``AgentReported``…) for one role, in order."""
    return [e["detail"] for e in kinds(evs, kind, node) if e["detail"]["role"] == role]


def price(tokens: dict[str, int]) -> float:
    fresh = tokens["input"] - tokens["cached_input"]
    paid = (
        fresh * PRICES["input"] + tokens["cached_input"] * PRICES["cached_input"] + tokens["output"] * PRICES["output"]
    )
    return paid / 1_000_000


def requests_per_call(requests: list[dict[str, Any]], node: str, role: str) -> list[int]:
    """How many model requests each of a node's calls made: a worker's n-th call answered the n-th instruction of
    its conversation (episode n); each review is a conversation of its own."""
    mine = [r for r in requests if r["node"] == node and r["role"] == role]
    if role == "worker":
        return [sum(1 for r in mine if r["episode"] == n) for n in range(1, max(r["episode"] for r in mine) + 1)]
    firsts = list(dict.fromkeys(r["instructions"][0] for r in mine))
    return [sum(1 for r in mine if r["instructions"][0] == first) for first in firsts]


def check_priced_calls(
    map_path: Path, evs: list[dict[str, Any]], requests: list[dict[str, Any]], nodes: list[str], usage: dict[str, int]
) -> None:
    """Every call's ``AgentReported`` tokens are ``usage`` (the server's answer to one request) × its requests — a
    resumed call counting only its own —, its cost those tokens × ``PRICES``, and each node's cost in the report
    their sum."""
    assert sum(1 for r in requests if r["node"] is None) == 0  # every request belonged to a node's conversation
    report = foreman("report", str(map_path)).stdout
    for node in nodes:
        total = 0.0
        for role in ("worker", "reviewer"):
            runs = of_role(evs, "AgentReported", node, role)
            expected = [
                {key: value * n for key, value in usage.items()} for n in requests_per_call(requests, node, role)
            ]
            assert [r["tokens"] for r in runs] == expected, (node, role)
            for run, tokens in zip(runs, expected, strict=True):
                assert run["cost_source"] == "prices"
                assert run["cost_usd"] == pytest.approx(price(tokens))
                total += run["cost_usd"]
        section = report.split(f"## Node `{node}`")[1].split("\n## ")[0]
        assert f"cost: ${total:.4f}" in section
        used = {
            key: sum(
                run["tokens"][key]
                for role in ("worker", "reviewer")
                for run in of_role(evs, "AgentReported", node, role)
            )
            for key in usage
        }
        assert f"tokens: {used['input']:,} in ({used['cached_input']:,} cached), {used['output']:,} out" in section
    spent = sum(e["detail"]["tokens"]["input"] for e in kinds(evs, "AgentReported"))
    assert spent == usage["input"] * len(requests)
