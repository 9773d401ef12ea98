"""The scripted agent: a real subprocess that edits files and commits by following a script.

    python -m foreman_tui.agents.scripted --script SCRIPT.json

It reads the SPEC §5 environment (``FOREMAN_NODE_ID``, ``FOREMAN_ROLE``, ``FOREMAN_ATTEMPT``,
``FOREMAN_WORKDIR``, ``FOREMAN_MESSAGE_FILE``…) and does what the script says for that node and attempt,
so the demo and the tests can reach every path of the supervisor. Script format::

    {"nodes": {"<id>": {"attempts": [STEP, STEP, ...]} | STEP},   # attempt N takes STEP N (the last repeats)
     "reviews": {"<id>": ["FLAG — [2] …", "CLEAN"]}}                # the verdict of each review round

    STEP = {"files": {"path": "@source/relative/to/script" | "literal text"},
            "checkpoint": {"output": {...}} | false | "invalid",
            "commit": true, "say": ["line", ...], "sleep": 0.0,
            "hang": false, "grandchild": false, "pause": "HARD PAUSE: …", "exit": 0,
            "linger": 0.0,                                            # seconds of talk after the commit
            "daemon": false,          # leave a process behind that left the group and holds stdout (a dev server)
            "record_pids": "path"}                                    # where to write its own/grandchild pids
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _step(script: dict[str, Any], node_id: str, attempt: int) -> dict[str, Any]:
    entry = script.get("nodes", {}).get(node_id, {})
    attempts = entry.get("attempts")
    if attempts:
        return attempts[min(attempt, len(attempts)) - 1]
    return entry


def _content(value: str, base: Path) -> str:
    if value.startswith("@"):
        return (base / value[1:]).read_text(encoding="utf-8")
    return value


def _git(workdir: Path, *args: str) -> None:
    for i in range(200):  # in shared mode other workers hold index.lock now and then
        done = subprocess.run(["git", *args], cwd=workdir, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if done.returncode == 0:
            return
        if "index.lock" not in done.stderr:
            print(done.stdout + done.stderr, file=sys.stderr)
            raise SystemExit(f"git {' '.join(args)} failed")
        time.sleep(0.02 + 0.005 * i)
    raise SystemExit("git: index.lock held for too long")


def work(script: dict[str, Any], base: Path, node_id: str, attempt: int, workdir: Path) -> int:
    step = _step(script, node_id, attempt)
    message = os.environ.get("FOREMAN_MESSAGE_FILE")
    print(f"scripted worker: node {node_id}, attempt {attempt}{_where()}", flush=True)
    if message and Path(message).exists():
        print("received message:", flush=True)
        for line in Path(message).read_text(encoding="utf-8").splitlines()[:40]:
            print(f"  > {line}", flush=True)
    for line in step.get("say", []):
        print(line, flush=True)
    if step.get("record_pids"):
        pids = {"worker": os.getpid()}
        if step.get("grandchild"):
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"], stdin=subprocess.DEVNULL)
            pids["grandchild"] = child.pid
        Path(step["record_pids"]).write_text(json.dumps(pids))
    if step.get("daemon"):  # like `npm run dev &`: its own session, our stdout kept open, running on
        code = "import os, time; os.setsid(); time.sleep(300)"
        daemon = subprocess.Popen([sys.executable, "-c", code, "foreman-scripted-daemon"], stdin=subprocess.DEVNULL)
        print(f"started a dev server (pid {daemon.pid})", flush=True)
    if step.get("try_write"):  # an agent reaching outside its tree: say whether it could
        try:
            Path(step["try_write"]).write_text("written by a worker\n", encoding="utf-8")
            print(f"wrote {step['try_write']}", flush=True)
        except OSError as exc:
            print(f"could not write {step['try_write']}: {exc.strerror}", flush=True)
    if step.get("pause"):
        print(step["pause"], flush=True)
        return int(step.get("exit", 0))
    written = []
    for rel, value in (step.get("files") or {}).items():
        target = workdir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_content(value, base), encoding="utf-8")
        written.append(rel)
        print(f"wrote {rel}", flush=True)
    checkpoint = step.get("checkpoint", {"output": {"files": written}})
    if checkpoint is not False:
        path = workdir / "_checkpoints" / f"{node_id}.json"
        path.parent.mkdir(exist_ok=True)
        if checkpoint == "invalid":
            path.write_text("{ not json", encoding="utf-8")
        else:
            data = {
                "node_id": node_id,
                "input_from": sorted(p.stem for p in path.parent.glob("*.json") if p.stem != node_id),
                **checkpoint,
            }
            path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        written.append(f"_checkpoints/{node_id}.json")
    if step.get("sleep"):
        time.sleep(float(step["sleep"]))
    if step.get("hang"):
        print("hanging", flush=True)
        time.sleep(3600)
    if step.get("commit", True) and written:
        _git(workdir, "add", "--", *written)
        # Only our paths: in shared mode other workers stage files in the same index at the same time.
        _git(
            workdir,
            "commit",
            "-q",
            "-m",
            f"{node_id}: attempt {attempt}",
            "-m",
            f"Foreman-Node: {node_id}",
            "--",
            *written,
        )
        print("committed", flush=True)
    if step.get("linger"):  # real agents write a summary after their commit
        print("summarising what I did…", flush=True)
        time.sleep(float(step["linger"]))
    return int(step.get("exit", 0))


def _where() -> str:
    """Where this agent runs when it is not this machine, as foreman told it (``FOREMAN_EXECUTOR``,
    ``FOREMAN_HOST``); nothing for a local one (its output stays the same on every machine)."""
    executor, host = os.environ.get("FOREMAN_EXECUTOR"), os.environ.get("FOREMAN_HOST")
    return f" (executor {executor}, host {host})" if executor and executor != "local" else ""


def review(script: dict[str, Any], node_id: str, round_: int) -> int:
    verdicts = script.get("reviews", {}).get(node_id) or ["CLEAN"]
    verdict = verdicts[min(round_, len(verdicts)) - 1]
    print(f"scripted reviewer: node {node_id}, round {round_}{_where()}", flush=True)
    print(verdict, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="foreman-scripted-agent", description=__doc__.splitlines()[0])
    parser.add_argument("--script", required=True, type=Path)
    args = parser.parse_args(argv)
    script = json.loads(args.script.read_text(encoding="utf-8"))
    base = args.script.resolve().parent
    node_id = os.environ["FOREMAN_NODE_ID"]
    attempt = int(os.environ.get("FOREMAN_ATTEMPT", "1"))
    if os.environ.get("FOREMAN_ROLE") == "reviewer":
        return review(script, node_id, attempt)
    return work(script, base, node_id, attempt, Path(os.environ.get("FOREMAN_WORKDIR", ".")))


if __name__ == "__main__":
    sys.exit(main())
