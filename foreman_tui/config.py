"""``foreman.toml``: the target project's settings. Every key is optional; flags override the file,
and ``FOREMAN_<KEY>`` environment variables sit between the two."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from .map.errors import ConfigError, Problem, did_you_mean, format_path
from .map.files import clean_path

CONFIG_NAME = "foreman.toml"
MIN_POLL = 0.05
"""The shortest poll interval: less only burns a core."""
Preset = Literal["claude", "codex", "aider", "gemini", "command", "scripted"]
Permissions = Literal["edit", "edit+shell", "full"]
Sandbox = Literal["none", "bwrap"]


class AgentSettings(BaseModel):
    """How to start one kind of agent (the worker or the reviewer)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    preset: Preset = "claude"
    """Which agent CLI to drive; ``command`` runs ``argv`` as given."""
    argv: list[str] | None = None
    """Command template for ``preset = "command"``, with ``{prompt_file}``, ``{node_id}``… placeholders."""
    model: str | None = None
    """Model name passed to the agent CLI, when it takes one."""
    args: list[str] = Field(default_factory=list)
    """Extra arguments appended to the preset's command."""
    permissions: Permissions | None = None
    """What a worker may do (docs/agents.md#permissions): ``edit`` (its files, and ``git add``/``git commit`` where
    the CLI can tell commands apart), ``edit+shell`` (also run commands: the checks; the default), or ``full``
    (no limits). The reviewer always only reads."""
    sandbox: Sandbox = "none"
    """``bwrap``: run the agent in bubblewrap, writing only its tree and a temp folder (opt-in; the network
    stays on, since an agent CLI needs its model)."""
    rate_limit_exit: list[int] = Field(default_factory=list)
    """Exit statuses by which a ``command`` agent says "rate limited, try later" (e.g. ``[75]``): such a call is
    waited out and retried, not counted as a failed attempt. The presets recognise their CLI's own output."""

    @model_validator(mode="after")
    def _command_has_argv(self) -> AgentSettings:
        if self.preset == "command" and not self.argv:
            raise ValueError('preset "command" needs argv, e.g. argv = ["python3", "my_agent.py", "{prompt_file}"]')
        return self


class CheckSettings(BaseModel):
    """How the project's own commands (checks, the benchmark) are run: ``[checks]``."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    python: str | None = None
    """The project's Python for checks and agents: its folder goes first on ``PATH`` and ``python``/``python3``
    run it. Absolute, or relative to the project. Unset: the project's ``.venv`` when there is one, else ``PATH``
    as you have it."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment variables for checks and agents."""
    secrets: list[str] = Field(default_factory=list)
    """More variable-name patterns (``fnmatch``, any case) kept from checks and the benchmark, beside the default
    list (``*_API_KEY``, ``*_TOKEN``, ``*_SECRET``, ``*PASSWORD*``, ``AWS_*``… see docs/security.md)."""
    pass_env: list[str] = Field(default_factory=list)
    """Variable names (or patterns) checks do get although they look like secrets: what the project really needs."""
    sandbox: Sandbox = "none"
    """``bwrap``: checks and the benchmark run in bubblewrap with the network off, writing only their tree and a
    temp folder."""


class Price(BaseModel):
    """What a model's tokens cost, in USD per million (for CLIs that report tokens, not dollars: codex, gemini)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    input: float = Field(ge=0, allow_inf_nan=False)
    """USD per million input tokens (the uncached ones)."""
    output: float = Field(ge=0, allow_inf_nan=False)
    """USD per million output tokens."""
    cached_input: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    """USD per million input tokens read from the provider's cache; unset: the ``input`` price."""

    def cost(self, input_tokens: int, cached_tokens: int, output_tokens: int) -> float:
        """The dollars of one call; ``cached_tokens`` are part of ``input_tokens`` (as the CLIs count them)."""
        cached = min(cached_tokens, input_tokens)
        cached_price = self.input if self.cached_input is None else self.cached_input
        return ((input_tokens - cached) * self.input + cached * cached_price + output_tokens * self.output) / 1e6


