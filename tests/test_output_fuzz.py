"""No byte sequence a worker prints or writes may crash the TUI or reach the person's terminal as a control
sequence: fuzzed text through the real widgets of a running App (live log, agent steps, event feed, node table,
pause panel, detail view) and through the headless printer (lines and --json)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import io
import json
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rich.style import Style
from textual.pilot import Pilot
from textual.widgets import Collapsible, Static

from foreman_tui.config import Settings
from foreman_tui.engine.events import (
    AgentStep,
    CheckFinished,
    CommitDetected,
    DecisionRecorded,
    Event,
    FeedbackRouted,
    NodePaused,
    ReviewFinished,
    RunNoted,
)
from foreman_tui.engine.pauses import Option, Pause
from foreman_tui.headless import _line, _print_events, ask_on_terminal
from foreman_tui.tui.detail import DetailScreen
from foreman_tui.tui.feed import EventFeed
from foreman_tui.tui.main_screen import MainScreen
from foreman_tui.tui.node_table import NodeTable
from foreman_tui.tui.pause_panel import PausePanel
from foreman_tui.tui.widgets import AnsiLog, GrowingLog

from .engine_support import trust_map
from .output_support import HOSTILE, command_project, frame_of, unsafe_in_frame
from .tui_support import SIZE, make_app

T = TypeVar("T")
IDLE_WORKER = "import time\ntime.sleep(3600)\n"

pieces = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=40),
    st.text(st.characters(min_codepoint=0, max_codepoint=0x9F), max_size=40),  # C0, DEL, C1 dense
    st.builds(
        lambda digits, final: "\x1b[" + digits + final, st.text("0123456789;:?", max_size=60), st.text(max_size=1)
    ),
    st.integers(0, 9000).map(lambda n: "x" * n),
)
hostile_text = st.lists(pieces, max_size=8).map("".join)
"""Text as a worker can produce it once decoded (``errors="replace"``): no lone surrogates."""
any_text = st.one_of(
    hostile_text, st.lists(st.one_of(pieces, st.characters(categories=["Cs"])), max_size=8).map("".join)
)
"""Also lone surrogates (``surrogateescape`` decoding elsewhere could make them)."""


class AppInThread:
    """A real ForemanApp under Textual's headless driver, in a thread with its own event loop, so that many
    hypothesis examples can be shown by one App (starting one per example would take minutes)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        async with self.app.run_test(size=SIZE) as pilot:
            self.pilot: Pilot[int] = pilot
            self.loop = asyncio.get_running_loop()
            self.context = contextvars.copy_context()  # Textual's active app and message pump
            self.done = asyncio.Event()
            self.ready.set()
            await self.done.wait()
            self.app.service.stop()

    def start(self) -> None:
        self.thread.start()
        assert self.ready.wait(60), "the app did not start"
        assert self.error is None, self.error

    def call(self, scenario: Callable[[Pilot[int]], Coroutine[Any, Any, T]], timeout: float = 60) -> T:
        """Run ``scenario(pilot)`` on the App's loop, in the App's context, and return its result."""
        assert self.alive(), f"the app is gone: {self.app._exception!r}"
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def finished(task: asyncio.Task[T]) -> None:
            if task.cancelled():
                done.cancel()
            elif (error := task.exception()) is not None:
                done.set_exception(error)
            else:
                done.set_result(task.result())

        def start() -> None:
            task = self.loop.create_task(scenario(self.pilot), context=self.context.copy())
            task.add_done_callback(finished)

        self.loop.call_soon_threadsafe(start)
        return done.result(timeout)

    def alive(self) -> bool:
        return self.app._exception is None and self.app.is_running and self.error is None

    def stop(self) -> None:
        if self.thread.is_alive() and self.ready.is_set() and self.error is None:
            self.loop.call_soon_threadsafe(self.done.set)
        self.thread.join(30)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppInThread]:
    root = tmp_path_factory.mktemp("fuzz")
    map_path = command_project(root, IDLE_WORKER)
    content = json.loads(map_path.read_text())
    content["contents"]["n00"]["verify"] = {"core": [{"desc": "d", "level": "L1", "cmd": "true"}]}
    map_path.write_text(json.dumps(content))
    import subprocess

    subprocess.run(["git", "commit", "-qam", "a check"], cwd=map_path.parent, check=True)
    app = make_app(trust_map(map_path))
    app.service.supervisor.hold_scheduling(True, "test")  # nothing starts: the test is the only source
    shown: dict[str, Pause | None] = {"pause": None}
    app.service.pauses = lambda: [p for p in [shown["pause"]] if p is not None]  # type: ignore[method-assign]
    app.service.pause_of = lambda node: shown["pause"]  # type: ignore[method-assign]
    app.shown_pause = shown  # type: ignore[attr-defined]
    harness = AppInThread(app)
    harness.start()
    yield harness
    harness.stop()


