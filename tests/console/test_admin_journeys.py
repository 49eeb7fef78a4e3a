"""Issue 13 item 4, the administration journeys in a real browser (headless Chromium): edit a
service with a bad then a good value; import the seed's GMS_Events.cfg and see its preview (and a
broken list refused with its line); set push credentials and see them obfuscated after a reload
(the full email and key in no page and no answer the page got), test them; replay a dead letter;
create, rotate and revoke a key (its secret shown once); the simulator refusing a bad setting and
a wrong call-in code; the report with its CSV; the click-to-call-in records. Every page leaves a
screenshot in tests/console/screenshots/."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from engine.roles import ADMINISTRATOR, CLIENT
from tests.conftest import SHARED
from tests.support.browser import browser_log, shot, sign_in, start_browser, wait_for, wait_until
from tests.support.fake_google import EMAIL, PROJECT, new_key

SEED = SHARED / "seeds" / "000_e632c6894d64fa52.txt"


def seed_events_cfg() -> str:
    """The seed's own GMS_Events.cfg sample, cut out of the document verbatim."""
    m = re.search(r"```\n(\[properties\].*?)```", SEED.read_text(), re.S)
    assert m, "the seed's GMS_Events.cfg sample was not found"
    return m.group(1)


def page_problems(browser: WebDriver) -> list[str]:
    """Script errors and CSP violations the page logged."""
    return [line for line in browser_log(browser)
            if "Content Security Policy" in line or "Uncaught" in line or "SyntaxError" in line]


@pytest.fixture(scope="module")
def browser(engine, tmp_path_factory) -> Iterator[WebDriver]:
    """In this module: one administrator's browser, signed in once, for every journey (a browser
    start costs seconds); each journey opens its page afresh."""
    driver = start_browser(tmp_path_factory.mktemp("admin-browser") / "profile")
    try:
        sign_in(driver, engine, engine.keys[ADMINISTRATOR])
        yield driver
    finally:
        browser_log(driver)
        driver.quit()


def open_page(browser: WebDriver, engine, hash_: str, ready_css: str):
    """The page loaded anew (no message of an earlier journey left on it)."""
    browser.get(f"{engine.url}/ui/{hash_}")
    browser.refresh()
    return wait_for(browser, ready_css)


def toast(browser: WebDriver, kind: str, words: str) -> str:
    """The text of the result message ("ok" or "error", bottom right) holding ``words``, once shown."""
    def shown(b: WebDriver) -> str:
        notes = b.find_elements(By.CSS_SELECTOR, f"[data-test=toast-{kind}]")
        return next((t.text for t in notes if words in t.text), "")

    return wait_until(browser, shown, f"the {kind} message {words!r}")


def set_value(browser: WebDriver, element, value: str) -> None:
    """Types nothing: sets a long value at once (a whole list or key), as a paste would."""
    browser.execute_script("arguments[0].value = arguments[1];", element, value)


