"""Reading what agent CLIs print when the API pushes back, and the bookkeeping of the limits around a call:
output recorded from the real Claude Code CLI against a loopback server answering 429 / 529, Codex's
thread-total token counts, retry-after in its many spellings, the backoff, the throttle, the budget
arithmetic and the price table."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from foreman_tui.agents.output import ClaudeStreamParser, CodexJsonParser, GeminiStreamParser, retry_after
from foreman_tui.agents.presets import AgentContext, make_agent
from foreman_tui.config import AgentSettings, Price, Settings
from foreman_tui.engine.limits import LONGEST_WAIT, Backoff, Spend, Throttle
from foreman_tui.map.errors import ConfigError

from .engine_support import demo_repo, foreman

DATA = Path(__file__).parent / "data"


def parse(parser_type: type, path: Path | list[str]):
    parser = parser_type()
    lines = path.read_text(encoding="utf-8").splitlines() if isinstance(path, Path) else path
    parser.feed_lines("stdout", lines)
    return parser.report


def test_claude_codes_recorded_429_is_a_rate_limit_with_the_delay_it_waited() -> None:
    """Recorded from claude 2.1 with CLAUDE_CODE_MAX_RETRIES=2 against a server answering 429 with retry-after: 7:
    two ``api_retry`` events (7000 ms each), then a ``result`` with ``api_error_status`` 429."""
    report = parse(ClaudeStreamParser, DATA / "claude_429.jsonl")
    assert report.done and report.rate_limit is not None
    assert "429" in report.rate_limit.text and report.rate_limit.retry_after == 7.0
    assert report.session_id == "a3d2134a-cc71-45bd-9ac0-699e7a912b1e"
    plain = parse(ClaudeStreamParser, DATA / "claude_429_noretry.jsonl")
    assert plain.rate_limit is not None and plain.rate_limit.retry_after is None


def test_claude_codes_recorded_529_is_an_overload_to_wait_out() -> None:
    report = parse(ClaudeStreamParser, DATA / "claude_529.jsonl")
    assert report.rate_limit is not None and "529 Overloaded" in report.rate_limit.text
    assert report.rate_limit.retry_after is None  # "try again in a moment" names no time


def test_a_normal_result_is_done_and_no_rate_limit_whatever_it_says() -> None:
    report = parse(ClaudeStreamParser, DATA / "claude_stream.jsonl")
    assert report.done and report.rate_limit is None
    said = '{"type":"result","subtype":"success","is_error":false,"result":"429 tests passed, rate limit code ok"}'
    assert parse(ClaudeStreamParser, [said]).rate_limit is None


def test_codex_token_counts_are_the_threads_totals_so_the_last_turn_counts() -> None:
    lines = (DATA / "codex_exec.jsonl").read_text().splitlines()
    report = parse(CodexJsonParser, lines)
    assert report.done and report.thread_tokens
    assert (report.tokens.input, report.tokens.cached_input, report.tokens.output) == (24763, 24448, 122)
    again = [*lines, lines[-1].replace("24763", "30000")]
    assert parse(CodexJsonParser, again).tokens.input == 30000  # not 54763


def test_codex_recorded_429_is_a_rate_limit_and_its_own_reconnects_are_not() -> None:
    """Recorded from codex 0.171 against a server answering 429 (its own retries off): ``error`` then
    ``turn.failed``. With its retries on, a 429 it then got through is announced as an ``error`` "Reconnecting…"
    before a ``turn.completed``: not a rate limit."""
    report = parse(CodexJsonParser, DATA / "codex_429.jsonl")
    assert report.done and report.rate_limit is not None and "429 Too Many Requests" in report.rate_limit.text
    reconnected = [
        '{"type":"thread.started","thread_id":"t"}',
        '{"type":"error","message":"Reconnecting... 1/5 (exceeded retry limit, last status: 429 Too Many Requests)"}',
        '{"type":"turn.completed","usage":{"input_tokens":1000,"cached_input_tokens":200,"output_tokens":100}}',
    ]
    assert parse(CodexJsonParser, reconnected).rate_limit is None


def test_codex_and_gemini_errors_that_say_rate_limit_are_rate_limits() -> None:
    codex = parse(
        CodexJsonParser,
        [
            '{"type":"error","message":"exceeded retry limit, last status: 429 Too Many Requests"}',
            '{"type":"turn.failed","error":{"message":"Rate limit reached. Please try again in 20s."}}',
        ],
    )
    assert codex.done and codex.rate_limit is not None and "Rate limit reached" in codex.rate_limit.text
    assert codex.rate_limit.retry_after == 20.0
    gemini = parse(
        GeminiStreamParser,
        ['{"type":"error","severity":"error","message":"[API Error: RESOURCE_EXHAUSTED] retryDelay: \\"40s\\""}'],
    )
    assert gemini.rate_limit is not None and gemini.rate_limit.retry_after == 40.0
    other = parse(CodexJsonParser, ['{"type":"turn.failed","error":{"message":"model not found"}}'])
    assert other.done and other.rate_limit is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("retry-after: 20", 20.0),
        ("Retry-After=3", 3.0),
        ("Rate limit reached for gpt-5. Please try again in 7s.", 7.0),
        ("please try again in 2m", 120.0),
        ("try again in 500ms", 0.5),
        ("retry in 1.5 seconds", 1.5),
        ('"retryDelay": "40s"', 40.0),
        ("try again in a moment", None),
        ("429 Too Many Requests", None),
    ],
)
def test_retry_after_in_its_spellings(text: str, seconds: float | None) -> None:
    assert retry_after(text) == seconds


def test_the_backoff_doubles_with_jitter_honours_retry_after_and_resets() -> None:
    middle = Backoff(1.0, jitter=lambda: 0.5)  # no jitter at the middle of its range
    assert [middle.next("a") for _ in range(4)] == [1.0, 2.0, 4.0, 8.0]
    assert middle.next("b", asked=7.0) == 7.0  # the API asked for longer
    middle.clear("a")
    assert middle.next("a") == 1.0
    assert Backoff(30.0, jitter=lambda: 0.5).next("x") == 30.0
    long = Backoff(30.0, jitter=lambda: 0.5)
    assert [long.next("x") for _ in range(7)][-1] == LONGEST_WAIT  # 30 · 2⁶ = 1920, capped at 10 minutes
    low, high = Backoff(10.0, jitter=lambda: 0.0), Backoff(10.0, jitter=lambda: 1.0)
    assert (low.next("x"), high.next("x")) == pytest.approx((8.0, 12.0))


def test_the_throttle_halves_on_a_rate_limit_and_creeps_back() -> None:
    throttle = Throttle(8)
    assert [throttle.limited() for _ in range(5)] == [4, 2, 1, 1, 1]
    throttle.succeeded()  # 1 + 1/1
    assert throttle.limit == 2
    for _ in range(2):  # 2 + 1/2 + 1/2.5 …
        throttle.succeeded()
    assert throttle.limit == 2
    for _ in range(40):
        throttle.succeeded()
    assert throttle.limit == 8


def test_a_throttle_slot_waits_while_the_limit_is_taken() -> None:
    async def scenario() -> list[str]:
        throttle = Throttle(2)
        throttle.limited()  # one at a time now
        order: list[str] = []

        async def call(name: str) -> None:
            async with throttle:
                order.append(f"{name} in")
                await asyncio.sleep(0.01)
                order.append(f"{name} out")

        await asyncio.gather(call("a"), call("b"))
        return order

    assert asyncio.run(scenario()) == ["a in", "a out", "b in", "b out"]


def spend(**given: float | int | bool | None) -> Spend:
    values: dict = {"run": 0.0, "node": 0.0, "largest_call": 0.0, "in_flight": 0, "known": True}
    values |= {"run_budget": 1.0, "node_budget": None} | given
    return Spend(**values)


def test_the_budget_arithmetic() -> None:
    assert spend().over() is None
    assert spend(run=0.8, largest_call=0.4).over() == "run"  # 0.8 + 0.4 passes 1.0
    assert spend(run=0.4 + 0.4, largest_call=0.4, run_budget=1.2).over() is None  # reaches it exactly: allowed
    assert spend(run=0.4, largest_call=0.4, in_flight=1).over() == "run"  # with the call under way it would pass
    assert spend(run=1.0).over() == "run"
    assert spend(known=False, in_flight=1).over() == "wait"  # the first call of a budgeted run goes alone
    assert spend(run_budget=None, known=False, in_flight=3).over() is None
    assert spend(node=0.4, largest_call=0.4, node_budget=0.5).over() == "node"
    assert spend(run=0.4, largest_call=0.4, in_flight=1).left() == pytest.approx(0.2)
    assert spend(run=0.2, node=0.1, node_budget=0.3, run_budget=None).left() == pytest.approx(0.2)
    assert spend(run_budget=None).left() is None
    assert spend(run=2.0).left() == 0.0


def test_prices_turn_tokens_into_dollars_and_are_validated(tmp_path: Path) -> None:
    price = Price(input=1.25, cached_input=0.125, output=10.0)
    assert price.cost(1_000_000, 200_000, 100_000) == pytest.approx(0.8 * 1.25 + 0.2 * 0.125 + 1.0)
    assert Price(input=2.0, output=0.0).cost(1000, 1000, 0) == pytest.approx(0.002)  # no cached price: input's
    assert Settings(prices={"m": {"input": 1, "output": 2}}).prices["m"].output == 2
    (tmp_path / "foreman.toml").write_text("[prices.gpt-5]\ninput = 1.25\noutptu = 10\n")
    from foreman_tui.config import load_settings

    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert "prices.gpt-5.outptu" in str(caught.value) and "output" in str(caught.value)


def test_claude_gets_what_is_left_of_the_budget_as_its_own_cap() -> None:
    ctx = AgentContext("n", "worker", 1, Path("m.json"), Path("."), Path("p.md"), budget_usd=0.6)
    argv = make_agent(AgentSettings(preset="claude")).command(ctx).argv
    assert argv[argv.index("--max-budget-usd") + 1] == "0.6000"
    for preset in ("codex", "gemini"):
        assert "--max-budget-usd" not in make_agent(AgentSettings(preset=preset)).command(ctx).argv
    unbudgeted = AgentContext("n", "worker", 1, Path("m.json"), Path("."), Path("p.md"))
    assert "--max-budget-usd" not in make_agent(AgentSettings(preset="claude")).command(unbudgeted).argv


def test_the_real_claude_cli_accepts_its_budget_cap() -> None:
    from .claude_support import claude_bin

    ctx = AgentContext("n", "worker", 1, Path("m.json"), Path("."), Path("p.md"), budget_usd=0.25)
    argv = make_agent(AgentSettings(preset="claude")).command(ctx).argv
    done = subprocess.run([str(claude_bin()), *argv[1:], "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--max-budget-usd" in done.stdout, done.stderr


def test_a_codex_worker_without_foremans_sandbox_is_refused_with_the_fix(tmp_path: Path) -> None:
    """Codex's workspace-write sandbox makes git's folder read-only: such a worker could never commit. foreman
    refuses it before anything starts, naming the two ways out; in foreman's sandbox codex runs unconfined inside
    it (its own sandbox cannot nest in bubblewrap)."""
    map_path = demo_repo(tmp_path)
    toml = map_path.parent / "foreman.toml"
    toml.write_text(toml.read_text().replace('[worker]\npreset = "scripted"', '[worker]\npreset = "codex"', 1))
    subprocess.run(["git", "commit", "-qam", "codex"], cwd=map_path.parent, check=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "codex").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "codex").chmod(0o755)
    import os

    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    done = foreman("run", str(map_path), "--headless", env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "codex worker cannot commit" in done.stderr and 'sandbox = "bwrap"' in done.stderr
    assert 'permissions = "full"' in done.stderr
    assert not (map_path.parent / ".foreman" / "events.jsonl").exists()
    ctx = AgentContext("n", "worker", 1, Path("m.json"), Path("."), Path("p.md"))
    confined = make_agent(AgentSettings(preset="codex", sandbox="bwrap")).command(ctx).argv
    assert "--dangerously-bypass-approvals-and-sandbox" in confined and "--sandbox" not in confined
    reviewer = make_agent(AgentSettings(preset="codex", sandbox="bwrap")).command(
        AgentContext("n", "reviewer", 1, Path("m.json"), Path("."), Path("p.md"))
    )
    assert reviewer.argv[reviewer.argv.index("--sandbox") + 1] == "read-only"
