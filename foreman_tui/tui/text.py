"""Text a worker wrote, made safe to show. Free of Textual (Rich only).

A worker's output reaches the person's terminal through the TUI's widgets, so nothing in it may act on the
terminal or crash a renderer: colour codes (SGR) are kept with their parameters bounded (Rich's parser raises
on a 5,000-digit one), every other escape sequence (cursor moves, titles, OSC 52 clipboard, hyperlinks,
DCS…) is dropped, and the remaining control characters and lone surrogates are shown as ``�``. Lines longer
than the display limit are cut with a marker; the attempt's log file keeps every byte.
"""

from __future__ import annotations

import re

from rich.text import Text

CUT_MARK = " ... [cut {count:,} chars{more} - o opens the full log]"
"""ASCII on purpose: one character outside Rich's single-cell set sends the whole line (4,096 characters) down
its per-character width path, for the width, every crop and every frame."""
_PROCESS_CUT = re.compile(r" … \[cut: (\d+) more bytes[^\]]*\]$")
"""How the process layer ends a line it cut (at 4 MiB): its count is carried into the marker shown."""
REPLACEMENT = "�"
_MAX_SGR_CODES = 32
"""Parameters of one colour code kept (a real one has at most a dozen)."""

_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)([0-?]*)([ -/]*)([@-~])"  # CSI: parameters, intermediates, final byte
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d-\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC, DCS, SOS, PM, APC
    r"|\x1b[ -/]*[0-~]?"  # any other escape (charsets, save/restore cursor, reset), or a lone ESC
)
_COMPLETE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[PX^_][^\x1b]*\x1b\\|[ -/]*(?![\[\]PX^_])[0-~])"
)
"""A whole escape sequence (a cut must not end inside one)."""
_SPECIAL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
"""Anything that needs cleaning: controls, line separators, lone surrogates."""
_SGR = re.compile(r"\x1b\[[0-9;]*m")

_LINE_BREAKS = "\n\x85\u2028\u2029"
_CONTROLS = [*range(0x00, 0x20), *range(0x7F, 0xA0), *range(0xD800, 0xE000), 0x2028, 0x2029]
_SHOWN_AS = {c: REPLACEMENT for c in _CONTROLS} | {ord("\t"): "\t"}
_ONE_LINE = str.maketrans(_SHOWN_AS | dict.fromkeys(map(ord, _LINE_BREAKS), "⏎"))
_AROUND_COLOURS = str.maketrans(_SHOWN_AS | dict.fromkeys(map(ord, _LINE_BREAKS), "⏎") | {0x1B: "\x1b"})
"""After the sequences are replaced, every ESC left starts a colour code made here (a stray one matched)."""
_MULTI_LINE = str.maketrans(_SHOWN_AS | dict.fromkeys(map(ord, _LINE_BREAKS), "\n"))


def cut_line(line: str, limit: int) -> str:
    """``line`` if it has at most ``limit`` characters, else its first ``limit`` (never ending inside an
    escape sequence) and a marker saying how many were cut."""
    if len(line) <= limit:
        return line
    more = ""
    earlier = _PROCESS_CUT.search(line, max(0, len(line) - 100))
    if earlier is not None:
        line, more = line[: earlier.start()], f" + {int(earlier.group(1)):,} bytes"
    head = line[:limit]
    esc = head.rfind("\x1b")
    if esc >= 0 and _COMPLETE.match(head, esc) is None:
        head = head[:esc]
    reset = "\x1b[0m" if "\x1b" in head else ""
    return head + reset + CUT_MARK.format(count=len(line) - len(head), more=more)


def cut_lines(lines: list[str], limit: int) -> list[str]:
    """``lines`` with each cut to ``limit`` (the same list when none is longer: the common case is one C-level
    pass)."""
    if not lines or max(map(len, lines)) <= limit:
        return lines
    return [cut_line(line, limit) for line in lines]


def _sgr(params: str) -> str:
    """A colour code with at most ``_MAX_SGR_CODES`` parameters, each at most 255 (Rich's own bound), or ""
    when nothing in it is a plain number (colon sub-parameters and private codes are dropped, as Rich does)."""
    codes = []
    for code in params.split(";")[:_MAX_SGR_CODES]:
        if code.isdigit() or not code:
            digits = code.lstrip("0") or "0"
            codes.append(str(min(255, int(digits))) if len(digits) <= 3 else "255")
    return f"\x1b[{';'.join(codes)}m" if codes else ""


def _keep_colours(match: re.Match[str]) -> str:
    params, intermediates, final = match.group(1, 2, 3)
    if final == "m" and not intermediates and params is not None:
        return _sgr(params)
    return ""


def sanitize_line(line: str) -> str:
    """One line of output with its colour codes bounded and nothing else a terminal would act on: other
    escape sequences dropped, a carriage return overwriting what came before it (as on a terminal), other
    controls as ``�``, line breaks as ``⏎``. Tabs stay."""
    if not _SPECIAL.search(line):
        return line
    if "\r" in line:
        parts = [part for part in line.split("\r") if part]
        line = parts[-1] if parts else ""
    return _SEQUENCE.sub(_keep_colours, line).translate(_AROUND_COLOURS)


def plain(line: str) -> str:
    """The visible text of one line of output (what ``ansi_text`` shows), tabs expanded: for its width and
    for searching."""
    if not _SPECIAL.search(line):
        return line
    visible = _SGR.sub("", line)  # the common case: colour codes and nothing else (two passes in C)
    if not _SPECIAL.search(visible):
        return visible
    return _SGR.sub("", sanitize_line(line)).expandtabs()


def ansi_text(line: str) -> Text:
    """One line of output as Rich Text, its colours kept. Never raises, whatever the line holds."""
    clean = sanitize_line(line)
    text = Text.from_ansi(clean, no_wrap=True, end="") if "\x1b" in clean else Text(clean, no_wrap=True, end="")
    if "\t" in clean:
        text.expand_tabs()
    return text


def printable(text: str, *, one_line: bool = False) -> str:
    """Text for a label or a panel (a pause's problem, a check's output, a diff): every escape sequence
    dropped (colours too), other controls as ``�``; line breaks kept, or shown as ``⏎`` with ``one_line``."""
    if not _SPECIAL.search(text):
        return text
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _SEQUENCE.sub("", text).translate(_ONE_LINE if one_line else _MULTI_LINE).expandtabs()


def shorten(text: str, limit: int, *, keep_end: bool = False) -> str:
    """``text`` cut to ``limit`` characters (its start, or its end with ``keep_end``), saying how many went."""
    if len(text) <= limit:
        return text
    cut = f"[cut {len(text) - limit:,} chars]"
    return f"… {cut}\n{text[-limit:]}" if keep_end else f"{text[:limit]} … {cut}"
