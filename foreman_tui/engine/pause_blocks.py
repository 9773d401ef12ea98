"""The hard-pause block a worker prints (SPEC §6), read the way language models really write it.

``parse_worker_block`` finds the block in a worker's output, English (``HARD PAUSE:``, ``Node``, ``Problem``,
``Tried``/``Attempted``, ``Options``) or the original Chinese (``硬暂停：``, ``当前节点``/``节点``,
``问题描述``/``问题``, ``已尝试的方案``/``已尝试``, ``建议选项``/``选项``), with what models add around it:

- markdown emphasis on the header and the field names (``**HARD PAUSE:**``, ``**Node**:``, ``__节点__：``);
  an emoji, heading, quote, bullet or number before them (``⚠️ 硬暂停``, ``## HARD PAUSE``, ``- Node:``, ``1.``);
- a fenced code block (``` or ~~~) around the block, or ``> `` on each of its lines;
- half- or full-width colons and brackets; the trigger as ``[#3 name]``, ``[3 name]``, ``[3. name]``,
  ``#3: name``, ``[触发条件 3：name]``, a bare name or nothing, or on the line below a bare header,
  or in a ``Trigger:``/``触发条件：`` field;
- options on the ``Options`` line or one per line below it, keyed ``A)``, ``A）``, ``(A)``, ``（A）``, ``A.``
  or ``A:`` (bold or not), and values that go on over several lines.

A header counts only at the start of a (decorated) line: a sentence that mentions hard pauses is not one.
With several blocks the last complete one wins (a model may quote the protocol before printing its own).
A header whose fields cannot be read still gives a pause, its raw text as the problem: a pause is never lost.
"""

from __future__ import annotations

import re

from .pauses import SAME_CHECK_3X, SPEC_DEPARTURE, UPSTREAM_POST, Option, Pause

WINDOW = 80
"""Lines after a header that may belong to its block."""
RAW_LINES = 30
"""Lines after a header kept as the problem when the block's fields cannot be read."""

_CANONICAL = {trigger[1]: trigger[3:] for trigger in (SAME_CHECK_3X, SPEC_DEPARTURE, UPSTREAM_POST)}  # "1": "same…"

# What may come before a header or a field name: quote and heading markers, bullets, emphasis, emoji
# (anything but letters and digits), or a list number such as "1." with more of those after it.
_DECOR = r"[\W_]*(?:\d+[.)]\s+[\W_]*)?"
# A colon, with the closing emphasis of a bold "**Node:**" after it.
_COLON = r"[:：](?:[*_]{1,2}(?=\s|$))?\s*"

_HEADER = re.compile(
    _DECOR
    + r"(?:HARD[\s_-]*PAUSE|硬暂停)(?![a-z])"  # the keyword ("hard paused", "hard pauses" are not it)
    + r"[\s*_\]】］)）]*"  # closing emphasis or brackets: **HARD PAUSE**, 【硬暂停】
    + rf"(?P<colon>{_COLON})?"
    + r"(?P<rest>.*)$",
    re.IGNORECASE,
)
# Without a colon, a header is the keyword alone or followed by its trigger.
_TRIGGER_START = tuple("[【［(（#＃-—–")

_NAMES = {
    "trigger": r"trigger|触发条件",
    "node": r"(?:current\s+)?node|当前节点|节点",
    "problem": r"problem|问题描述|问题",
    "tried": r"tried|attempted|已尝试的方案|已尝试",
    "options": r"(?:suggested\s+)?options|建议选项|选项",
}
_FIELD = re.compile(
    _DECOR
    + "(?:"
    + "|".join(f"(?P<{key}>{names})" for key, names in _NAMES.items())
    + r")[*_]*\s*"  # closing emphasis: **Node**:
    + _COLON
    + r"(?P<value>.*)$",
    re.IGNORECASE,
)
_QUOTE = re.compile(r"^[ \t]*(?:>[ \t]?)+")  # "> " or "> > " before a quoted line
_FENCE = re.compile(r"^\s*(?:```|~~~)")
_BULLET = re.compile(r"^\s*(?:[-*+•]\s+|\d+[.)]\s+)")  # "- ", "* ", "1. ", "2) "
_HEADING = re.compile(r"^\s*#+\s+")
_BOLD = re.compile(r"\*\*(\S(?:.*?\S)?)\*\*")  # **words**

