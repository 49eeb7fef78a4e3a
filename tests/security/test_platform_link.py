"""The platform link's shared secret (``platform_key``): the platform process refuses a node, or any
other caller, that cannot sign with it (401, before anything is read or changed); a node believes
only a platform that proves it holds it; and neither side runs without one over a network.

Real components: the platform's aiohttp app on loopback (and the real process for the command's
rules), real WebSocket clients, the engine's ``RemotePlatform``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from engine.api.admin import _at_platform
from engine.api.appkeys import SETTINGS
from engine.api.errors import ApiError
from engine.platform.auth import PROOF_HEADER, Verifier, proof, sign
from engine.platform.remote import RemotePlatform
from engine.platform.server import PLATFORM_SERVER, PlatformServer, create_platform_app
from engine.settings import Settings
from tests.callbacks.conftest import write_config
from tests.conftest import REPO
from tests.support.eventually import eventually
from tests.support.ports import free_port

KEY = secrets.token_urlsafe(24)
WRONG = secrets.token_urlsafe(24)


@pytest.fixture
async def platform(aiohttp_server, tmp_path: Path) -> tuple[str, PlatformServer]:
    app = create_platform_app(write_config(tmp_path), KEY)
    server = await aiohttp_server(app)
    return str(server.make_url("/")).rstrip("/"), app[PLATFORM_SERVER]


def upgrade_headers(**more: str) -> dict[str, str]:
    return {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(), **more}


class Node:
    """A ``RemotePlatform`` as a node runs it, with what reached its sessions."""

    def __init__(self, url: str, name: str, key: str | None):
        self.platform = RemotePlatform(url, name, key=key)
        self.got: list[tuple[str, str]] = []
        self.platform.attach(lambda sid, name, _data: self.got.append((sid, name)))

    async def connect(self, timeout: float = 3.0) -> Any:
        found = await self.platform.connect(None, 1.0, timeout=timeout)
        self.platform.started()
        return found


# -- the handshake --------------------------------------------------------------------------------

PRESENTED = {
    "none": lambda: None,  # no key at all
    "wrong-key": lambda: sign(WRONG, "GET", "/platform/ws")[0],  # signed with another key
    "key-in-clear": lambda: f"Bearer {KEY}",  # the right key itself: not how it is proven (it never crosses the wire)
    "other-route": lambda: sign(KEY, "GET", "/admin/simulator")[0],  # the right key, signing another route
}


@pytest.mark.parametrize("kind", list(PRESENTED))
async def test_a_handshake_without_a_valid_signature_is_refused_401_and_logged_without_the_secret(
        platform, caplog, kind: str) -> None:
    url, server = platform
    presented = PRESENTED[kind]()
    headers = upgrade_headers(**({"Authorization": presented} if presented else {}))
    with caplog.at_level(logging.WARNING, logger="engine.platform.server"):
        async with aiohttp.ClientSession() as http, http.get(url + "/platform/ws", headers=headers) as r:
            assert r.status == 401
            assert r.headers["Content-Type"].startswith("application/json")
            assert await r.json() == {"error": "platform key required"}
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(url + "/platform/ws", headers={"Authorization": presented} if presented else {})
            assert refused.value.status == 401
    lines = [r for r in caplog.records if r.name == "engine.platform.server"]
    assert len(lines) == 2 and all(r.levelno == logging.WARNING for r in lines)
    assert all("127.0.0.1" in r.getMessage() and "/platform/ws" in r.getMessage() for r in lines)
    text = caplog.text
    assert KEY not in text and WRONG not in text and (presented is None or presented not in text)
    assert server.links == {} and server.simulator is None and server.stats == {}  # nothing began


async def test_the_right_key_is_accepted_and_the_welcome_proves_the_platform_holds_it(platform) -> None:
    url, server = platform
    header, nonce = sign(KEY, "GET", "/platform/ws")
    async with aiohttp.ClientSession() as http, \
            http.ws_connect(url + "/platform/ws", headers={"Authorization": header}) as ws:
        await ws.send_json({"t": "hello", "node": "n1", "incarnation": "i1", "clock": 0, "scale": 1.0})
        welcome = await ws.receive_json(timeout=5)
        assert welcome["t"] == "welcome" and welcome["proof"] == proof(KEY, nonce)
        assert list(server.links) == ["n1"]


async def test_a_signed_handshake_is_taken_once_and_only_near_the_platforms_time(platform) -> None:
    url, _server = platform
    header, _ = sign(KEY, "GET", "/platform/ws")
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url + "/platform/ws", headers={"Authorization": header}) as ws:
            await ws.send_json({"t": "hello", "node": "n1", "incarnation": "i1", "clock": 0, "scale": 1.0})
            assert (await ws.receive_json(timeout=5))["t"] == "welcome"
        async with http.get(url + "/platform/ws", headers=upgrade_headers(Authorization=header)) as r:
            assert r.status == 401 and "seen before" in (await r.json())["error"]  # a captured header replayed
        stale = sign(KEY, "GET", "/platform/ws", now=time.time() - 3600)[0]
        async with http.get(url + "/platform/ws", headers=upgrade_headers(Authorization=stale)) as r:
            assert r.status == 401 and "clocks" in (await r.json())["error"]


async def test_a_refused_caller_can_neither_bind_a_session_nor_make_a_request(platform) -> None:
    """A node made a request (its session is bound to it); an intruder without the key tries to
    take that session's events and to act in its name: refused at the handshake, nothing changed."""
    url, server = platform
    node = Node(url, "node-a", KEY)
    assert await node.connect() is not None
    try:
        await node.platform.handle("s1", "vixn.create", {"queue": "Callback_VQ", "request_id": "s1.1"})
        await eventually(lambda: node.got, timeout=5, expected="vixn.created")
        await eventually(lambda: not server.pending, timeout=5, expected="its event acked")
        before = (dict(server.bound), dict(server.requests), dict(server.by_request),
                  {n: vars(s).copy() for n, s in server.stats.items()}, server._seq)
        for presented in ({}, {"Authorization": sign(WRONG, "GET", "/platform/ws")[0]}):
            async with aiohttp.ClientSession() as http:
                # refused before a frame is read: no hello, bind or req of its can follow
                with pytest.raises(aiohttp.WSServerHandshakeError):
                    await http.ws_connect(url + "/platform/ws", headers=presented)
                async with http.get(url + "/platform/ws", headers=upgrade_headers(**presented)) as r:
                    assert r.status == 401
        await asyncio.sleep(0.2)
        after = (dict(server.bound), dict(server.requests), dict(server.by_request),
                 {n: vars(s).copy() for n, s in server.stats.items()}, server._seq)
        assert after == before and server.bound == {"s1": "node-a"} and list(server.links) == ["node-a"]
    finally:
        await node.platform.close()


