"""The playground in a real browser: Debian's headless Chromium driven by Selenium.

Type a request, click a slot, see the confirmation and the .ics, press the booking's buttons and
find the meeting in the calendars view. Skips locally without Chromium; fails under CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from playground.server import run_playground

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Monday 30 November 2026, 08:00 UTC.
NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
# The browser's own zone; the page must render Slack's <!date> tokens in it.
BROWSER_ZONE = "Asia/Kolkata"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--lang=en-US",
    "--window-size=1280,900",
)

pytestmark = pytest.mark.slow


def _browser_missing() -> str | None:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            return f"{path} is missing (Debian package {package}; scripts/test installs it)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


class PlaygroundThread:
    """``run_playground`` on its own event loop and thread, so the blocking driver can use it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="playground", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            self._error = error
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()  # type: ignore[assignment]

        def ready(url: str) -> None:
            self.url = url
            self._ready.set()

        with contextlib.suppress(asyncio.CancelledError):
            await run_playground(
                self.settings, host="127.0.0.1", port=0, clock=lambda: NOW, ready=ready
            )

    def start(self) -> str:
        self._thread.start()
        if not self._ready.wait(60) or self._error is not None:
            raise RuntimeError(f"the playground did not start: {self._error!r}")
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(30)
        assert not self._thread.is_alive(), "the playground did not stop"


@pytest.fixture
def playground_url(tmp_path: Path) -> Iterator[str]:
    settings = Settings.from_env({"SLOTBOT_DATA_DIR": str(tmp_path)}, dotenv=None)
    server = PlaygroundThread(settings)
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    missing = _browser_missing()
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the browser test must run in CI: {missing}")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    with tempfile.TemporaryDirectory(prefix="slotbot-chromium-") as profile:
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        # A driver path given means Selenium Manager never looks for (or downloads) one.
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
        try:
            driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": BROWSER_ZONE})
            yield driver
        finally:
            driver.quit()


def test_type_book_open_ics_manage_and_see_the_calendar(browser: Any, playground_url: str) -> None:
    """The whole flow in Chromium: request, offer in the browser's zone, book, .ics, calendars,
    then reschedule and cancel for real."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    # The page re-renders as it polls, so elements found a moment ago may be gone: retry.
    wait = WebDriverWait(browser, 15, ignored_exceptions=[StaleElementReferenceException])

    def texts(selector: str) -> list[str]:
        found: list[str] = browser.execute_script(
            "return [...document.querySelectorAll(arguments[0])].map((e) => e.innerText)",
            selector,
        )
        return found

    def click(xpath: str) -> None:
        wait.until(lambda b: b.find_element(By.XPATH, xpath).click() or True)

    browser.get(playground_url)
    wait.until(lambda b: b.find_elements(By.ID, "nav-general"))
    # Chromium's ICU still answers with the old name of Kolkata's zone.
    assert browser.execute_script("return ZONE") in (BROWSER_ZONE, "Asia/Calcutta")

    browser.find_element(By.ID, "input").send_keys(
        "/schedule sync with @ana tomorrow afternoon", Keys.ENTER
    )
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, ".message.ephemeral .bk-button.primary"))
    offer = texts(".message.ephemeral")[-1]
    assert "Only visible to you" in offer and "@Ana" in offer
    # Tomorrow afternoon in Kolkata meets Ana's 09:00 Berlin start at 1:30 PM, shown in the
    # browser's zone (in UTC it would read 8:00 AM, in Berlin 9:00 AM).
    first_slot = texts(".message.ephemeral .bk-section:has(.bk-accessory .bk-button.primary)")[0]
    assert first_slot.startswith("1:30 PM"), first_slot

    click("(//div[contains(@class, 'ephemeral')]//button[normalize-space()='Book'])[1]")
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, ".file .file-open"))
    [confirmation] = [t for t in texts(".message.ephemeral") if "is booked" in t]
    assert "sync is booked" in confirmation
    assert "tomorrow" in confirmation or "December 1st" in confirmation
    assert "1:30 PM" in confirmation
    href, download = browser.execute_script(
        "const a = document.querySelector('.file a.file-download'); return [a.href, a.download]"
    )
    assert href.startswith(playground_url + "files/F") and download.endswith(".ics")

    click("//button[contains(@class, 'file-open')]")
    wait.until(lambda b: "END:VCALENDAR" in " ".join(texts(".file-text")))
    # textContent: .text leaves out the lines scrolled out of the box.
    ics = browser.execute_script("return document.querySelector('.file-text').textContent")
    assert "BEGIN:VEVENT" in ics and "ATTENDEE" in ics
    assert re.search(r"^SUMMARY[^:\n]*:sync$", ics, re.MULTILINE)
    assert re.search(r"^DTSTART;TZID=Asia/Kolkata:20261201T133000$", ics, re.MULTILINE)

    # Reschedule turns the confirmation into an offer of new times; keeping the current time
    # brings it back. Cancel meeting asks first; Keep it brings it back too.
    click("//button[normalize-space()='Reschedule']")
    wait.until(
        lambda b: b.find_elements(By.XPATH, "//button[normalize-space()='Keep the current time']")
    )
    assert any("Moving the booked meeting" in t for t in texts(".message.ephemeral"))
    click("//button[normalize-space()='Keep the current time']")
    wait.until(lambda b: any("sync is booked" in t for t in texts(".message.ephemeral")))
    click("//button[normalize-space()='Cancel meeting']")
    wait.until(lambda b: b.find_elements(By.XPATH, "//button[normalize-space()='Keep it']"))
    assert any("Cancel sync" in t for t in texts(".message.ephemeral"))
    click("//button[normalize-space()='Keep it']")
    wait.until(lambda b: any("sync is booked" in t for t in texts(".message.ephemeral")))
    assert len(browser.find_elements(By.CSS_SELECTOR, ".file .file-open")) == 1

    click("//*[@id='nav-calendars']")
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "[data-user=U0ANA] .cal-event.booking"))
    [ana_booking] = texts("[data-user=U0ANA] .cal-event.booking")
    [my_booking] = texts("[data-user=U0YOU] .cal-event.booking")
    # Each grid is in its owner's zone: 09:00 in Berlin is 13:30 for the viewer in Kolkata.
    assert ana_booking.startswith("sync") and "09:00–09:30" in ana_booking
    assert my_booking.startswith("sync") and "13:30–14:00" in my_booking
    assert "Europe/Berlin" in texts("[data-user=U0ANA] .cal-zone")[0]
    assert texts("[data-user=U0BEN] .cal-event.booking") == []

    # Now for real: move the meeting to another offered time, then cancel it.
    click("//*[@id='nav-general']")
    click("//button[normalize-space()='Reschedule']")
    click("(//div[contains(@class, 'ephemeral')]//button[normalize-space()='Book'])[1]")
    wait.until(lambda b: any("sync moved" in t for t in texts(".message.ephemeral")))
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".file .file-open")) == 2)
    click("//button[normalize-space()='Cancel meeting']")
    wait.until(lambda b: b.find_elements(By.XPATH, "//button[normalize-space()='Keep it']"))
    click("//button[normalize-space()='Cancel meeting']")
    wait.until(lambda b: any("sync was cancelled" in t for t in texts(".message.ephemeral")))
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".file .file-open")) == 3)
    click("(//button[contains(@class, 'file-open')])[3]")
    wait.until(lambda b: "METHOD:CANCEL" in " ".join(texts(".file-text")))
    click("//*[@id='nav-calendars']")
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "[data-user=U0ANA]"))
    wait.until(lambda b: texts("[data-user=U0ANA] .cal-event.booking") == [])
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
