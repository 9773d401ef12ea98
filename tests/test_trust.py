"""Trust (SPEC §10): nothing a map or a repository's foreman.toml makes foreman run starts before a person approved
its exact text; map commands run without the person's secrets. All through the real `foreman` in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from foreman_tui.demo import create_demo
from foreman_tui.engine.environment import SECRET_PATTERNS
from foreman_tui.engine.pauses import UNTRUSTED
from foreman_tui.map.store import atomic_write

from .conftest import DEMO_DIR, REPO
from .engine_support import add_check, demo_repo, events, foreman, kinds, start_foreman, wait_for

SCRIPT = json.loads((DEMO_DIR / "script.json").read_text())["nodes"]


def _touch(marker: Path) -> str:
    return f"{sys.executable} -c \"open('{marker}', 'w').close()\""


def test_an_untrusted_command_never_runs_until_approved_and_again_after_an_edit(tmp_path: Path) -> None:
    map_path = create_demo(tmp_path / "demo")  # foreman trusts its own demo…
    marker = tmp_path / "marker"
    source = add_check(map_path, "01_load_points", _touch(marker))  # …not what someone adds to it

    refused = foreman("run", str(map_path), "--headless")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "not approved" in refused.stderr and f"foreman trust {map_path}" in refused.stderr
    assert _touch(marker) in refused.stderr and f"({source})" in refused.stderr
    assert not marker.exists()
    assert not (map_path.parent / ".foreman" / "events.jsonl").exists()  # no worker, nothing started

    listed = foreman("trust", str(map_path))  # no terminal, no --yes: lists, approves nothing
    assert listed.returncode == 2
    assert "+ new" in listed.stdout and _touch(marker) in listed.stdout and "add --yes" in listed.stderr
    assert foreman("run", str(map_path), "--headless").returncode == 2

    approved = foreman("trust", str(map_path), "--yes")
    assert approved.returncode == 0, approved.stderr
    assert "Approved 1" in approved.stdout
    ran = foreman("run", str(map_path), "--headless")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert marker.exists()

    edited = tmp_path / "edited"
    doc = json.loads(map_path.read_text(encoding="utf-8"))
    doc["contents"]["01_load_points"]["verify"]["core"][-1]["cmd"] = _touch(edited)
    doc["state"]["nodes"]["01_load_points"]["status"] = "implemented"  # so the checks run again
    atomic_write(map_path, (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode())
    subprocess.run(["git", "commit", "-qam", "change the check"], cwd=map_path.parent, check=True)
    again = foreman("trust", str(map_path), "--json")
    statuses = {i["text"]: i["status"] for i in json.loads(again.stdout)["items"]}
    assert statuses[_touch(edited)] == "changed" and statuses["python bench/objective.py"] == "approved"
    refused = foreman("run", str(map_path), "--headless")
    assert refused.returncode == 2 and "changed" in refused.stderr and _touch(edited) in refused.stderr
    assert not edited.exists()


def test_a_worker_argv_from_foreman_toml_needs_approval_too(tmp_path: Path) -> None:
    map_path = create_demo(tmp_path / "demo")
    marker = tmp_path / "agent-ran"
    agent = ["python3", "-c", f"open({str(marker)!r}, 'w').close()"]
    toml = map_path.parent / "foreman.toml"
    worker = f'[worker]\npreset = "command"\nargv = {json.dumps(agent)}'
    text = toml.read_text().replace('[worker]\npreset = "scripted"', worker)
    toml.write_text("retries = 0\n" + text)
    subprocess.run(["git", "commit", "-qam", "my agent"], cwd=map_path.parent, check=True)

    refused = foreman("run", str(map_path), "--headless")
    assert refused.returncode == 2, refused.stderr
    assert "foreman.toml:" in refused.stderr and "worker.argv" in refused.stderr
    assert json.dumps(agent) in refused.stderr
    assert not marker.exists()

    assert foreman("trust", str(map_path), "--yes").returncode == 0
    ran = foreman("run", str(map_path), "--headless", "--max-parallel", "1")
    assert marker.exists(), ran.stderr  # approved: the agent ran (it commits nothing, so the node pauses)
    assert ran.returncode == 3


def test_an_agent_clis_settings_in_the_repository_need_approval(tmp_path: Path) -> None:
    # A repository's .claude/settings.json can hold hooks the CLI runs as it starts: approved like a command.
    map_path = demo_repo(tmp_path)
    settings = map_path.parent / ".claude" / "settings.json"
    settings.parent.mkdir()
    settings.write_text('{"hooks": {"SessionStart": [{"hooks": [{"type": "command", "command": "touch x"}]}]}}')
    subprocess.run(["git", "add", "-A"], cwd=map_path.parent, check=True)
    subprocess.run(["git", "commit", "-qm", "agent settings"], cwd=map_path.parent, check=True)
    refused = foreman("run", str(map_path), "--headless")
    assert refused.returncode == 2 and ".claude/settings.json sha256:" in refused.stderr
    assert ".claude/settings.json sha256:" in foreman("validate", str(map_path)).stdout
    assert foreman("trust", str(map_path), "--yes").returncode == 0
    assert foreman("trust", str(map_path)).returncode == 0  # nothing new
    settings.write_text('{"hooks": {}}')
    subprocess.run(["git", "commit", "-qam", "other settings"], cwd=map_path.parent, check=True)
    listed = foreman("trust", str(map_path), "--json")
    assert listed.returncode == 2
    changed = [i for i in json.loads(listed.stdout)["items"] if i["kind"] == "agent-config"]
    assert [i["status"] for i in changed] == ["changed"]


def test_checks_get_the_environment_without_secrets(tmp_path: Path) -> None:
    dump = tmp_path / "env.json"
    map_path = demo_repo(tmp_path)
    toml = map_path.parent / "foreman.toml"  # ends in its [checks] section
    toml.write_text(toml.read_text() + 'pass_env = ["CI_DEPLOY_TOKEN"]\n')
    code = f"import json, os; json.dump(dict(os.environ), open({str(dump)!r}, 'w'))"
    add_check(map_path, "01_load_points", f"{sys.executable} -c {json.dumps(code)}")
    assert foreman("trust", str(map_path), "--yes").returncode == 0
    secrets = {
        "OPENAI_API_KEY": "sk-1",
        "GITHUB_TOKEN": "ghp-2",
        "AWS_SECRET_ACCESS_KEY": "aws-3",
        "AWS_PROFILE": "prod",
        "DB_PASSWORD": "pw-4",
        "STRIPE_SECRET": "st-5",
        "SSH_AUTH_SOCK": "/tmp/agent.sock",
        "my_service_api_key": "lower-6",
    }
    kept = {"CI_DEPLOY_TOKEN": "allowed-7", "FOO_VISIBLE": "plain-8"}
    ran = foreman("run", str(map_path), "--headless", env=secrets | kept)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    seen = json.loads(dump.read_text())
    assert not set(secrets) & set(seen), sorted(set(secrets) & set(seen))
    assert not {v for v in seen.values()} & set(secrets.values())
    assert {k: seen.get(k) for k in kept} == kept
    assert seen.get("PATH")


def test_the_secret_list_is_documented() -> None:
    text = (REPO / "docs" / "security.md").read_text(encoding="utf-8")
    missing = [p for p in SECRET_PATTERNS if f"`{p}`" not in text]
    assert not missing


def test_a_project_cannot_keep_its_own_approvals(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path)
    inside = map_path.parent / "state"
    refused = foreman("trust", str(map_path), "--yes", env={"XDG_STATE_HOME": str(inside)})
    assert refused.returncode == 2 and "inside the project" in refused.stderr
    assert not inside.exists()
    nohome = {"XDG_STATE_HOME": "", "HOME": ""}
    refused = foreman("run", str(map_path), "--headless", env=nohome)
    assert refused.returncode == 2 and "XDG_STATE_HOME" in refused.stderr


def test_a_command_added_during_a_run_waits_for_approval(tmp_path: Path) -> None:
    slow = {**SCRIPT["01_load_points"], "sleep": 4}
    map_path = demo_repo(tmp_path, {"01_load_points": slow})
    marker = tmp_path / "added-mid-run"
    run = start_foreman("run", str(map_path), "--headless")
    try:
        wait_for(lambda: bool(kinds(events(map_path), "WorkerStarted", "01_load_points")), 60, "a worker")
        add_check(map_path, "02_vector_math", _touch(marker), commit=False)
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 3, out + err
    pause = kinds(events(map_path), "NodePaused", "map")[0]["detail"]
    assert pause["trigger"] == UNTRUSTED
    assert not marker.exists()
    assert not kinds(events(map_path), "MapReloaded")


def test_validate_and_plan_list_agent_commands_and_settings(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path)
    for command in ("validate", "plan"):
        shown = foreman(command, str(map_path))
        assert shown.returncode == 0
        assert "python bench/objective.py" in shown.stdout
        assert "worker.args" in shown.stdout and "checks.python" in shown.stdout, command


def test_trust_state_is_outside_the_repository_and_private(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path)
    state = Path(os.environ["XDG_STATE_HOME"]) / "foreman" / "trust"
    assert state.is_dir() and oct(state.stat().st_mode & 0o777) == "0o700"
    listed = subprocess.run(["git", "status", "--porcelain"], cwd=map_path.parent, capture_output=True, text=True)
    assert listed.stdout == ""
