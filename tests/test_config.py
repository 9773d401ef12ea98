"""foreman.toml: overrides, defaults, and clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from foreman_tui.config import AgentSettings, CheckSettings, ExecutorSettings, NodeOverride, Settings, load_settings
from foreman_tui.map.errors import ConfigError

from .conftest import DEMO_MAP, run_cli


@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    target = tmp_path / "algorithm-map.json"
    shutil.copy(DEMO_MAP, target)
    return target


def test_defaults_without_a_file(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    assert (settings.max_parallel, settings.isolation, settings.timeout) == (3, "worktree", 3600)
    assert settings.worker.preset == "claude"


def test_node_file_override_shows_in_plan(demo_copy: Path) -> None:
    (demo_copy.parent / "foreman.toml").write_text(
        'max_parallel = 2\n[nodes.04_assign]\nfiles = ["kmeans/assign.py", "kmeans/vector.py"]\n'
    )
    plan = json.loads(run_cli("plan", str(demo_copy), "--json").stdout)
    assert plan["max_parallel"] == 2
    assert plan["nodes"]["04_assign"]["files"] == ["kmeans/assign.py", "kmeans/vector.py"]
    assert plan["nodes"]["04_assign"]["source"] == "foreman.toml"
    assert run_cli("plan", str(demo_copy), "--max-parallel", "1", "--json").stdout.count('"max_parallel": 1') == 1


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("max_parallel = ", "not valid TOML"),
        ("max_paralel = 2", "max_paralel: unknown setting — did you mean 'max_parallel'?"),
        ("max_parallel = 0", "max_parallel"),
        ('isolation = "docker"', "isolation"),
        ('[nodes.04_asign]\nfiles = ["a.py"]', "nodes.04_asign: unknown node '04_asign' — did you mean '04_assign'?"),
        ('[nodes.04_assign]\nfiles = ["../x.py"]', "nodes.04_assign.files[0]: '../x.py' leaves the project"),
        ('[worker]\npreset = "claude"\nmodle = "x"', "worker.modle: unknown setting — did you mean 'model'?"),
        ('[nodes.04_assign]\nfile = ["a.py"]', "nodes.04_assign.file: unknown setting — did you mean 'files'?"),
        ("poll = 1e-9", "poll: Input should be greater than or equal to 0.05"),
        ("timeout = inf", "timeout: Input should be a finite number"),
        ("check_timeout = nan", "check_timeout: Input should be a finite number"),
        ('[checks]\npython = "no/such/python"', "checks.python:"),
        ('[worker]\npreset = "command"', 'worker: preset "command" needs argv'),
    ],
)
def test_bad_settings_exit_2_naming_the_key(demo_copy: Path, text: str, needle: str) -> None:
    (demo_copy.parent / "foreman.toml").write_text(text)
    before = demo_copy.read_bytes()
    result = run_cli("plan", str(demo_copy))
    assert result.returncode == 2
    assert "foreman.toml" in result.stderr and needle in result.stderr, result.stderr
    assert demo_copy.read_bytes() == before


@pytest.mark.parametrize(
    ("flag", "needle"),
    [
        (["--poll", "0.001"], "--poll: must be at least 0.05 seconds"),
        (["--timeout", "inf"], "--timeout: must be a finite number of seconds"),
        (["--timeout", "nan"], "--timeout: must be a finite number of seconds"),
    ],
)
def test_unbounded_flags_are_bad_input(demo_copy: Path, flag: list[str], needle: str) -> None:
    result = run_cli("run", str(demo_copy), "--headless", *flag)
    assert result.returncode == 2 and needle in result.stderr, result.stderr


def test_environment_sits_between_file_and_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "foreman.toml").write_text("max_parallel = 2\n")
    monkeypatch.setenv("FOREMAN_MAX_PARALLEL", "5")
    assert load_settings(tmp_path).max_parallel == 5
    monkeypatch.delenv("FOREMAN_MAX_PARALLEL")
    assert load_settings(tmp_path).max_parallel == 2


def test_a_workers_foreman_executor_is_not_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A foreman started by a worker has FOREMAN_EXECUTOR=ray (where that worker runs) in its environment: it
    must neither break the settings (pydantic-settings would parse it as the [executor] table) nor set them."""
    (tmp_path / "foreman.toml").write_text('[executor]\nkind = "local"\n')
    monkeypatch.setenv("FOREMAN_EXECUTOR", "ray")
    assert load_settings(tmp_path).executor.kind == "local"
    assert Settings().executor.kind == "local"


def test_every_setting_is_documented() -> None:
    for model in (Settings, AgentSettings, NodeOverride, CheckSettings, ExecutorSettings):
        undocumented = [name for name, field in model.model_fields.items() if not field.description]
        assert undocumented == [], f"{model.__name__}: {undocumented}"


def test_a_folder_named_foreman_toml_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "foreman.toml").mkdir()
    with pytest.raises(ConfigError, match="is not a file"):
        load_settings(tmp_path)
