"""Issue 13 items 1 and 4 in a real browser (headless Chromium): the sign-in page, a wrong key is
refused with a message, the administrator's key opens the console with its menu, signing out
ends the session; a monitor's menu offers only what it may read.
The cookie is out of the page's reach (HttpOnly) and the page breaks none of its CSP."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from engine.console.session import COOKIE
from engine.roles import ADMINISTRATOR, MONITOR
from tests.support.browser import browser_log, shot, sign_in, wait_for, wait_until


def page_problems(browser) -> list[str]:
    """Script errors and CSP violations the page logged (failed API answers such as the 401 of a
    page opened signed out, or of a wrong key, are expected and left out)."""
    return [line for line in browser_log(browser)
            if "Content Security Policy" in line or "Uncaught" in line or "SyntaxError" in line
            or ("Failed to load resource" in line and " 401 " not in line)]


def menu_entries(browser) -> dict[str, str]:
    return {a.get_attribute("data-test"): a.get_attribute("href")
            for a in browser.find_elements(By.CSS_SELECTOR, "[data-test=menu] a[data-test]")}


def test_sign_in_with_a_wrong_then_the_administrator_key_and_sign_out(engine, browser) -> None:
    browser.get(engine.url + "/ui")  # redirected to /ui/
    field = wait_for(browser, "input[name=key]")
    assert browser.current_url == engine.url + "/ui/"
    assert field.get_attribute("type") == "password"
    assert not browser.find_element(By.CSS_SELECTOR, "[data-test=menu]").is_displayed()
    shot(browser, "sign-in")

    field.send_keys("cbe_not-a-key-anybody-made")
    wait_for(browser, "[data-test=signin-submit]").click()
    error = wait_until(browser, lambda b: b.find_element(By.CSS_SELECTOR, "[data-test=signin-error]").text,
                       "the sign-in error shown")
    assert "not valid" in error
    assert browser.get_cookie(COOKIE) is None
    shot(browser, "sign-in-wrong-key")

    sign_in(browser, engine, engine.keys[ADMINISTRATOR])
    assert "env-administrator" in wait_for(browser, "[data-test=who]").text
    assert "administrator" in browser.find_element(By.CSS_SELECTOR, "[data-test=who]").text
    entries = menu_entries(browser)
    assert entries and "menu-keys" in entries, entries  # the administrator manages keys
    cookie = browser.get_cookie(COOKIE)
    assert cookie is not None and cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert COOKIE not in browser.execute_script("return document.cookie")  # scripts cannot read it
    assert engine.keys[ADMINISTRATOR] not in browser.page_source  # the key is not kept in the page
    shot(browser, "signed-in-administrator")

    browser.refresh()  # a reloaded page is still signed in (the cookie, then GET /ui/session)
    wait_for(browser, "[data-test=menu]")
    assert page_problems(browser) == []

    wait_for(browser, "[data-test=signout]").click()
    wait_for(browser, "input[name=key]")
    assert "signed out" in wait_for(browser, "[data-test=signin-error]").text
    assert not browser.find_element(By.CSS_SELECTOR, "[data-test=menu]").is_displayed()
    browser.refresh()  # the session is gone on the engine too, not only hidden
    wait_for(browser, "input[name=key]")
    assert not browser.find_element(By.CSS_SELECTOR, "#app").is_displayed()
    shot(browser, "signed-out")
    assert page_problems(browser) == []


def signed_in_as(browser) -> dict:
    """The page's own GET /ui/session (with its cookie): who it is and what it may do."""
    return browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/ui/session', {credentials: 'same-origin'}).then((r) => r.json()).then(done, (e) => done(String(e)));")


def test_a_monitors_menu_offers_only_reading(engine, browser) -> None:
    """The menu by role (every page's controls are checked in test_monitor_read_only.py)."""
    sign_in(browser, engine, engine.keys[ADMINISTRATOR])
    everything = menu_entries(browser)
    wait_for(browser, "[data-test=signout]").click()
    wait_for(browser, "input[name=key]")

    sign_in(browser, engine, engine.keys[MONITOR])
    assert "monitor" in wait_for(browser, "[data-test=who]").text
    entries = menu_entries(browser)
    shot(browser, "signed-in-monitor")
    assert entries, "a monitor reads: its menu is not empty"
    assert set(entries) < set(everything) and "menu-keys" not in entries, (entries, everything)
    answer = signed_in_as(browser)
    assert answer["role"] == "monitor" and answer["name"] == "console-monitor", answer
    changes = {name for name, allowed in answer["may"].items() if allowed and not name.endswith(".read")}
    assert changes == set(), changes
    assert page_problems(browser) == []
