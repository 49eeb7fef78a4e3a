"""Issue 12 item 6: subscriptions can be read (a client its own, the other roles all of them) and
transaction lists listed (the developer role too). A client removes only its own subscriptions."""

from __future__ import annotations

from engine.api.appkeys import RUNTIME
from tests.api.conftest import ADMIN, CLIENT

BASE = "/genesys/1/notification/subscription"
LIST = """[properties]
_status_notification_type = httpcb

[_cbe_on_service_create]
notify_params = _service_id, _service_name
"""


def subscription(tag: str) -> dict:
    return {"subscriberId": "app", "providerName": "p", "filter": tag, "expire": 600,
            "notificationDetails": {"deviceId": "some-session", "type": "orscb", "properties": {"secret": "s3"}}}


async def new_key(client, role: str, name: str) -> dict:
    r = await client.post("/admin/keys", json={"name": name, "role": role}, headers=ADMIN)
    assert r.status == 201, await r.text()
    return {"x-api-key": (await r.json())["key"]}


async def test_a_client_reads_its_own_subscriptions_and_other_roles_read_all(engine_client) -> None:
    client = await engine_client()
    other = await new_key(client, "client", "other-app")
    developer = await new_key(client, "developer", "dev")
    mine = [await (await client.post(BASE, json=subscription(f"apps/{n}"), headers=CLIENT)).json()
            for n in range(3)]
    theirs = await (await client.post(BASE, json=subscription("apps/x"), headers=other)).json()
    assert mine[0]["owner"] == "env-client" and theirs["owner"] == "other-app"

    listed = await (await client.get(BASE, headers=CLIENT)).json()
    assert [s["id"] for s in listed["subscriptions"]] == [s["id"] for s in mine]  # oldest first, only mine
    assert listed["subscriptions"][0]["notificationDetails"]["properties"]["secret"] == "***"
    assert listed["subscriptions"][0] == {k: v for k, v in mine[0].items()}
    page = await (await client.get(BASE + "?limit=1&offset=1", headers=CLIENT)).json()
    assert [s["id"] for s in page["subscriptions"]] == [mine[1]["id"]] and page["limit"] == 1
    assert [s["id"] for s in (await (await client.get(BASE, headers=other)).json())["subscriptions"]] == \
        [theirs["id"]]
    for staff in (ADMIN, developer):
        everyone = await (await client.get(BASE, headers=staff)).json()
        assert [s["id"] for s in everyone["subscriptions"]] == [s["id"] for s in [*mine, theirs]]

    r = await client.get(f"{BASE}/{mine[1]['id']}", headers=CLIENT)
    assert r.status == 200 and (await r.json())["filter"] == "apps/1"
    r = await client.get(f"{BASE}/{mine[1]['id']}", headers=other)  # not theirs: as if it did not exist
    assert r.status == 404 and "no subscription" in (await r.json())["message"]
    assert (await client.get(f"{BASE}/{theirs['id']}", headers=developer)).status == 200
    assert (await client.get(f"{BASE}/nope", headers=ADMIN)).status == 404
    r = await client.get(BASE + "?limit=0", headers=CLIENT)
    assert r.status == 400 and "limit" in (await r.json())["message"]

    r = await client.delete(f"{BASE}/{mine[0]['id']}", headers=other)  # nor remove it
    assert r.status == 404
    assert (await client.delete(f"{BASE}/{mine[0]['id']}", headers=CLIENT)).status == 200
    assert (await client.delete(f"{BASE}/{theirs['id']}", headers=ADMIN)).status == 200
    listed = await (await client.get(BASE, headers=ADMIN)).json()
    assert [s["id"] for s in listed["subscriptions"]] == [mine[1]["id"], mine[2]["id"]]


async def test_expired_subscriptions_are_not_listed(engine_client) -> None:
    client = await engine_client()
    sub = await (await client.post(BASE, json={**subscription("apps/e"), "expire": 30}, headers=CLIENT)).json()
    assert [s["id"] for s in (await (await client.get(BASE, headers=CLIENT)).json())["subscriptions"]] == [sub["id"]]
    client.app[RUNTIME].notifications.subscriptions.items[sub["id"]].expires_at = 0  # its time is up
    assert (await (await client.get(BASE, headers=CLIENT)).json())["subscriptions"] == []
    assert (await client.get(f"{BASE}/{sub['id']}", headers=ADMIN)).status == 404


async def test_owners_survive_a_restart(engine_client, aiohttp_client, tmp_path) -> None:
    from engine.app import create_app
    from tests.api.conftest import make_settings

    client = await engine_client()
    sub = await (await client.post(BASE, json=subscription("apps/kept"), headers=CLIENT)).json()
    await client.close()
    again = await aiohttp_client(create_app(make_settings(tmp_path)))
    listed = await (await again.get(BASE, headers=CLIENT)).json()
    assert [(s["id"], s["owner"]) for s in listed["subscriptions"]] == [(sub["id"], "env-client")]


async def test_transaction_lists_are_listed_for_the_developer_too(engine_client) -> None:
    client = await engine_client()
    developer = await new_key(client, "developer", "dev")
    assert await (await client.get("/admin/transaction-lists", headers=developer)).json() == \
        {"transaction_lists": []}
    r = await client.put("/admin/transaction-lists/Mine", data=LIST, headers=developer)
    assert r.status == 200, await r.text()
    expected = {"transaction_lists": [{"name": "Mine", "events": ["_cbe_on_service_create"], "warnings": []}]}
    for key in (developer, ADMIN):
        assert await (await client.get("/admin/transaction-lists", headers=key)).json() == expected
    r = await client.get("/admin/transaction-lists", headers=CLIENT)
    assert r.status == 403 and "developer" in (await r.json())["message"]
