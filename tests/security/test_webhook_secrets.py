"""Issue 9 item 10 (part): webhook secrets are sealed at rest, and a subscription's ``expire``
must be a sane finite number (1e400, NaN, negative, huge: 400, never 500)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from engine.api.appkeys import RUNTIME
from engine.notifications import webhooks
from tests.security.outbound_support import ADMIN, CLIENT, Peer, engine_settings, start_engine
from tests.support.eventually import eventually

SUBSCRIBE = "/genesys/1/notification/subscription"
SUB_SECRET = "sub-secret-Zq8xV1mN4kLp"
CONFIG_SECRET = "cfg-secret-Hj5tR9wC2yBe"


def database_bytes(data_dir: Path) -> bytes:
    """Everything SQLite keeps: the database file and its write-ahead log."""
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("engine.db*")) if p.is_file())


async def test_secrets_are_sealed_in_the_database(aiohttp_client, tmp_path) -> None:
    answers = [500] * 1000  # keep the deliveries pending (stored) until the checks are done

    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=answers.pop(0) if answers else 200)

    peer = await Peer(handler).start()
    try:
        settings = engine_settings(tmp_path, {"allowed_networks": ["127.0.0.0/8"], "max_attempts": 1000,
                                              "secrets": {peer.url("/configured"): CONFIG_SECRET}})
        client = await start_engine(aiohttp_client, settings)
        for props in ({"url": peer.url("/own"), "secret": SUB_SECRET}, {"url": peer.url("/configured")}):
            r = await client.post(SUBSCRIBE, headers=CLIENT, json={
                "subscriberId": "s", "filter": "orders/*", "expire": 600,
                "notificationDetails": {"deviceId": "d", "type": "httpcb", "properties": props}})
            body = await r.json()
            assert r.status == 200, body
            assert body["notificationDetails"]["properties"].get("secret") in (None, "***")
        r = await client.post("/genesys/1/notification/publish", headers=CLIENT,
                              json={"tag": "orders/7", "message": {"n": 7}})
        assert r.status == 200, await r.text()
        await eventually(lambda: {p for p, _, _ in peer.requests} >= {"/own", "/configured"}, timeout=10,
                         expected="attempts")
        await client.server.app[RUNTIME].manager.commit()
        stored = database_bytes(settings.data_dir)
        assert b"orders/*" in stored  # the subscriptions and deliveries are there...
        assert SUB_SECRET.encode() not in stored and CONFIG_SECRET.encode() not in stored  # ...sealed
        # and they still sign: once the receiver accepts, the signatures verify with the clear secrets
        answers.clear()
        for path, secret in (("/own", SUB_SECRET), ("/configured", CONFIG_SECRET)):
            def signed(path: str = path) -> list:
                return [(h, b) for p, h, b in peer.requests if p == path and "webhook-signature" in h]
            await eventually(signed, timeout=15, expected=f"a signed delivery to {path}")
            headers, body = signed()[-1]
            assert webhooks.verify(secret, headers["webhook-id"], headers["webhook-timestamp"], body,
                                   headers["webhook-signature"])
        r = await client.get("/admin/dead-letters", headers=ADMIN)
        assert SUB_SECRET not in await r.text()
    finally:
        await peer.stop()


async def test_expire_must_be_a_finite_number_in_range(aiohttp_client, tmp_path) -> None:
    client = await start_engine(aiohttp_client, engine_settings(tmp_path, {"allowed_networks": ["127.0.0.0/8"]}))
    details = '"notificationDetails": {"deviceId": "d", "type": "httpcb", "properties": {"url": "http://127.0.0.1:9/x"}}'
    for expire in ("1e400", "-1e400", "NaN", "Infinity", "-5", "29", "1e12", "true", '"soon"', "[600]", "null"):
        raw = f'{{"filter": "orders/*", "expire": {expire}, {details}}}'
        r = await client.post(SUBSCRIBE, data=raw, headers={**CLIENT, "Content-Type": "application/json"})
        body = await r.json()
        assert r.status == 400, (expire, body)
        assert body["exception"] and body["message"], body
    r = await client.post(SUBSCRIBE, data=f'{{"filter": "orders/*", "expire": 600.5, {details}}}',
                          headers={**CLIENT, "Content-Type": "application/json"})
    assert r.status == 200, await r.text()
