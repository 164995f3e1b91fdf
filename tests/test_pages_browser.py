"""The pages in a real browser (issue 5): headless Chromium, driven by Selenium, on a
phone-sized window, loads a unit's agenda page, follows a confirm button, presses the
button on the confirm page, and the database shows the confirmation. Screenshots are
kept under ``test-artifacts/pages/`` (git-ignored) for people to look at.

Chromium is the Debian ``chromium`` and ``chromium-driver`` packages (``make test``
installs them when missing: the ``browser`` target). Selenium is pointed at both
binaries and runs offline (``SE_OFFLINE=true``): Selenium Manager never downloads a
browser or a driver. Without Chromium the tests are skipped, and ``tests/conftest.py``
says so in red in the terminal summary.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from calendars.feed_server import FeedServer, ServerOptions
from calendars.metrics import Metrics
from calendars.pages import Pages
from calendars.tokens import FeedTokens
from scheduler.clock import FixedClock
from scheduler.database import open_engine, session_factory, upgrade
from tests.test_feed_server import Running, StaticFeeds
from tests.test_pages import (
    BAO_CAO,
    CONFIRM_KEY,
    FEED_KEY,
    FORM_KEY,
    HO_SO,
    NOW,
    SETTINGS,
    apply,
    confirmations,
)

CHROMIUM = os.environ.get("MOCD_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MOCD_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "pages"
SKIP_MARK = "NO BROWSER"  # conftest.pytest_terminal_summary looks for it
PHONE = (390, 844)  # CSS pixels of a common phone


def _missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return path
    return None


def phone(driver: Any) -> None:
    """A phone's viewport: its width, touch, and ``<meta name=viewport>`` honoured (a
    desktop window cannot be narrower than 500 px in headless Chromium)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 1, "mobile": True})
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True})


