"""Every kind of event reads as a sentence in the headless output and the TUI's feed: no ``Kind key=value`` dump,
no 40-character sha."""

from __future__ import annotations

import dataclasses
import re
import typing

import pytest

from foreman_tui.engine import events as E

SAMPLES: dict[type, object] = {str: "x", int: 3, float: 1.5, bool: True}
SHA = "3727fd90c4ca88abb590cf90b98fec8c93635100"


def sample(cls: type[E.Event]) -> E.Event:
    """An instance with a value of the right type in every field (a whole 40-hex sha where one is kept)."""
    hints = typing.get_type_hints(cls)
    values: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        if f.name in ("node", "time") or not f.init:
            continue
        hint = hints[f.name]
        origin = typing.get_origin(hint)
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        base = origin if origin in (list, dict) else (args[0] if args and origin is not None else hint)
        if base is list or typing.get_origin(base) is list:
            values[f.name] = [SHA]
        elif base is dict or typing.get_origin(base) is dict:
            values[f.name] = {}
        elif base is str:
            values[f.name] = {"sha": SHA, "branch": "foreman/n"}.get(f.name, "some text")
        else:
            values[f.name] = SAMPLES.get(base, SHA)
    return cls(node="n", **values)


@pytest.mark.parametrize("name", sorted(E.Event.registry))
def test_every_event_reads_as_a_sentence(name: str) -> None:
    event = sample(E.Event.registry[name])
    line = event.describe()
    assert not line.startswith(name + " "), line  # the generic `Kind key=value` fallback
    assert not re.search(r"\b\w+=\S", line), line
    if name in ("NodeMerged", "CommitDetected"):
        assert SHA not in line and SHA[:10] in line, line
