"""Issue 13 item 5, "keyboard reachable", in a real browser: signing in, moving through the menu and
opening a page take only keys; every control reached shows where the focus is; at tablet width the
folded menu opens from the keyboard too."""

from __future__ import annotations

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from engine.roles import ADMINISTRATOR
from tests.support.browser import shot, wait_for, wait_until

# What the focused element is, and whether it shows a focus ring (outline or box shadow).
FOCUSED = """
const el = document.activeElement;
if (!el || el === document.body) return null;
const style = getComputedStyle(el);
return {test: el.dataset.test || "", tag: el.tagName, text: (el.textContent || "").trim().slice(0, 40),
        ring: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0 || style.boxShadow !== "none"};
"""


def press(browser, *keys: str) -> None:
    ActionChains(browser).send_keys(*keys).perform()


def tab_until(browser, wanted, limit: int = 60) -> dict:
    """Press Tab until ``wanted(focused)``; every element passed on the way must show its focus."""
    seen = []
    for _ in range(limit):
        press(browser, Keys.TAB)
        focused = browser.execute_script(FOCUSED)
        if focused is None:
            continue
        seen.append(focused)
        assert focused["ring"], f"{focused} has the focus but shows no focus ring"
        if wanted(focused):
            return focused
    raise AssertionError(f"not reached with {limit} Tabs; focus went through {seen}")


def test_sign_in_and_move_through_the_console_with_the_keyboard_only(engine, browser) -> None:
    browser.get(engine.url + "/ui/")
    wait_for(browser, "input[name=key]")
    focused = wait_until(browser, lambda b: b.execute_script(FOCUSED), "the key field focused on load")
    assert focused["tag"] == "INPUT"
    press(browser, engine.keys[ADMINISTRATOR], Keys.ENTER)
    wait_for(browser, "[data-test=menu]")

    browser.refresh()  # still signed in (the cookie); Tab now starts from the top of the page
    wait_for(browser, "[data-test=menu]")
    first = tab_until(browser, lambda f: True)
    assert first["text"] == "Skip to content"  # the first stop skips the menu for keyboard users
    tab_until(browser, lambda f: f["test"] == "menu-queues")
    press(browser, Keys.ENTER)
    wait_until(browser, lambda b: b.execute_script("return location.hash") == "#/queues", "the queues page open")
    shot(browser, "keyboard-queues")


def test_the_folded_menu_opens_from_the_keyboard_at_tablet_width(engine, browser) -> None:
    browser.set_window_size(768, 1024)
    browser.get(engine.url + "/ui/")
    field = wait_for(browser, "input[name=key]")
    field.send_keys(engine.keys[ADMINISTRATOR], Keys.ENTER)
    toggle = wait_for(browser, "#menu-toggle")
    assert not browser.find_element("css selector", "[data-test=menu]").is_displayed()  # folded

    browser.execute_script("document.activeElement.blur(); window.scrollTo(0, 0);")
    tab_until(browser, lambda f: f["tag"] == "BUTTON" and f["text"] == "Menu")
    press(browser, Keys.ENTER)
    wait_until(browser, lambda b: b.find_element("css selector", "[data-test=menu]").is_displayed(),
               "the menu unfolded")
    assert toggle.get_attribute("aria-expanded") == "true"
    tab_until(browser, lambda f: f["test"] == "menu-flows")
    press(browser, Keys.ENTER)
    wait_until(browser, lambda b: b.execute_script("return location.hash") == "#/flows", "the flows page open")
    assert not browser.find_element("css selector", "[data-test=menu]").is_displayed()  # folded again
    shot(browser, "keyboard-tablet-flows")
