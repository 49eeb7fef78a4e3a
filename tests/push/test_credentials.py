"""FCM credentials: roles, validation, encryption at rest, the test call, token reuse, errors."""

from __future__ import annotations

import asyncio
import os
import stat

from engine.api.appkeys import RUNTIME
from tests.push.conftest import ADMIN, CLIENT, DEVELOPER, DEVICE, credentials_body, data_dir
from tests.support.eventually import eventually
from tests.support.fake_google import EMAIL, PROJECT, fcm_error

TEST_FIELDS = {"app_id": "1:123456789012:web:0a1b2c3d4e5f6a7b", "api_key": "AIza" + "B" * 35,
               "sender_id": "123456789012"}


async def test_only_administrators_and_developers_manage_credentials(push_engine, key_pair, tmp_path) -> None:
    client = await push_engine(set_credentials=False)
    body = credentials_body(key_pair[0])
    r = await client.put("/admin/push/credentials", json=body, headers=CLIENT)
    assert r.status == 403 and "developer key" in (await r.json())["message"]
    r = await client.get("/admin/push/credentials", headers=CLIENT)
    assert r.status == 403
    r = await client.put("/admin/push/credentials", json=body, headers=DEVELOPER)
    assert r.status == 200
    r = await client.get("/admin/push/credentials", headers=DEVELOPER)
    shown = await r.json()
    assert shown["project_id"] == PROJECT
    assert EMAIL not in str(shown) and shown["client_email"].startswith("fir")
    key_body = "".join(key_pair[0].strip().splitlines()[1:-1])
    assert key_body[:40] not in str(shown) and len(shown["private_key"]) <= 8
    # the developer may not touch what is the administrator's alone
    r = await client.get("/admin/dead-letters", headers=DEVELOPER)
    assert r.status == 403
    # encrypted at rest: the database file never holds the key, the data key is private
    db = (data_dir(tmp_path) / "engine.db").read_bytes()
    for path in data_dir(tmp_path).glob("engine.db*"):
        db += path.read_bytes()
    assert key_body[40:80].encode() not in db and b"PRIVATE KEY" not in db
    assert stat.S_IMODE(os.stat(data_dir(tmp_path) / "secret.key").st_mode) == 0o600


async def test_bad_credentials_are_refused_and_change_nothing(push_engine, key_pair) -> None:
    client = await push_engine()
    good = credentials_body(key_pair[0])
    broken = "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----"
    cases = [({**good, "private_key": broken}, "does not parse"),
             ({**good, "private_key": "hello"}, "PEM private key"),
             ({**good, "client_email": "not-an-email"}, "client_email"),
             ({**good, "project_id": "Bad Project!"}, "project_id")]
    for body, text in cases:
        r = await client.put("/admin/push/credentials", json=body, headers=ADMIN)
        assert r.status == 400 and text in (await r.json())["message"], body
    r = await client.get("/admin/push/credentials", headers=ADMIN)
    assert (await r.json())["project_id"] == PROJECT


async def test_the_test_call(push_engine, google) -> None:
    client = await push_engine()
    r = await client.post("/admin/push/credentials/test", json=TEST_FIELDS, headers=ADMIN)
    body = await r.json()
    assert body["result"] == "successful configuration" and google.mints == 1
    r = await client.post("/admin/push/credentials/test", json={**TEST_FIELDS, "device_token": DEVICE}, headers=ADMIN)
    assert (await r.json())["result"] == "successful configuration"
    assert google.messages[-1]["validate_only"] is True and google.messages[-1]["message"]["token"] == DEVICE
    google.by_device["gone-device-token-00000000000"] = (404, fcm_error(404, "UNREGISTERED", "NOT_FOUND"))
    r = await client.post("/admin/push/credentials/test",
                          json={**TEST_FIELDS, "device_token": "gone-device-token-00000000000"}, headers=ADMIN)
    body = await r.json()
    assert body["result"] == "failure" and "UNREGISTERED" in body["reason"]
    for bad, text in (({**TEST_FIELDS, "app_id": "1:999999999:web:abcdef"}, "does not belong to sender_id"),
                      ({**TEST_FIELDS, "api_key": "nope"}, "api_key"),
                      ({**TEST_FIELDS, "sender_id": "abc"}, "sender_id")):
        r = await client.post("/admin/push/credentials/test", json=bad, headers=ADMIN)
        assert r.status == 400 and text in (await r.json())["message"]
    # the token endpoint refusing the service account marks the credentials as failing
    google.reject_assertions = True
    client.app[RUNTIME].fcm.use(client.app[RUNTIME].fcm.credentials)  # forget the cached token
    r = await client.post("/admin/push/credentials/test", json=TEST_FIELDS, headers=ADMIN)
    body = await r.json()
    assert body["result"] == "failure" and "token endpoint refused" in body["reason"]
    shown = await (await client.get("/admin/push/credentials", headers=ADMIN)).json()
    assert shown["status"] == "failing"


async def test_the_token_is_minted_once_and_reused(push_engine, google) -> None:
    client = await push_engine()
    fcm = client.app[RUNTIME].fcm
    for _ in range(5):
        await fcm.send({"token": DEVICE, "data": {"event": "X"}})
    assert google.mints == 1 and len(google.messages) == 5
    # a token close to expiry is renewed before use, not after a failure
    google.token_lifetime = 30
    fcm.use(fcm.credentials)
    await fcm.send({"token": DEVICE, "data": {"event": "X"}})
    await asyncio.sleep(0)
    await fcm.send({"token": DEVICE, "data": {"event": "X"}})
    assert google.mints == 3  # 30 s tokens are inside google-auth's refresh margin: renewed each time


async def test_fcm_subscriptions_of_the_notification_api(push_engine, google) -> None:
    client = await push_engine()
    r = await client.post("/genesys/1/notification/subscription", headers=CLIENT, json={
        "subscriberId": "app", "filter": "news/*", "expire": 60,
        "notificationDetails": {"deviceId": DEVICE, "type": "fcm"}})
    assert r.status == 200, await r.text()
    r = await client.post("/genesys/1/notification/publish", headers=CLIENT,
                          json={"tag": "news/today", "message": {"headline": "hello", "count": 3}})
    assert (await r.json())["deliveries"] == 1
    [sent] = await eventually(lambda: list(google.messages), timeout=3, expected="a message at FCM")
    assert sent["message"] == {"token": DEVICE, "data": {"headline": "hello", "count": "3"}}
