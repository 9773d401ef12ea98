"""`foreman serve` without a browser: what it refuses before listening, who it answers (loopback names, the token),
and its sessions as a websocket client sees them (textual-serve's protocol: the Textual app's output as binary
messages, the browser's keys and size as JSON)."""

from __future__ import annotations

import asyncio
import shlex
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from foreman_tui.engine.runstate import RunLock
from foreman_tui.serve import served_argv, shell_command, url
from foreman_tui.tui.serve_access import is_loopback

from .browser_support import Served, nothing_left_mentioning, processes_mentioning, serving
from .conftest import minimal_map, run_cli, write_map
from .engine_support import add_check, demo_repo, events, kinds

__all__ = ["serving"]  # a fixture

WEBSOCKET = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"}


def test_what_counts_as_loopback() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST", "app.localhost"):
        assert is_loopback(host), host
    for host in (
        "0.0.0.0",
        "::",
        "",
        "192.168.1.20",
        "10.0.0.1",
        "example.com",
        "localhost.example.com",
        "127.0.0.1.nip.io",
    ):
        assert not is_loopback(host), host


def test_bad_flags_and_a_bad_map_are_refused_before_anything_listens(tmp_path: Path) -> None:
    doc = minimal_map()
    doc["graph"]["edges"][1]["to"] = "bb"
    bad = run_cli("serve", str(write_map(tmp_path, doc)), "--port", "0")
    assert bad.returncode == 2 and "unknown node 'bb'" in bad.stderr and "open http" not in bad.stdout
    for flags, said in (
        (["--port", "70000"], "must be 0 to 65535"),
        (["--port", "http"], "expected a port number"),
        (["--headless"], "unrecognized arguments: --headless"),
        (["--max-parallel", "0"], "must be at least 1"),
    ):
        done = run_cli("serve", str(tmp_path / "algorithm-map.json"), *flags)
        assert done.returncode == 2 and said in done.stderr, (flags, done.stderr)


def test_without_a_terminal_a_map_with_unapproved_commands_is_refused(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path)
    add_check(map_path, "01_load_points", "python -c pass")  # added since the approval
    done = run_cli("serve", str(map_path), "--port", "0")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "not approved" in done.stderr and f"foreman trust {map_path}" in done.stderr
    assert "open http" not in done.stdout


def test_the_run_options_go_to_the_sessions_foreman_quoted_for_the_shell(tmp_path: Path) -> None:
    from foreman_tui.cli import build_parser

    map_path = tmp_path / 'it\'s $(touch pwned) `x` "y"' / "algorithm-map.json"
    args = build_parser().parse_args(["serve", str(map_path), "--max-parallel", "2", "--no-watch", "--poll", "1"])
    argv = served_argv(map_path, args)
    assert argv[:5] == [sys.executable, "-m", "foreman_tui", "run", str(map_path)]
    assert argv[5:] == ["--max-parallel", "2", "--poll", "1.0", "--no-watch"]
    command = shell_command(argv)
    assert command.startswith("exec ") and shlex.split(command)[1:] == argv


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Status, body and Set-Cookie of a GET."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode(), response.headers.get("Set-Cookie", "")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), ""


def _at(url: str, path: str) -> str:
    """``path`` on the server of ``url``, by its loopback address (a wildcard address listens there too)."""
    return f"http://127.0.0.1:{urlsplit(url).port}{path}"


def test_an_address_other_than_loopback_needs_the_token_from_the_url(
    tmp_path: Path, serving: Callable[..., Served]
) -> None:
    served = serving(demo_repo(tmp_path), "--host", "0.0.0.0")
    token = dict(p.split("=", 1) for p in urlsplit(served.url).query.split("&")).get("token", "")
    assert len(token) >= 40, served.url

    for path in ("/", "/static/js/textual.js", "/ws", f"/?token={token[:-1]}"):
        status, body, _ = _get(_at(served.url, path))
        assert status == 403 and "needs the token" in body, path
    status, page, cookie = _get(_at(served.url, f"/?token={token}"))
    assert status == 200 and "textual-terminal" in page
    assert token in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    jar = cookie.split(";", 1)[0]
    assert _get(_at(served.url, "/static/js/textual.js"), {"Cookie": jar})[0] == 200
    assert _get(_at(served.url, "/ws"), {"Cookie": jar, **WEBSOCKET})[0] != 403  # let through (a bad handshake)
    served.stop()
    assert "ssh -L" in served.text()  # the advice, under the URL


