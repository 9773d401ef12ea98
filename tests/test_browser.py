"""In a real browser (headless Chromium): the TUI served by `foreman serve`, driven by keys typed into the page, and
the HTML report's timeline as Chromium lays it out. Screenshots go to test-artifacts/ (FOREMAN_TEST_ARTIFACTS)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .browser_support import (
    Served,
    artifacts,
    chromium,
    needs_chromium,
    new_tab,
    nothing_left_mentioning,
    page_closed,
    serving,
    shot,
    type_keys,
    wait_for_screen,
)
from .engine_support import demo_repo, events, foreman, kinds, wait_for

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = needs_chromium
__all__ = ["chromium", "serving"]  # fixtures


def test_the_served_tui_reaches_the_pause_outlives_its_tabs_takes_a_key_and_completes(
    tmp_path: Path, chromium: WebDriver, serving: Callable[..., Served]
) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    map_path = demo_repo(tmp_path, with_pause=True)
    served = serving(map_path)
    chromium.get(served.url)
    first = chromium.current_window_handle
    text = wait_for_screen(chromium, "HARD PAUSE")
    assert "05_update" in text and "squared shift" in text
    shot(chromium, "serve-pause.png")

    # A second tab takes the session over: the same run, painted whole; the first tab says where it went.
    second = new_tab(chromium)
    chromium.get(served.url)
    text = wait_for_screen(chromium, "HARD PAUSE")
    assert "01_load_points" in text and "squared shift" in text
    chromium.switch_to.window(first)
    wait_for_screen(chromium, "opened in another browser window")

    # With no page open the run goes on; the next page shows it, still waiting at the pause.
    chromium.switch_to.window(second)
    chromium.close()
    chromium.switch_to.window(first)
    chromium.get("about:blank")
    chromium.get(served.url)
    wait_for_screen(chromium, "HARD PAUSE")
    assert len(kinds(events(map_path), "RunStarted")) == 1, "one run all along"

    type_keys(chromium, "a")
    wait_for_screen(chromium, "Send: A)")
    type_keys(chromium, "\n")
    wait_for_screen(chromium, "run complete", timeout=180)
    shot(chromium, "serve-complete.png")
    type_keys(chromium, "q")  # foreman quits: the session ends, and the page says so
    WebDriverWait(chromium, 60, poll_frequency=0.2).until(page_closed)
    wait_for(lambda: "run complete (8/8 verified)" in served.text(), 30, "foreman's last words in serve's output")
    served.stop()
    nothing_left_mentioning(str(map_path.parent))


def test_the_report_timeline_draws_a_bar_per_attempt_in_chromium(tmp_path: Path, chromium: WebDriver) -> None:
    from selenium.webdriver.common.by import By

    map_path = demo_repo(tmp_path)
    assert foreman("run", str(map_path), "--headless").returncode == 0
    report = tmp_path / "report.html"
    assert foreman("report", str(map_path), "--format", "html", "-o", str(report)).returncode == 0
    chromium.get(report.as_uri())
    attempts = [e for e in kinds(events(map_path), "WorkerStarted") if e["detail"]["role"] == "worker"]
    bars = chromium.find_elements(By.CSS_SELECTOR, "svg.timeline rect.attempt")
    assert len(bars) == len(attempts) > 0
    for bar in bars:
        assert bar.is_displayed() and bar.size["width"] > 0 and bar.size["height"] > 0, bar.get_attribute("x")
    # Laid out on one axis: 04_assign's two attempts side by side, in order, as drawn (not only as written).
    first, second = chromium.find_elements(By.CSS_SELECTOR, 'svg.timeline g[data-node="04_assign"] rect.attempt')
    assert first.location["x"] + first.size["width"] <= second.location["x"] + 1
    assert first.location["y"] == second.location["y"]
    shot(chromium, "report.png")
    timeline = chromium.find_element(By.CSS_SELECTOR, "svg.timeline")
    assert timeline.screenshot(str(artifacts() / "report-timeline.png"))
