"""Issue 13 item 3 in a real browser: values a client supplied are shown as text, never run. A callback
whose values hold a <script> and an "><img onerror> payload is opened in the list and on its page;
a flow whose condition and a refused flow whose target hold them are drawn and reported. Nothing
sets window.__xss, no element is made of the payloads, and each payload reads back literally."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from selenium.webdriver.common.by import By

from engine.roles import ADMINISTRATOR, CLIENT
from tests.support.browser import browser_log, shot, sign_in, wait_for, wait_until

SCRIPT = "<script>window.__xss=1</script>"
IMG = '"><img src=x onerror="window.__xss=2">'
FLOW_SCRIPT = "<script>window.__xss=3</script>"
FLOW_IMG = '"><img src=x onerror="window.__xss=4">'
TARGET_IMG = '"><img/src=x/onerror=window.__xss=5>'  # a target is a list split at spaces: none here


def xml_attr(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def nothing_ran(browser) -> None:
    """Give a payload that got in the time to run (an image's error event fires once its load
    fails, which for src=x takes a few milliseconds), then check it did not."""
    ran = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const count = () => document.querySelectorAll('#main img, #main script').length;"
        "setTimeout(() => done([typeof window.__xss, count()]), 500);")
    assert ran == ["undefined", 0], ran


def shown(browser, css: str) -> list[str]:
    return browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((e) => e.innerText.trim());", css)


def test_a_callbacks_payloads_are_shown_as_text_in_the_list_and_on_its_page(engine, browser) -> None:
    marker = f"xss-{uuid.uuid4().hex[:8]}"
    due = (datetime.now(UTC) + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    made = engine.api("POST", "/genesys/1/service/callback/callback", CLIENT, json={
        "_customer_number": "+15551239031", "_desired_time": due, "note": SCRIPT, "label": IMG,
        "both": f"{marker} {SCRIPT} {IMG}"})
    assert made.status_code == 200, made.text
    callback_id = made.json()["_id"]
    # A key cannot hold a payload: the API refuses such a name before any page could show it.
    refused = engine.api("POST", "/genesys/1/service/callback/callback", CLIENT,
                         json={"_customer_number": "+15551239031", SCRIPT: "x"})
    assert refused.status_code == 400, refused.text

    sign_in(browser, engine, engine.keys[ADMINISTRATOR])
    browser.get(engine.url + "/ui/#/callbacks")
    filters = wait_for(browser, "[data-test=callback-filters]")
    filters.find_element(By.NAME, "q").send_keys(marker)
    filters.find_element(By.CSS_SELECTOR, "[data-test=search]").click()
    wait_until(browser, lambda b: shown(b, "[data-test=callback-link]") == [callback_id], "the callback found")
    nothing_ran(browser)
    shot(browser, "xss-callbacks-list")

    wait_for(browser, "[data-test=callback-link]").click()
    wait_for(browser, "[data-test=record] dd[data-key=note]")
    assert shown(browser, "[data-test=record] dd[data-key=note]") == [SCRIPT]
    assert shown(browser, "[data-test=record] dd[data-key=label]") == [IMG]
    assert shown(browser, "[data-test=record] dd[data-key=both]") == [f"{marker} {SCRIPT} {IMG}"]
    # The status events carry the record's values too: shown as text in their data.
    wait_until(browser, lambda b: shown(b, "[data-test=events] tbody tr"), "the status events")
    browser.execute_script("document.querySelectorAll('[data-test=events] details').forEach((d) => d.open = true);")
    nothing_ran(browser)
    shot(browser, "xss-callback-detail")
    assert not [line for line in browser_log(browser) if "Uncaught" in line or "Content Security Policy" in line]


def test_a_flows_payloads_are_drawn_and_reported_as_text(engine, browser) -> None:
    name = f"xss-{uuid.uuid4().hex[:8]}"
    cond = f"'{FLOW_SCRIPT}' !== '{FLOW_IMG}'"
    flow = (f'<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="ecmascript" initial="a">\n'
            f'  <state id="a">\n    <transition event="go" cond="{xml_attr(cond)}" target="b"/>\n  </state>\n'
            f'  <final id="b"/>\n</scxml>\n')
    made = engine.api("PUT", f"/admin/flows/{name}", data=flow, headers={"Content-Type": "application/scxml+xml"})
    assert made.status_code == 200, made.text

    sign_in(browser, engine, engine.keys[ADMINISTRATOR])
    browser.get(f"{engine.url}/ui/#/flows/{name}")
    wait_for(browser, "[data-test=statechart]")
    tooltip = browser.execute_script(
        "return document.querySelector('[data-test=statechart] g.transition[data-event=go] title').textContent;")
    assert tooltip == f"on go if {cond}"
    nothing_ran(browser)
    shot(browser, "xss-flow-chart")

    # A refused version whose target holds a payload: the problem names it, as text.
    bad = flow.replace('target="b"', f'target="{xml_attr(TARGET_IMG)}"')
    form = wait_for(browser, "[data-test=flow-upload-form]")
    browser.execute_script("arguments[0].value = arguments[1];", form.find_element(By.NAME, "flow-source"), bad)
    form.find_element(By.CSS_SELECTOR, "[data-test=flow-upload]").click()
    problems = wait_until(browser, lambda b: shown(b, "[data-test=flow-problem]"), "the refused flow's problems")
    assert any(TARGET_IMG in p for p in problems), problems
    nothing_ran(browser)
    shot(browser, "xss-flow-refused")
