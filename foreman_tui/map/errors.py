"""Problems found in a map: errors stop a command (exit 2), warnings are reported and kept going."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

JsonPath = Sequence[str | int]


def format_path(parts: JsonPath) -> str:
    """Render a JSON location the way a person reads it: ``graph.edges[3].to``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(document)"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` — did you mean 'x'?`` when a close choice exists, else an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" — did you mean '{close[0]}'?" if close else ""


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding: where it is (a JSON path), what is wrong, and how to fix it."""

    path: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}"
        return f"{text} — {self.fix}" if self.fix else text

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message, "fix": self.fix}


class BadInput(Exception):
    """Input foreman cannot use (exit status 2). Carries every problem found, not just the first."""

    what = "input"

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s) in the {self.what}\n{lines}")


class MapError(BadInput):
    """The map cannot be used."""

    what = "map"


class ConfigError(BadInput):
    """``foreman.toml`` (or a flag) is malformed."""

    what = "settings"


class UsageError(RuntimeError):
    """foreman cannot do what was asked as things stand (exit 2): another foreman holds the repository, the map
    is not in a git repository, the run's branch is not checked out…"""
