"""A stand-in for an agent CLI that speaks that CLI's real output format (as recorded from it in tests/data), and
misbehaves the ways real CLIs do, on cue. Installed in a test as ``claude``, ``codex`` or ``gemini`` on ``PATH``
(``install``), it is started by the real preset argv, speaks the format of the name it was started by, and does
the demo's scripted work for real (files, checkpoint, commit).

The plan (``STANDIN_PLAN``, JSON) says what each call does, per node and role, in order; the last repeats::

    {"01_load_points": ["rate_limit", "rate_limit", "work"], "review:01_load_points": ["review"]}

- ``work``: the scripted agent's work for the node and attempt, then ``init`` / tool-use / ``result`` lines
- ``review``: the scripted reviewer's verdict as the ``result``
- ``rate_limit`` / ``overloaded``: the real CLI's recorded output for an API 429 / 529 (503), and its exit status
- ``linger``: ``work``, then never exit (a CLI hanging after its result)
- ``silent``: print nothing, change nothing, never exit
- ``quiet_writer``: no output for a while, but a file in the tree changes every 0.3 s; then ``work``

Every call is recorded in ``STANDIN_STATE/calls.jsonl`` (node, role, behaviour, argv, message).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import time
import uuid
from pathlib import Path

DATA = Path(__file__).parent / "data"
RECORDED = {
    "claude": {"rate_limit": ("claude_429_noretry.jsonl", 1), "overloaded": ("claude_529.jsonl", 1)},
    "codex": {"rate_limit": ("codex_429.jsonl", 1), "overloaded": ("codex_429.jsonl", 1)},
    "gemini": {"rate_limit": ("gemini_429_real.jsonl", 173), "overloaded": ("gemini_503_real.jsonl", 247)},
}
"""Per CLI: the recording and the exit status of a call the API refused (Gemini exits with the HTTP status & 255)."""


def install(bin_dir: Path, name: str = "claude") -> Path:
    """Put the stand-in on ``bin_dir`` as ``name``; returns its path."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    run = f"runpy.run_path({str(__file__)!r}, run_name='__main__')"
    path.write_text(f"#!{sys.executable}\nimport os, runpy\nos.environ['STANDIN_CLI'] = {name!r}\n{run}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _say(data: dict) -> None:
    print(json.dumps(data), flush=True)


def _result(text: str, session: str, cost: float, is_error: bool = False) -> dict:
    return {
        "type": "result",
        "subtype": "success",
        "is_error": is_error,
        "num_turns": 2,
        "result": text,
        "session_id": session,
        "total_cost_usd": cost,
        "usage": {"input_tokens": 1200, "cache_read_input_tokens": 800, "output_tokens": 300},
    }


class Speaker:
    """The events of one CLI's stream: its start, a tool call, its final answer."""

    def __init__(self, cli: str, session: str, cost: float) -> None:
        self.cli, self.session, self.cost = cli, session, cost

    def start(self) -> None:
        if self.cli == "codex":
            _say({"type": "thread.started", "thread_id": self.session})
            _say({"type": "turn.started"})
        elif self.cli == "gemini":
            _say({"type": "init", "session_id": self.session, "model": "gemini-standin"})
        else:
            _say({"type": "system", "subtype": "init", "session_id": self.session, "model": "claude-standin"})

    def tool(self, command: str) -> None:
        if self.cli == "codex":
            item = {"id": "item_1", "type": "command_execution", "command": command, "exit_code": 0}
            _say({"type": "item.completed", "item": {**item, "aggregated_output": "", "status": "completed"}})
        elif self.cli == "gemini":
            _say(
                {
                    "type": "tool_use",
                    "tool_name": "run_shell_command",
                    "tool_id": "t1",
                    "parameters": {"command": command},
                }
            )
            _say({"type": "tool_result", "tool_id": "t1", "status": "success", "output": ""})
        else:
            tool = {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": command}}
            _say({"type": "assistant", "message": {"role": "assistant", "content": [tool]}, "session_id": self.session})

    def answer(self, text: str) -> None:
        if self.cli == "codex":
            _say({"type": "item.completed", "item": {"id": "item_2", "type": "agent_message", "text": text}})
            usage = {"input_tokens": 1000, "cached_input_tokens": 200, "output_tokens": 100}
            _say({"type": "turn.completed", "usage": usage})
        elif self.cli == "gemini":
            _say({"type": "message", "role": "assistant", "content": text, "delta": True})
            stats = {"total_tokens": 1100, "input_tokens": 1000, "output_tokens": 100, "cached": 200}
            _say({"type": "result", "status": "success", "stats": stats})
        else:
            _say(_result(text, self.session, self.cost))


def _behaviour(plan: dict, key: str, state: Path) -> tuple[str, int]:
    steps = plan.get(key) or ["review" if key.startswith("review:") else "work"]
    counter = state / f"{key.replace(':', '_')}.count"
    n = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(n + 1))
    return steps[min(n, len(steps) - 1)], n + 1


def main() -> int:
    from foreman_tui.agents import scripted

    state = Path(os.environ["STANDIN_STATE"])
    plan = json.loads(Path(os.environ["STANDIN_PLAN"]).read_text())
    script_path = Path(os.environ["STANDIN_SCRIPT"])
    cost = float(os.environ.get("STANDIN_COST", "0.4"))
    node, role = os.environ["FOREMAN_NODE_ID"], os.environ["FOREMAN_ROLE"]
    key = f"review:{node}" if role == "reviewer" else node
    behaviour, call = _behaviour(plan, key, state)
    argv = sys.argv[1:]
    cli = os.environ["STANDIN_CLI"]
    message = sys.stdin.read()
    with open(state / "calls.jsonl", "a", encoding="utf-8") as calls:
        record = {"node": node, "role": role, "behaviour": behaviour, "call": call, "argv": argv, "stdin": message}
        calls.write(json.dumps(record) + "\n")
    resume = "--resume" if "--resume" in argv else "resume" if "resume" in argv else None
    session = argv[argv.index(resume) + 1] if resume else str(uuid.uuid4())
    if behaviour in RECORDED[cli]:
        recording, status = RECORDED[cli][behaviour]
        sys.stdout.write((DATA / recording).read_text(encoding="utf-8"))
        return status
    if behaviour == "silent":
        time.sleep(3600)
        return 0
    workdir = Path(os.environ["FOREMAN_WORKDIR"])
    if behaviour == "quiet_writer":
        for i in range(int(float(os.environ.get("STANDIN_QUIET", "3")) / 0.3)):
            (workdir / "notes.tmp").write_text(f"thinking {i}\n")
            time.sleep(0.3)
        (workdir / "notes.tmp").unlink()
    speaker = Speaker(cli, session, cost)
    speaker.start()
    script = json.loads(script_path.read_text(encoding="utf-8"))
    if role == "reviewer":
        verdicts = script.get("reviews", {}).get(node) or ["CLEAN"]
        speaker.answer(verdicts[min(call, len(verdicts)) - 1])
        if behaviour == "linger":
            time.sleep(3600)
        return 0
    attempt = int(os.environ.get("FOREMAN_ATTEMPT", "1"))
    with contextlib.redirect_stdout(sys.stderr):
        code = scripted.work(script, script_path.resolve().parent, node, attempt, workdir)
    speaker.tool("git commit -q -m work")
    speaker.answer(f"{node} is implemented and committed.")
    if behaviour == "linger":
        time.sleep(3600)
    return code


if __name__ == "__main__":
    sys.exit(main())
