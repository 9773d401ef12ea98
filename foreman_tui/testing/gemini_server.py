"""The scripted model of ``model_server.py`` behind the Gemini API (``generativelanguage`` v1beta), on loopback, for
driving the real Gemini CLI (``gemini --output-format stream-json``).

Same script, same reading of the conversation: each request's ``contents`` are turned into the Messages shape
``ScriptedModel`` reads (user ``text`` parts → text, model ``functionCall`` → ``tool_use``, user
``functionResponse`` → ``tool_result``), and its answer is sent back as Gemini's server-sent events
(``streamGenerateContent?alt=sse``). The CLI's own context message (``<session_context>``) is not an instruction:
only the task and each message sent with ``--resume`` start an episode. A ``bash`` step becomes a call of the
CLI's shell tool, ``run_shell_command`` with ``{"command": …}``; a ``write`` step becomes one ``write_file`` call
per file (``{"file_path": …, "content": …}``); ``{"tool": name, "input": {…}}`` calls any tool. A tool result
counts as an error when the CLI answers with an ``error`` (a refused call) or a shell command's non-zero
``Exit Code``.

Requests that ask for JSON (``responseMimeType: application/json``: the model router when the model is ``auto``,
the next-speaker check) get an object filled in from their schema, not a scripted turn; ``countTokens`` gets
``USAGE``'s prompt count. Every streamed answer reports ``USAGE`` (prompt 1000 tokens of which 200 cached, 100
out), which the CLI sums into its ``result`` event's ``stats``.

Point the CLI at it without touching any user configuration (tests/gemini_support.py ``gemini_env``)::

    GOOGLE_GEMINI_BASE_URL=<server.url> GEMINI_API_KEY=<anything> HOME=<a folder of its own>

with ``$HOME/.gemini/settings.json`` selecting ``gemini-api-key`` auth (``SETTINGS``): without it the CLI takes
``GOOGLE_GEMINI_BASE_URL`` as "gateway" auth, which it refuses headless ("Invalid auth method selected.").
"""

from __future__ import annotations

import json
import re
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from .loopback import Loopback, send
from .model_server import ScriptedModel

SETTINGS: dict[str, Any] = {
    "security": {"auth": {"selectedType": "gemini-api-key"}},
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
    "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
}
"""``~/.gemini/settings.json`` for a CLI pointed at this server: API-key auth, no usage statistics, no telemetry,
no update check."""

USAGE: dict[str, int] = {
    "promptTokenCount": 1000,
    "cachedContentTokenCount": 200,
    "candidatesTokenCount": 100,
    "totalTokenCount": 1100,
}
"""What every streamed answer reports using (``usageMetadata``)."""

SHELL_TOOL = "run_shell_command"
WRITE_TOOL = "write_file"
_EXIT = re.compile(r"(?:Exit Code|exited with code):? (-?\d+)")
_CONTEXT_PREFIXES = ("<session_context>", "<")
"""User text the CLI writes itself (its ``<session_context>`` and other tagged context)."""


def _split_writes(script: dict[str, Any]) -> dict[str, Any]:
    """The script with each ``write`` step as one ``write_file`` tool step per file."""

    def steps(episode: Any) -> Any:
        if not isinstance(episode, list):
            return episode
        out: list[Any] = []
        for step in episode:
            if isinstance(step, dict) and "write" in step:
                out += [
                    {"tool": WRITE_TOOL, "input": {"file_path": path, "content": text}}
                    for path, text in step["write"].items()
                ]
            else:
                out.append(step)
        return out

    workers = {node: [steps(e) for e in episodes] for node, episodes in (script.get("workers") or {}).items()}
    reviews = {node: [steps(v) for v in verdicts] for node, verdicts in (script.get("reviews") or {}).items()}
    return {**script, "workers": workers, "reviews": reviews}


def _response_text(response: Any) -> tuple[str, bool]:
    """A ``functionResponse.response`` as (text, whether the CLI reported an error)."""
    if not isinstance(response, dict):
        return str(response), False
    if "error" in response:
        return str(response["error"]), True
    output = response.get("output", response)
    text = output if isinstance(output, str) else json.dumps(output)
    code = _EXIT.search(text)
    return text, bool(code and int(code.group(1)) != 0)