def test_on_loopback_only_loopback_names_and_the_pages_own_websockets_are_answered(
    tmp_path: Path, serving: Callable[..., Served]
) -> None:
    map_path = demo_repo(tmp_path)
    served = serving(map_path)
    assert "token" not in served.url
    port = urlsplit(served.url).port
    assert _get(_at(served.url, "/"))[0] == 200
    assert _get(_at(served.url, "/"), {"Host": f"localhost:{port}"})[0] == 200
    status, body, _ = _get(_at(served.url, "/"), {"Host": f"rebound.example:{port}"})  # DNS rebinding
    assert status == 403 and "loopback names only" in body
    status, body, _ = _get(_at(served.url, "/ws"), {"Origin": "https://evil.example", **WEBSOCKET})
    assert status == 403 and "another site" in body
    assert _get(_at(served.url, "/ws"), {"Origin": f"http://127.0.0.1:{port}", **WEBSOCKET})[0] != 403

    with_token = serving(map_path, "--token")
    assert "?token=" in with_token.url
    assert _get(_at(with_token.url, "/"))[0] == 403


async def _read_until(ws: aiohttp.ClientWebSocketResponse, text: str, timeout: float = 90) -> str:
    """What the served terminal was sent, until ``text`` is in it (the app's output is UTF-8 with escapes)."""
    seen = b""
    async with asyncio.timeout(timeout):
        while text.encode() not in seen:
            message = await ws.receive()
            if message.type == aiohttp.WSMsgType.BINARY:
                seen += message.data
            elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                raise AssertionError(f"closed before '{text}'; it was sent:\n{seen.decode(errors='replace')[-3000:]}")
    return seen.decode(errors="replace")


def test_a_session_outlives_its_websocket_and_runs_foreman_itself_from_any_path(
    tmp_path: Path, serving: Callable[..., Served]
) -> None:
    folder = tmp_path / 'it\'s $(touch pwned) `touch pwned` "q"'
    map_path = demo_repo(folder, with_pause=True)
    served = serving(map_path)
    ws_url = served.url.replace("http://", "ws://").rstrip("/") + "/ws?width=120&height=40"

    async def visit() -> None:
        async with aiohttp.ClientSession() as client:
            async with client.ws_connect(ws_url) as ws:
                await _read_until(ws, "HARD PAUSE")
            # The websocket is gone; foreman is not.
            assert len(processes_mentioning(f"foreman_tui run {map_path}")) == 1
            async with client.ws_connect(ws_url) as ws:
                await _read_until(ws, "HARD PAUSE", timeout=30)  # painted again, whole, for the newcomer

    asyncio.run(visit())
    assert not list(tmp_path.rglob("pwned")), "a shell read the map's path"
    assert len(kinds(events(map_path), "RunStarted")) == 1
    assert "run stopped" in served.stop()  # as Ctrl+C: the workers stopped, the run resumable
    assert kinds(events(map_path), "RunFinished")[-1]["detail"]["outcome"] == "stopped"
    nothing_left_mentioning(str(map_path.parent))


def test_a_new_session_is_refused_in_the_page_while_another_foreman_runs_on_the_map(
    tmp_path: Path, serving: Callable[..., Served]
) -> None:
    map_path = demo_repo(tmp_path)
    served = serving(map_path)
    lock = RunLock(map_path.parent / ".git")  # another foreman holds the repository
    lock.acquire()
    try:

        async def visit() -> str:
            async with (
                aiohttp.ClientSession() as client,
                client.ws_connect(served.url.replace("http", "ws") + "ws") as ws,
            ):
                return await _read_until(ws, "reload this page", timeout=30)

        assert "another foreman is running on this repository" in asyncio.run(visit())
    finally:
        lock.release()
    assert not processes_mentioning(f"foreman_tui run {map_path}")


def test_the_printed_url_names_an_ipv6_address_in_brackets_and_carries_the_token() -> None:
    assert url("::1", 8000, None) == "http://[::1]:8000/"
    assert url("127.0.0.1", 8000, "t") == "http://127.0.0.1:8000/?token=t"