def _strip_text(log: GrowingLog, y: int) -> str:
    return "".join(segment.text for segment in log._render_line_strip(y, Style()))


def _controls(text: str) -> list[str]:
    return sorted({repr(c) for c in text if ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) < 0xE000})


_count = 0


def _events_for(text: str) -> list[Event]:
    global _count
    _count += 1
    node = "n00"
    return [
        CommitDetected(
            node=node, sha="0" * 40, branch="b", subject=text, attempt=1, committed_at=0.0, detected_by="watch"
        ),
        AgentStep(node=node, role="worker", attempt=1, step=text),
        FeedbackRouted(node=node, file="feedback.md", note=text, routed_as="with its next task"),
        RunNoted(note=text),
        ReviewFinished(node=node, round=1, verdict="FLAG", text=text),
        NodePaused(
            node=node,
            pause_id=f"p{_count}",
            trigger=text,
            problem=text,
            tried=text,
            evidence=text,
            options=[{"key": "A", "label": text, "action": "retry"}],
            source="worker",
            block=text,
        ),
    ]


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=hostile_text)
@example(text=HOSTILE[0])
@example(text="".join(HOSTILE))
def test_live_log_feed_table_and_pause_panel_survive_any_text(running: AppInThread, text: str) -> None:
    async def scenario(pilot: Pilot[int]) -> list[str]:
        app: Any = pilot.app
        screen = app.screen
        assert isinstance(screen, MainScreen)
        if screen.node != "n00":
            screen.query_one(NodeTable).select_node("n00")
        service = app.service
        service._on_output("n00", "stdout", text.split("\n"))  # what the engine's reader tasks hand on
        for event in _events_for(text):
            service.supervisor.events.emit(event)
        app.shown_pause["pause"] = Pause(
            node="n00",
            trigger=text,
            problem=text,
            tried=text,
            evidence=text + "\nHARD PAUSE: " + text,
            options=[Option(key="A", label=text, action="retry"), Option(key="B", label="fail", action="fail")],
            source="worker",
        )
        found: list[str] = []
        for raw in (False, True):  # agent steps, then the raw log
            screen.raw = raw
            await pilot.pause(0.15)  # a refresh tick
            await pilot.press("a")  # stage option A: its label is shown in the confirm line
            await pilot.pause()
            found += unsafe_in_frame(frame_of(app))
            await pilot.press("escape")
            log = screen.query_one(AnsiLog)
            for y in range(max(0, len(log.lines) - 20), len(log.lines)):
                found += _controls(_strip_text(log, y))
            for line in screen.query_one(EventFeed).texts()[-30:]:
                found += _controls(line)
        app.shown_pause["pause"] = None
        screen.query_one(PausePanel).show(None, 0)
        return found

    found = running.call(scenario)
    assert running.alive(), f"the TUI crashed: {running.app._exception!r}"
    assert not found, f"control characters reached the screen: {found}"


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=any_text)
@example(text=HOSTILE[0])
@example(text="".join(HOSTILE))
def test_detail_view_survives_any_text(running: AppInThread, text: str) -> None:
    """The check's output and reason, the checkpoint a worker wrote, and the diff, with any content."""

    async def scenario(pilot: Pilot[int]) -> list[str]:
        app: Any = pilot.app
        service = app.service
        feed = service.feed("n00")
        feed.checks["core[0]"] = CheckFinished(
            node="n00", level="L1", check="core[0]", desc="d", status="fail", reason=text, output_tail=text
        )
        checkpoint = service.supervisor.project_dir / "_checkpoints" / "n00.json"
        checkpoint.parent.mkdir(exist_ok=True)
        checkpoint.write_text(json.dumps({"output": text}, ensure_ascii=False), errors="surrogatepass")
        service.diff = lambda node: text  # the diff as git would hand it
        app.push_screen(DetailScreen(service, "n00"))
        await pilot.pause(0.2)
        screen = app.screen
        assert isinstance(screen, DetailScreen)
        diff = screen.query_one("#detail-diff-text", Static)
        for _ in range(100):  # the diff is read in a thread worker
            if str(diff.content) != "reading git…":
                break
            await pilot.pause(0.05)
        screen.query_one("#detail-diff", Collapsible).collapsed = False
        await pilot.pause(0.2)
        found = unsafe_in_frame(frame_of(app))
        app.pop_screen()
        await pilot.pause()
        return found

    found = running.call(scenario)
    assert running.alive(), f"the TUI crashed: {running.app._exception!r}"
    assert not found, f"control characters reached the screen: {found}"


