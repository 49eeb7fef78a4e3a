"""Issue 9 item 4: one outbound URL policy for every target the engine sends to.

Every peer here is a real loopback server; the policy must keep the engine away from it unless the
configuration allows it, and must judge the parsed URL and the address actually connected to."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
import requests
from aiohttp import web

from engine.push.fcm import FcmClient, guarded_requests_session
from engine.scxml import SessionHost
from engine.urlpolicy import UrlPolicy, UrlRefused
from tests.callbacks.conftest import BASE
from tests.conftest import REPO
from tests.scxml.documents import scxml
from tests.security.outbound_support import ADMIN, CLIENT, Peer, engine_settings, start_engine
from tests.support.eventually import eventually

SUBSCRIBE = "/genesys/1/notification/subscription"
PUBLISH = "/genesys/1/notification/publish"


def subscription(url: str, kind: str = "httpcb", tag: str = "orders/*") -> dict:
    return {"subscriberId": "s", "filter": tag, "expire": 600,
            "notificationDetails": {"deviceId": "dev-1", "type": kind, "properties": {"url": url}}}


@pytest.fixture
async def peers():
    started: list[Peer] = []

    async def make(handler=None) -> Peer:
        peer = await Peer(handler).start()
        started.append(peer)
        return peer

    yield make
    for peer in started:
        await peer.stop()


async def dead_letters(client) -> list[dict]:
    r = await client.get("/admin/dead-letters", headers=ADMIN)
    assert r.status == 200
    return (await r.json())["dead_letters"]


async def wait_dead(client, count: int) -> list[dict]:
    return await eventually(lambda: dead_letters(client), lambda letters: len(letters) >= count, timeout=12,
                            expected=f"{count} dead letters")


# -- the parsed URL ----------------------------------------------------------------------------
def test_allow_list_compares_parsed_origins_not_prefixes() -> None:
    policy = UrlPolicy(["http://127.0.0.1:9000", "https://hooks.example.com"])
    policy.check("http://127.0.0.1:9000/hook?x=1")
    policy.check("https://HOOKS.example.com.:443/any")  # case, trailing dot and default port
    for bad, why in [("http://127.0.0.1:9000@evil.example/", "userinfo"),
                     ("http://user:pw@127.0.0.1:9000/", "userinfo"),
                     ("http://127.0.0.1:90001/", "not a valid URL"),
                     ("http://127.0.0.1.evil.example:9000/", "allow list"),
                     ("https://hooks.example.com.evil.example/", "allow list"),
                     ("http://hooks.example.com/", "allow list"),  # scheme and port differ
                     ("https://hooks.example.com:8443/", "allow list"),
                     ("ftp://hooks.example.com/", "http(s)"),
                     ("https://hooks.example.com/\r\nX-Forged: 1", "control characters"),
                     ("//hooks.example.com/", "http(s)")]:
        with pytest.raises(UrlRefused, match=re.escape(why)):
            policy.check(bad)


def test_private_and_metadata_addresses_need_an_explicit_allowance() -> None:
    strict = UrlPolicy()
    for url in ["http://127.0.0.1/", "http://10.1.2.3/", "http://192.168.0.1/", "http://169.254.169.254/latest",
                "http://[::1]/", "http://[fd00:ec2::254]/", "http://[fe80::1]/", "http://0.0.0.0/",
                "http://[::ffff:127.0.0.1]/", "http://224.0.0.1/", "http://100.64.0.1/"]:
        with pytest.raises(UrlRefused, match="not public"):
            strict.check(url)
    strict.check("https://93.184.215.14/")  # a public address is fine
    UrlPolicy(networks=["10.0.0.0/8"]).check("http://10.1.2.3/")
    UrlPolicy(["http://127.0.0.1:9000"]).check("http://127.0.0.1:9000/")  # named explicitly
    with pytest.raises(UrlRefused):
        UrlPolicy(["http://127.0.0.1:9000"]).check("http://127.0.0.1:9001/")
    with pytest.raises(ValueError, match="not an origin"):
        UrlPolicy.from_config({"allowed_targets": ["https://hooks.example.com/path/"]}, "notifications.json")


# -- subscriptions and creates answer 400 naming the field ----------------------------------------
async def test_subscription_targets_are_checked_by_parsed_origin(aiohttp_client, tmp_path, peers) -> None:
    allowed, other = await peers(), await peers()
    client = await start_engine(aiohttp_client, engine_settings(tmp_path, {"allowed_targets": [allowed.origin]}))
    for url in (f"http://127.0.0.1:{allowed.port}@127.0.0.1:{other.port}/hook",  # the bypass
                f"{allowed.origin}.nip.io/hook", other.url(), "http://localhost:1/x"):
        r = await client.post(SUBSCRIBE, json=subscription(url), headers=CLIENT)
        body = await r.json()
        assert r.status == 400, (url, body)
        assert "notificationDetails.properties.url" in body["message"]
    r = await client.post(SUBSCRIBE, json=subscription(allowed.url()), headers=CLIENT)
    assert r.status == 200, await r.text()
    assert other.requests == []


async def test_default_policy_refuses_loopback_subscriptions(aiohttp_client, tmp_path, peers) -> None:
    peer = await peers()
    client = await start_engine(aiohttp_client, engine_settings(tmp_path, {}))
    for kind in ("httpcb", "customhttp"):
        r = await client.post(SUBSCRIBE, json=subscription(peer.url(), kind), headers=CLIENT)
        body = await r.json()
        assert r.status == 400 and "not public" in body["message"], body


async def test_create_checks_status_notification_target(aiohttp_client, tmp_path, peers) -> None:
    allowed, other = await peers(), await peers()
    client = await start_engine(aiohttp_client, engine_settings(tmp_path, {"allowed_targets": [allowed.origin]}))
    for target in (other.url(), f"http://127.0.0.1:{allowed.port}@127.0.0.1:{other.port}/", "http://10.0.0.5/x"):
        r = await client.post(f"{BASE}/callback", headers=CLIENT, json={
            "_customer_number": "+15550100001", "_enable_status_notification": "subscribe_notify",
            "_status_notification_type": "httpcb", "_status_notification_target": target})
        body = await r.json()
        assert r.status == 400, body
        assert "_status_notification_target" in body["message"], body
    r = await client.get(f"{BASE}?_customer_number=%2B15550100001", headers=CLIENT)
    assert r.status in (200, 404)
    assert "+15550100001" not in await r.text()  # nothing was created
    r = await client.post(f"{BASE}/callback", headers=CLIENT, json={
        "_customer_number": "+15550100001", "_enable_status_notification": "subscribe_notify",
        "_status_notification_type": "httpcb", "_status_notification_target": allowed.url()})
    assert r.status == 200, await r.text()


# -- delivery time: the address connected to, redirects ------------------------------------------
async def test_a_name_resolving_to_loopback_is_refused_at_connect(aiohttp_client, tmp_path, peers, caplog) -> None:
    """``localhost`` passes the URL check (a public-looking name, empty allow list) but resolves to
    loopback: the resolver filter refuses it, so nothing reaches the peer, and the delivery is a
    dead letter at once (not retried) with the cause logged."""
    peer = await peers()
    client = await start_engine(aiohttp_client, engine_settings(tmp_path, {"max_attempts": 5}))
    for kind in ("httpcb", "customhttp"):
        r = await client.post(SUBSCRIBE, json=subscription(peer.url(host="localhost"), kind, f"{kind}/*"),
                              headers=CLIENT)
        assert r.status == 200, await r.text()
    caplog.set_level(logging.INFO, logger="engine.notifications")
    for kind in ("httpcb", "customhttp"):
        r = await client.post(PUBLISH, json={"tag": f"{kind}/1", "message": {"hello": "world"}}, headers=CLIENT)
        assert r.status == 200, await r.text()
    letters = await wait_dead(client, 2)
    for letter in letters:
        assert letter["attempts"] == 1
        assert "outbound URL policy" in letter["last_error"] and "127.0.0.1" in letter["last_error"]
    assert peer.requests == []
    assert any("outbound URL policy" in r.getMessage() for r in caplog.records)


async def test_redirects_are_not_followed(aiohttp_client, tmp_path, peers) -> None:
    elsewhere = await peers()

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=307, headers={"Location": elsewhere.url("/stolen")})

    allowed = await peers(redirect)
    settings = engine_settings(tmp_path, {"allowed_targets": [allowed.origin, elsewhere.origin]})
    client = await start_engine(aiohttp_client, settings)
    r = await client.post(SUBSCRIBE, json=subscription(allowed.url()), headers=CLIENT)
    assert r.status == 200
    await client.post(PUBLISH, json={"tag": "orders/1", "message": {"n": 1}}, headers=CLIENT)
    letters = await wait_dead(client, 1)
    assert "307" in letters[0]["last_error"] and "redirects are not followed" in letters[0]["last_error"]
    assert len(allowed.requests) == 1
    assert elsewhere.requests == []


# -- Basic HTTP sends from flows ----------------------------------------------------------------
async def test_basic_http_sends_go_through_the_policy(peers) -> None:
    peer = await peers()
    host = SessionHost()  # the default processor: public addresses only
    await host.start()
    try:
        for target in (peer.url(), peer.url(host="localhost"), "http://169.254.169.254/latest/meta-data"):
            doc = scxml(f'<state id="s"><onentry><send event="x" type="basichttp" target="{target}"/></onentry>'
                        '<transition event="error.communication" target="refused"/></state><final id="refused"/>')
            session = host.start_session(doc)
            await eventually(lambda s=session: not s.is_running, timeout=10,
                             expected=f"error.communication for {target}")
            assert session.final_state == "refused"
        assert peer.requests == []
    finally:
        await host.close()


async def test_engine_flows_reach_only_what_the_config_allows(aiohttp_client, tmp_path, peers) -> None:
    """The engine's own processor uses notifications.json: the same loopback peer is refused by
    the shipped default and reached once its network is allowed; the engine's own access URIs
    (hello.scxml sends itself an event) work either way."""
    peer = await peers()
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "poster.scxml").write_text(
        '<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="python" initial="s">'
        '<datamodel><data id="target" expr="\'\'"/></datamodel>'
        '<state id="s"><onentry><send event="x" type="basichttp" targetexpr="target"/></onentry>'
        '<transition event="error.communication" target="refused"/></state><final id="refused"/></scxml>')
    (flows / "hello.scxml").write_text((REPO / "scxml" / "hello.scxml").read_text())
    for notifications, reached in (({}, False), ({"allowed_networks": ["127.0.0.1/32"]}, True)):
        root = tmp_path / ("allowed" if reached else "default")
        client = await start_engine(aiohttp_client, engine_settings(root, notifications, flows=flows))
        before = len(peer.requests)
        r = await client.post("/scxml/session/start", json={"src": "poster", "target": peer.url()}, headers=CLIENT)
        sid = (await r.json())["sessionid"]
        r = await client.post("/scxml/session/start", json={"src": "hello"}, headers=CLIENT)
        hello = (await r.json())["sessionid"]

        async def status(session_id: str, client=client) -> dict:
            return await (await client.get(f"/scxml/session/{session_id}/query", headers=CLIENT)).json()

        async def both_over(sid=sid, hello=hello, before=before, reached=reached, status=status) -> bool:
            done = len(peer.requests) > before if reached else (await status(sid))["status"] == "finished"
            return done and (await status(hello))["status"] == "finished"

        await eventually(both_over, timeout=8, expected="the poster's send over and hello finished")
        assert (await status(hello)).get("answer") or (await status(hello))["status"] == "finished"
        assert (len(peer.requests) > before) == reached
        if not reached:
            assert (await status(sid))["status"] == "finished"
        await client.close()


# -- FCM and its token endpoint ------------------------------------------------------------------
async def test_fcm_urls_are_checked_at_start_and_token_requests_on_connect(peers) -> None:
    peer = await peers()
    for base, token in ((peer.origin, "https://oauth2.googleapis.com/token"),
                        ("https://fcm.googleapis.com", "https://user@oauth2.googleapis.com/token")):
        with pytest.raises(ValueError, match=r"fcm_base_url|fcm_token_uri"):
            FcmClient(base, token, policy=UrlPolicy())
    FcmClient(peer.origin, peer.url("/token"), policy=UrlPolicy(networks=["127.0.0.0/8"]))
    # settings an administrator names are exempt from the allow list of origins, not from the rest
    FcmClient(policy=UrlPolicy([peer.origin]))
    session = guarded_requests_session(UrlPolicy())
    with pytest.raises(requests.ConnectionError, match="outbound URL policy"):
        await asyncio.to_thread(session.post, peer.url("/token", host="localhost"), data=b"x", timeout=5)
    assert peer.requests == []
    allowed = guarded_requests_session(UrlPolicy(networks=["127.0.0.0/8"]))
    r = await asyncio.to_thread(allowed.post, peer.url("/token", host="localhost"), data=b"x", timeout=5)
    assert r.status_code == 200 and len(peer.requests) == 1


async def test_service_and_list_replacements_check_the_target(aiohttp_client, tmp_path, peers) -> None:
    allowed, other = await peers(), await peers()
    client = await start_engine(aiohttp_client, engine_settings(tmp_path, {"allowed_targets": [allowed.origin]}))
    for target in (other.url(), f"http://127.0.0.1:{allowed.port}@127.0.0.1:{other.port}/", "gopher://x/"):
        r = await client.put("/admin/services/notifying", headers=ADMIN, json={
            "_service": "callback", "_enable_status_notification": "notify",
            "_status_notification_type": "httpcb", "_status_notification_target": target})
        body = await r.json()
        assert r.status == 400 and "_status_notification_target" in body["message"], body
        text = f"[properties]\n_status_notification_type = httpcb\n_status_notification_target = {target}\n"
        r = await client.put("/admin/transaction-lists/Mine", headers=ADMIN, data=text)
        body = await r.json()
        assert r.status == 400 and "_status_notification_target" in body["message"], body
    assert (await client.get("/admin/services/notifying", headers=ADMIN)).status == 404  # nothing changed
    assert (await client.get("/admin/transaction-lists/Mine", headers=ADMIN)).status == 404
    assert not (tmp_path / "config" / "services" / "notifying.json").exists()
    r = await client.put("/admin/services/notifying", headers=ADMIN, json={
        "_service": "callback", "_status_notification_type": "httpcb", "_status_notification_target": allowed.url()})
    assert r.status == 200, await r.text()


def test_a_checked_url_is_remembered_but_a_refusal_never_is() -> None:
    policy = UrlPolicy(networks=["127.0.0.1/32"])
    first = policy.check("http://127.0.0.1:9/hook")
    assert policy.check("http://127.0.0.1:9/hook") is first  # from the cache, the same URL
    for _ in range(2):
        with pytest.raises(UrlRefused):
            policy.check("http://10.0.0.1/hook")
    narrower = UrlPolicy(origins=["https://example.com"]).exempting("https://fcm.example")
    with pytest.raises(UrlRefused):
        narrower.check("http://127.0.0.1:9/hook")  # another policy: nothing of the first one's
