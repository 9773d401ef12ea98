"""Reading an agent's output: what it said, the tools it used, its session, cost and tokens, whether it has
printed its final result, and whether the call was refused for a rate limit or an overload.

Plain-text agents give their lines; stream-json CLIs (Claude Code, Codex, Gemini) give structured events, read
here by one parser each. A rate limit is recognised only in a CLI's structured errors (a check's output that
happens to mention 429 is not one); a ``command`` agent says it by its exit status (``rate_limit_exit``).
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

KEPT_LINES = 2000
KEPT_CHARS = 2000
"""Characters of one line kept (a hard-pause block or a verdict is far shorter; the log file has every byte)."""

LIMITED = re.compile(
    r"\b(429|529)\b|rate.?limit|overloaded|too many requests|resource.?exhausted|resource has been exhausted"
    r"|quota exceeded|exceeded your current quota|request a quota increase",
    re.IGNORECASE,
)
"""An API error that waiting cures: a rate limit (429) or an overload (529, Anthropic's ``overloaded_error``)."""
_AFTER = (
    re.compile(r"retry[- _]?after[\"':=\s]+(\d+(?:\.\d+)?)()", re.IGNORECASE),
    re.compile(r"(?:try again|retry) in (\d+(?:\.\d+)?)\s*(ms|millisec\w*|s|sec\w*|m|min\w*|h|hour\w*)\b", re.I),
    re.compile(r"retryDelay[\"':\s]+(\d+(?:\.\d+)?)(s)\b"),
)


def retry_after(text: str) -> float | None:
    """Seconds an error message asks to wait ("retry-after: 20", "Please try again in 2m" → 120, "retryDelay":
    "40s"), or None."""
    for pattern in _AFTER:
        found = pattern.search(text)
        if found:
            unit = found.group(2).lower()
            factor = 0.001 if unit.startswith(("ms", "milli")) else 3600 if unit.startswith("h") else 1
            factor = 60 if unit.startswith("m") and factor == 1 else factor
            return float(found.group(1)) * factor
    return None


def rate_limit_in(text: str, status: Any = None, hint: float | None = None) -> RateLimit | None:
    """A rate limit or overload, if an error's ``text`` (or its HTTP ``status``) says one."""
    if status in (429, 529) or LIMITED.search(text):
        return RateLimit(text[:500], hint if hint is not None else retry_after(text))
    return None


def kept(line: str) -> str:
    """A line as the report keeps it: cut at ``KEPT_CHARS`` so the report stays a few MiB whatever is printed."""
    return line if len(line) <= KEPT_CHARS else line[:KEPT_CHARS] + f" … [cut {len(line) - KEPT_CHARS} chars]"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """An agent call refused for a rate limit or an overload: what it said, and how long the API asked to wait."""

    text: str
    retry_after: float | None = None


@dataclass
class Tokens:
    """The tokens one call used, as its CLI counts them (``cached`` is part of ``input``)."""

    input: int = 0
    cached_input: int = 0
    output: int = 0

    def add(self, input_tokens: Any, cached: Any, output: Any) -> None:
        self.input += _count(input_tokens)
        self.cached_input += _count(cached)
        self.output += _count(output)

    def __bool__(self) -> bool:
        return bool(self.input or self.output)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


@dataclass
class AgentReport:
    """What an agent's output said, as far as its format tells."""

    session_id: str | None = None
    cost_usd: float | None = None
    turns: int | None = None
    model: str | None = None
    tokens: Tokens = field(default_factory=Tokens)
    thread_tokens: bool = False
    """``tokens`` count the whole conversation so far (Codex): a resumed call's own are the difference."""
    done: bool = False
    """The CLI printed its final result event: nothing more is coming (``result_grace`` starts)."""
    rate_limit: RateLimit | None = None
    steps: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    final_text: str = ""
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=KEPT_LINES))
    """The last lines the agent printed (bounded: an agent may print without end)."""

    def text(self) -> str:
        """The agent's answer: its final message when the format has one, else everything it printed."""
        return self.final_text or "\n".join(self.lines)


class OutputParser:
    """Plain text agents: every stdout line is part of the answer."""

    def __init__(self) -> None:
        self.report = AgentReport()

    def feed(self, stream: str, line: str) -> None:
        self.feed_lines(stream, [line])

    def feed_lines(self, stream: str, lines: list[str]) -> None:
        """Take a batch of complete lines from one stream (the process runtime hands them over per chunk)."""
        if stream == "stdout":
            self.report.lines.extend(map(kept, lines))


def _tool_summary(name: str, args: dict[str, Any]) -> tuple[str, str | None]:
    """A one-line description of a tool call, and the file it edits if any."""
    path = args.get("file_path") or args.get("path") or args.get("filePath")
    if name in ("Edit", "Write", "MultiEdit", "NotebookEdit", "write_file", "replace", "edit_file") and path:
        return f"{name} {path}", str(path)
    if "command" in args:
        return f"{name}: {str(args['command'])[:200]}", None
    return f"{name} {json.dumps(args, ensure_ascii=False)[:200]}", None


class JsonLinesParser(OutputParser):
    """Agents that print one JSON object per line; other stdout lines are kept as plain text."""

    def feed_lines(self, stream: str, lines: list[str]) -> None:
        if stream != "stdout":
            return
        text = self.report.lines
        for line in lines:
            if not line.lstrip().startswith("{"):  # cheaper than letting json fail on every text line
                text.append(kept(line))
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                text.append(kept(line))
                continue
            if isinstance(data, dict):
                self.handle(data)

    def handle(self, data: dict[str, Any]) -> None:
        raise NotImplementedError


