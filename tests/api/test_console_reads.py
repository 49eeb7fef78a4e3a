"""Issue 13: the console's smaller reads: what each service option means, the message each event
of a transaction list would send (before saving it and once saved), the sessions of a flow per
version, and who may read all of it (the role table)."""

from __future__ import annotations

import re

import pytest

from engine.callbacks.options import OPTIONS, REQUEST_OPTIONS
from engine.notifications.transaction_list import parse
from tests.api.console_support import ADMIN, CLIENT, create, keys_of_roles, make_engine
from tests.notifications.conftest import seed_events_cfg
from tests.support.eventually import eventually


async def test_service_options_describe_every_option(aiohttp_client, tmp_path) -> None:
    client = await make_engine(aiohttp_client, tmp_path)
    r = await client.get("/admin/services/options", headers=ADMIN)
    options = {o["name"]: o for o in (await r.json())["options"]}
    assert list(options) == list(OPTIONS)
    ttl = options["_ttl"]
    assert (ttl["type"], ttl["default"], ttl["minimum"], ttl["maximum"]) == ("integer", 86400, 1, 366 * 86400)
    assert ttl["help"] == OPTIONS["_ttl"].help and ttl["request"] is False
    direction = options["_call_direction"]
    assert direction["choices"] == ["USERTERMINATED", "USERORIGINATED"] and direction["request"] is True
    queue = options["_urs_virtual_queue"]
    assert re.fullmatch(queue["pattern"], "Callback_VQ") and not re.fullmatch(queue["pattern"], "no spaces")
    assert queue["refers_to"] == "virtual queue" and options["_callback_events_list"]["refers_to"] == "transaction list"
    assert options["_wait_for_agent"]["type"] == "boolean" and options["_wait_for_agent"]["default"] is True
    assert {n for n, o in options.items() if o["request"]} == set(REQUEST_OPTIONS)
    # the service named "options" is not hidden by the route: services are read by their own path
    assert (await client.get("/admin/services/callback", headers=ADMIN)).status == 200


async def test_no_service_may_be_named_like_the_options_route(aiohttp_client, tmp_path) -> None:
    client = await make_engine(aiohttp_client, tmp_path)
    r = await client.put("/admin/services/options", json={}, headers=ADMIN)
    assert r.status == 400 and "reserved" in (await r.json())["message"]
    assert not any(tmp_path.rglob("options.json"))
    assert (await client.get("/admin/services/options", headers=ADMIN)).status == 200


async def test_a_list_preview_shows_what_each_event_sends(aiohttp_client, tmp_path) -> None:
    client = await make_engine(aiohttp_client, tmp_path)
    seed = seed_events_cfg()
    text_plain = {**ADMIN, "Content-Type": "text/plain"}
    r = await client.post("/admin/transaction-lists/preview", data=seed, headers=text_plain)
    body = await r.json()
    assert r.status == 200, body
    parsed = parse(seed)
    assert [e["event"] for e in body["events"]] == list(parsed.events)  # the list's own order
    assert body["warnings"] == parsed.warnings and body["properties"] == parsed.properties
    for event in body["events"]:
        message, spec = event["message"], parsed.events[event["event"]]
        assert list(message)[:5] == ["event_id", "timestamp", "_service_id", "_service_name", "_callback_state"]
        assert message["event_id"] == event["event"] and message["timestamp"].isdigit()
        assert set(spec.params) <= set(message) and set(spec.custom) <= set(message)
        assert event["placeholders"] == [p for p in spec.params if message[p] == f"<{p}>"]
    by_event = {e["event"]: e["message"] for e in body["events"]}
    if "_cbe_on_route_to_agent" in by_event:
        assert by_event["_cbe_on_route_to_agent"]["_callback_state"] == "PROCESSING"

    custom = "[_cbe_on_callback_queued]\nnotify_params = _customer_number, c_mine\nnotify_custom = {\"app\": \"x\"}\n"
    r = await client.post("/admin/transaction-lists/preview", data=custom, headers=text_plain)
    [event] = (await r.json())["events"]
    assert event["message"]["app"] == "x" and event["message"]["_customer_number"].startswith("+")
    assert event["message"]["c_mine"] == "<c_mine>" and event["placeholders"] == ["c_mine"]

    r = await client.post("/admin/transaction-lists/preview", data="[properties]\n_enable_status_notification = x\n"
                          "[_cbe_on_callback_queued\nnotify_params = a\n", headers=ADMIN)
    bad = await r.json()
    assert r.status == 400 and bad["line"] == 3 and "line 3" in bad["message"], bad
    r = await client.post("/admin/transaction-lists/preview", data="[_cbe_on_callback_queued]\nwhat = 1\n",
                          headers=ADMIN)
    bad = await r.json()
    assert r.status == 400 and (bad["line"], bad["section"]) == (2, "_cbe_on_callback_queued"), bad
    for raw in (b"", b"  \n", b"\xff\xfe"):
        assert (await client.post("/admin/transaction-lists/preview", data=raw, headers=ADMIN)).status == 400

    assert (await client.put("/admin/transaction-lists/Seed", data=seed, headers=ADMIN)).status == 200
    saved = await (await client.get("/admin/transaction-lists/Seed/preview", headers=ADMIN)).json()
    assert [e["event"] for e in saved["events"]] == [e["event"] for e in body["events"]] and saved["name"] == "Seed"
    r = await client.get("/admin/transaction-lists/Nope/preview", headers=ADMIN)
    assert r.status == 404


