"""Debian's Chromium, headless, driven by Selenium: for the gallery's tests, bench and screenshot.

The only module that imports selenium (a test extra). Chromium starts with a fresh profile and
every background service off: the machine may have no network, and the page must need none.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import (
    NoAlertPresentException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

T = TypeVar("T")
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-quic",
    "--mute-audio",
    "--hide-scrollbars",
)


_KEYS = {
    "Escape": Keys.ESCAPE,
    "ArrowLeft": Keys.ARROW_LEFT,
    "ArrowRight": Keys.ARROW_RIGHT,
    "Enter": Keys.ENTER,
}


class BrowserMissing(RuntimeError):
    """Chromium or its driver is not installed (scripts/test installs both with apt-get)."""


def _find(env: str, *names: str) -> str:
    for name in (os.environ.get(env), *names):
        found = shutil.which(name) if name else None
        if found:
            return found
    raise BrowserMissing(f"{names[0]} not found: apt-get install chromium chromium-driver")


class Browser:
    """One headless Chromium; `driver` is the Selenium WebDriver for anything not wrapped here."""

    def __init__(self, driver: webdriver.Chrome, profile: Path) -> None:
        self.driver = driver
        self.profile = profile

    def open(self, url: str, *, ready: bool = True) -> None:
        """Load `url`; with `ready`, wait until the gallery has loaded all its rows."""
        self.driver.get(url)
        if ready:
            self.until(lambda: self.js("return document.documentElement.dataset.loaded"))

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def until(self, condition: Callable[[], T], timeout: float = 30.0) -> T:
        """Poll `condition` until it is truthy (bounded); its value, or TimeoutException.

        An element the page replaced between the condition's find and its read (a search or
        a scroll re-renders the cards) counts as not yet: the next poll finds it afresh.
        """
        wait = WebDriverWait(
            self.driver,
            timeout,
            poll_frequency=0.05,
            ignored_exceptions=(StaleElementReferenceException,),
        )
        return wait.until(lambda _: condition())

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        """The text of the first element at `css`, found and read in one go (never stale)."""
        return self.until(lambda: (self.find(css).text,))[0]

    def hover(self, element: WebElement) -> None:
        ActionChains(self.driver).move_to_element(element).perform()

    def choose(self, css: str, value: str) -> None:
        """Pick the option with `value` in the <select> at `css`, as a person would."""
        Select(self.find(css)).select_by_value(value)

    def keys(self, *names: str) -> None:
        """Press keys by their DOM names (Escape, ArrowRight, ...) or text, on the focus."""
        ActionChains(self.driver).send_keys(*(_KEYS.get(n, n) for n in names)).perform()

    def alert_text(self) -> str | None:
        """The text of an open alert/confirm/prompt, or None when there is none."""
        try:
            return self.driver.switch_to.alert.text
        except NoAlertPresentException:
            return None

    def requested_urls(self) -> list[str]:
        """Every URL the page asked for since the last call, from the DevTools network log."""
        urls = []
        for entry in self.driver.get_log("performance"):  # type: ignore[no-untyped-call]
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                urls.append(message["params"]["request"]["url"])
        return urls

    def console_errors(self) -> list[str]:
        logs = self.driver.get_log("browser")  # type: ignore[no-untyped-call]
        return [e["message"] for e in logs if e["level"] == "SEVERE"]

    def screenshot(self, path: Path) -> None:
        if not self.driver.save_screenshot(str(path)):
            raise RuntimeError(f"could not write the screenshot {path}")

    def mark_ms(self, name: str) -> float:
        """Milliseconds from navigation start to the page's performance mark `name`."""
        value = self.js(
            "const m = performance.getEntriesByName(arguments[0]);"
            " return m.length ? m[0].startTime : null",
            name,
        )
        if value is None:
            raise TimeoutException(f"the page never marked {name}")
        return float(value)


@contextmanager
def chromium(*, width: int = 1280, height: int = 900) -> Iterator[Browser]:
    """A headless Chromium with a fresh profile, quit and its profile removed afterwards."""
    options = webdriver.ChromeOptions()
    options.binary_location = _find("CHROMIUM", "chromium", "chromium-browser")
    profile = Path(tempfile.mkdtemp(prefix="gallery-chromium-"))
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    service = Service(executable_path=_find("CHROMEDRIVER", "chromedriver"))
    try:
        driver = webdriver.Chrome(options=options, service=service)
    except BaseException:
        shutil.rmtree(profile, ignore_errors=True)
        raise
    browser = Browser(driver, profile)
    try:
        browser.requested_urls()  # the start page's own requests are not the test's
        yield browser
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
