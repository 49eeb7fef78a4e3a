"""Issue 13 item 4, "a monitor cannot change anything", in a real browser: a monitor's key signs in,
every page its menu offers (the callbacks, queues and flows pages and the administration pages,
with their detail pages) shows no control that changes something (no create, edit, upload,
import, replay, cancel, update or test button, no file input, no editable configuration field),
and a change forced from the monitor's own browser session (fetch with the session's CSRF token)
is answered 403 by the engine."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from engine.roles import ADMINISTRATOR, CLIENT, MONITOR
from tests.support.browser import browser_log, shot, sign_in, start_browser, wait_for, wait_until

CHANGE = re.compile(r"^\s*(create|new|add|save|upload|import|preview|replay|delete|remove|revoke|rotate|reschedule|"
                    r"cancel|update|apply|enable|set|test|send|call in|edit)\b", re.IGNORECASE)
# Fields that configure something; the monitor may still use filters, search and paging.
CONFIG_FIELDS = ("[data-test=service-form] input:not([disabled]), [data-test=service-form] select:not([disabled]), "
                 "textarea:not([readonly]):not([disabled]), input[type=file], [name=private_key], [name=client_email], "
                 "[name=list-text], [name=key_name]")
# Pages only reached from another page (their detail pages).
DETAILS = ("#/services/callback", "#/transaction-lists/GMS_Events", "#/flows/callback")
# Changes a monitor's session might try: (method, path, JSON body or text).
FORCED = [
    ("PUT", "/admin/services/callback", {"_service": "callback"}),
    ("PUT", "/admin/transaction-lists/Forced", "[_cbe_on_service_create]\nnotify_params = _service_id\n"),
    ("PUT", "/admin/push/credentials", {"project_id": "forced-project", "client_email": "a@b.cd", "private_key": "x"}),
    ("POST", "/admin/push/credentials/test", {}),
    ("POST", "/admin/dead-letters/1/replay", None),
    ("PUT", "/admin/simulator", {}),
    ("POST", "/admin/simulator/call-in", {"number": "+15550000000", "access_code": "1"}),
    ("POST", "/admin/keys", {"name": "forced", "role": "administrator"}),
    ("PUT", "/admin/flows/forced", "<scxml xmlns='http://www.w3.org/2005/07/scxml' version='1.0'/>"),
    ("POST", "/genesys/1/service/callback/callback", {"_customer_number": "+15550000000"}),
]


def drawn(browser: WebDriver) -> bool:
    return bool(browser.execute_script(
        "const main = document.querySelector('#main');"
        "return main && main.children.length > 0 && !main.querySelector('[aria-busy=true]');"))


def offered_changes(browser: WebDriver) -> list[str]:
    found = []
    controls = browser.find_elements(By.CSS_SELECTOR, "#main button, #main input[type=submit], #main [role=button]")
    for control in controls:
        label = control.text or control.get_attribute("value") or control.get_attribute("aria-label") or ""
        if control.is_displayed() and control.is_enabled() and CHANGE.match(label):
            found.append(f"button {label.strip()!r}")
    for field in browser.find_elements(By.CSS_SELECTOR, "#main :is(" + CONFIG_FIELDS + ")"):
        found.append(f"field {field.get_attribute('name') or field.tag_name!r}")
    return found


@pytest.fixture(scope="module")
def monitor(engine, tmp_path_factory) -> Iterator[WebDriver]:
    """A monitor's browser, signed in once for the tests of this module."""
    driver = start_browser(tmp_path_factory.mktemp("monitor-browser") / "profile")
    try:
        sign_in(driver, engine, engine.keys[MONITOR])
        assert "monitor" in wait_for(driver, "[data-test=who]").text
        yield driver
    finally:
        browser_log(driver)
        driver.quit()


