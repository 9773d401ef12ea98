"""The pause panel: the open hard pause, inline under the node table."""

from __future__ import annotations

import re
from collections.abc import Iterable

from rich.text import Text
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Input, Static

from ..engine.pauses import Decision, Pause
from .text import printable, shorten
from .widgets import show

PANEL_TEXT = 4000
"""Characters of a pause's problem, what was tried, or an option shown in the panel."""
PANEL_EVIDENCE = 20000
"""Characters of a pause's evidence shown (its end)."""


def _evidence(pause: Pause) -> str:
    """The evidence without the block a worker printed (the panel shows that already, field by field)."""
    if pause.source != "worker":
        return pause.evidence
    lines = pause.evidence.splitlines()
    start = next((i for i, line in enumerate(lines) if _BLOCK_HEAD.match(line)), len(lines))
    return "\n".join(lines[:start]).strip()


def _shown(text: str, *, one_line: bool = False) -> str:
    """Worker-written text of a pause as the panel shows it: bounded, nothing a terminal would act on."""
    return printable(shorten(text, PANEL_TEXT), one_line=one_line)


_BLOCK_HEAD = re.compile(r"^\s*(HARD PAUSE|硬暂停)\s*[:：]")
_FREE_TEXT = re.compile(r"^(your instruction|用户指示|user instruction|你的指示)\W*$", re.IGNORECASE)


class PausePanel(Vertical):
    """The open hard pause, inline: what happened, the evidence, one key per option, an instruction box.
    A choice is shown before it is sent; Enter sends it, Esc drops it."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.pause: Pause | None = None
        self.waiting = 0
        self.choice: str | None = None
        self.text = ""

    def compose(self) -> Iterable[Static | VerticalScroll | Input]:
        yield Static(id="pause-title")
        with VerticalScroll(id="pause-scroll"):  # what happened scrolls; the options always show
            yield Static(id="pause-body")
            yield Static(id="pause-evidence-text")
        yield Static(id="pause-options")
        yield Input(placeholder="your instruction — Enter to keep it, Esc to drop it", id="pause-instruction")
        yield Static(id="pause-confirm")

    def show(self, pause: Pause | None, waiting: int) -> bool:
        """Show ``pause`` (None hides the panel). True if the pause shown changed."""
        changed = (pause.id if pause else None) != (self.pause.id if self.pause else None)
        self.pause, self.waiting = pause, waiting
        self.display = pause is not None
        if pause is None:
            return changed
        if changed:
            self.choice, self.text = None, ""
            self.query_one("#pause-instruction", Input).value = ""
            self.query_one("#pause-instruction", Input).display = False
            body = Text()
            body.append("Problem: ", style="bold")
            body.append(_shown(pause.problem) or "—")
            if pause.tried:
                body.append("\nTried: ", style="bold")
                body.append(_shown(pause.tried))
            self.query_one("#pause-body", Static).update(body)
            evidence = printable(shorten(_evidence(pause), PANEL_EVIDENCE, keep_end=True))
            self.query_one("#pause-evidence-text", Static).update(Text(evidence or "(no evidence)"))
            self.query_one("#pause-scroll", VerticalScroll).scroll_home(animate=False)
        title = Text()
        title.append(f" ‖ HARD PAUSE  {_shown(pause.node, one_line=True)} ", style="bold black on yellow")
        title.append(f"  [{_shown(pause.trigger, one_line=True)}]", style="bold")
        if waiting > 1:
            title.append(f"   {waiting} pauses waiting", style="bold white on red")
        show(self.query_one("#pause-title", Static), title)
        self._show_options()
        return changed

    def _show_options(self) -> None:
        assert self.pause is not None
        text = Text()
        free_text = any(_FREE_TEXT.match(option.label) for option in self.pause.options)
        for option in self.pause.options:
            selected = self.choice == option.key
            text.append(f" {_shown(option.key.lower(), one_line=True)} ", style="bold reverse" if selected else "bold")
            label = _shown(option.label, one_line=True) + (" (type it)" if _FREE_TEXT.match(option.label) else "")
            text.append(f" {label}\n", style="bold" if selected else "")
        if not free_text:  # the one way to type an instruction: the map's own option, or else `i`
            text.append(" i ", style="bold")
            text.append(" your instruction (type it)\n")
        text.rstrip()
        show(self.query_one("#pause-options", Static), text)
        confirm = Text()
        decision = self.staged()
        if decision is not None:
            confirm.append("Send: ", style="bold")
            chosen = self.pause.option(decision.option) if decision.option else None
            if chosen is not None:
                confirm.append(_shown(f"{chosen.key}) {chosen.label}", one_line=True))
            if decision.text:
                instruction = _shown(decision.text, one_line=True)
                confirm.append((" + " if decision.option else "") + f"instruction “{instruction}”")
            confirm.append("   Enter sends · Esc cancels", style="dim")
        else:
            confirm.append("Press an option's key; the choice is shown here before it is sent.", style="dim")
        show(self.query_one("#pause-confirm", Static), confirm)

    def choose(self, key: str) -> bool:
        option = self.pause.option(key) if self.pause is not None else None
        if option is None:
            return False
        if _FREE_TEXT.match(option.label):  # "C) your instruction": that is the text box
            self.start_instruction()
            return True
        self.choice = key.upper()
        self._show_options()
        return True

    def start_instruction(self) -> None:
        box = self.query_one("#pause-instruction", Input)
        box.display = True
        box.value = self.text
        box.focus()

    def keep_instruction(self, text: str) -> None:
        self.text = text.strip()
        self.query_one("#pause-instruction", Input).display = False
        self._show_options()

    def staged(self) -> Decision | None:
        if self.pause is None or not (self.choice or self.text):
            return None
        return Decision(node=self.pause.node, option=self.choice, text=self.text)

    def cancel(self) -> bool:
        """Drop the staged choice; False if there was none."""
        had = self.choice is not None or bool(self.text)
        self.choice, self.text = None, ""
        self.query_one("#pause-instruction", Input).display = False
        if self.pause is not None:
            self._show_options()
        return had
