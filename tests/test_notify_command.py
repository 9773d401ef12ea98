"""``notify_command``: when a hard pause opens, the person's own command (an ntfy, Slack or mail script) gets the
pause as JSON on stdin — only as approved with `foreman trust`, like every command from foreman.toml."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .engine_support import demo_repo, events, foreman, kinds


def notify_project(tmp_path: Path) -> tuple[Path, Path]:
    received = tmp_path / "received.json"
    script = tmp_path / "ping.py"
    script.write_text(f"import sys\nopen({str(received)!r}, 'w').write(sys.stdin.read())\n")
    settings = f"poll = 0.5\nnotify_command = {json.dumps([sys.executable, str(script)])}\n"
    return demo_repo(tmp_path, settings=settings, with_pause=True), received


def test_the_notify_command_gets_the_pause_as_json(tmp_path: Path) -> None:
    map_path, received = notify_project(tmp_path)
    done = foreman("run", str(map_path), "--headless")
    assert done.returncode == 3, done.stderr
    pause = kinds(events(map_path), "NodePaused")[0]
    got = json.loads(received.read_text())
    assert (got["node"], got["trigger"], got["id"]) == (
        pause["node"],
        pause["detail"]["trigger"],
        pause["detail"]["pause_id"],
    )
    assert [o["key"] for o in got["options"]] == [o["key"] for o in pause["detail"]["options"]]
    assert got["map"] == str(map_path) and got["decide"].startswith(f"foreman decide {map_path} {pause['node']} ")


def test_a_notify_command_nobody_approved_does_not_run(tmp_path: Path) -> None:
    map_path, received = notify_project(tmp_path)
    toml = map_path.parent / "foreman.toml"
    toml.write_text(toml.read_text().replace("notify_command = [", 'notify_command = ["env", '))
    subprocess.run(["git", "commit", "-qam", "another notify command"], cwd=map_path.parent, check=True)
    listed = json.loads(foreman("trust", str(map_path), "--json").stdout)
    item = next(i for i in listed["items"] if i["kind"] == "notify")
    assert (
        item["status"] == "changed"
        and item["source"].startswith("foreman.toml:")
        and "notify_command" in item["source"]
    )
    done = foreman("run", str(map_path), "--headless")
    assert done.returncode == 2 and "notify_command" in done.stderr, done.stderr
    assert not received.exists()
