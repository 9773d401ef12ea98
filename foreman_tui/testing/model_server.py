"""A scripted model behind the Anthropic Messages API, on loopback, for driving the real Claude Code CLI.

It reads the conversation it is sent, like a model would: the task names its node (``# Task: implement node
`<id>` `` for a worker, the review template's ``Node: <id>`` for a reviewer); each instruction in the
conversation (the task, then each fix task or decision sent with ``--resume``) starts the next *episode* of
that node's script; within an episode, the tool results received so far say which step comes next. It answers
with the streaming API (``message_start`` … ``message_stop``), tool calls included, and records every request.

Script (JSON)::

    {"workers": {"<node>": [EPISODE, EPISODE, ...]},      # episode n answers the n-th instruction
     "reviews": {"<node>": ["FLAG — [2] …", "CLEAN"]}}    # one verdict (or EPISODE) per review conversation
    EPISODE = [STEP, ..., {"say": "final text"}]
    STEP = {"bash": "command"} | {"write": {"path": "text"}} | {"tool": "Read", "input": {"file_path": "/abs"}}

``write`` becomes a Bash call writing the file with a here-document (the model's own command, run by the CLI);
``tool`` calls any tool by name. A step whose call the CLI refuses still counts as done: the model goes on, as a
model told "no such tool" would. Each recorded request carries the tool results of its conversation.
Nothing here knows foreman's internals beyond the text of the prompts it is sent.
"""

from __future__ import annotations

import json
import re
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from .loopback import Loopback

_WORKER = re.compile(r"# Task: implement node `([a-z0-9_]+)`")
_REVIEWER = re.compile(r"You are a code reviewer.*?Node: ([a-z0-9_]+)", re.S)


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [block.get("text", "") for block in content or [] if isinstance(block, dict) and block.get("type") == "text"]