# An option's key: A) A） (A) （A） A. A: A：, maybe bold (**A)**), at the start of a line or after a space or
# a separator. Keys are taken in order A, B, C…, so a stray "B)" in a label does not start a new option.
_MARK = re.compile(
    r"(?:^|(?<=[\s/／|;；,，]))(?:\*\*|__)?"
    r"(?:[(（](?P<paren>[A-Z])[)）]|(?P<close>[A-Z])[)）]|(?P<dot>[A-Z])[.:：])"
    r"(?:\*\*|__)?\s*",
    re.MULTILINE,
)
_SEPARATORS = "/／|;；,，"
# What a label may end with before the next option: separators and a dangling "or".
_LABEL_TAIL = re.compile(r"[\s/／|;；,，]*(?:\bor|或者?)?[\s/／|;；,，]*$", re.IGNORECASE)
_FREE_TEXT = re.compile(r"^(?:or\s+|或者?\s*)?(?:your(?:\s+own)?|user|你的|用户)\s*(?:instruction|指示)", re.I)
_NUMBERED = re.compile(
    r"^(?:trigger|触发条件)?\s*[#＃]?\s*(?P<n>[1-3])(?!\d)"  # "#3", "3", "触发条件 3"
    r"\s*[.:：、)）\-—–]?\s*(?P<name>.*)$",  # "3. name", "#3: name", "3 — name"
    re.IGNORECASE | re.DOTALL,
)
_BRACKETED = re.compile(r"^[\s*_`]*(?:\[(.*?)\]|【(.*?)】|［(.*?)］|\((.*?)\)|（(.*?)）)")
_PLACEHOLDER = re.compile(r"^(?:\.\.\.|…+|<.*>|\{.*\})$")
_NODE_ID = re.compile(r"^[a-z0-9_]+$")


def parse_worker_block(lines: list[str], node: str) -> Pause | None:
    """The hard pause a worker printed in ``lines`` (see the module's docstring), or None if it printed none."""
    starts = [i for i, line in enumerate(lines) if _header(line)]
    if not starts:
        return None
    blocks = [_read(lines, start) for start in reversed(starts)]
    for values, options in blocks:
        problem = values.get("problem", "")
        if problem and options and not _PLACEHOLDER.match(problem):
            return _pause(values, options, node)
    values, _ = blocks[0]  # fail safe: the last header, its raw text as the problem
    raw = [lines[starts[-1]].rstrip()]
    for line in lines[starts[-1] + 1 : starts[-1] + 1 + RAW_LINES]:
        if _header(line):
            break
        raw.append(line.rstrip())
    return _pause(values, [], node).model_copy(update={"problem": "\n".join(raw).strip(), "tried": ""})


def _header(line: str) -> re.Match[str] | None:
    if "pause" not in line.lower() and "暂停" not in line:  # cheap: most lines are not headers
        return None
    match = _HEADER.match(line)
    if match and (match.group("colon") or not match.group("rest") or match.group("rest").startswith(_TRIGGER_START)):
        return match
    return None


