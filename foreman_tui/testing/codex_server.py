"""The scripted model of ``model_server.py`` behind the OpenAI Responses API, on loopback, for driving the real
Codex CLI (``codex exec``).

Same script, same reading of the conversation: each request's ``input`` items are turned into the Messages shape
``ScriptedModel`` reads (user ``input_text`` → text, ``function_call`` → ``tool_use``, ``function_call_output`` →
``tool_result``), and its answer is sent back as a Responses stream. Codex's own context messages (its developer
instructions, ``<environment_context>``, AGENTS.md) are not instructions: only the task and each message sent with
``resume`` start an episode. A ``bash`` or ``write`` step becomes a call of Codex's shell tool, ``exec_command``
with ``{"cmd": …}`` (Codex 0.171 with a model it has no metadata for); ``{"tool": name, "input": {…}}`` calls
any tool. A tool output counts as an error when Codex reports a non-zero exit code.

Every response reports the same usage, ``USAGE`` (input 1000 tokens of which 200 cached, output 100). Codex 0.171
prints in ``turn.completed`` the sum over the whole *thread*: a first run's usage is ``USAGE`` times the requests it
made, a resumed run's also counts the requests of the runs before it in that thread.

Point Codex at it without touching any user configuration::

    codex exec -c model_provider="scripted" -c model_providers.scripted.name="scripted"
      -c model_providers.scripted.base_url="<server.url>/v1" -c model_providers.scripted.wire_api="responses"
      -c model_providers.scripted.env_key="<a variable holding any key>" …

with ``CODEX_HOME`` in a folder of its own that is not under ``TMPDIR`` (tests/test_codex_e2e.py ``codex_env``).

``CodexServer(script, fail=N, fail_status=429)`` answers the first N ``POST …/responses`` with that HTTP error
(``ERRORS``: 429 rate limit with ``retry-after: 7``, 503 / 529 overloaded) before the script sees any request; a
large N fails them all. ``server.posts`` records ``(time.monotonic(), status)`` of each of them.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from .loopback import Loopback, send
from .model_server import ScriptedModel

PROVIDER = "scripted"
USAGE: dict[str, Any] = {
    "input_tokens": 1000,
    "input_tokens_details": {"cached_tokens": 200},
    "output_tokens": 100,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 1100,
}
"""What every response reports using; Codex prints the thread's sums (``turn.completed`` ``usage``)."""