def test_edit_a_service_with_a_bad_then_a_good_value(engine, browser) -> None:
    open_page(browser, engine, "#/services", "[data-test=services]")
    shot(browser, "services-list")
    # a new service, copied from the shipped one
    form = browser.find_element(By.CSS_SELECTOR, "[data-test=new-service]")
    form.find_element(By.NAME, "service_name").send_keys("console-edit")
    form.find_element(By.CSS_SELECTOR, "select[name=service_copy] option[value=callback]").click()
    wait_for(browser, "[data-test=new-service-button]").click()
    attempts = wait_for(browser, "[data-test=service-form] input[name=_max_dial_attempts]")
    assert browser.current_url.endswith("#/services/console-edit")
    assert engine.api("GET", "/admin/services/console-edit").json()["configured"] == \
        engine.api("GET", "/admin/services/callback").json()["configured"]
    assert attempts.get_attribute("value") == "3"
    row = browser.find_element(By.CSS_SELECTOR, "tr[data-option=_max_dial_attempts]").text
    assert "outbound attempts before giving up" in row and "at least 1" in row  # description and validation
    hours = wait_for(browser, "[data-test=business-hours]").text
    assert "names no business hours" in hours

    attempts.clear()
    attempts.send_keys("0")
    wait_for(browser, "[data-test=service-save]").click()
    error = wait_until(browser, lambda b: b.find_element(By.CSS_SELECTOR, "[data-test=service-error]").text,
                       "the refusal shown next to the form")
    assert "_max_dial_attempts must be at least 1" in error, error
    assert engine.api("GET", "/admin/services/console-edit").json()["configured"]["_max_dial_attempts"] == 3
    shot(browser, "services-refused")

    attempts.clear()
    attempts.send_keys("5")
    hours_field = browser.find_element(By.CSS_SELECTOR, "[data-test=service-form] input[name=_business_hours_service]")
    hours_field.send_keys("office")
    wait_for(browser, "[data-test=service-save]").click()
    toast(browser, "ok", "saved")
    assert browser.find_element(By.CSS_SELECTOR, "[data-test=service-error]").text == ""
    configured = engine.api("GET", "/admin/services/console-edit").json()["configured"]
    assert configured["_max_dial_attempts"] == 5 and configured["_business_hours_service"] == "office"
    browser.refresh()
    shown = wait_for(browser, "[data-test=service-form] input[name=_max_dial_attempts]")
    assert shown.get_attribute("value") == "5"
    office = engine.api("GET", "/admin/business-hours/office").json()
    zone = wait_for(browser, "[data-test=hours-form] input[name=hours_time_zone]")  # the hours it names
    assert zone.get_attribute("value") == "Europe/Paris"
    assert browser.find_element(By.NAME, "hours_mon").get_attribute("value") == "09:00-12:30, 13:30-18:00"
    zone.clear()
    zone.send_keys("Mars/Olympus_Mons")
    wait_for(browser, "[data-test=hours-save]").click()
    refused = wait_until(browser, lambda b: b.find_element(By.CSS_SELECTOR, "[data-test=hours-error]").text,
                         "the business hours refused")
    assert "business hours 'office' refused" in refused and "Mars/Olympus_Mons" in refused, refused
    assert engine.api("GET", "/admin/business-hours/office").json()["time_zone"] == "Europe/Paris"
    zone.clear()
    zone.send_keys("Europe/Paris")
    wait_for(browser, "[data-test=hours-save]").click()
    toast(browser, "ok", "Business hours office saved")
    assert engine.api("GET", "/admin/business-hours/office").json() == office  # saved back as it was shown
    shot(browser, "services-detail")
    assert page_problems(browser) == []


def test_import_the_seeds_transaction_list_and_see_its_preview(engine, browser, tmp_path) -> None:
    seed = seed_events_cfg()
    cfg = tmp_path / "SeedEvents.cfg"
    cfg.write_text(seed)
    open_page(browser, engine, "#/transaction-lists", "[data-test=list-import]")

    # a broken list first: refused with the line that is wrong
    broken = seed.rstrip("\n") + "\n[_cbe_on_broken\nnotify_params = _service_id\n"
    set_value(browser, browser.find_element(By.NAME, "list-text"), broken)
    browser.find_element(By.NAME, "list-name").send_keys("SeedEvents")
    wait_for(browser, "[data-test=list-preview-button]").click()
    where = wait_for(browser, "[data-test=list-error-where]").text
    assert f"line {len(broken.splitlines()) - 1}" in where, where
    assert "is not closed with ']'" in wait_for(browser, "[data-test=list-error]").text
    shot(browser, "transaction-lists-refused")

    # the seed's own file, chosen with the file input, as it is
    browser.find_element(By.NAME, "list-name").clear()
    browser.find_element(By.NAME, "list-file").send_keys(str(cfg))
    wait_until(browser, lambda b: b.find_element(By.NAME, "list-text").get_attribute("value") == seed,
               "the file read into the text box")
    assert browser.find_element(By.NAME, "list-name").get_attribute("value") == "SeedEvents"
    wait_for(browser, "[data-test=list-preview-button]").click()
    preview = wait_for(browser, "[data-test=list-preview]")
    events = re.findall(r"^\[(_cbe_on_\w+)\]", seed, re.M)
    assert events and len(preview.find_elements(By.CSS_SELECTOR, "tbody tr")) == len(events)
    assert "_cbe_on_service_create" in preview.text and '"name1": "value1"' in preview.text  # notify_custom
    shot(browser, "transaction-lists-preview")
    wait_for(browser, "[data-test=list-save]").click()
    wait_until(browser, lambda b: b.current_url.endswith("#/transaction-lists/SeedEvents"), "the saved list opened")
    saved_preview = wait_for(browser, "[data-test=list-preview]")
    assert len(saved_preview.find_elements(By.CSS_SELECTOR, "tbody tr")) == len(events)
    assert engine.api("GET", "/admin/transaction-lists/SeedEvents?format=text").text == seed
    shot(browser, "transaction-list-detail")
    assert page_problems(browser) == []


