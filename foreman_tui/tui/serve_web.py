"""``foreman serve``'s web side: textual-serve's aiohttp application (its page, xterm.js, the Textual web driver's
protocol), with one change of lifetime. textual-serve starts a process per websocket and ends it when the tab
closes; here the foreman process a browser starts — the *session* — outlives its tabs:

- Closing the tab (or a phone dropping the connection) leaves the run going, supervised as before: workers,
  checks, reviews, merges; a pause waits. The next browser to connect is shown the same session.
- One browser at a time: a new one takes the session over, and the one before is told so (a reload there takes
  it back). Two browsers never mean two runs of one map.
- The session ends when foreman does (quitting with ``q``); the next connection starts a new run, after checking
  again that the map loads, that its commands are still approved and that no other foreman runs on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Callable
from typing import Any

import aiohttp_jinja2
from aiohttp import WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.download_manager import DownloadManager
from textual_serve.server import Server, to_int

log = logging.getLogger("foreman.serve")

TERMINAL_MODES = b"\x1b[?1049h\x1b[?1000h\x1b[?1003h\x1b[?1015h\x1b[?1006h\x1b[?25l\x1b[?2004h"
"""What Textual's web driver tells the terminal once, at the start (alternate screen, mouse reports, no cursor,
bracketed paste): a tab that joins later gets them from here."""
REPAINT_WAIT = 2.0
"""Seconds to wait for the app's paint at the in-between size (see :meth:`Session.attach`)."""
MOVED = (
    "This foreman session was opened in another browser window, which shows it now.\n"
    "The run goes on. Reload this page to bring it back here."
)


def _screen(text: str) -> bytes:
    """``text`` on a cleared terminal."""
    return ("\x1b[2J\x1b[H" + text.replace("\n", "\r\n") + "\r\n").encode()


async def _send(browser: web.WebSocketResponse, data: bytes | str) -> None:
    """To one browser; a browser that went away meanwhile is no error."""
    if browser.closed:
        return
    with contextlib.suppress(ConnectionError, RuntimeError):
        if isinstance(data, bytes):
            await browser.send_bytes(data)
        else:
            await browser.send_str(data)


def _cells(value: object, default: int) -> int:
    return min(max(to_int(str(value), default), 2), 1000)


class Session(AppService):
    """One served foreman process, shown in at most one browser at a time."""

    def __init__(self, command: str, downloads: DownloadManager) -> None:
        super().__init__(
            command,
            write_bytes=self._to_browser,
            write_str=self._to_browser_text,
            close=self._close_browser,
            download_manager=downloads,
        )
        self.browser: web.WebSocketResponse | None = None
        self.size = (80, 24)
        self.done = asyncio.Event()
        self.exit_code: int | None = None
        self._painted = asyncio.Event()
        self._paint_bytes = 0
        self._watcher: asyncio.Task[None] | None = None

    async def begin(self, browser: web.WebSocketResponse, width: int, height: int) -> None:
        """Start foreman for ``browser``, at its size."""
        self.browser, self.size = browser, (width, height)
        await self.start(width, height)
        self._watcher = asyncio.create_task(self._watch())

    async def attach(self, browser: web.WebSocketResponse, width: int, height: int) -> None:
        """Show the running session in ``browser`` (a new xterm.js, blank): the terminal modes, then a whole
        paint. Textual repaints only what changes, and ignores a resize to the size it has, so it is sent to an
        in-between size first and, once it has painted that, to the browser's."""
        previous, self.browser = self.browser, browser
        if previous is not None and previous is not browser:
            await _send(previous, _screen(MOVED))
        await self._to_browser(TERMINAL_MODES)
        between = (max(width - 1, 2), max(height - 1, 2))
        if between == self.size:
            between = (max(width - 2, 2), max(height - 2, 2))
        self._painted.clear()
        self._paint_bytes = between[0] * between[1] // 4  # a paint of most of the screen, not a clock's tick
        await self.set_terminal_size(*between)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._painted.wait(), REPAINT_WAIT)
        await self.resize(width, height)

    async def detach(self, browser: web.WebSocketResponse) -> None:
        if self.browser is browser:
            self.browser = None
            await self.blur()

    async def resize(self, width: int, height: int) -> None:
        self.size = (width, height)
        await self.set_terminal_size(width, height)

    async def end(self, grace: float) -> None:
        """Stop foreman the way a signal from outside does (the workers stopped, the run resumable), then wait;
        after ``grace`` seconds, kill it."""
        process = self._process
        if process is None or self.done.is_set():
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.done.wait(), grace)
        except TimeoutError:
            log.warning("foreman did not stop within %s s; killing it", grace)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await self.done.wait()

    async def on_data(self, payload: bytes) -> None:
        if len(payload) >= self._paint_bytes:
            self._painted.set()
        await super().on_data(payload)

    async def _watch(self) -> None:
        """When foreman's output ends: reap it, and close the browser's websocket (the page says "Session ended",
        with a button to start a new one)."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        assert self._process is not None
        self.exit_code = await self._process.wait()
        log.info("foreman exited with status %s", self.exit_code)
        self.done.set()
        await self._close_browser()

    async def _to_browser(self, data: bytes) -> None:
        """Output for the browser; dropped while none looks (the app keeps going). Never raises: an error here
        would stop the reading of foreman's output, and foreman would block on a full pipe."""
        if self.browser is not None:
            await _send(self.browser, data)

    async def _to_browser_text(self, text: str) -> None:
        if self.browser is not None:
            await _send(self.browser, text)

    async def _close_browser(self) -> None:
        browser = self.browser
        if browser is not None and not browser.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await browser.close()