# -- the other routes -----------------------------------------------------------------------------

async def test_every_route_but_health_needs_the_key_and_a_refused_one_changes_nothing(platform, tmp_path) -> None:
    url, server = platform
    node = Node(url, "node-a", KEY)  # the first node gives the platform its clock: the simulator exists
    assert await node.connect() is not None
    settings_file = tmp_path / "config" / "simulator.toml"
    before = settings_file.read_bytes()
    try:
        async with aiohttp.ClientSession() as http:
            routes = [("GET", "/platform/stats", None), ("GET", "/admin/simulator", None),
                      ("PUT", "/admin/simulator", {"queues": {}}),
                      ("POST", "/admin/simulator/call-in", {"number": "+1555", "access_code": "1234"})]
            for method, path, body in routes:
                for presented in ({}, {"Authorization": sign(WRONG, method, path)[0]}):
                    async with http.request(method, url + path, json=body, headers=presented) as r:
                        assert r.status == 401, (method, path)
                        assert await r.json() == {"error": "platform key required"}
                        assert PROOF_HEADER not in r.headers
            assert settings_file.read_bytes() == before and server.simulator is not None
            assert "Callback_VQ" in server.simulator.queues
            # signed: answered, with the platform's proof over the request's nonce
            header, nonce = sign(KEY, "GET", "/admin/simulator")
            async with http.get(url + "/admin/simulator", headers={"Authorization": header}) as r:
                assert r.status == 200 and r.headers[PROOF_HEADER] == proof(KEY, nonce)
                assert "Callback_VQ" in (await r.json())["config"]["queues"]
            # the probe stays open, and says only whether the simulator is up
            async with http.get(url + "/health") as r:
                assert r.status == 200 and set(await r.json()) == {"status", "detail"}
    finally:
        await node.platform.close()


