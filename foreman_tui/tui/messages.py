"""Messages between the TUI's parts, past-tense names (what happened)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from ..engine.events import Event
from ..engine.pauses import Decision
from ..engine.supervisor import Outcome


@dataclass
class EventsArrived(Message):
    """A batch of engine events, taken on the refresh timer."""

    events: list[Event]


@dataclass
class PauseShown(Message):
    """The pause panel now shows this pause (a new one opened, or the person selected another)."""

    node: str
    pause_id: str
    waiting: int


@dataclass
class DecisionSent(Message):
    """The person confirmed a decision; the engine has it."""

    decision: Decision


@dataclass
class RunEnded(Message):
    outcome: Outcome | None
    error: str | None = None


@dataclass
class DiffLoaded(Message):
    """A node's diff, read from git in a thread worker."""

    node: str
    text: str