def as_messages(body: dict[str, Any]) -> dict[str, Any]:
    """A ``generateContent`` request as the Messages request ``ScriptedModel`` reads: the conversation and the tool
    names."""
    messages: list[dict[str, Any]] = []
    for content in body.get("contents") or []:
        if not isinstance(content, dict):
            continue
        role = "assistant" if content.get("role") == "model" else "user"
        blocks: list[dict[str, Any]] = []
        for part in content.get("parts") or []:
            if not isinstance(part, dict) or part.get("thought"):
                continue
            if "text" in part:
                text = str(part["text"])
                if role == "user" and text.lstrip().startswith(_CONTEXT_PREFIXES):
                    continue
                blocks.append({"type": "text", "text": text})
            elif "functionCall" in part:
                call = part["functionCall"] or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id"),
                        "name": call.get("name"),
                        "input": call.get("args") or {},
                    }
                )
            elif "functionResponse" in part:
                answer = part["functionResponse"] or {}
                text, is_error = _response_text(answer.get("response"))
                blocks.append(
                    {"type": "tool_result", "tool_use_id": answer.get("id"), "content": text, "is_error": is_error}
                )
        if blocks:
            messages.append({"role": role, "content": blocks})
    tools = [
        {"name": declaration.get("name")}
        for tool in body.get("tools") or []
        if isinstance(tool, dict)
        for declaration in tool.get("functionDeclarations") or []
    ]
    return {"model": body.get("model"), "messages": messages, "tools": tools, "stream": True}


def _parts(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``ScriptedModel``'s answer as Gemini parts: its Bash calls become ``run_shell_command`` calls."""
    parts: list[dict[str, Any]] = []
    for block in blocks:
        if block["type"] == "text":
            parts.append({"text": block["text"]})
            continue
        name, args = str(block["name"]), dict(block["input"])
        if name == "Bash":
            name = SHELL_TOOL
        parts.append({"functionCall": {"id": block["id"], "name": name, "args": args}})
    return parts


def filled(schema: Any) -> Any:
    """A value of a JSON schema (Gemini's upper-case types too): the first enum value, 1, true, "scripted"."""
    if not isinstance(schema, dict):
        return None
    if schema.get("enum"):
        return schema["enum"][0]
    kind = str(schema.get("type", "object")).lower()
    if kind == "object":
        return {key: filled(sub) for key, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return False
    return "scripted"


def _json_answer(body: dict[str, Any]) -> dict[str, Any] | None:
    """The answer to a request for JSON (router, next-speaker check), or None for a turn of the conversation."""
    config = body.get("generationConfig") or {}
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    if config.get("responseMimeType") != "application/json" and schema is None:
        return None
    return _candidate([{"text": json.dumps(filled(schema) if schema else {})}])


def _candidate(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": USAGE,
        "modelVersion": "gemini-scripted",
    }


class GeminiServer(Loopback):
    """``with GeminiServer(script) as server:`` → ``server.url`` for ``GOOGLE_GEMINI_BASE_URL``;
    ``server.model.requests`` records each conversation request as ``ScriptedModel`` reads it."""

    def __init__(self, script: dict[str, Any], record: Path | None = None) -> None:
        self.model = ScriptedModel(_split_writes(script), record)
        model = self.model

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._send(404, "application/json", b'{"error": {"code": 404, "message": "not scripted"}}')

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                path = self.path.split("?")[0]
                if path.endswith(":countTokens"):
                    self._send(200, "application/json", json.dumps({"totalTokens": USAGE["promptTokenCount"]}).encode())
                    return
                if not path.endswith((":streamGenerateContent", ":generateContent")):
                    self._send(404, "application/json", b'{"error": {"code": 404, "message": "not scripted"}}')
                    return
                answer = _json_answer(body)
                if answer is None:
                    blocks, _stop = model.answer(as_messages(body))
                    answer = _candidate(_parts(blocks))
                if path.endswith(":generateContent"):
                    self._send(200, "application/json", json.dumps(answer).encode())
                else:
                    self._send(200, "text/event-stream", f"data: {json.dumps(answer)}\r\n\r\n".encode())

            def _send(self, status: int, kind: str, raw: bytes) -> None:
                send(self, status, kind, raw)

        self._serve(Handler)