ERRORS: dict[int, tuple[dict[str, str], dict[str, Any]]] = {
    429: (
        {"retry-after": "7", "x-request-id": "req_scripted_429"},
        {
            "message": "Rate limit reached for gpt-test in organization org-scripted on requests per min (RPM): "
            "Limit 3, Used 3, Requested 1. Please try again in 7s. "
            "Visit https://platform.openai.com/account/rate-limits to learn more.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        },
    ),
    503: (
        {"x-request-id": "req_scripted_503"},
        {"message": "The server is overloaded or not ready yet.", "type": "server_error", "param": None, "code": None},
    ),
    529: (
        {"x-request-id": "req_scripted_529"},
        {"message": "Overloaded", "type": "overloaded_error", "param": None, "code": "overloaded"},
    ),
}
"""Each status ``fail_status`` may take: extra headers and the ``error`` object of the JSON body."""

SHELL_TOOL = "exec_command"
_EXIT = re.compile(r"Process exited with code (-?\d+)")
_CONTEXT_PREFIXES = ("<", "# AGENTS.md")
"""User messages Codex writes itself (``<environment_context>``, ``<user_instructions>``, AGENTS.md …)."""


def provider_args(url: str, env_key: str) -> list[str]:
    """``codex exec`` options that send its model requests to ``url`` (this server), with the key read from the
    environment variable ``env_key``: only ``-c`` overrides, no file is written."""
    table = f"model_providers.{PROVIDER}"
    pairs = {
        "model_provider": PROVIDER,
        f"{table}.name": PROVIDER,
        f"{table}.base_url": f"{url}/v1",
        f"{table}.env_key": env_key,
        f"{table}.wire_api": "responses",
    }
    return [part for key, value in pairs.items() for part in ("-c", f"{key}={json.dumps(value)}")]


def _input_texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [
        str(part.get("text", ""))
        for part in content or []
        if isinstance(part, dict) and part.get("type") in ("input_text", "output_text")
    ]


def _exit_code(output: str) -> int | None:
    found = _EXIT.search(output)
    return int(found.group(1)) if found else None


def as_messages(body: dict[str, Any]) -> dict[str, Any]:
    """A Responses request as the Messages request ``ScriptedModel`` reads: the conversation and the tool names."""
    messages: list[dict[str, Any]] = []
    for item in body.get("input") or []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "message" and item.get("role") == "user":
            texts = [t for t in _input_texts(item.get("content")) if not t.lstrip().startswith(_CONTEXT_PREFIXES)]
            if texts:
                messages.append({"role": "user", "content": [{"type": "text", "text": t} for t in texts]})
        elif kind == "message" and item.get("role") == "assistant":
            text = "\n".join(_input_texts(item.get("content")))
            messages.append({"role": "assistant", "content": [{"type": "text", "text": text}]})
        elif kind == "function_call":
            try:
                args = json.loads(item.get("arguments") or "{}")
            except json.JSONDecodeError:
                args = {"raw": item.get("arguments")}
            block = {"type": "tool_use", "id": item.get("call_id"), "name": item.get("name"), "input": args}
            messages.append({"role": "assistant", "content": [block]})
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else json.dumps(output)
            code = _exit_code(text)
            block = {
                "type": "tool_result",
                "tool_use_id": item.get("call_id"),
                "content": text,
                "is_error": code not in (None, 0) or text.startswith("unsupported call"),
            }
            messages.append({"role": "user", "content": [block]})
    tools = [{"name": tool.get("name") or tool.get("type")} for tool in body.get("tools") or []]
    return {"model": body.get("model"), "messages": messages, "tools": tools, "stream": body.get("stream")}


def _output_items(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``ScriptedModel``'s answer as Responses output items: its Bash calls become ``exec_command`` calls."""
    items: list[dict[str, Any]] = []
    for i, block in enumerate(blocks):
        if block["type"] == "text":
            content = [{"type": "output_text", "text": block["text"], "annotations": []}]
            items.append(
                {"type": "message", "id": f"msg_{i}", "role": "assistant", "status": "completed", "content": content}
            )
            continue
        name, args = str(block["name"]), dict(block["input"])
        if name == "Bash":
            # Long enough that a script's command finishes before Codex stops waiting for it (max 30 s).
            name, args = SHELL_TOOL, {"cmd": args["command"], "yield_time_ms": 30000}
        items.append(
            {
                "type": "function_call",
                "id": f"fc_{block['id']}",
                "call_id": block["id"],
                "name": name,
                "arguments": json.dumps(args),
                "status": "completed",
            }
        )
    return items


def _events(items: list[dict[str, Any]], response_id: str, model: str) -> list[dict[str, Any]]:
    response = {"id": response_id, "object": "response", "model": model, "status": "in_progress", "output": []}
    out: list[dict[str, Any]] = [{"type": "response.created", "response": response}]
    for index, item in enumerate(items):
        if item["type"] == "message":
            out.append({"type": "response.output_item.added", "output_index": index, "item": {**item, "content": []}})
            text = item["content"][0]["text"]
            out.append(
                {
                    "type": "response.output_text.delta",
                    "item_id": item["id"],
                    "output_index": index,
                    "content_index": 0,
                    "delta": text,
                }
            )
        else:
            out.append({"type": "response.output_item.added", "output_index": index, "item": item})
        out.append({"type": "response.output_item.done", "output_index": index, "item": item})
    done = {**response, "status": "completed", "output": items, "usage": USAGE}
    out.append({"type": "response.completed", "response": done})
    return out


class CodexServer(Loopback):
    """``with CodexServer(script) as server:`` → ``server.url`` (``…/v1`` is the provider's ``base_url``);
    ``server.model.requests`` records each request as ``ScriptedModel`` reads it (not the ones failed with
    ``fail_status``), ``server.posts`` the time and status of every ``POST …/responses``."""

    def __init__(
        self, script: dict[str, Any], record: Path | None = None, fail: int = 0, fail_status: int = 429
    ) -> None:
        if fail and fail_status not in ERRORS:
            raise ValueError(f"fail_status {fail_status}: one of {sorted(ERRORS)}")
        self.model = ScriptedModel(script, record)
        self.posts: list[tuple[float, int]] = []
        model, posts = self.model, self.posts
        counter = iter(range(1, 1 << 30))
        counter_lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                # Codex asks for no catalogue when its provider is configured by hand; answer an empty one anyway.
                self._send(200, "application/json", json.dumps({"object": "list", "data": [], "models": []}).encode())

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.rstrip("/").endswith("/responses"):
                    self._send(404, "application/json", b'{"error": {"message": "not scripted"}}')
                    return
                with counter_lock:
                    failing = sum(status != 200 for _, status in posts) < fail
                    posts.append((time.monotonic(), fail_status if failing else 200))
                if failing:
                    headers, error = ERRORS[fail_status]
                    self._send(fail_status, "application/json", json.dumps({"error": error}).encode(), headers)
                    return
                blocks, _stop = model.answer(as_messages(body))
                with counter_lock:
                    response_id = f"resp_scripted_{next(counter)}"
                events = _events(_output_items(blocks), response_id, str(body.get("model")))
                raw = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()
                self._send(200, "text/event-stream", raw)

            def _send(self, status: int, kind: str, raw: bytes, headers: dict[str, str] | None = None) -> None:
                send(self, status, kind, raw, headers)

        self._serve(Handler)