def _instruction(text: str) -> bool:
    stripped = text.strip()
    return bool(stripped) and not stripped.startswith(("<system-reminder>", "<command-", "<local-command"))


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool results in a request's conversation so far: which call, whether the CLI reported an error, its
    text."""
    results = []
    for message in body.get("messages") or []:
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                inner = block.get("content")
                text = inner if isinstance(inner, str) else "\n".join(_texts(inner))
                results.append({"id": block.get("tool_use_id"), "is_error": bool(block.get("is_error")), "text": text})
    return results


def read_conversation(body: dict[str, Any]) -> tuple[str | None, str | None, int, int, list[str]]:
    """(role, node, episode, steps done in it, instructions) of a request's conversation.

    The episode is the number of distinct instructions so far; the steps done are this model's own tool
    calls in the conversation whose ids name that episode (robust to how the CLI merges resumed turns)."""
    role = node = None
    instructions: list[str] = []
    calls: list[str] = []
    for message in body.get("messages", []):
        content = message.get("content")
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
        for block in blocks:
            if not isinstance(block, dict):
                continue
            if message.get("role") == "assistant" and block.get("type") == "tool_use":
                calls.append(str(block.get("id", "")))
            elif (
                message.get("role") == "user"
                and block.get("type") == "text"
                and _instruction(block.get("text", ""))
                and block["text"] not in instructions
            ):
                instructions.append(block["text"])
    for text in instructions:
        found = _WORKER.search(text)
        if found:
            role, node = "worker", found.group(1)
            break
        found = _REVIEWER.search(text)
        if found:
            role, node = "reviewer", found.group(1)
            break
    episode = len(instructions)
    steps = sum(1 for call in calls if call.startswith(f"toolu_{node}_{episode}_"))
    return role, node, episode, steps, instructions


def _heredoc(path: str, text: str) -> str:
    marker = "FOREMAN_EOF"
    while marker in text:
        marker += "_"
    folder = str(Path(path).parent)
    mkdir = f"mkdir -p '{folder}' && " if folder not in ("", ".") else ""
    return f"{mkdir}cat > '{path}' <<'{marker}'\n{text.rstrip(chr(10))}\n{marker}"


class ScriptedModel:
    def __init__(self, script: dict[str, Any], record: Path | None = None) -> None:
        self.script = script
        self.record = record
        self.requests: list[dict[str, Any]] = []
        self._reviews_seen: dict[str, set[str]] = defaultdict(set)
        self._lock = threading.Lock()

    def answer(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        """(content blocks, stop reason) for one request."""
        role, node, episode, steps, instructions = read_conversation(body)
        with self._lock:
            self.requests.append(
                {
                    "role": role,
                    "node": node,
                    "episode": episode,
                    "steps": steps,
                    "instructions": instructions,
                    "has_tools": bool(body.get("tools")),
                    "tools": sorted(str(tool.get("name")) for tool in body.get("tools") or []),
                    "results": tool_results(body),
                }
            )
            if self.record is not None:
                with open(self.record, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(self.requests[-1], ensure_ascii=False) + "\n")
        if not body.get("tools") or role is None or node is None:
            return [{"type": "text", "text": "ok"}], "end_turn"
        if role == "reviewer":
            verdicts = self.script.get("reviews", {}).get(node) or ["CLEAN — matches the how"]
            with self._lock:
                key = instructions[0]
                self._reviews_seen[node].add(key)
                round_ = len(self._reviews_seen[node])
            verdict = verdicts[min(round_, len(verdicts)) - 1]
            plan = [{"say": verdict}] if isinstance(verdict, str) else verdict
        else:
            episodes = self.script.get("workers", {}).get(node) or [[{"say": "nothing scripted for this node"}]]
            plan = episodes[min(episode, len(episodes)) - 1]
        if steps >= len(plan):
            return [{"type": "text", "text": "Done."}], "end_turn"
        step: dict[str, Any] = plan[steps]
        if "say" in step:
            return [{"type": "text", "text": step["say"]}], "end_turn"
        if "tool" in step:
            name, args = str(step["tool"]), dict(step.get("input", {}))
        elif "write" in step:
            # One here-document per file, each terminator alone on its line.
            name, args = "Bash", {"command": "set -e\n" + "\n".join(_heredoc(p, t) for p, t in step["write"].items())}
        else:
            name, args = "Bash", {"command": step["bash"]}
        if name == "Bash":
            args["description"] = f"step {steps + 1} of episode {episode}"
        return [{"type": "tool_use", "id": f"toolu_{node}_{episode}_{steps}", "name": name, "input": args}], "tool_use"


def _events(blocks: list[dict[str, Any]], stop: str, model: str) -> list[tuple[str, dict[str, Any]]]:
    start: dict[str, Any] = {
        "id": "msg_scripted",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 1200, "output_tokens": 1},
    }
    out: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": start})]
    for i, block in enumerate(blocks):
        if block["type"] == "text":
            out.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}},
                )
            )
            out.append(
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": block["text"]}},
                )
            )
        else:
            out.append(
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": i,
                        "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}},
                    },
                )
            )
            out.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": i,
                        "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])},
                    },
                )
            )
        out.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    out.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 150},
            },
        )
    )
    out.append(("message_stop", {"type": "message_stop"}))
    return out


class ModelServer(Loopback):
    """``with ModelServer(script) as server:`` → ``server.url`` for ``ANTHROPIC_BASE_URL``."""

    def __init__(self, script: dict[str, Any], record: Path | None = None) -> None:
        self.model = ScriptedModel(script, record)
        model = self.model

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(404)
                self.end_headers()

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if "count_tokens" in self.path or not self.path.startswith("/v1/messages"):
                    self._json({"input_tokens": 1000})
                    return
                blocks, stop = model.answer(body)
                if not body.get("stream"):
                    self._json(
                        {
                            "id": "msg_scripted",
                            "type": "message",
                            "role": "assistant",
                            "model": body.get("model"),
                            "content": blocks,
                            "stop_reason": stop,
                            "usage": {"input_tokens": 1200, "output_tokens": 150},
                        }
                    )
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                for name, data in _events(blocks, stop, str(body.get("model"))):
                    self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()

            def _json(self, data: dict[str, Any]) -> None:
                raw = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self._serve(Handler)