# -- the node's side ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["wrong-key", "no-key"])
async def test_a_node_refused_by_the_platform_says_so_takes_no_event_and_retries_without_spinning(
        platform, caplog, kind: str) -> None:
    url, server = platform
    key = WRONG if kind == "wrong-key" else None
    server._event("s9", "dial.result", {"result": "answered"})  # waiting for a node to take it
    node = Node(url, "node-b", key)
    with caplog.at_level(logging.INFO):
        assert await node.connect(timeout=1.5) is None  # started on its own clock, not crashed
        await asyncio.sleep(1.0)
    try:
        refusals = [r for r in caplog.records if r.name == "engine.platform.server" and "refused" in r.getMessage()]
        assert 2 <= len(refusals) <= 12  # it kept trying, backing off (not a tight loop)
        errors = [r for r in caplog.records if r.name == "engine.platform.remote" and r.levelno == logging.ERROR]
        assert len(errors) == 1  # said once, not at every retry
        assert url in errors[0].getMessage() and "platform_key" in errors[0].getMessage()
        assert node.got == [] and server.links == {} and 1 in server.pending  # the event was not taken
        assert node.platform.health()[0] is False and "platform_key" in node.platform.health()[1]
        assert "node-b" not in server.stats
    finally:
        await node.platform.close()
    right = Node(url, "node-c", KEY)  # the same event goes to a node that holds the key
    assert await right.connect() is not None
    try:
        await eventually(lambda: right.got, timeout=5, expected="the waiting event")
        assert right.got == [("s9", "dial.result")]
    finally:
        await right.platform.close()


@pytest.mark.parametrize("welcome", [
    {"t": "welcome", "incarnation": "fake", "clock": 0, "scale": 1.0, "queues": []},  # no proof
    {"t": "welcome", "incarnation": "fake", "clock": 0, "scale": 1.0, "queues": [], "proof": "0" * 64},
    None,  # an event straight away, no welcome at all
])
async def test_a_node_does_not_believe_a_platform_that_cannot_prove_the_key(
        aiohttp_server, caplog, welcome: dict[str, Any] | None) -> None:
    """Something else answers at platform_url (a fake, or a platform process without this key):
    its events are not taken and its queues not mirrored."""
    heard: list[str | None] = []

    async def fake(request: web.Request) -> web.WebSocketResponse:
        heard.append(request.headers.get("Authorization"))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive(timeout=5)  # hello
        if welcome is not None:
            await ws.send_json(welcome)
        await ws.send_json({"t": "ev", "seq": 1, "sid": "s1", "name": "call.ended", "data": {}, "floor": 1})
        await ws.send_json({"t": "queue", "name": "Fake_VQ", "stats": {}, "waiting": []})
        await asyncio.sleep(0.5)
        return ws

    app = web.Application()
    app.router.add_get("/platform/ws", fake)
    server = await aiohttp_server(app)
    url = str(server.make_url("/")).rstrip("/")
    node = Node(url, "node-a", KEY)
    with caplog.at_level(logging.ERROR, logger="engine.platform.remote"):
        assert await node.connect(timeout=1.0) is None
    try:
        assert node.got == [] and node.platform.queues == [] and not node.platform.connected
        errors = [r.getMessage() for r in caplog.records if r.name == "engine.platform.remote"]
        assert errors and all(url in e and "platform" in e for e in errors)
        assert any("platform_key" in e or "not the platform" in e for e in errors)
        assert heard and all(h is not None and KEY not in h for h in heard)  # the key itself never sent
    finally:
        await node.platform.close()


