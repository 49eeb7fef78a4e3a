"""The pieces a cluster's shared ``notifications.json`` is applied with: a policy changed in place
reaches every part holding it (FCM's exempting copy too) and their kept-alive connections; the
stored document seals the secrets and refuses what does not validate."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiohttp import ClientConnectorError, web
from aiohttp.test_utils import TestServer
from cryptography.fernet import Fernet

from engine.notifications.notifier import NotificationConfig
from engine.notifications.outbound_config import exported_file, opened_document, sealed_document
from engine.secretbox import SecretBox
from engine.urlpolicy import UrlPolicy, UrlRefused, refusal

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_a_policy_adopted_in_place_reaches_its_exempting_copies_and_forgets_what_it_allowed() -> None:
    policy = UrlPolicy(networks=["127.0.0.0/8"])
    fcm = policy.exempting("http://127.0.0.9:1")
    assert policy.check("http://127.0.0.2/x") and fcm.check("http://127.0.0.2/x")  # now kept as allowed
    policy.adopt(UrlPolicy(["http://127.0.0.1:9"], ["127.0.0.0/8"]))
    for holder in (policy, fcm):
        with pytest.raises(UrlRefused, match="not in the allow list"):
            holder.check("http://127.0.0.2/x")
        assert holder.check("http://127.0.0.1:9/hook")
    assert fcm.check("http://127.0.0.9:1/send")  # FCM's own endpoint stays exempt
    with pytest.raises(UrlRefused):
        policy.check("http://127.0.0.9:1/send")
    policy.adopt(UrlPolicy())
    with pytest.raises(UrlRefused, match="not public"):
        fcm.check("http://127.0.0.9:1/send")  # the networks follow as well


async def test_a_client_drops_its_kept_alive_connections_when_the_policy_changes() -> None:
    async def hook(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    policy = UrlPolicy(networks=["127.0.0.0/8", "::1/128"])
    client = policy.client(timeout=0.2)
    url = f"http://localhost:{server.port}/hook"  # a name: only the resolver checks its addresses
    try:
        async with client.post(url) as answer:
            assert answer.status == 200
        old = client._session
        policy.adopt(UrlPolicy())  # loopback no longer allowed
        with pytest.raises(ClientConnectorError) as refused:  # not sent on the kept-alive connection
            async with client.post(url):
                pass
        assert refusal(refused.value) and "outbound URL policy refuses" in refusal(refused.value)
        assert old is not None and not old.closed  # left to the requests in flight, closed shortly
        await asyncio.sleep(0.4)
        assert old.closed
    finally:
        await client.close()
        await server.close()


def test_notification_settings_adopted_in_place() -> None:
    box = SecretBox(Fernet.generate_key())
    served = NotificationConfig(box)
    policy = served.policy
    served.adopt(NotificationConfig.from_raw({"secrets": {"http://127.0.0.1:9/": SECRET}, "max_attempts": 2,
                                              "allowed_targets": ["http://127.0.0.1:9"]}, "x", box))
    assert served.policy is policy  # the object the other parts hold
    assert (served.secret_for("http://127.0.0.1:9/hook"), served.max_attempts) == (SECRET, 2)
    with pytest.raises(UrlRefused):
        policy.check("http://example.com/")


def test_the_stored_document_seals_the_secrets_and_the_export_opens_them(tmp_path: Path) -> None:
    box = SecretBox(Fernet.generate_key())
    raw = {"allowed_targets": [], "allowed_networks": ["10.0.0.0/8"], "secrets": {"https://h.example/": SECRET},
           "max_attempts": 4}
    body = sealed_document(raw, box)
    assert SECRET not in body and "secrets" not in json.loads(body)
    assert opened_document(body, box, "stored") == raw
    assert json.loads(exported_file(body, box)) == raw
    with pytest.raises(ValueError, match="a secret cannot be opened"):
        opened_document(body, SecretBox(Fernet.generate_key()), "stored")
    with pytest.raises(ValueError, match="holds secrets in clear"):
        opened_document(json.dumps(raw), box, "stored")
    with pytest.raises(ValueError, match="stored: not valid JSON"):
        opened_document("{", box, "stored")