MEMORY_UNITS = {"": 1, "b": 1, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
MEMORY_UNITS |= {"kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


def memory_bytes(text: str) -> int:
    """``"4GiB"``, ``"512 MiB"``, ``"2GB"`` or a number of bytes, as bytes. Raises ValueError."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in MEMORY_UNITS:
        raise ValueError(f'{text!r} is not an amount of memory; write e.g. "4GiB", "512MiB" or a number of bytes')
    return int(float(match.group(1)) * MEMORY_UNITS[unit])


class ExecutorSettings(BaseModel):
    """Where worker and reviewer attempts run: ``[executor]`` (docs/scale-out.md)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    kind: Literal["local", "ray"] = "local"
    """``local``: processes on this machine; ``ray``: one Ray actor per attempt on a Ray cluster."""
    address: str = "auto"
    """The Ray cluster: ``auto`` (``RAY_ADDRESS``, else a cluster started on this machine), ``host:port`` (its
    GCS) or ``ray://host:10001`` (Ray Client). foreman never starts a cluster."""
    num_cpus: float = Field(default=1, ge=0, le=1024, allow_inf_nan=False)
    """Ray's logical CPUs reserved by one attempt."""
    memory: str | None = None
    """Ray's logical memory reserved by one attempt, e.g. ``"4GiB"``."""
    resources: dict[str, float] = Field(default_factory=dict)
    """Custom Ray resources one attempt reserves, e.g. ``{agent = 1}`` to run only on nodes that declare it."""
    namespace: str = ""
    """The Ray namespace of foreman's actors; empty: one derived from the repository."""
    connect_timeout: float = Field(default=30, gt=0, le=600, allow_inf_nan=False)
    """Seconds to reach the cluster (its port, then Ray's handshake) before the run gives up (exit 2)."""
    start_timeout: float = Field(default=600, gt=0, allow_inf_nan=False)
    """Seconds an attempt may wait for a Ray node with room for it (``num_cpus``, ``memory``, ``resources``)
    and for its clone; after that it counts as an attempt that could not start."""
    unavailable_timeout: float = Field(default=30, gt=0, le=3600, allow_inf_nan=False)
    """Seconds an attempt's actor may stay unreachable before the attempt counts as failed (its node lost)."""

    @model_validator(mode="after")
    def _memory_reads(self) -> ExecutorSettings:
        if self.memory is not None:
            memory_bytes(self.memory)
        if any(not (0 <= amount < float("inf")) for amount in self.resources.values()):
            raise ValueError("resources are amounts of at least 0")
        return self


class NodeOverride(BaseModel):
    """Per-node settings under ``[nodes.<id>]``."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    files: list[str] | None = None
    """The files this node owns, replacing what the map declares or foreman infers."""


class Settings(BaseSettings):
    """Everything ``foreman.toml`` can say."""

    model_config = SettingsConfigDict(env_prefix="FOREMAN_", extra="forbid", use_attribute_docstrings=True)

    max_parallel: int = Field(default=3, ge=1, le=64)
    """Workers running at once."""
    isolation: Literal["worktree", "shared"] = "worktree"
    """``worktree``: one git worktree per node; ``shared``: every worker in the main tree."""
    timeout: float = Field(default=3600, gt=0, allow_inf_nan=False)
    """Seconds one worker attempt may run before it is stopped."""
    retries: int = Field(default=2, ge=0, le=20)
    """Extra attempts for a worker that exits without committing or times out, before the node pauses."""
    review_rounds: int = Field(default=3, ge=1, le=20)
    """Reviews per node (FLAG → fix → review again) before the node pauses."""
    check_timeout: float = Field(default=600, gt=0, allow_inf_nan=False)
    """Seconds one check command may run."""
    poll: float = Field(default=2.0, ge=MIN_POLL, le=3600, allow_inf_nan=False)
    """Seconds between polls of git for commits (the fallback beside file-system events); at least 0.05."""
    stop_grace: float = Field(default=10.0, ge=0, le=3600, allow_inf_nan=False)
    """Seconds a stopped worker gets between SIGTERM and SIGKILL."""
    output_line_limit: int = Field(default=4096, ge=80, le=1_000_000)
    """Characters of one output line kept for showing (a longer line is cut with a marker; the log keeps all)."""
    output_memory_mib: float = Field(default=4.0, gt=0, le=1024, allow_inf_nan=False)
    """MiB of a worker's output kept in memory for showing (its log file keeps every byte)."""
    result_grace: float = Field(default=10.0, ge=0, le=3600, allow_inf_nan=False)
    """Seconds an agent that printed its final result event may take to exit before its process group is
    stopped (some CLIs hang after their answer); the attempt is then judged as usual."""
    stall_timeout: float = Field(default=900.0, gt=0, allow_inf_nan=False)
    """Seconds an agent may go with no output, no file change in its tree and no commit before it is stopped
    as stalled (a failed attempt)."""
    rate_limit_wait: float = Field(default=30.0, gt=0, le=600, allow_inf_nan=False)
    """Seconds to wait after an agent call hit a rate limit or an overload (429, 529) before retrying it;
    doubled for each one in a row on the node, up to 10 minutes, with jitter; a retry-after the API gave wins."""
    budget_usd: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """The run's spend cap in USD: once reached (or the next call would pass it) no worker or reviewer starts
    and a "budget reached" pause asks whether to raise it."""
    node_budget_usd: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """One node's spend cap in USD (its workers and reviewers)."""
    prices: dict[str, Price] = Field(default_factory=dict)
    """Token prices by model name (the agent's ``model``; key ``default`` for any other), to compute the cost of
    CLIs that report tokens but not dollars."""
    notify: bool = True
    """Ring the terminal bell when a hard pause opens."""
    notify_desktop: bool = True
    """Also send a desktop notification (`notify-send`) when one is available."""
    notify_command: list[str] = Field(default_factory=list)
    """A command run when a hard pause opens, with the pause as JSON on stdin (an ntfy, Slack or mail script),
    e.g. ``["python3", "tools/ping.py"]``; no shell. Approved like the map's commands (``foreman trust``)."""
    change_log: bool = False
    """`foreman report` also appends an entry per newly verified node to the project's docs/change_log.md."""
    keep_worktrees: bool = False
    """Keep each verified node's worktree and branch instead of removing them."""
    worker: AgentSettings = Field(default_factory=AgentSettings)
    """The agent that implements nodes."""
    reviewer: AgentSettings = Field(default_factory=AgentSettings)
    """The agent that reviews a node's code and answers CLEAN or FLAG."""
    checks: CheckSettings = Field(default_factory=CheckSettings)
    """Which Python and environment the project's commands run with."""
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)
    """Where worker and reviewer attempts run: this machine, or a Ray cluster (docs/scale-out.md)."""
    nodes: dict[str, NodeOverride] = Field(default_factory=dict)
    """Per-node overrides, keyed by node id."""
    keys: dict[str, str] = Field(default_factory=dict)
    """TUI key bindings by binding id, e.g. `follow = "F"` or `search = "/,ctrl+f"` (docs/tui.md lists the ids)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file is read by load_settings and passed as init data, under the environment. FOREMAN_EXECUTOR is
        # what a worker is told about where it runs, not a setting: a foreman started by a worker must not read it.
        return _EnvWithout(settings_cls, ("foreman_executor",)), init_settings

    @model_validator(mode="after")
    def _ray_needs_worktrees(self) -> Settings:
        if self.executor.kind != "ray":
            return self
        if self.isolation != "worktree":
            raise ValueError('executor.kind = "ray" needs isolation = "worktree" (each attempt works in its own clone)')
        for role, agent in (("worker", self.worker), ("reviewer", self.reviewer)):
            if agent.sandbox != "none":
                raise ValueError(
                    f'{role}.sandbox = "{agent.sandbox}" is not available with executor.kind = "ray" yet; '
                    "sandbox the Ray nodes themselves (docs/scale-out.md)"
                )
        return self

    def file_overrides(self) -> dict[str, list[str]]:
        return {node_id: node.files for node_id, node in self.nodes.items() if node.files is not None}


class _EnvWithout(EnvSettingsSource):
    """The ``FOREMAN_*`` environment, less the names that are not settings."""

    def __init__(self, settings_cls: type[BaseSettings], dropped: tuple[str, ...]) -> None:
        self.dropped = dropped
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k: v for k, v in super()._load_env_vars().items() if k.lower() not in self.dropped}


def load_settings(project_dir: Path, known_nodes: set[str] | None = None) -> Settings:
    """Read ``foreman.toml`` from ``project_dir`` (absent file = defaults). Raises :class:`ConfigError`."""
    path = project_dir / CONFIG_NAME
    data: dict[str, Any] = {}
    source = str(path)
    if path.exists() and not path.is_file():
        raise ConfigError(source, [Problem("(file)", "is not a file", "remove it or make it a TOML file")])
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(source, [Problem("(file)", f"not valid TOML: {exc}", "fix the syntax")]) from None
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(source, [_problem(err) for err in exc.errors()]) from None
    problems = []
    for node_id, node in settings.nodes.items():
        if known_nodes is not None and node_id not in known_nodes:
            hint = did_you_mean(node_id, known_nodes)
            problems.append(Problem(f"nodes.{node_id}", f"unknown node '{node_id}'{hint}", "use an id from the map"))
        for i, file in enumerate(node.files or []):
            try:
                clean_path(file)
            except ValueError as exc:
                problems.append(Problem(f"nodes.{node_id}.files[{i}]", str(exc), "use a path inside the project"))
    if settings.reviewer.permissions is not None:
        problems.append(
            Problem("reviewer.permissions", "the reviewer only reads code; it has no permissions to set", "remove it")
        )
    python = configured_python(project_dir, settings.checks)
    if python is not None and not (python.is_file() and os.access(python, os.X_OK)):
        problems.append(
            Problem("checks.python", f"{python} is not an executable file", "point it at the project's python")
        )
    if problems:
        raise ConfigError(source, problems)
    return settings


def configured_python(project_dir: Path, checks: CheckSettings) -> Path | None:
    """``[checks] python`` as a path (relative to the project), or None when it is not set."""
    if not checks.python:
        return None
    path = Path(checks.python).expanduser()
    return path if path.is_absolute() else project_dir / path


def _problem(err: Any) -> Problem:
    loc = list(err["loc"])
    path = format_path(loc)
    if err["type"] == "extra_forbidden":
        section: dict[str, type[BaseModel]] = {
            "worker": AgentSettings,
            "reviewer": AgentSettings,
            "nodes": NodeOverride,
            "checks": CheckSettings,
            "prices": Price,
            "executor": ExecutorSettings,
        }
        known = section.get(str(loc[0]), Settings).model_fields if len(loc) > 1 else Settings.model_fields
        return Problem(path, f"unknown setting{did_you_mean(str(loc[-1]), known)}", "remove or rename it")
    message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    return Problem(path, message, "see docs/configuration.md")


def with_preset(agent: AgentSettings, preset: str, source: str) -> AgentSettings:
    """``agent`` switched to another preset (a command-line flag), validated like the file."""
    try:
        return AgentSettings.model_validate({**agent.model_dump(), "preset": preset})
    except ValidationError as exc:
        raise ConfigError(source, [_problem(err) for err in exc.errors()]) from None