def answers_the_page_got(browser: WebDriver) -> list[str]:
    """Every API answer this page load fetched (its GETs, read again), as text."""
    return browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const urls = [...new Set(performance.getEntriesByType('resource').map((e) => e.name)
            .filter((u) => u.startsWith(location.origin) && !u.includes('/ui/')))];
        Promise.all(urls.map((u) => fetch(u, {credentials: 'same-origin'}).then((r) => r.text())))
            .then(done, (e) => done(['failed: ' + e]));
    """)


def test_set_push_credentials_and_see_them_obfuscated(engine, browser) -> None:
    pem, _ = new_key()
    body_lines = pem.strip().splitlines()[1:-1]
    heading = open_page(browser, engine, "#/developer/push", "#main h1").text
    assert heading == "Developer > Credential Management > Push Notification"
    wait_for(browser, "[data-test=push-update-form]")
    shot(browser, "push-empty")

    form = browser.find_element(By.CSS_SELECTOR, "[data-test=push-update-form]")
    project = form.find_element(By.NAME, "project_name")
    project.clear()
    project.send_keys(PROJECT)
    form.find_element(By.NAME, "client_email").send_keys("not an email")
    set_value(browser, form.find_element(By.NAME, "private_key"), pem)
    wait_for(browser, "[data-test=push-update-button]").click()
    toast(browser, "error", "client_email must be")
    assert "client_email must be" in browser.find_element(By.CSS_SELECTOR, "[data-test=push-update-error]").text

    email = form.find_element(By.NAME, "client_email")
    email.clear()
    email.send_keys(EMAIL)
    wait_for(browser, "[data-test=push-update-button]").click()
    toast(browser, "ok", "credentials updated")
    assert email.get_attribute("value") == "" and form.find_element(By.NAME, "private_key").get_attribute("value") == ""
    shown_email = wait_for(browser, "[data-test=shown-email]").text
    assert shown_email.startswith(EMAIL[:3]) and shown_email != EMAIL
    shot(browser, "push-updated")

    browser.refresh()
    shown_key = wait_for(browser, "[data-test=shown-key]").text
    assert shown_key.startswith("…") and len(shown_key) <= 8
    assert wait_for(browser, "[data-test=shown-project]").text == PROJECT
    source = browser.page_source
    assert EMAIL not in source and not any(line in source for line in body_lines)
    answers = answers_the_page_got(browser)
    assert any("/admin/push/credentials" not in a and PROJECT in a for a in answers), answers
    for answer in answers:
        assert EMAIL not in answer and not any(line in answer for line in body_lines), answer
    shot(browser, "push-obfuscated")

    # the test pane: the box tries this browser's Firebase token (no network here: it says why),
    # and the test answers with the engine's verdict
    test = browser.find_element(By.CSS_SELECTOR, "[data-test=push-test-form]")
    assert not wait_for(browser, "[data-test=push-test-button]").is_enabled()  # the seed: tick the box first
    sender = "123456789012"
    test.find_element(By.NAME, "app_id").send_keys(f"1:{sender}:web:0123456789abcdef")
    test.find_element(By.NAME, "api_key").send_keys("AIza" + "x" * 35)
    test.find_element(By.NAME, "sender_id").send_keys(sender)
    test.find_element(By.NAME, "device_token").send_keys("typed-device-token")
    # notifications allowed, as a user would: the page loads the vendored SDK and registers its
    # service worker; Firebase itself is out of reach from here, and the page says so
    browser.execute_cdp_cmd("Browser.grantPermissions", {"origin": engine.url, "permissions": ["notifications"]})
    wait_for(browser, "[data-test=push-enable]").click()
    status = wait_until(browser, lambda b: "could not be obtained" in (t := b.find_element(
        By.CSS_SELECTOR, "[data-test=fcm-status]").text) and t, "the reason the browser's token is missing", timeout=25)
    assert "typed" in status and "Firebase cannot be reached" in status, status  # past the permission
    assert browser.execute_script("return window.firebase && window.firebase.SDK_VERSION") == "13.2.0"
    scopes = browser.execute_async_script("navigator.serviceWorker.getRegistrations().then((r) => "
                                          "arguments[arguments.length - 1](r.map((x) => x.scope)))")
    assert f"{engine.url}/ui/" in scopes
    assert test.find_element(By.NAME, "device_token").get_attribute("value") == "typed-device-token"
    wait_for(browser, "[data-test=push-test-button]").click()
    result = wait_until(browser, lambda b: b.find_element(By.CSS_SELECTOR, "[data-test=push-test-result]").text,
                        "the test's result", timeout=20)
    assert result.startswith("failure: "), result  # the token endpoint is a closed port
    shot(browser, "push-tested")
    assert page_problems(browser) == []


def test_replay_a_dead_letter(engine, browser) -> None:
    # an orscb subscriber whose session does not exist: its delivery gives up at once
    sub = engine.api("POST", "/genesys/1/notification/subscription", CLIENT, json={
        "subscriberId": "console", "providerName": "p", "filter": "console/dead", "expire": 600,
        "notificationDetails": {"deviceId": "no-such-session", "type": "orscb"}})
    assert sub.status_code == 200, sub.text
    published = engine.api("POST", "/genesys/1/notification/publish", json={"tag": "console/dead", "message": {"n": 1}})
    assert published.json()["deliveries"] == 1, published.text

    def dead_ids(_browser) -> list[int]:
        letters = engine.api("GET", "/admin/dead-letters?limit=1000").json()["dead_letters"]
        return [d["id"] for d in letters if d["target"] == "no-such-session"]

    letter = wait_until(browser, dead_ids, "a dead letter")[-1]
    open_page(browser, engine, "#/dead-letters", "[data-test=dead-letter-table]")
    row = browser.find_element(By.XPATH, f"//table[@data-test='dead-letter-table']//tr[td[1][text()='{letter}']]")
    assert "no-such-session" in row.text
    shot(browser, "dead-letters")
    row.find_element(By.CSS_SELECTOR, "[data-test=replay]").click()
    toast(browser, "ok", f"Dead letter {letter} replayed")
    # the list is read again: the letter is gone (being delivered) or back (it failed again)
    wait_for(browser, "[data-test=dead-letter-table], [data-test=dead-letter-table-empty]")
    assert page_problems(browser) == []


def test_create_rotate_and_revoke_a_key(engine, browser) -> None:
    open_page(browser, engine, "#/keys", "[data-test=key-table]")
    form = browser.find_element(By.CSS_SELECTOR, "[data-test=key-create]")
    form.find_element(By.NAME, "key_name").send_keys("console-app")
    form.find_element(By.XPATH, ".//label[normalize-space()='callin']/input").click()  # client: one service
    wait_for(browser, "[data-test=key-create-button]").click()
    secret = wait_for(browser, "[data-test=new-secret]").get_attribute("value")
    assert "shown only this once" in wait_for(browser, "[data-test=secret-box]").text
    made = engine.api("GET", "/admin/keys/console-app").json()
    assert made["role"] == "client" and made["services"] == ["callin"]
    assert engine.api("GET", "/genesys/1/service/callback/callin", headers={"x-api-key": secret}).status_code == 200
    table = wait_for(browser, "[data-test=key-table]").text
    assert "console-app" in table and secret not in table
    shot(browser, "keys-created")
    wait_for(browser, "[data-test=secret-done]").click()
    assert browser.find_elements(By.CSS_SELECTOR, "[data-test=new-secret]") == []
    assert secret not in browser.page_source  # gone once dismissed

    wait_for(browser, "[data-test=rotate-console-app]").click()
    rotated = wait_for(browser, "[data-test=new-secret]").get_attribute("value")
    assert rotated and rotated != secret
    assert engine.api("GET", "/genesys/1/service/callback/callin", headers={"x-api-key": secret}).status_code == 401
    revoke = wait_for(browser, "[data-test=revoke-console-app]")
    revoke.click()
    assert "Really revoke" in revoke.text  # asks first
    revoke.click()
    toast(browser, "ok", "revoked")
    wait_until(browser, lambda b: "console-app" not in b.find_element(By.CSS_SELECTOR, "[data-test=keys]").text,
               "the key gone from the list")
    assert engine.api("GET", "/admin/keys/console-app").status_code == 404
    shot(browser, "keys")
    assert page_problems(browser) == []


def test_simulator_refuses_a_bad_setting_and_a_wrong_call_in(engine, browser) -> None:
    open_page(browser, engine, "#/simulator", "[data-test=sim-queue-table]")
    assert "Time scale \u00d720" in wait_for(browser, "[data-test=sim-clock]").text
    assert "answer" in browser.find_element(By.CSS_SELECTOR, "[data-test=sim-default-outcome]").text
    before = engine.api("GET", "/admin/simulator").json()["config"]
    agents = browser.find_element(By.NAME, "queue:Callback_VQ:agents")
    agents.clear()
    agents.send_keys("-2")
    wait_for(browser, "[data-test=simulator-save]").click()
    error = wait_until(browser, lambda b: b.find_element(By.CSS_SELECTOR, "[data-test=simulator-error]").text,
                       "the simulator's refusal")
    assert "simulator settings refused" in error and "agents" in error, error
    assert engine.api("GET", "/admin/simulator").json()["config"] == before
    agents.clear()
    agents.send_keys(str(before["queues"]["Callback_VQ"]["agents"]))
    wait_for(browser, "[data-test=simulator-save]").click()
    toast(browser, "ok", "saved")

    form = browser.find_element(By.CSS_SELECTOR, "[data-test=callin-form]")
    form.find_element(By.NAME, "callin_number").send_keys("+15550000000")
    form.find_element(By.NAME, "callin_code").send_keys("000000")
    wait_for(browser, "[data-test=callin-submit]").click()
    assert "no callback waits for that access code" in wait_until(
        browser, lambda b: b.find_element(By.CSS_SELECTOR, "[data-test=callin-result]").text, "the call-in's answer")
    shot(browser, "simulator")
    assert page_problems(browser) == []


def test_report_table_chart_and_csv_and_call_in_records(engine, browser) -> None:
    made = engine.api("POST", "/genesys/1/service/callback/callin", CLIENT, json={"_customer_number": "+15550700131"})
    assert made.status_code == 200, made.text
    callin = made.json()["_id"]
    open_page(browser, engine, "#/reports", "[data-test=report-table]")
    table = browser.find_element(By.CSS_SELECTOR, "[data-test=report-table]").text
    assert "callin" in table
    assert browser.find_elements(By.CSS_SELECTOR, "[data-test=report-chart] svg rect.bar")
    link = browser.find_element(By.CSS_SELECTOR, "[data-test=report-csv]")
    assert link.get_attribute("download") and "format=csv" in link.get_attribute("href")
    csv = browser.execute_async_script(
        "fetch(arguments[0]).then((r) => r.text()).then(arguments[arguments.length - 1]);", link.get_attribute("href"))
    assert csv.splitlines()[0] == "day,service,outcome,count" and ",callin," in csv
    shot(browser, "reports")
    # a range the engine refuses: its reason shown, nothing drawn
    to = browser.find_element(By.NAME, "to").get_attribute("value")
    set_value(browser, browser.find_element(By.NAME, "from"), to[:2] + str(int(to[2:4]) + 1) + to[4:])
    wait_for(browser, "[data-test=report-show]").click()
    refusal = wait_until(browser, lambda b: b.find_element(By.CSS_SELECTOR, "[data-test=report-error]").text,
                         "the report's refusal")
    assert "'to' must be after 'from'" in refusal, refusal
    assert browser.find_elements(By.CSS_SELECTOR, "[data-test=report-table]") == []

    # the click-to-call-in callback gets its access code when its turn comes
    wait_until(browser, lambda b: engine.api("GET", f"/genesys/1/service/callback/callin/{callin}", CLIENT).json().get(
        "_access_code"), "an access code on the record", timeout=30)
    open_page(browser, engine, "#/call-ins", "[data-test=call-in-table]")
    assert callin in browser.find_element(By.CSS_SELECTOR, "[data-test=call-in-table]").text
    shot(browser, "call-ins")
    assert page_problems(browser) == []


def test_the_administration_pages_on_a_tablet(engine, browser) -> None:
    """768x1024: the menu folds into the top bar, the option table becomes one card per option."""
    browser.set_window_size(768, 1024)
    try:
        open_page(browser, engine, "#/services/callback", "[data-test=service-form]")
        assert not browser.find_element(By.CSS_SELECTOR, "[data-test=menu]").is_displayed()
        assert not browser.find_element(By.CSS_SELECTOR, "table.options thead").is_displayed()
        value = browser.find_element(By.CSS_SELECTOR, "[data-test=service-form] input[name=_ttl]")
        assert value.is_displayed() and value.rect["x"] + value.rect["width"] <= 768  # not cut off
        shot(browser, "tablet-services-detail")
        for page, ready in (("#/developer/push", "[data-test=push-update]"),
                            ("#/simulator", "[data-test=sim-queue-table]"), ("#/keys", "[data-test=key-table]")):
            open_page(browser, engine, page, ready)
            width = browser.execute_script("return document.documentElement.scrollWidth")
            assert width <= 768, f"{page} is {width} px wide"
            shot(browser, "tablet-" + page.removeprefix("#/").replace("/", "-"))
    finally:
        browser.set_window_size(1366, 900)
