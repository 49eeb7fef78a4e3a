"""Issue 13 items 2 and 4 in a real browser: a callback created in the console is watched on its page
until COMPLETED (the timeline, the status events and the flow's chart with its final state
active); the list finds callbacks by their filters; one callback is cancelled and another
rescheduled from their pages; the queues page shows what GET /admin/queues says."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select

from engine.roles import ADMINISTRATOR, CLIENT
from tests.support.browser import browser_log, shot, sign_in, wait_for, wait_until

COMPLETION_SECONDS = 60.0  # a callback takes about ten seconds at the harness's time scale


def texts(browser, css: str) -> list[str]:
    """The shown text of each match, read in one go (the pages redraw as they refresh)."""
    return browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((e) => e.innerText.trim());", css)


def shown_text(browser, css: str) -> str:
    return (texts(browser, css) or [""])[0]


def page_errors(browser) -> list[str]:
    return [line for line in browser_log(browser) if "Content Security Policy" in line or "Uncaught" in line]


def scheduled(engine, number: str, **keys: str) -> str:
    """A callback due in a week (it stays SCHEDULED while the test works on it); its id."""
    due = (datetime.now(UTC) + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    made = engine.api("POST", "/genesys/1/service/callback/callback", CLIENT,
                      json={"_customer_number": number, "_desired_time": due, **keys})
    assert made.status_code == 200, made.text
    return made.json()["_id"]


def record(engine, callback_id: str) -> dict:
    found = engine.api("GET", f"/admin/callbacks/{callback_id}/history")
    assert found.status_code == 200, found.text
    return found.json()["record"]


def test_a_callback_created_in_the_console_reaches_completed_on_its_page(engine, browser) -> None:
    order = f"T-{uuid.uuid4().hex[:8]}"
    sign_in(browser, engine, engine.keys[ADMINISTRATOR])
    wait_for(browser, "[data-test=menu-callbacks]").click()
    wait_for(browser, "[data-test=callback-list]:not([aria-busy])")
    shot(browser, "callbacks-list")
    wait_for(browser, "[data-test=new-callback]").click()
    form = wait_for(browser, "[data-test=new-callback-form]")
    form.find_element(By.NAME, "_customer_number").send_keys("+15551239013")
    form.find_element(By.CSS_SELECTOR, "[data-test=add-key]").click()
    row = wait_for(browser, "[data-test=key-row]")
    row.find_element(By.NAME, "key").send_keys("order")
    row.find_element(By.NAME, "value").send_keys(order)
    shot(browser, "callbacks-new")
    form.find_element(By.CSS_SELECTOR, "[data-test=create]").click()

    wait_until(browser, lambda b: "#/callbacks/" in b.current_url and not b.current_url.endswith("/new"),
               "the new callback's page opened")
    callback_id = browser.current_url.rsplit("/", 1)[1]
    assert record(engine, callback_id)["order"] == order  # the key went in as typed
    wait_for(browser, "[data-test=record] dd[data-key=order]")
    assert shown_text(browser, "[data-test=record] dd[data-key=order]") == order
    assert shown_text(browser, "[data-test=record] dd[data-key=_customer_number]") == "+15551239013"

    state = wait_until(browser, lambda b: "COMPLETED" in shown_text(b, "[data-test=detail-state]")
                       and shown_text(b, "[data-test=detail-state]"),
                       "the callback COMPLETED on its page", timeout=COMPLETION_SECONDS)
    assert "AGENT_CONNECTED" in state
    # The page refreshed itself to the end: the timeline ends in COMPLETED, after QUEUED.
    rows = "[data-test=timeline] tbody tr"
    timeline = wait_until(browser, lambda b: any("COMPLETED" in r for r in texts(b, rows)) and texts(b, rows),
                          "the timeline's COMPLETED row")
    assert any("QUEUED" in row for row in timeline), timeline
    assert "AGENT_CONNECTED" in timeline[-1] and "COMPLETED" in timeline[-1], timeline
    events = wait_until(browser, lambda b: texts(b, "[data-test=events] tbody tr"), "status events shown")
    assert any("_cbe_on_callback_submitted" in e for e in events), events
    assert any("_cbe_on_service_exit" in e for e in events), events
    # The flow's chart is drawn and marks the session's final state, and only the final state.
    final = wait_for(browser, "[data-test=statechart] g.state[data-state=exit]")
    wait_until(browser, lambda b: final.get_attribute("data-active") == "true", "the final state marked active")
    assert final.get_attribute("data-kind") == "final"
    active = browser.execute_script("return [...document.querySelectorAll("
                                    "'[data-test=statechart] g.state[data-active=true]')].map((g) => g.dataset.state);")
    assert active == ["exit"], active
    assert shown_text(browser, "[data-test=active-states]") == "exit"
    assert browser.find_elements(By.CSS_SELECTOR, "[data-test=actions] button") == []  # nothing to change now
    shot(browser, "callback-completed")
    assert page_errors(browser) == []


@contextmanager
def receiver_at(url: str) -> Iterator[list[int]]:
    """An HTTP receiver of status notifications at ``url``'s port (the harness lets the engine call
    only that loopback port, where nothing listens otherwise): it answers 500 to the first request
    and 200 to the others; yields the statuses it answered."""
    answered: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = 500 if not answered else 200
            answered.append(status)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", urlsplit(url).port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield answered
    finally:
        server.shutdown()
        server.server_close()


def test_a_callbacks_status_notifications_show_each_attempt(engine, browser) -> None:
    allowed = engine.process.settings["fcm_base_url"]  # the one loopback address outbound calls may reach
    with receiver_at(allowed) as answered:
        made = engine.api("POST", "/genesys/1/service/callback/callback", CLIENT, json={
            "_customer_number": "+15551239051", "_enable_status_notification": "subscribe_notify",
            "_status_notification_target": allowed + "/hook"})
        assert made.status_code == 200, made.text
        sign_in(browser, engine, engine.keys[ADMINISTRATOR])
        browser.get(f"{engine.url}/ui/#/callbacks/{made.json()['_id']}")
        retried = ("[data-test=delivery]:has([data-test=delivery-status].result-delivered)"
                   ":has([data-test=delivery-attempts])")
        # The delivery the receiver refused once: delivered at its second attempt.
        wait_until(browser, lambda b: any("2 attempts" in t for t in texts(b, retried)),
                   "a delivery delivered at its second attempt")
        browser.execute_script(
            "[...document.querySelectorAll(arguments[0])].find((d) => d.innerText.includes('2 attempts'))"
            ".querySelector('summary').click();", retried)
        rows = wait_until(browser, lambda b: texts(b, "[data-test=delivery][open] tbody tr"), "its attempts unfolded")
        assert len(rows) == 2, rows
        assert "retry" in rows[0] and "500" in rows[0] and "delivered" in rows[1] and "200" in rows[1], rows
        assert answered[0] == 500 and 200 in answered
        browser.execute_script("document.querySelector('[data-test=delivery][open]').scrollIntoView();")
        shot(browser, "callback-deliveries")
        # It stays unfolded while the page refreshes with the notifications of the next states.
        seen = len(texts(browser, "[data-test=delivery]"))
        wait_until(browser, lambda b: len(texts(b, "[data-test=delivery]")) > seen, "more notifications shown",
                   timeout=COMPLETION_SECONDS)
        assert texts(browser, "[data-test=delivery][open] tbody tr") == rows
    assert page_errors(browser) == []


def test_the_list_finds_callbacks_by_number_and_search(engine, browser) -> None:
    number = "+1555124" + str(uuid.uuid4().int)[:4]
    marker = f"find-{uuid.uuid4().hex[:10]}"
    first = scheduled(engine, number, note=marker)
    other = scheduled(engine, number)
    sign_in(browser, engine, engine.keys[ADMINISTRATOR])
    browser.get(engine.url + "/ui/#/callbacks")
    filters = wait_for(browser, "[data-test=callback-filters]")
    filters.find_element(By.NAME, "number").send_keys(number)
    filters.find_element(By.CSS_SELECTOR, "[data-test=search]").click()
    shown = wait_until(browser, lambda b: sorted(texts(b, "[data-test=callback-link]")) == sorted([first, other])
                       and texts(b, "[data-test=callback-link]"), "the number's two callbacks listed")
    assert shown == [other, first]  # newest first
    assert "of 2" in shown_text(browser, "[data-test=pager]")

    # With a state too: both are SCHEDULED, so none is COMPLETED.
    Select(filters.find_element(By.NAME, "state")).select_by_value("COMPLETED")
    filters.find_element(By.CSS_SELECTOR, "[data-test=search]").click()
    wait_for(browser, "[data-test=callback-table-empty]")
    Select(filters.find_element(By.NAME, "state")).select_by_value("SCHEDULED")
    filters.find_element(By.CSS_SELECTOR, "[data-test=search]").click()
    wait_until(browser, lambda b: len(texts(b, "[data-test=callback-link]")) == 2, "the two SCHEDULED callbacks")

    filters.find_element(By.CSS_SELECTOR, "[data-test=clear]").click()
    filters.find_element(By.NAME, "q").send_keys(marker)
    filters.find_element(By.CSS_SELECTOR, "[data-test=search]").click()
    wait_until(browser, lambda b: texts(b, "[data-test=callback-link]") == [first], "the searched callback alone")
    shot(browser, "callbacks-search")
    wait_for(browser, "[data-test=callback-link]").click()
    wait_for(browser, "[data-test=record] dd[data-key=note]")
    assert shown_text(browser, "[data-test=record] dd[data-key=note]") == marker
    assert page_errors(browser) == []


def test_cancel_one_callback_and_reschedule_another_from_their_pages(engine, browser) -> None:
    to_cancel = scheduled(engine, "+15551239021")
    to_move = scheduled(engine, "+15551239022")
    sign_in(browser, engine, engine.keys[ADMINISTRATOR])

    browser.get(f"{engine.url}/ui/#/callbacks/{to_cancel}")
    assert "SCHEDULED" in wait_for(browser, "[data-test=detail-state]").text
    wait_for(browser, "[data-test=cancel]").click()
    wait_for(browser, "[data-test=cancel-confirm]")
    shot(browser, "callback-cancel-confirm")
    wait_for(browser, "[data-test=cancel-yes]").click()
    wait_until(browser, lambda b: "CANCELLED" in shown_text(b, "[data-test=detail-state]"),
               "the cancelled callback shown COMPLETED, CANCELLED")
    assert record(engine, to_cancel)["_callback_reason"] == "CANCELLED"
    wait_until(browser, lambda b: any("cancelled" in t for t in texts(b, "[data-test=toast-ok]")), "its message")
    wait_until(browser, lambda b: not b.find_elements(By.CSS_SELECTOR, "[data-test=cancel]"), "the actions gone")
    shot(browser, "callback-cancelled")

    browser.get(f"{engine.url}/ui/#/callbacks/{to_move}")
    wait_for(browser, "[data-test=reschedule-form]")
    later = (datetime.now(UTC) + timedelta(days=9)).replace(second=0, microsecond=0)
    local = later.strftime("%Y-%m-%dT%H:%M")
    # The browser's local time of that moment (the headless browser's zone may differ from ours).
    wanted = browser.execute_script(
        "const when = document.querySelector('[name=_new_desired_time]');"
        "when.value = arguments[0]; return new Date(arguments[0]).toISOString();", local)
    wait_for(browser, "[data-test=reschedule]").click()
    wait_until(browser, lambda b: shown_text(b, "[data-test=record] dd[data-key=_desired_time]")
               == wanted, "the new desired time shown")
    assert record(engine, to_move)["_desired_time"] == wanted
    assert record(engine, to_move)["_callback_state"] == "SCHEDULED"
    wait_until(browser, lambda b: any("rescheduled" in t for t in texts(b, "[data-test=toast-ok]")), "its message")
    shot(browser, "callback-rescheduled")
    assert page_errors(browser) == []


def test_the_queues_page_shows_each_queue_its_agents_and_callbacks(engine, browser) -> None:
    # A number the simulator finds busy at every dial: its callback stays QUEUED between retries.
    made = engine.api("POST", "/genesys/1/service/callback/callback", CLIENT, json={"_customer_number": "+15550009041"})
    assert made.status_code == 200, made.text
    waiting = made.json()["_id"]
    queues = engine.api("GET", "/admin/queues").json()["queues"]
    sign_in(browser, engine, engine.keys[ADMINISTRATOR])
    wait_for(browser, "[data-test=menu-queues]").click()
    shown = wait_until(browser, lambda b: b.execute_script(
        "return [...document.querySelectorAll('[data-test=queue]')].map((p) => [p.dataset.queue,"
        " p.querySelector('[data-test=queue-staffed] .figure-value').textContent]);"), "the queues shown")
    assert shown == [[q["name"], str(q["agents_staffed"])] for q in queues]
    # It polls: the time of the last answer moves on by itself.
    wait_for(browser, "[data-test=queues-updated] time")
    updated = "return document.querySelector('[data-test=queues-updated] time').getAttribute('datetime');"
    first = browser.execute_script(updated)
    wait_until(browser, lambda b: b.execute_script(updated) != first, "the queues refreshed")
    link = f"[data-test=queue][data-queue=Callback_VQ] [data-test=queue-callback][href='#/callbacks/{waiting}']"
    wait_for(browser, link)
    shot(browser, "queues")
    browser.execute_script("document.querySelector(arguments[0]).click();", link)  # found and followed at once:
    wait_for(browser, "[data-test=record] dd[data-key=_id]")  # the list is redrawn every 2 s
    assert shown_text(browser, "[data-test=record] dd[data-key=_id]") == waiting
    assert page_errors(browser) == []
    engine.api("DELETE", f"/genesys/1/service/callback/callback/{waiting}")  # its agent back for the other tests
