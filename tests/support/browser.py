"""Headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven through Selenium, and the
few helpers every console test uses: wait for an element, sign in, save a screenshot."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from tests.conftest import REPO
from tests.support.ports import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = REPO / "tests" / "console" / "screenshots"
WINDOW = (1366, 900)
WAIT_SECONDS = 10.0


def require_chromium() -> None:
    """No skipping: a machine without the browser fails, saying how to get it."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found: the console's browser tests need Debian's chromium and "
                    f"chromium-driver packages; `./dev test` installs them (as root), or "
                    f"`apt-get install chromium chromium-driver`", pytrace=False)


def start_browser(profile: Path, window: tuple[int, int] = WINDOW) -> WebDriver:
    """A headless Chromium with a fresh profile in ``profile``, its console messages kept."""
    require_chromium()
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                     "--disable-background-networking", "--disable-sync", "--lang=en-US",
                     f"--window-size={window[0]},{window[1]}", f"--user-data-dir={profile}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: use the given driver, fetch nothing
    # chromedriver's port from this process's block: Selenium's own pick (bind(0), then closed)
    # could be drawn by another worker before chromedriver binds it
    service = Service(executable_path=str(CHROMEDRIVER), port=free_port())
    browser = webdriver.Chrome(service=service, options=options)
    browser.set_window_size(*window)
    return browser


def wait_for(browser: WebDriver, css: str, timeout: float = WAIT_SECONDS, visible: bool = True) -> WebElement:
    """The first element matching ``css`` once it exists (and is shown, unless ``visible`` is False)."""
    condition = (expected_conditions.visibility_of_element_located if visible
                 else expected_conditions.presence_of_element_located)((By.CSS_SELECTOR, css))
    try:
        return WebDriverWait(browser, timeout).until(condition)
    except TimeoutException:
        raise AssertionError(f"no {'visible ' if visible else ''}element {css!r} within {timeout} s on "
                             f"{browser.current_url}; browser log: {browser_log(browser)}") from None


def wait_until(browser: WebDriver, check: Any, what: str, timeout: float = WAIT_SECONDS) -> Any:
    """Wait until ``check(browser)`` is truthy; its value."""
    try:
        return WebDriverWait(browser, timeout).until(check)
    except TimeoutException:
        raise AssertionError(f"not {what} within {timeout} s on {browser.current_url}; "
                             f"browser log: {browser_log(browser)}") from None


def shot(browser: WebDriver, name: str) -> Path:
    """Save the page as ``tests/console/screenshots/<name>.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    assert browser.save_screenshot(str(path)), f"the screenshot {path} could not be written"
    return path


def browser_log(browser: WebDriver) -> list[str]:
    """The page's console messages since the last call (errors, CSP violations, failed loads)."""
    try:
        return [f"{e['level']}: {e['message']}" for e in browser.get_log("browser")]
    except Exception:  # the browser is gone: nothing more to say
        return []


def sign_in(browser: WebDriver, engine: Any, key: str) -> None:
    """Open the console at ``engine.url``, sign in with ``key`` and wait for the menu."""
    browser.get(engine.url + "/ui/")
    field = wait_for(browser, "input[name=key]")
    field.clear()
    field.send_keys(key)
    wait_for(browser, "[data-test=signin-submit]").click()
    wait_for(browser, "[data-test=menu]")