# ------------------------------------------------------------------------------------------- headless


def _headless_events(text: str) -> list[Event]:
    return [
        *_events_for(text),
        DecisionRecorded(node="n00", pause_id="p", option="A", label=text, action="retry", text=text, who=text),
        CheckFinished(node="n00", level="L1", check="core[0]", desc=text, status="fail", reason=text, output_tail=text),
    ]


def _terminal_controls(text: str) -> list[str]:
    """What must not reach a terminal from a worker: every C0/C1 control but newline and tab, and lone
    surrogates (they cannot even be encoded)."""
    return sorted(
        {
            repr(c)
            for c in text
            if (ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) < 0xE000
        }
    )


@settings(max_examples=200, deadline=None)
@given(text=any_text)
@example(text="".join(HOSTILE))
def test_headless_lines_carry_no_terminal_controls(text: str) -> None:
    for event in _headless_events(text):
        line = _line(event, "algorithm-map.json")
        assert not _terminal_controls(line), (event.kind, _terminal_controls(line))
        line.encode("utf-8")


@settings(max_examples=60, deadline=None)
@given(text=any_text)
@example(text="".join(HOSTILE))
def test_headless_printer_prints_safe_lines_and_exact_json(text: str) -> None:
    evs = _headless_events(text)
    for as_json in (False, True):
        raw = io.BytesIO()
        out = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", write_through=True)  # as a UTF-8 stdout

        async def printer(out: io.TextIOWrapper = out, as_json: bool = as_json) -> None:
            queue: asyncio.Queue[Event | None] = asyncio.Queue()
            for event in [*evs, None]:
                queue.put_nowait(event)
            quiet = Settings(notify=False, notify_desktop=False)
            await _print_events(queue, out, as_json, quiet, "algorithm-map.json")

        asyncio.run(printer())
        printed = raw.getvalue().decode("utf-8")
        assert not _terminal_controls(printed)
        if as_json:
            lines = printed.split("\n")[:-1]  # not splitlines(): a JSON line may hold U+2028 raw
            expected = [json.loads(json.dumps(e.to_json(), default=str)) for e in evs]
            assert [json.loads(line) for line in lines] == expected
        else:
            assert printed.count("commit 0000000000") == 1


def test_asking_at_the_terminal_shows_the_pause_without_its_controls(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "".join(HOSTILE)
    pause = Pause(
        node="n00", trigger=text, problem=text, tried=text, options=[Option(key="A", label=text, action="retry")]
    )

    def no_answer(prompt: str) -> str:
        raise EOFError

    monkeypatch.setattr("builtins.input", no_answer)
    assert asyncio.run(ask_on_terminal(pause)) is None
    shown = capsys.readouterr().err
    assert not _terminal_controls(shown)
    assert "HARD PAUSE" in shown and "pwned title" in shown  # the text is there, its control sequences are not
