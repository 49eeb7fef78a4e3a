"""Issue 13 items 2 and 4 in a real browser: the flows page lists the flows and draws a version's
state chart (the shipped callback flow fits a laptop's width; a parallel state shows its regions,
final states are double-framed); a developer uploads a bad flow and sees each problem with its line
and column, then a good one, and the new version appears with its sessions count."""

from __future__ import annotations

import uuid

from selenium.webdriver.common.by import By

from engine.roles import ADMINISTRATOR, DEVELOPER
from tests.support.browser import browser_log, shot, sign_in, wait_for, wait_until

GOOD = """<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="ecmascript" initial="work">
  <parallel id="work">
    <state id="left" initial="l1">
      <state id="l1">
        <transition event="l.next" cond="1 + 1 === 2 &amp;&amp; 'a long condition' !== 'b'" target="l2"/>
      </state>
      <final id="l2"/>
    </state>
    <state id="right">
      <state id="r1"><transition event="r.next" target="r2"/></state>
      <final id="r2"/>
    </state>
    <transition event="done.state.work" target="finished"/>
  </parallel>
  <final id="finished"/>
</scxml>
"""

# Line 3, column 5: a transition to a state that does not exist; line 5: one more.
BAD = """<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="ecmascript" initial="a">
  <state id="a">
    <transition event="go" target="nowhere"/>
  </state>
  <final id="b"><transition event="x" target="a"/></final>
</scxml>
"""


def page_errors(browser) -> list[str]:
    return [line for line in browser_log(browser) if "Content Security Policy" in line or "Uncaught" in line]


def texts(browser, css: str) -> list[str]:
    """The shown text of each match, read in one go (a page may redraw between two reads)."""
    return browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((e) => e.innerText.trim());", css)


def versions(browser) -> list[str]:
    return texts(browser, "[data-test=flow-version]")


def chart_states(browser) -> dict[str, str]:
    return browser.execute_script("return Object.fromEntries([...document.querySelectorAll("
                                  "'[data-test=statechart] g.state')].map((g) => [g.dataset.state, g.dataset.kind]));")


def test_the_shipped_callback_flow_is_drawn_within_a_laptop_screen(engine, browser) -> None:
    sign_in(browser, engine, engine.keys[ADMINISTRATOR])
    wait_for(browser, "[data-test=menu-flows]").click()
    names = wait_until(browser, lambda b: [a.text for a in b.find_elements(By.CSS_SELECTOR, "[data-test=flow-link]")],
                       "the flows listed")
    assert {"callback", "callback-python"} <= set(names), names
    shot(browser, "flows")
    next(a for a in browser.find_elements(By.CSS_SELECTOR, "[data-test=flow-link]") if a.text == "callback").click()
    wait_for(browser, "[data-test=flow-versions]")
    wait_for(browser, "[data-test=statechart]")
    described = engine.api("GET", "/admin/flows/callback").json()
    current = next(v for v in described["versions"] if v["version"] == described["current"])
    states = chart_states(browser)
    assert len(states) == current["states"], states  # every state of the document has its box
    assert states["service"] == "compound" and states["dialing"] == "compound" and states["exit"] == "final"
    assert browser.find_element(By.CSS_SELECTOR, "[data-test=statechart] [data-initial=service]")  # where it starts
    labels = browser.execute_script("return [...document.querySelectorAll('[data-test=statechart] .t-label')]"
                                    ".map((t) => t.textContent);")
    assert "vixn.created" in labels and "call.ended" in labels
    # At 1366 px the chart needs no sideways scrolling.
    widths = browser.execute_script("const s = document.querySelector('.statechart-scroll');"
                                    "return [s.scrollWidth, s.clientWidth];")
    assert widths[0] <= widths[1], widths
    shot(browser, "flow-callback")
    assert page_errors(browser) == []


def test_a_developer_uploads_a_bad_then_a_good_flow(engine, browser) -> None:
    name = f"journey-{uuid.uuid4().hex[:8]}"
    first = engine.api("PUT", f"/admin/flows/{name}", data=GOOD.replace("finished", "done_v1"),
                       headers={"Content-Type": "application/scxml+xml"})
    assert first.status_code == 200, first.text
    sign_in(browser, engine, engine.keys[DEVELOPER])
    browser.get(f"{engine.url}/ui/#/flows/{name}")
    wait_until(browser, lambda b: versions(b) == ["1"], "version 1 listed")
    form = wait_for(browser, "[data-test=flow-upload-form]")
    source = form.find_element(By.NAME, "flow-source")
    browser.execute_script("arguments[0].value = arguments[1];", source, BAD)
    form.find_element(By.CSS_SELECTOR, "[data-test=flow-upload]").click()
    problems = wait_until(browser, lambda b: texts(b, "[data-test=flow-problem]"), "the refused flow's problems")
    assert any(p.startswith("line 3, column 5") and "nowhere" in p for p in problems), problems
    assert all(p.startswith("line ") and ", column " in p for p in problems), problems
    assert "refused" in wait_for(browser, "[data-test=flow-problems]").text
    assert [v["version"] for v in engine.api("GET", f"/admin/flows/{name}").json()["versions"]] == [1]
    shot(browser, "flow-upload-refused")

    browser.execute_script("arguments[0].value = arguments[1];", source, GOOD)
    form.find_element(By.CSS_SELECTOR, "[data-test=flow-upload]").click()
    wait_until(browser, lambda b: versions(b) == ["2", "1"], "version 2 listed above version 1")
    assert engine.api("GET", f"/admin/flows/{name}").json()["current"] == 2
    running = texts(browser, "[data-test=running]")
    assert running == ["0", "0"], running  # nothing runs this flow
    wait_until(browser, lambda b: "finished" in chart_states(b), "version 2's chart drawn")
    states = chart_states(browser)
    assert states == {"work": "parallel", "left": "compound", "l1": "state", "l2": "final", "right": "compound",
                      "r1": "state", "r2": "final", "finished": "final"}, states
    # The condition is on the arrow's label, cut short; the whole of it is the arrow's tooltip.
    arrow = browser.execute_script(
        "const g = document.querySelector('[data-test=statechart] g.transition[data-event=\"l.next\"]');"
        "return [g.querySelector('.t-label').textContent, g.querySelector('title').textContent];")
    assert arrow[0].startswith("l.next [1 + 1") and arrow[0].endswith("…]"), arrow
    assert "'a long condition' !== 'b'" in arrow[1], arrow
    shot(browser, "flow-uploaded")

    browser.find_elements(By.CSS_SELECTOR, "[data-test=show-chart]")[1].click()  # version 1's chart again
    wait_until(browser, lambda b: "done_v1" in chart_states(b), "version 1's chart drawn")
    assert page_errors(browser) == []