class ClaudeStreamParser(JsonLinesParser):
    """``claude -p --output-format stream-json --verbose``: system/init, system/api_retry, assistant, user, result
    lines. A call the API refused ends in a ``result`` with ``is_error`` and ``api_error_status`` 429 or 529."""

    retry_hint: float | None = None

    def handle(self, data: dict[str, Any]) -> None:
        report = self.report
        kind = data.get("type")
        report.session_id = data.get("session_id") or data.get("sessionId") or report.session_id
        if kind == "assistant":
            for block in (data.get("message") or {}).get("content") or []:
                if block.get("type") == "tool_use":
                    step, path = _tool_summary(str(block.get("name")), block.get("input") or {})
                    report.steps.append(step)
                    if path and path not in report.files:
                        report.files.append(path)
                elif block.get("type") == "text" and block.get("text"):
                    report.lines.extend(map(kept, str(block["text"]).splitlines()))
        elif kind == "system" and data.get("subtype") == "init":
            report.model = data.get("model") or report.model
        elif kind == "system" and data.get("subtype") == "api_retry":  # the CLI waits and retries on its own
            delay = data.get("retry_delay_ms")
            self.retry_hint = delay / 1000 if isinstance(delay, int | float) and delay > 0 else self.retry_hint
        elif kind == "result":
            report.done = True
            report.final_text = str(data.get("result") or "")
            report.cost_usd = data.get("total_cost_usd", report.cost_usd)
            report.turns = data.get("num_turns", report.turns)
            usage = data.get("usage") or {}
            cached = _count(usage.get("cache_read_input_tokens"))
            written = _count(usage.get("cache_creation_input_tokens"))
            report.tokens.add(_count(usage.get("input_tokens")) + cached + written, cached, usage.get("output_tokens"))
            if data.get("is_error"):
                report.errors.append(str(data.get("subtype") or "error"))
                status = data.get("api_error_status")
                report.rate_limit = rate_limit_in(report.final_text, status, self.retry_hint)


class CodexJsonParser(JsonLinesParser):
    """``codex exec --json``: thread.started, item.* (agent_message, command_execution, file_change), turn.*"""

    def handle(self, data: dict[str, Any]) -> None:
        report = self.report
        kind = data.get("type")
        if kind in ("thread.started", "thread.resumed"):
            report.session_id = data.get("thread_id") or report.session_id
        elif kind == "item.completed":
            item = data.get("item") or {}
            item_type = item.get("type") or item.get("item_type")
            if item_type == "agent_message":
                report.final_text = str(item.get("text") or "")
            elif item_type == "command_execution":
                report.steps.append(f"run: {str(item.get('command'))[:200]}")
            elif item_type == "file_change":
                for change in item.get("changes") or []:
                    path = change.get("path")
                    if path and path not in report.files:
                        report.files.append(path)
                        report.steps.append(f"{change.get('kind', 'edit')} {path}")
        elif kind == "turn.completed":
            report.turns = (report.turns or 0) + 1
            report.done = True
            usage = data.get("usage") or {}  # the thread's totals, not this turn's (codex-rs/exec jsonl output)
            report.tokens = Tokens()
            report.tokens.add(usage.get("input_tokens"), usage.get("cached_input_tokens"), usage.get("output_tokens"))
            report.thread_tokens = True
            report.rate_limit = None  # what went wrong on the way was retried and went through
        elif kind in ("turn.failed", "error"):
            error = data.get("error") or {}
            message = error.get("message") if isinstance(error, dict) else error
            text = str(message or data.get("message") or data)
            report.errors.append(text)
            if kind == "turn.failed":  # an `error` alone may be "Reconnecting... 1/5 (429 …)": codex retries itself
                report.done = True
                report.rate_limit = rate_limit_in(text)


class GeminiStreamParser(JsonLinesParser):
    """``gemini --output-format stream-json``: init, message, tool_use, tool_result, error, result."""

    def handle(self, data: dict[str, Any]) -> None:
        report = self.report
        kind = data.get("type")
        if kind == "init":
            report.session_id = data.get("session_id") or data.get("sessionId") or report.session_id
            report.model = data.get("model") or report.model
        elif kind == "result":
            report.done = True
            stats = data.get("stats") or {}
            report.tokens.add(stats.get("input_tokens"), stats.get("cached"), stats.get("output_tokens"))
            error = data.get("error")
            if data.get("status") == "error" or error:
                text = str(error.get("message") if isinstance(error, dict) else error or data)
                report.errors.append(text)
                report.rate_limit = report.rate_limit or rate_limit_in(text)
        elif kind == "tool_use":
            step, path = _tool_summary(
                str(data.get("tool_name") or data.get("name")), data.get("parameters") or data.get("args") or {}
            )
            report.steps.append(step)
            if path and path not in report.files:
                report.files.append(path)
        elif kind == "message" and data.get("role") == "assistant":
            report.final_text += str(data.get("content") or "")
        elif kind == "error":
            text = str(data.get("message") or data)
            report.errors.append(text)
            report.rate_limit = report.rate_limit or rate_limit_in(text)