def _read(lines: list[str], start: int) -> tuple[dict[str, str], list[Option]]:
    """The fields of the block whose header is ``lines[start]``, and its options."""
    header = _header(lines[start])
    assert header is not None
    values = {"trigger": header.group("rest").strip()}
    option_lines: list[str] = []
    current: str | None = None
    for raw in lines[start + 1 : start + 1 + WINDOW]:
        if _header(raw):
            break  # the next block
        line = _QUOTE.sub("", raw, count=1).rstrip()
        field = _FIELD.match(line)
        if _FENCE.match(line):
            if current:
                break  # the closing fence
        elif field:
            current = next(key for key in _NAMES if field.group(key))
            values[current] = field.group("value").strip()
            if current == "options":
                option_lines = [values[current]] if values[current] else []
        elif not line.strip():
            if current == "options" and option_lines:
                break
        elif current == "options":
            marked = any(_starts_with_key(o) for o in option_lines)
            if not option_lines or _starts_with_key(line) or (_BULLET.match(line) and not marked):
                option_lines.append(line.strip())
            elif line[:1] in " \t":
                option_lines[-1] += " " + line.strip()  # an indented label goes on
            else:
                break  # chatter after the options
        elif current:
            values[current] += "\n" + line.strip()
        elif not values["trigger"]:  # a bare header, its trigger on the line below
            trigger = _trigger(_HEADING.sub("", line))
            if re.match(r"#[1-3] ", trigger):
                values["trigger"] = _HEADING.sub("", line)
    return values, _options(option_lines)


def _starts_with_key(line: str) -> bool:
    return bool(_MARK.match(_BULLET.sub("", line, count=1).lstrip()))


def _options(lines: list[str]) -> list[Option]:
    text = "\n".join(_BULLET.sub("", line, count=1) for line in lines)
    marks: list[tuple[str, int, int]] = []
    for match in _MARK.finditer(text):
        key = match.group("paren") or match.group("close") or match.group("dot")
        if key != chr(ord("A") + len(marks)):
            continue
        # "A." and "A:" need a clear boundary before them, so that "plan B. Then" stays one label.
        if match.group("dot") and text[: match.start()].rstrip(" \t")[-1:] not in ("", "\n", *_SEPARATORS):
            continue
        marks.append((key, match.start(), match.end()))
    if marks:
        ends = [start for _, start, _ in marks[1:]] + [len(text)]
        found = [(key, text[end:stop]) for (key, _, end), stop in zip(marks, ends, strict=True)]
    else:  # bullets without keys: letter them
        found = [(chr(ord("A") + i), _BULLET.sub("", line)) for i, line in enumerate(lines) if _BULLET.match(line)]
    options = [Option(key=key, label=_plain(_LABEL_TAIL.sub("", label)), action="instruct") for key, label in found]
    options = [o for o in options if o.label]
    return sorted(options, key=lambda o: bool(_FREE_TEXT.match(o.label)))  # the free-text one last


def _pause(values: dict[str, str], options: list[Option], node: str) -> Pause:
    written = values.get("node", "").strip().strip("*`").strip()  # **`02_x`**, not _x_: "_" is part of ids
    return Pause(
        node=written if _NODE_ID.match(written) else node,
        trigger=_trigger(values.get("trigger", "")) or "worker asked",
        problem=_plain(values.get("problem", "")),
        tried=_plain(values.get("tried", "")),
        options=options,
        source="worker",
    )


def _trigger(text: str) -> str:
    """``#<n> <name>`` for triggers 1-3 (the canonical name if none is written), else the text as written."""
    text = text.strip().lstrip(":：-—– ")  # "HARD PAUSE — [#3 …]"
    bracketed = _BRACKETED.match(text)
    if bracketed:
        text = next(group for group in bracketed.groups() if group is not None)
    text = _plain(text).strip(" \t`")
    numbered = _NUMBERED.match(text)
    if not numbered:
        return text
    name = _plain(numbered.group("name")).strip(" \t`")
    return f"#{numbered.group('n')} {name or _CANONICAL[numbered.group('n')]}"


def _plain(text: str) -> str:
    """Text without the markdown emphasis around it or on its words."""
    text = _BOLD.sub(r"\1", text.strip())
    for mark in ("**", "__", "*", "_"):
        if len(text) > 2 * len(mark) and text.startswith(mark) and text.endswith(mark):
            text = text[len(mark) : -len(mark)].strip()
    if text.count("**") == 1 and (text.startswith("**") or text.endswith("**")):
        text = text.strip("*").strip()  # the other half went with a key or a field name
    return text
