"""`foreman serve` as a subprocess, and headless Chromium (Selenium) to look at it: the served TUI is xterm.js drawing
on a canvas, so the page's terminal is found (a hook installed before the page's scripts run) and its text read
through xterm's buffer API."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .conftest import REPO
from .engine_support import nothing_left_mentioning, processes_mentioning

__all__ = ["nothing_left_mentioning", "processes_mentioning"]  # for the serve tests, with the browser helpers

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,900",
]

# CI installs Chromium and its driver (.ci/run): there, missing ones are a failure, not a skip.
needs_chromium = pytest.mark.skipif(
    (CHROMIUM is None or CHROMEDRIVER is None) and not os.environ.get("CI"),
    reason="needs chromium and chromedriver (apt-get install chromium chromium-driver)",
)

FIND_TERMINAL = """
// textual-serve's page keeps its xterm.js Terminal in a closure, as `this.terminal` of the object driving it.
// That assignment passes through this setter (the object has no own `terminal` yet), which keeps the Terminal.
window.__terminals = [];
Object.defineProperty(Object.prototype, "terminal", {
  configurable: true,
  set(value) {
    Object.defineProperty(this, "terminal", {value, writable: true, configurable: true, enumerable: true});
    if (value && typeof value.write === "function" && typeof value.open === "function") {
      window.__terminals.push(value);
    }
  },
});
"""

SCREEN_TEXT = """
const found = window.__terminals || [];
const term = found[found.length - 1];
if (!term) return null;
const buffer = term.buffer.active;
const lines = [];
for (let y = 0; y < term.rows; y++) {
  const line = buffer.getLine(buffer.viewportY + y);
  lines.push(line ? line.translateToString(true) : "");
}
return lines.join("\\n");
"""


def artifacts() -> Path:
    """Where the browser tests leave their screenshots: FOREMAN_TEST_ARTIFACTS, or test-artifacts/ (git-ignored)."""
    folder = Path(os.environ.get("FOREMAN_TEST_ARTIFACTS") or REPO / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[WebDriver]:
    """Headless Chromium with a new, empty profile, started through the system's chromedriver; always quit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM is not None and CHROMEDRIVER is not None, "chromium and chromedriver are needed here (CI)"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    service = Service(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.set_page_load_timeout(60)
        find_terminals(driver)
        yield driver
    finally:
        driver.quit()


def find_terminals(driver: WebDriver) -> None:
    """Install the hook in the current tab's pages to come (each tab needs its own)."""
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": FIND_TERMINAL})


def new_tab(driver: WebDriver) -> str:
    driver.switch_to.new_window("tab")
    find_terminals(driver)
    return str(driver.current_window_handle)


def screen(driver: WebDriver) -> str:
    """The text the served terminal shows now ('' before the page has one)."""
    return driver.execute_script(SCREEN_TEXT) or ""


def wait_for_screen(driver: WebDriver, text: str, timeout: float = 120) -> str:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: text in screen(d))
    except TimeoutException:
        raise AssertionError(f"'{text}' did not appear within {timeout}s; the screen:\n{screen(driver)}") from None
    return screen(driver)


def type_keys(driver: WebDriver, *keys: str) -> None:
    """Keys into the terminal: xterm.js takes them through its hidden textarea."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, ".xterm-helper-textarea").send_keys(*keys)


class Served:
    """`foreman serve MAP ARGS…` in its own process group, its output read by a thread as it comes; :meth:`stop`
    ends it (SIGTERM, as Ctrl+C would) and makes sure nothing of its group is left."""

    def __init__(self, map_path: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FOREMAN_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "foreman_tui", "serve", str(map_path), "--port", "0", *args],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        self.output: list[str] = []
        self.url = ""
        self._listening = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._listening.wait(60) or not self.url:
            self.stop()
            raise AssertionError("foreman serve printed no URL:\n" + self.text())

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            found = re.search(r"open (http://\S+)", line)
            if found and not self.url:
                self.url = found.group(1)
                self._listening.set()
        self._listening.set()  # it ended

    def text(self) -> str:
        return "".join(self.output)

    def stop(self, timeout: float = 90) -> str:
        """End it as Ctrl+C would and wait; returns what it printed from then on."""
        mark = len(self.output)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)  # anything of its group still there
            self.process.wait()
            self._reader.join(10)
        return "".join(self.output[mark:])


@pytest.fixture
def serving() -> Iterator[Callable[..., Served]]:
    """Start `foreman serve` with ``serving(map_path, *args)``; every one started is stopped after the test."""
    started: list[Served] = []

    def start(map_path: Path, *args: str) -> Served:
        served = Served(map_path, *args)
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


def shot(driver: WebDriver, name: str) -> Path:
    """A screenshot of the page's window into the artifacts folder."""
    path = artifacts() / name
    assert driver.save_screenshot(str(path)), path
    return path


def page_closed(driver: WebDriver) -> bool:
    """textual-serve's page, once its websocket has closed ("Session ended")."""
    from selenium.webdriver.common.by import By

    return "-closed" in (driver.find_element(By.TAG_NAME, "body").get_attribute("class") or "").split()
