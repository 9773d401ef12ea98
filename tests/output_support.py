"""Helpers for the tests of hostile and oversized worker output: a small project whose worker is a script of
the test's own (the `command` preset), hostile strings, and a check of what would reach the terminal."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from .engine_support import init_repo, trust_map

HOSTILE = [
    "\x1b[38;5;" + "9" * 5000 + "m",  # Rich's int() of a 5000-digit parameter raises
    "\x1b[38;2;" + "7" * 4400 + ";1;1mrgb",
    "\x1b[" + "0" * 4400 + "m",
    "\x1b[" + ";" * 3000 + "31mmany",
    "\x1b[38:5:196mcolons\x1b[0m",
    "\x1b[31mred\x1b[0m",
    "\x1b]52;c;cm0gLXJmIH4K\x07",  # OSC 52: set the clipboard
    "\x1b]0;pwned title\x07",
    "\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\",
    "\x1b]0;unterminated OSC swallowing the rest",
    "\x1bP+q696e646e\x1b\\",  # DCS
    "\x1b[2J\x1b[H\x1b[10;10H\x1b[?1049h\x1b[?25l",
    "\x1bc\x1b(0\x1b7\x1b8",
    "\x9b31m\x9d0;c1 title\x9c\x90dcs\x9c",  # 8-bit C1 forms
    "a\rb\x08\x07\x00\x7f\x0b\x0c\x1c\u2028\x85z",
    "[/] [bold]markup[/bold] [link=https://x]l[/link] [@click=app.quit]q[/]",
    "tab\there",
    "\x1b",
    "\x1b[",
    "\x1b[38;5;",
    "日本語\u200b\ufeff",
]
"""Strings that crashed a renderer, moved a cursor, set a title or the clipboard, or are simply odd."""

_OWN_SEQUENCES = re.compile(r"\x1b\[[0-9;]*m|\x1b\[[0-9]+;[0-9]+H")
"""What Textual itself writes in a frame: colours and a cursor move to the start of each line."""


def unsafe_in_frame(frame: str) -> list[str]:
    """Control characters in a rendered frame other than Textual's own colours, line moves and newlines:
    anything a worker could use to drive the person's terminal. The frame must also be valid UTF-8."""
    frame.encode("utf-8")  # a lone surrogate would make the terminal writer raise
    rest = _OWN_SEQUENCES.sub("", frame)
    return sorted({repr(c) for c in rest if (ord(c) < 32 and c != "\n") or 0x7F <= ord(c) < 0xA0})


def frame_of(app: Any) -> str:
    """The whole screen as the terminal would receive it."""
    return str(app.screen._compositor.render_full_update().render_segments(app.console))


def command_project(root: Path, script: str, *, nodes: int = 1, settings: str = "") -> Path:
    """A git repository whose map has ``nodes`` independent process nodes ``n00``…, each implemented by
    ``python worker.py {node_id}`` (``script`` is worker.py). Returns the map's path."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    (root / "worker.py").write_text(script)
    graph_nodes: list[dict[str, Any]] = [{"id": "start", "label": "Start", "type": "terminal"}]
    edges = []
    contents = {}
    for i in range(nodes):
        node = f"n{i:02d}"
        graph_nodes.append({"id": node, "label": node, "type": "process"})
        edges += [{"from": "start", "to": node}, {"from": node, "to": "end"}]
        contents[node] = {"title": node, "overview": "prints", "code": {"files": [f"src/{node}.py"]}}
    graph_nodes.append({"id": "end", "label": "End", "type": "terminal"})
    doc = {"version": "0.1.0", "meta": {"title": "output"}, "graph": {"nodes": graph_nodes, "edges": edges}}
    doc["contents"] = contents
    (repo / "algorithm-map.json").write_text(json.dumps(doc))
    argv = [sys.executable, str(root / "worker.py"), "{node_id}"]
    reviewer = [sys.executable, "-c", "print('CLEAN')"]
    (repo / "foreman.toml").write_text(
        f"max_parallel = {nodes}\nstop_grace = 1\nnotify = false\nnotify_desktop = false\n{settings}"
        f'[worker]\npreset = "command"\nargv = {json.dumps(argv)}\n'
        f'[reviewer]\npreset = "command"\nargv = {json.dumps(reviewer)}\n'
    )
    init_repo(repo, "output test")
    return trust_map(repo / "algorithm-map.json")