COUNTER = """<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="python" initial="idle">
<state id="idle"><transition event="stop" target="done"/>
<transition event="bump"><log expr="{step}"/></transition></state>
<final id="done"/></scxml>"""


async def start(client, flow: str, persistent: bool = True) -> str:
    suffix = "" if persistent else "?persistent=false"
    r = await client.post(f"/scxml/session/start{suffix}", json={"src": flow}, headers=CLIENT)
    assert r.status == 200, await r.text()
    return (await r.json())["sessionid"]


@pytest.mark.parametrize("persistence", [True, False], ids=["stored", "in-memory"])
async def test_sessions_of_a_flow_per_version(aiohttp_client, tmp_path, persistence) -> None:
    client = await make_engine(aiohttp_client, tmp_path, persistence=persistence)
    for step in (1, 2):
        r = await client.put("/admin/flows/counter", data=COUNTER.format(step=step), headers=ADMIN)
        assert (await r.json())["version"] == step
        if step == 1:
            old = [await start(client, "counter") for _ in range(3)]
    new = [await start(client, "counter"), await start(client, "counter", persistent=False)]
    await client.post(f"/scxml/session/{old[0]}/event/stop", headers=CLIENT)
    await client.post(f"/scxml/session/{old[1]}/terminate", headers=CLIENT)

    async def counted() -> list[dict]:
        r = await client.get("/admin/flows/counter/sessions", headers=ADMIN)
        assert r.status == 200
        return (await r.json())["versions"]
    want = [{"version": 2, "running": 2, "ended": 0}, {"version": 1, "running": 1, "ended": 2}]
    await eventually(counted, lambda v: v == want, timeout=5, expected=want)
    await client.post(f"/scxml/session/{new[0]}/event/stop", headers=CLIENT)
    await eventually(counted, lambda v: v[0] == {"version": 2, "running": 1, "ended": 1}, timeout=5,
                     expected="one of version 2 ended")
    assert (await client.get("/admin/flows/nope/sessions", headers=ADMIN)).status == 404
    callback_flow = await (await client.get("/admin/flows/callback/sessions", headers=ADMIN)).json()
    assert callback_flow["versions"] == [{"version": 1, "running": 0, "ended": 0}]


READS = ["/admin/callbacks", "/admin/queues", "/admin/reports/callbacks", "/admin/call-ins",
         "/admin/services/options", "/admin/transaction-lists/GMS_Events/preview", "/admin/flows/callback/sessions"]
# written out here, independently of engine/roles.py: who may read each
MAY_READ = {
    "/admin/callbacks": {"administrator", "supervisor", "monitor", "developer"},
    "/admin/call-ins": {"administrator", "supervisor", "monitor", "developer"},
    "/admin/queues": {"administrator", "supervisor", "monitor"},
    "/admin/reports/callbacks": {"administrator", "supervisor", "monitor"},
    "/admin/services/options": {"administrator", "supervisor", "monitor", "developer"},
    "/admin/transaction-lists/GMS_Events/preview": {"administrator", "supervisor", "monitor", "developer"},
    "/admin/flows/callback/sessions": {"administrator", "supervisor", "monitor", "developer"},
}


async def test_who_may_read_the_console_endpoints(aiohttp_client, tmp_path) -> None:
    client = await make_engine(aiohttp_client, tmp_path)
    await create(client, "waiting", _customer_number="+15550900050")
    assert (await client.put("/admin/transaction-lists/GMS_Events", data=seed_events_cfg(), headers=ADMIN)).status \
        == 200
    keys = {"administrator": ADMIN, "client": CLIENT,
            **await keys_of_roles(client, "supervisor", "monitor", "developer")}
    problems = []
    for path in READS:
        for role, headers in keys.items():
            r = await client.get(path, headers=headers)
            allowed = role in MAY_READ[path]
            if (r.status == 200) != allowed or (not allowed and r.status != 403):
                problems.append(f"{role} GET {path}: {r.status}")
    preview = "/admin/transaction-lists/preview"
    for role, headers in keys.items():
        r = await client.post(preview, data="[_cbe_on_callback_queued]\n",
                              headers={**headers, "Content-Type": "text/plain"})
        if (r.status == 200) != (role in ("administrator", "developer")):
            problems.append(f"{role} POST {preview}: {r.status}")
    assert not problems, "\n".join(problems)


def test_every_admin_read_but_keys_and_push_has_a_grant_for_the_monitor(tmp_path) -> None:
    """A read endpoint added without a grant would be the administrator's alone (engine/roles.py):
    the console's read-only roles could not show it. Keys stay the administrator's; push
    credentials the developer's and the administrator's (seed 002)."""
    from engine.api.openapi import routes_of
    from engine.app import create_app
    from engine.roles import allowed
    from tests.api.conftest import make_settings

    reads = [path for method, path, _ in routes_of(create_app(make_settings(tmp_path)))
             if method == "GET" and path.startswith("/admin/")]
    assert "/admin/callbacks" in reads and "/admin/queues" in reads
    refused = [path for path in reads if not allowed("monitor", "GET", re.sub(r"\{[^}]*\}", "x", path))]
    assert sorted(refused) == ["/admin/keys", "/admin/keys/{name}", "/admin/push/credentials"]