def test_no_page_offers_a_monitor_a_change(engine, monitor) -> None:
    due = (datetime.now(UTC) + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    made = engine.api("POST", "/genesys/1/service/callback/callback", CLIENT,
                      json={"_customer_number": "+15551230014", "_desired_time": due})
    assert made.status_code == 200, made.text
    menu = {a.get_attribute("data-test"): a.get_attribute("href")
            for a in monitor.find_elements(By.CSS_SELECTOR, "[data-test=menu] a[data-test]")}
    for page in ("menu-services", "menu-transaction-lists", "menu-dead-letters",
                 "menu-simulator", "menu-reports", "menu-call-ins"):
        assert page in menu, f"a monitor reads {page}: {sorted(menu)}"
    assert "menu-keys" not in menu
    assert "menu-developer-push" not in menu  # seed 002: the developer's and the administrator's page
    pages = {**menu, **{d: f"{engine.url}/ui/{d}" for d in DETAILS},
             "callback-detail": f"{engine.url}/ui/#/callbacks/{made.json()['_id']}"}
    offered = scan(monitor, pages, "monitor")
    assert offered == {}, f"a monitor is offered changes: {offered}"
    problems = [line for line in browser_log(monitor) if "Content Security Policy" in line or "Uncaught" in line]
    assert problems == []


def scan(browser: WebDriver, pages: dict[str, str], prefix: str) -> dict[str, list[str]]:
    """Open each page; the change controls each offers. Screenshots ``<prefix>-<page>``."""
    offered = {}
    for name, href in pages.items():
        browser.get(href)
        wait_until(browser, drawn, f"the page {href} drawn")
        if name == "menu-developer-push":
            wait_for(browser, "[data-test=push-readback] :is(dl, p)")
        found = offered_changes(browser)
        if found:
            offered[name] = found
        shot(browser, prefix + "-" + name.removeprefix("menu-").replace("#/", "").replace("/", "-"))
    return offered


def test_the_same_scan_finds_the_administrators_changes(engine, browser) -> None:
    """Guards the scan above: on the same pages, an administrator is offered its changes."""
    sign_in(browser, engine, engine.keys[ADMINISTRATOR])
    pages = {name: f"{engine.url}/ui/{name}" for name in (
        "#/services/callback", "#/transaction-lists", "#/developer/push", "#/simulator", "#/keys")}
    offered = scan(browser, pages, "administrator")
    assert set(offered) == set(pages), offered
    assert any("'Save'" in f for f in offered["#/services/callback"]) and \
        any("_max_dial_attempts" in f for f in offered["#/services/callback"])
    assert any("list-file" in f for f in offered["#/transaction-lists"])
    assert any("'Update'" in f for f in offered["#/developer/push"])


def test_a_change_forced_from_a_monitors_session_is_refused(engine, monitor) -> None:
    answers = monitor.execute_async_script("""
        const [forced, done] = [arguments[0], arguments[arguments.length - 1]];
        (async () => {
          const me = await (await fetch('/ui/session', {credentials: 'same-origin'})).json();
          const out = [];
          for (const [method, path, body] of forced) {
            const headers = {'X-CSRF-Token': me.csrf};
            let payload;
            if (typeof body === 'string') { payload = body; headers['Content-Type'] = 'text/plain'; }
            else if (body !== null) { payload = JSON.stringify(body); headers['Content-Type'] = 'application/json'; }
            const r = await fetch(path, {method, headers, body: payload, credentials: 'same-origin'});
            out.push([method, path, r.status, await r.text()]);
          }
          return [me.role, me.csrf.length, out];
        })().then(done, (e) => done(['failed', String(e)]));
    """, FORCED)
    role, csrf_length, results = answers
    assert role == MONITOR and csrf_length > 10
    assert len(results) == len(FORCED)
    for method, path, status, body in results:
        assert status == 403, f"{method} {path} answered {status}: {body}"
        assert "CSRF" not in body, body  # refused for the role, not for a missing token
    # and nothing changed
    assert engine.api("GET", "/admin/transaction-lists/Forced").status_code == 404
    assert engine.api("GET", "/admin/keys/forced").status_code == 404