# -- the settings ---------------------------------------------------------------------------------

def load(tmp_path: Path, **env: str) -> Settings:
    return Settings.load(config_dir=tmp_path, env={f"CALLBACK_ENGINE_{k.upper()}": v for k, v in env.items()})


def test_a_node_with_a_platform_on_the_network_and_no_key_refuses_to_start(tmp_path: Path) -> None:
    for url in ("http://platform:8090", "http://10.0.0.7:8090", "https://platform.example.com/"):
        with pytest.raises(ValueError, match=r"platform_url .* not on this machine.*platform_key.*PLATFORM_KEY"):
            load(tmp_path, platform_url=url)
        assert load(tmp_path, platform_url=url, platform_key=KEY).platform_key == KEY
    for url in ("http://127.0.0.1:8090", "http://localhost:8090", "http://[::1]:8090"):
        assert load(tmp_path, platform_url=url).platform_key is None  # this machine only: allowed
    with pytest.raises(ValueError, match="platform_key must be at least 16 characters"):
        load(tmp_path, platform_url="http://platform:8090", platform_key="short")


def test_the_platform_key_comes_from_a_file_and_never_from_the_settings_file(tmp_path: Path) -> None:
    secret = tmp_path / "platform.key"
    secret.write_text(KEY + "\n")
    assert load(tmp_path, platform_url="http://platform:8090", platform_key_file=str(secret)).platform_key == KEY
    (tmp_path / "engine.toml").write_text(f'[engine]\nplatform_key = "{KEY}"\n')
    with pytest.raises(ValueError, match="platform_key is a secret; set CALLBACK_ENGINE_PLATFORM_KEY"):
        load(tmp_path)


