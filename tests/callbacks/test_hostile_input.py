"""Random and hostile request bodies at every endpoint that takes input: a 4xx (or a success),
never a 500 and never a crash."""

from __future__ import annotations

import json
import random

from tests.callbacks.conftest import ADMIN, CLIENT

VALUES = [None, True, 0, -1, 10**30, 1.5e308, "", " ", "x" * 5000, "\u0000", "\ud7ff", "+1555", "2026-13-45T99:99:99Z",
          "../../etc/passwd", "<scxml/>", "{}", "[]", "NaN", {"a": {"b": [1, {"c": None}]}}, [1, [2, [3]]], "_id",
          "!COMPLETED", "'; DROP TABLE callbacks; --", "\u202e", "1e999"]
KEYS = ["_customer_number", "_desired_time", "_new_desired_time", "_callback_state", "_id", "_call_direction",
        "_urs_virtual_queue", "_device_os", "_device_notification_id", "_status_notification_target", "src",
        "filter", "expire", "notificationDetails", "tag", "message", "project_id", "private_key", "client_email",
        "app_id", "sender_id", "api_key", "push_threshold_minutes", "agents", "queues", "time_scale", "number",
        "access_code", "weekly", "time_zone", "exceptions", "", "a" * 300]


def body(rng: random.Random):
    kind = rng.random()
    if kind < 0.1:
        return rng.choice(VALUES)
    return {rng.choice(KEYS): rng.choice(VALUES) for _ in range(rng.randint(0, 6))}


async def test_no_500_for_any_body(cb_client) -> None:
    rng = random.Random(7)
    r = await cb_client.post("/genesys/1/service/callback/callback", json={"_customer_number": "+15550600000"},
                             headers=CLIENT)
    cid = (await r.json())["_id"]
    targets = [
        ("POST", "/genesys/1/service/callback/callback", CLIENT),
        ("PUT", f"/genesys/1/service/callback/callback/{cid}", CLIENT),
        ("POST", f"/genesys/1/service/callback/callback/{cid}/call-in", CLIENT),
        ("POST", "/scxml/session/start", CLIENT),
        ("POST", "/genesys/1/notification/subscription", CLIENT),
        ("POST", "/genesys/1/notification/publish", CLIENT),
        ("PUT", "/admin/services/fuzzed", ADMIN),
        ("PUT", "/admin/business-hours/fuzzed", ADMIN),
        ("PUT", "/admin/simulator", ADMIN),
        ("PUT", "/admin/callback-settings/Fuzz_VQ", ADMIN),
        ("PUT", "/admin/push/credentials", ADMIN),
        ("POST", "/admin/push/credentials/test", ADMIN),
        ("POST", "/admin/simulator/call-in", ADMIN),
    ]
    statuses: dict[int, int] = {}
    for _ in range(60):
        for method, path, headers in targets:
            payload = body(rng)
            if rng.random() < 0.15:
                data, ctype = json.dumps(payload)[:-1] if json.dumps(payload) else "{", "application/json"
            else:
                data, ctype = json.dumps(payload), "application/json"
            r = await cb_client.request(method, path, data=data, headers={**headers, "Content-Type": ctype})
            statuses[r.status] = statuses.get(r.status, 0) + 1
            assert r.status < 500, (method, path, data[:200], await r.text())
            if r.status >= 400:
                answer = await r.json()
                assert answer["message"] and answer["exception"], answer
    r = await cb_client.get("/health")
    assert r.status == 200
    assert statuses.get(400, 0) > 100
