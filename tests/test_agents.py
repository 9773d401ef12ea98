"""Agent presets: the argv each builds (no shell, prompt through a file or stdin), resume forms, and how
their output is read — against recorded sample outputs of each CLI's documented format."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from foreman_tui.agents.presets import (
    PERMISSION_FLAGS,
    Agent,
    AgentContext,
    fill,
    make_agent,
    permission_profile,
)
from foreman_tui.config import AgentSettings
from foreman_tui.engine.prompts import parse_verdict

DATA = Path(__file__).parent / "data"


def ctx(tmp_path: Path, **extra: object) -> AgentContext:
    fields: dict = {
        "node_id": "01_load_points",
        "role": "worker",
        "attempt": 1,
        "map_path": tmp_path / "m.json",
        "workdir": tmp_path,
        "prompt_file": tmp_path / "prompt-1.md",
        "files": ("kmeans/points.py",),
    }
    fields.update(extra)
    return AgentContext(**fields)


def feed(preset: str, sample: str):
    parser = make_agent(AgentSettings(preset=preset)).parser()
    for line in (DATA / sample).read_text().splitlines():
        parser.feed("stdout", line)
    return parser.report


def test_claude_first_run_and_resume(tmp_path: Path) -> None:
    agent = make_agent(AgentSettings(preset="claude", model="sonnet", args=["--max-turns", "30"]))
    first = agent.command(ctx(tmp_path))
    assert first.argv[:5] == ["claude", "-p", "--output-format", "stream-json", "--verbose"]
    assert first.argv[5:7] == ["--model", "sonnet"] and first.argv[-2:] == ["--max-turns", "30"]
    assert "--resume" not in first.argv and first.stdin == tmp_path / "prompt-1.md"
    message = tmp_path / "message-2.md"
    again = agent.command(ctx(tmp_path, attempt=2, message_file=message, session_id="4f1c"))
    assert again.resumed and again.argv[again.argv.index("--resume") + 1] == "4f1c"
    assert again.stdin == message  # the fix task goes into the same conversation


def test_claude_stream_json_is_read_into_steps_files_session_and_cost() -> None:
    report = feed("claude", "claude_stream.jsonl")
    assert report.session_id == "4f1c2d9e-7a31-4bb0-9c55-2f0e8d1a6b77"
    assert report.cost_usd == 0.0831 and report.turns == 7
    assert report.steps == [
        "Write /work/tree/kmeans/points.py",
        "Bash: python -m unittest tests/test_points.py",
        "Edit kmeans/points.py",
    ]
    assert report.files == ["/work/tree/kmeans/points.py", "kmeans/points.py"]
    assert report.text() == "Done: load_points implemented, checkpoint saved, committed."


def test_claude_reviewer_verdict_comes_from_the_result_text() -> None:
    verdict, line = parse_verdict(feed("claude", "claude_review.jsonl").text())
    assert verdict == "FLAG" and line.startswith("FLAG — [2]")


def test_codex_exec_json(tmp_path: Path) -> None:
    agent = make_agent(AgentSettings(preset="codex"))
    first = agent.command(ctx(tmp_path))
    assert first.argv[:3] == ["codex", "exec", "--json"] and first.argv[-1] == "-"
    assert "resume" not in first.argv and first.stdin == tmp_path / "prompt-1.md"
    again = agent.command(ctx(tmp_path, message_file=tmp_path / "m.md", session_id="0199"))
    assert again.argv[-3:] == ["resume", "0199", "-"] and again.stdin == tmp_path / "m.md"
    report = feed("codex", "codex_exec.jsonl")
    assert report.session_id == "0199a213-81c0-7800-8aa1-bbab2a035a53"
    assert report.files == ["kmeans/vector.py"] and report.turns == 1
    assert report.steps == ["run: bash -lc ls", "add kmeans/vector.py"]
    assert report.text() == "Implemented dist2 and mean; committed."


def test_gemini_stream_json(tmp_path: Path) -> None:
    agent = make_agent(AgentSettings(preset="gemini"))
    inv = agent.command(ctx(tmp_path))
    assert inv.argv[0] == "gemini" and inv.stdin == tmp_path / "prompt-1.md"
    assert inv.argv[-2:] == ["--prompt", "Do the task described on standard input."]
    report = feed("gemini", "gemini_stream.jsonl")
    assert report.session_id == "c2b7e0b4-5d1e-4c33-8f7a-0d9a2b1c4e55"
    assert report.files == ["kmeans/seed.py"]
    assert report.text() == "Seeding implemented and committed."


def test_aider_gets_the_prompt_file_and_the_owned_files(tmp_path: Path) -> None:
    agent = make_agent(AgentSettings(preset="aider", model="gpt-4o"))
    inv = agent.command(ctx(tmp_path, message_file=tmp_path / "m.md", session_id="x"))
    assert inv.argv[0] == "aider" and not agent.resumable and not inv.resumed
    assert inv.argv[inv.argv.index("--message-file") + 1] == str(tmp_path / "prompt-1.md")
    assert inv.argv[-1] == "kmeans/points.py" and inv.stdin is None


def test_command_template_placeholders_stay_single_arguments(tmp_path: Path) -> None:
    tricky = tmp_path / "a dir; rm -rf ~" / "prompt $(x).md"
    agent = make_agent(
        AgentSettings(preset="command", argv=["my-agent", "--task={prompt_file}", "{node_id}", "{attempt}", "{map}"])
    )
    inv = agent.command(ctx(tmp_path, prompt_file=tricky, attempt=3))
    assert inv.argv == ["my-agent", f"--task={tricky}", "01_load_points", "3", str(tmp_path / "m.json")]
    assert fill("{message_file}|{workdir}", ctx(tmp_path).values()) == f"|{tmp_path}"


def test_command_preset_needs_argv() -> None:
    with pytest.raises(ValueError, match="argv"):
        make_agent(AgentSettings(preset="command"))


def test_scripted_preset_runs_this_python() -> None:
    agent = make_agent(AgentSettings(preset="scripted", args=["--script", "s.json"]))
    inv = agent.command(ctx(Path("/tmp")))
    assert inv.argv == [sys.executable, "-m", "foreman_tui.agents.scripted", "--script", "s.json"]


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("CLEAN — no problems", "CLEAN"),
        ("notes\n**FLAG — [1] wrong algorithm**", "FLAG"),
        ("looks fine", "NONE"),
        ("1. OK\nCLEAN", "CLEAN"),
    ],
)
def test_verdict_is_the_first_clean_or_flag_line(text: str, verdict: str) -> None:
    assert parse_verdict(text)[0] == verdict


def agent(preset: str, permissions: str | None = None) -> Agent:
    return make_agent(AgentSettings.model_validate({"preset": preset, "permissions": permissions}))


def argv(tmp_path: Path, preset: str, role: str = "worker", permissions: str | None = None) -> list[str]:
    return agent(preset, permissions).command(ctx(tmp_path, role=role)).argv


def has(command: list[str], *flags: str) -> bool:
    """``flags`` appear in ``command`` one after another."""
    n = len(flags)
    return any(command[i : i + n] == list(flags) for i in range(len(command) - n + 1))


@pytest.mark.parametrize(
    ("preset", "read_only", "never"),
    [
        (
            "claude",
            [("--tools", "Read,Glob,Grep"), ("--permission-mode", "dontAsk"), ("--setting-sources", "user")],
            ["acceptEdits", "bypassPermissions", "--allowedTools", "--dangerously-skip-permissions"],
        ),
        ("codex", [("--sandbox", "read-only")], ["workspace-write", "--dangerously-bypass-approvals-and-sandbox"]),
        ("gemini", [("--approval-mode", "default")], ["--yolo", "yolo", "auto_edit", "plan", "--allowed-tools"]),
        (
            "aider",
            [("--chat-mode", "ask"), ("--dry-run",), ("--no-auto-commits",), ("--no-suggest-shell-commands",)],
            ["--auto-commits", "--suggest-shell-commands"],
        ),
    ],
)
@pytest.mark.parametrize("permissions", [None, "full"])
def test_the_reviewer_only_reads_whatever_the_worker_may(
    tmp_path: Path, preset: str, read_only: list[tuple[str, ...]], never: list[str], permissions: str | None
) -> None:
    """Even settings that give a worker everything leave the reviewer read-only (the settings refuse
    `reviewer.permissions`; the preset does not rely on that)."""
    command = argv(tmp_path, preset, "reviewer", permissions)
    assert all(has(command, *flags) for flags in read_only), command
    assert not set(never) & set(command), command
    assert not any("Bash" in part or "Write" in part or "Edit" in part for part in command)
    assert permission_profile(agent(preset, permissions), "reviewer").startswith("read-only (")


@pytest.mark.parametrize(
    ("preset", "permissions", "flags", "never"),
    [
        ("claude", "edit", ["--permission-mode", "dontAsk"], ["acceptEdits", "bypassPermissions", "Bash "]),
        ("claude", "edit+shell", ["--permission-mode", "acceptEdits"], ["dontAsk", "bypassPermissions"]),
        ("claude", "full", ["--permission-mode", "bypassPermissions"], ["--tools", "--allowedTools"]),
        (
            "codex",
            "edit",
            ["--sandbox", "workspace-write"],
            ["read-only", "--dangerously-bypass-approvals-and-sandbox"],
        ),
        ("codex", "edit+shell", ["--sandbox", "workspace-write"], ["--dangerously-bypass-approvals-and-sandbox"]),
        ("codex", "full", ["--dangerously-bypass-approvals-and-sandbox"], ["--sandbox"]),
        ("gemini", "edit", ["--approval-mode", "auto_edit"], ["yolo", "--yolo", "run_shell_command"]),
        ("gemini", "edit+shell", ["--allowed-tools", "run_shell_command"], ["yolo", "--yolo"]),
        ("gemini", "full", ["--approval-mode", "yolo"], ["--yolo", "--allowed-tools"]),
        ("aider", "edit", ["--no-suggest-shell-commands"], ["--dry-run"]),
        ("aider", "edit+shell", ["--yes-always"], ["--no-suggest-shell-commands", "--dry-run"]),
        ("aider", "full", ["--yes-always"], ["--no-suggest-shell-commands", "--dry-run"]),
    ],
)
def test_worker_permissions_pick_the_preset_flags(
    tmp_path: Path, preset: str, permissions: str, flags: list[str], never: list[str]
) -> None:
    command = argv(tmp_path, preset, "worker", permissions)
    assert has(command, *flags), command
    assert not set(never) & set(command), command
    assert has(command, *PERMISSION_FLAGS[preset][permissions])
    assert permission_profile(agent(preset, permissions), "worker") == permissions


def test_claude_edit_worker_may_run_git_add_and_commit_only(tmp_path: Path) -> None:
    command = argv(tmp_path, "claude", "worker", "edit")
    available = command[command.index("--tools") + 1].split(",")
    approved = command[command.index("--allowedTools") + 1].split(",")
    assert "Bash" in available and "WebFetch" not in available
    assert [rule for rule in approved if rule.startswith("Bash")] == ["Bash(git add *)", "Bash(git commit *)"]
    assert "Edit(./**)" in approved and "Write" not in approved  # edits only inside its own tree


@pytest.mark.parametrize("preset", ["claude", "codex", "gemini", "aider"])
def test_an_unset_profile_is_edit_and_shell(tmp_path: Path, preset: str) -> None:
    assert argv(tmp_path, preset) == argv(tmp_path, preset, permissions="edit+shell")
    assert argv(tmp_path, preset) != argv(tmp_path, preset, role="reviewer")
    assert permission_profile(agent(preset), "worker") == "edit+shell"


@pytest.mark.parametrize(
    "settings",
    [AgentSettings(preset="command", argv=["my-agent", "{prompt_file}"]), AgentSettings(preset="scripted")],
)
def test_own_argv_agents_get_no_profile(tmp_path: Path, settings: AgentSettings) -> None:
    agent = make_agent(settings)
    worker = agent.command(ctx(tmp_path)).argv
    assert agent.command(ctx(tmp_path, role="reviewer")).argv == worker
    full = make_agent(settings.model_copy(update={"permissions": "full"})).command(ctx(tmp_path)).argv
    assert full == worker
    assert permission_profile(agent, "worker") == permission_profile(agent, "reviewer")
    assert permission_profile(agent, "reviewer") == "own argv (permissions not applied)"


def test_every_preset_has_flags_for_every_profile() -> None:
    for preset, profiles in PERMISSION_FLAGS.items():
        assert set(profiles) == {"reviewer", "edit", "edit+shell", "full"}, preset
        assert profiles["reviewer"] != profiles["edit+shell"], preset