def command(*args: str, **env: str) -> subprocess.CompletedProcess:
    """``run_engine.py`` as an operator runs it, with no platform_key in its environment but ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CALLBACK_ENGINE_")}
    return subprocess.run([sys.executable, str(REPO / "run_engine.py"), *args], cwd=REPO, env={**clean, **env},
                          capture_output=True, text=True, timeout=60)


def test_serve_refuses_a_network_platform_without_a_key_in_one_line(tmp_path: Path) -> None:
    done = command("serve", "--config", str(tmp_path), "--data", str(tmp_path / "data"), "--port", "0",
                   CALLBACK_ENGINE_PLATFORM_URL="http://platform:8090")
    assert done.returncode == 2
    err = done.stderr.strip()
    assert "\n" not in err and "platform_key" in err and "CALLBACK_ENGINE_PLATFORM_KEY" in err
    assert not (tmp_path / "data").exists()  # refused before anything was made


def test_the_platform_on_a_network_address_without_a_key_refuses_to_start(tmp_path: Path) -> None:
    done = command("platform", "--config", str(tmp_path), "--host", "0.0.0.0", "--port", str(free_port()))
    assert done.returncode == 2
    err = done.stderr.strip()
    assert "\n" not in err and "platform_key" in err and "CALLBACK_ENGINE_PLATFORM_KEY" in err
    done = command("platform", "--config", str(tmp_path), "--port", str(free_port()),
                   CALLBACK_ENGINE_PLATFORM_KEY="short")
    assert done.returncode == 2 and "platform_key must be at least 16" in done.stderr


def test_the_platform_key_is_never_read_from_simulator_toml(tmp_path: Path) -> None:
    (tmp_path / "simulator.toml").write_text(f'platform_key = "{KEY}"\n')
    done = command("platform", "--config", str(tmp_path), "--port", str(free_port()),
                   CALLBACK_ENGINE_PLATFORM_KEY=WRONG)
    assert done.returncode == 2 and "platform_key is a secret; set CALLBACK_ENGINE_PLATFORM_KEY" in done.stderr
    assert KEY not in done.stderr


async def test_the_platform_process_without_a_key_runs_on_loopback_only_and_warns(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLBACK_ENGINE_PLATFORM_KEY")}
    log = tmp_path / "platform.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, str(REPO / "run_engine.py"), "platform", "--config", str(config),
                                 "--port", str(port)], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        async def health() -> int:
            assert proc.poll() is None, log.read_text()
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/health") as r:
                return r.status

        await eventually(health, lambda status: status == 200, timeout=20, interval=0.05, ignoring=(OSError,),
                         expected="the platform up")
        warnings = [line for line in log.read_text().splitlines() if "WARNING" in line]
        assert len(warnings) == 1 and "platform_key" in warnings[0]
    finally:
        proc.terminate()
        proc.wait(10)


async def test_the_platform_process_with_a_key_refuses_an_unsigned_node(tmp_path: Path) -> None:
    from tests.support.platform_process import PlatformProcess

    process = PlatformProcess(write_config(tmp_path), tmp_path / "platform.log")
    await process.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(process.url + "/platform/ws", headers=upgrade_headers()) as r:
                assert r.status == 401 and json.loads(await r.text()) == {"error": "platform key required"}
            async with http.get(process.url + "/platform/stats") as r:
                assert r.status == 401
        stats = await process.stats()  # signed with its key: answered, and nobody connected
        assert stats["connected"] == [] and stats["nodes"] == {}
        refused = [line for line in process.log().splitlines() if "refused" in line]
        assert len(refused) == 2 and all("WARNING" in line and "127.0.0.1" in line for line in refused)
        assert process.key not in process.log()
    finally:
        process.stop()


# -- the admin API's calls to the platform process ------------------------------------------------

@pytest.mark.parametrize("answer", ["no proof", "wrong proof", "refusal without proof", "right proof"])
async def test_the_admin_proxy_believes_only_an_answer_that_proves_the_key(aiohttp_server, caplog,
                                                                           answer: str) -> None:
    """A node's administrator reads and changes the simulator of the platform process through the
    node (``_at_platform``). Whatever answers at platform_url without the key is not believed: not
    its settings (200), nor its refusal text (400), which would be shown to the administrator."""
    verifier, seen = Verifier(KEY), []

    async def fake(request: web.Request) -> web.Response:
        nonce = verifier.check(request.headers.get("Authorization"), request.method, request.path)
        seen.append(nonce)
        headers = {}
        if answer == "right proof":
            headers[PROOF_HEADER] = proof(KEY, nonce)
        elif answer == "wrong proof":
            headers[PROOF_HEADER] = proof(KEY, "0" * 32)
        if answer == "refusal without proof":
            return web.json_response({"error": "<script>an attacker's words</script>"}, status=400, headers=headers)
        return web.json_response({"config": {"time_scale": 1.0}, "state": {}}, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/admin/simulator", fake)
    server = await aiohttp_server(app)
    node = web.Application()
    node[SETTINGS] = Settings(platform_url=str(server.make_url("/")).rstrip("/"), platform_key=KEY)
    request = make_mocked_request("GET", "/admin/simulator", app=node)
    with caplog.at_level(logging.ERROR, logger="engine.api"):
        if answer == "right proof":
            found = await _at_platform(request, "GET", "/admin/simulator")
            assert found["config"] == {"time_scale": 1.0}
        else:
            with pytest.raises(ApiError) as refused:
                await _at_platform(request, "GET", "/admin/simulator")
            assert refused.value.status_code == 503 and "does not prove" in str(refused.value)
            assert "attacker" not in str(refused.value)
            assert any("not believed" in r.getMessage() for r in caplog.records)
    assert len(seen) == 1, "the request was signed with the key (the fake checked it)"