@dataclass
class Browser:
    driver: Any  # selenium.webdriver.Chrome (Selenium is a test-only dependency)
    profile: Path

    def shot(self, name: str) -> Path:
        """The whole page, not only the window (Chrome DevTools: beyond the viewport)."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                     "scale": 1}})
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    missing = _missing()
    if missing is not None:
        pytest.skip(f"{SKIP_MARK}: {missing} not found — the real-browser tests of the pages "
                    "did NOT run; install Debian's chromium and chromium-driver "
                    "(`make browser`)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager: never download anything
    profile = Path(tempfile.mkdtemp(prefix="mocd-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                 "--hide-scrollbars", "--lang=vi-VN"):
        options.add_argument(flag)
    service = Service(executable_path=CHROMEDRIVER, log_output=os.devnull)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.set_page_load_timeout(20)
        phone(driver)
        yield Browser(driver, profile)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@dataclass
class Site:
    running: Running
    factory: sessionmaker[Session]
    tokens: FeedTokens

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.running.port}{path}"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    engine = open_engine(f"sqlite:///{tmp_path / 'mocd.sqlite3'}")
    upgrade(engine)
    factory = session_factory(engine)
    apply(factory)
    tokens = FeedTokens(FEED_KEY)
    pages = Pages(factory, tokens, settings=SETTINGS, clock=FixedClock(NOW),
                  confirm_key=CONFIRM_KEY, form_key=FORM_KEY)
    pages.reload_owners()
    running = Running(FeedServer(StaticFeeds(), tokens, ServerOptions(port=0), Metrics(),
                                 pages=pages))
    yield Site(running, factory, tokens)
    running.close()
    engine.dispose()


def test_confirm_from_the_agenda_page_on_a_phone(browser: Browser, site: Site) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser.driver
    token = site.tokens.token("unit", "phong-dan-toc")
    driver.get(site.url(f"/agenda/phong-dan-toc/{token}"))
    assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "vi"
    assert driver.find_element(By.TAG_NAME, "h1").text.startswith("Lịch công việc: Phòng Dân")
    overdue = driver.find_element(By.CSS_SELECTOR, f'li[data-uid="{HO_SO}"]')
    assert "QUÁ HẠN 2 ngày" in overdue.text
    assert overdue.value_of_css_property("background-color") == "rgba(254, 242, 242, 1)"
    # Nothing overflows sideways on a phone.
    assert driver.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth")
    assert driver.execute_script("return window.innerWidth") == PHONE[0]
    browser.shot("agenda-phone")
    assert confirmations(site.factory) == {}

    button = overdue.find_element(By.CSS_SELECTOR, "a.button.confirm")
    assert button.size["height"] >= 44  # a tap target
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    button.click()
    WebDriverWait(driver, 10).until(expected_conditions.presence_of_element_located(
        (By.ID, "confirm-form")))
    assert driver.current_url.startswith(site.url("/confirm/"))
    assert driver.find_element(By.ID, "unit").text == "Phòng Dân tộc <b>huyện</b>"
    assert driver.find_element(By.ID, "due").text == "Thứ Năm, 30/5/2024"
    assert "<script>" in driver.find_element(By.ID, "milestone").text  # shown, not run
    assert confirmations(site.factory) == {}  # opening the page confirmed nothing
    label = driver.find_element(By.CSS_SELECTOR, 'label[for="by"]')
    assert label.text == "Người xác nhận"
    browser.shot("confirm-phone")

    driver.find_element(By.ID, "by").send_keys("Nguyễn Thị Hoa, văn thư")
    submit = driver.find_element(By.ID, "confirm")
    assert submit.size["height"] >= 44
    assert submit.size["width"] >= 200
    submit.click()
    notice = WebDriverWait(driver, 10).until(expected_conditions.presence_of_element_located(
        (By.ID, "notice")))
    assert notice.text.startswith("Đã xác nhận lúc 09:00, Thứ Bảy, 01/6/2024.")
    browser.shot("confirmed-phone")

    stored = confirmations(site.factory)[(HO_SO, "phong-dan-toc")]
    assert stored.confirmed_by == "Nguyễn Thị Hoa, văn thư"
    assert stored.address == "127.0.0.1"
    assert stored.undone_at is None

    # Back on the agenda page: that deadline has no button any more, the next one has.
    driver.get(site.url(f"/agenda/phong-dan-toc/{token}"))
    done = driver.find_element(By.CSS_SELECTOR, f'li[data-uid="{HO_SO}"]')
    assert "Đã xác nhận 01/6/2024" in done.text
    assert done.find_elements(By.CSS_SELECTOR, "a.button.confirm") == []
    assert driver.find_elements(By.CSS_SELECTOR, f'li[data-uid="{BAO_CAO}"] a.button.confirm')


def test_the_undo_button_and_the_status_page(browser: Browser, site: Site) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    from notifications.confirmations import confirm_token

    driver = browser.driver
    driver.get(site.url(f"/confirm/{confirm_token(CONFIRM_KEY, BAO_CAO, 'ubnd-xa-a')}"))
    assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    driver.find_element(By.ID, "confirm").click()
    WebDriverWait(driver, 10).until(expected_conditions.presence_of_element_located(
        (By.ID, "undo")))
    assert (BAO_CAO, "ubnd-xa-a") in confirmations(site.factory)
    driver.find_element(By.ID, "undo").click()
    WebDriverWait(driver, 10).until(expected_conditions.text_to_be_present_in_element(
        (By.ID, "notice"), "The confirmation was undone"))
    assert confirmations(site.factory)[(BAO_CAO, "ubnd-xa-a")].undone_at is not None
    driver.find_element(By.ID, "confirm").click()  # and confirmed again, for the status
    WebDriverWait(driver, 10).until(expected_conditions.presence_of_element_located(
        (By.ID, "undo")))

    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": False})
    driver.set_window_size(1280, 900)
    try:
        driver.get(site.url(f"/status/thi-dua-2024/{site.tokens.token('unit', 'phong-noi-vu')}"))
        rows = driver.find_elements(By.CSS_SELECTOR, "tr.row-overdue")
        assert [r.find_element(By.CSS_SELECTOR, ".state-overdue").text for r in rows] == [
            "QUÁ HẠN", "QUÁ HẠN"]
        assert rows[0].find_element(By.CSS_SELECTOR, ".state-overdue").value_of_css_property(
            "color") == "rgba(185, 28, 28, 1)"
        confirmed = driver.find_elements(By.CSS_SELECTOR, "tr.row-confirmed")
        assert [r.find_element(By.TAG_NAME, "td").text for r in confirmed] == ["UBND xã A"]
        link = driver.find_element(By.ID, "csv")
        assert link.get_attribute("href").endswith(".csv")
        browser.shot("status-desktop")
    finally:
        phone(driver)