class WebServer(Server):
    """textual-serve's server with sessions that outlive their tabs. ``preflight`` (run in a thread before a
    session starts) returns why one cannot start, said in the browser, or None."""

    def __init__(self, command: str, title: str, preflight: Callable[[], str | None]) -> None:
        super().__init__(command, title=title)
        self.preflight = preflight
        self.session: Session | None = None
        self._sessions = asyncio.Lock()
        self._browsers: set[web.WebSocketResponse] = set()
        self._ending = False

    async def on_startup(self, app: web.Application) -> None:
        """textual-serve prints its banner here; ``foreman serve`` prints its own lines."""

    @aiohttp_jinja2.template("app_index.html")
    async def handle_index(self, request: web.Request) -> dict[str, Any]:
        """textual-serve's page, its URLs made from the request (the name and port the browser used, and the
        scheme a TLS proxy in front says it used), not from the address the server listens on."""
        secure = request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"
        return {
            "font_size": _cells(request.query.get("fontsize", "16"), 16),
            "app_websocket_url": f"{'wss' if secure else 'ws'}://{request.host}/ws",
            "config": {"static": {"url": "/static/"}},
            "application": {"name": self.title},
        }

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        browser = web.WebSocketResponse(heartbeat=15)
        await browser.prepare(request)
        width = _cells(request.query.get("width", "80"), 80)
        height = _cells(request.query.get("height", "24"), 24)
        self._browsers.add(browser)
        session = None
        try:
            session = await self._show(browser, width, height)
            await self._relay(browser, session)
        finally:
            self._browsers.discard(browser)
            if session is not None:
                await session.detach(browser)
        return browser

    async def _show(self, browser: web.WebSocketResponse, width: int, height: int) -> Session | None:
        """The running session, attached to ``browser``; or a new one; or None, with the reason on its screen."""
        async with self._sessions:
            if self._ending:
                await _send(browser, _screen("foreman serve is stopping."))
                return None
            session = self.session
            if session is not None and not session.done.is_set():
                await session.attach(browser, width, height)
                return session
            problem = await asyncio.to_thread(self.preflight)
            if problem is not None:
                await _send(browser, _screen(f"foreman serve: {problem}"))
                return None
            self.session = session = Session(self.command, self.download_manager)
            await session.begin(browser, width, height)
            return session

    async def _relay(self, browser: web.WebSocketResponse, session: Session | None) -> None:
        """The browser's messages, until it goes. Only the browser showing the session types into it; a page
        shown a message keeps its websocket open (closed, the page would cover the message)."""
        async for message in browser:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                envelope = message.json()
            except ValueError:
                continue
            if not isinstance(envelope, list) or not envelope:
                continue
            kind, data = envelope[0], (envelope[1] if len(envelope) > 1 else None)
            if kind == "ping":
                await _send(browser, json.dumps(["pong", data]))
            elif session is None or session.browser is not browser:
                continue
            elif kind == "stdin" and isinstance(data, str):
                await session.send_bytes(data.encode("utf-8"))
            elif kind == "resize" and isinstance(data, dict):
                await session.resize(_cells(data.get("width"), 80), _cells(data.get("height"), 24))
            elif kind == "focus":
                await session.focus()
            elif kind == "blur":
                await session.blur()

    async def end(self, grace: float) -> None:
        """The server stops: the session's foreman first (see :meth:`Session.end`), then every page's websocket
        (the pages say "Session ended")."""
        async with self._sessions:
            self._ending = True
        if self.session is not None:
            await self.session.end(grace)
        for browser in list(self._browsers):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await browser.close()
