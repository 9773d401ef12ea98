"""The `codex` preset's command lines, for every role and permission profile, are accepted by the real
`codex exec` option parser (with --help appended, so nothing runs and nothing is sent)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from foreman_tui.agents.presets import AgentContext, make_agent
from foreman_tui.config import AgentSettings

from .claude_support import agent_bin


def parse(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(agent_bin("codex")), *argv[1:], "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_first_run_and_resume_argv_parse(tmp_path: Path) -> None:
    agent = make_agent(AgentSettings(preset="codex", model="gpt-5", args=["--color", "never"]))
    ctx = AgentContext("n1", "worker", 1, tmp_path / "m.json", tmp_path, tmp_path / "p.md")
    first = agent.command(ctx)
    done = parse(first.argv)
    assert done.returncode == 0, done.stderr
    assert "Usage: codex exec" in done.stdout
    resumed = agent.command(
        AgentContext(
            "n1",
            "worker",
            2,
            tmp_path / "m.json",
            tmp_path,
            tmp_path / "p.md",
            message_file=tmp_path / "fix.md",
            session_id="0199a213",
        )
    )
    assert resumed.resumed
    done = parse(resumed.argv)
    assert done.returncode == 0, done.stderr
    assert "Usage: codex exec resume" in done.stdout
    wrong = parse([*first.argv[:3], "--not-a-codex-flag"])
    assert wrong.returncode == 2 and "unexpected argument" in wrong.stderr  # the check can fail


@pytest.mark.parametrize(
    ("role", "permissions", "flags"),
    [
        ("reviewer", None, ["--sandbox", "read-only"]),
        ("worker", "edit", ["--sandbox", "workspace-write"]),
        ("worker", "edit+shell", ["--sandbox", "workspace-write"]),
        ("worker", "full", ["--dangerously-bypass-approvals-and-sandbox"]),
    ],
)
def test_every_profile_parses_first_run_and_resume(
    tmp_path: Path, role: str, permissions: str | None, flags: list[str]
) -> None:
    agent = make_agent(AgentSettings.model_validate({"preset": "codex", "permissions": permissions}))
    for message, session in ((None, None), (tmp_path / "fix.md", "0199a213")):
        ctx = AgentContext("n1", role, 1, tmp_path / "m.json", tmp_path, tmp_path / "p.md", message, session)
        argv = agent.command(ctx).argv
        assert argv[3 : 3 + len(flags)] == flags
        done = parse(argv)
        assert done.returncode == 0, done.stderr
    # The parser does check the sandbox's value: a misspelt one is refused.
    wrong = parse(["codex", "exec", "--json", "--sandbox", "readonly", "-"])
    assert wrong.returncode == 2 and "invalid value 'readonly'" in wrong.stderr
