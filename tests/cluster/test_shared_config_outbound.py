"""``notifications.json`` in a cluster (issue 14, item 5): the outbound URL policy, the webhook
secrets and the attempts per delivery are one shared document. Two engine nodes in this process on
one PostgreSQL database (the platform as its own process), each with its own copy of the files: the
file changed on node a and reloaded there is applied by node b within a second, by the API's checks,
Basic HTTP and the FCM client alike; the secrets are stored sealed; a bad file or a bad stored
document changes nothing."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.fernet import Fernet

from engine import persistence
from engine.api.appkeys import RUNTIME
from engine.app import create_app
from engine.ids import partition_of
from engine.notifications.outbound_config import KIND, NAME, SharedOutboundConfig
from engine.runtime import Runtime
from engine.secretbox import SecretBox
from engine.settings import Settings
from engine.storage import Store, config_docs
from engine.storage.shared_config import SharedConfig
from engine.urlpolicy import UrlRefused
from tests.callbacks.conftest import write_config
from tests.conftest import REPO
from tests.support.eventually import eventually
from tests.support.platform_process import PlatformProcess
from tests.support.ports import free_port

ADMIN = {"x-api-key": "admin-key"}
LEASE, HEARTBEAT = 3.0, 0.5
HOOK, OTHER = "http://127.0.0.1:9/hook", "http://127.0.0.2:9/hook"  # loopback: allowed by a network only
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
# Sends an event over Basic HTTP to ``target``; ends only when the send fails (a refusal).
POSTER = ('<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="python" initial="s">'
          '<datamodel><data id="target" expr="\'\'"/></datamodel>'
          '<state id="s"><onentry><send event="x" type="basichttp" targetexpr="target"/></onentry>'
          '<transition event="error.communication" target="refused"/></state><final id="refused"/></scxml>')


@pytest.fixture
async def two_nodes(aiohttp_client, postgres, tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[TestClient, TestClient, str, str]]:
    secret_key = Fernet.generate_key().decode()
    monkeypatch.setenv("CALLBACK_ENGINE_SECRET_KEY", secret_key)  # one key for every node
    config = write_config(tmp_path)  # notifications.json: loopback allowed, any origin
    flows = tmp_path / "flows"
    shutil.copytree(REPO / "scxml", flows)
    (flows / "poster.scxml").write_text(POSTER)
    platform = PlatformProcess(config, tmp_path / "platform.log")
    await platform.start()
    database_url = postgres.new_database()
    try:
        clients = []
        for name in ("a", "b"):
            own = tmp_path / name
            shutil.copytree(config, own / "config")
            port = free_port()
            settings = Settings.load(
                config_dir=own / "config", env={}, data_dir=own / "data", flows_dir=flows,
                admin_key="admin-key", flow_watch_interval=0, port=port, database_url=database_url, node_name=name,
                platform_url=platform.url, cluster_lease_seconds=LEASE, cluster_heartbeat_seconds=HEARTBEAT)
            clients.append(await aiohttp_client(create_app(settings), server_kwargs={"port": port}))
        yield clients[0], clients[1], database_url, secret_key
    finally:
        platform.stop()


def runtime(node: TestClient) -> Runtime:
    return node.app[RUNTIME]


def allows(node: TestClient, url: str) -> dict[str, bool]:
    """Whether each part of a node that sends somewhere lets ``url`` through."""
    engine = runtime(node)
    found = {}
    for part, policy in (("notifications", engine.notifications.config.policy),
                         ("basichttp", engine.basichttp.policy), ("fcm", engine.fcm.policy)):
        try:
            policy.check(url)
            found[part] = True
        except UrlRefused:
            found[part] = False
    return found


async def subscribe(node: TestClient, url: str) -> int:
    """The status of a subscription request to ``url`` through the node's API (400: refused)."""
    answer = await node.post("/genesys/1/notification/subscription", headers=ADMIN, json={
        "filter": "callback/callback/*", "expire": 600, "subscriberId": "app-1",
        "notificationDetails": {"deviceId": "app-1", "type": "httpcb", "properties": {"url": url}}})
    return answer.status


async def within_a_second(check: Callable[[], bool | Awaitable[bool]]) -> float:
    began = time.monotonic()
    while True:
        found = check()
        if found if isinstance(found, bool) else await found:
            return time.monotonic() - began
        assert time.monotonic() - began < 1.0, "not applied by the other node within a second"
        await asyncio.sleep(0.02)


def write_file(node: TestClient, body: dict | str) -> None:
    path = runtime(node).settings.config_dir / "notifications.json"
    path.write_text(body if isinstance(body, str) else json.dumps(body))


async def reload(node: TestClient) -> list[str]:
    answer = await node.post("/admin/config/reload", headers=ADMIN)
    assert answer.status == 200, await answer.text()
    return (await answer.json())["changed"]


async def test_a_file_changed_and_reloaded_on_one_node_is_applied_by_the_other_within_a_second(two_nodes) -> None:
    a, b, _, _ = two_nodes
    for node in (a, b):
        assert allows(node, OTHER) == {"notifications": True, "basichttp": True, "fcm": True}
    assert await subscribe(b, OTHER) == 200

    write_file(a, {"allowed_targets": ["http://127.0.0.1:9"], "allowed_networks": ["127.0.0.0/8"],
                   "secrets": {"http://127.0.0.1:9/": SECRET}, "max_attempts": 3})
    assert await reload(a) == ["notifications notifications"]
    took = await within_a_second(lambda: not allows(b, OTHER)["basichttp"])
    # b's own file still says "any origin": the stored document is what every node serves
    assert json.loads((runtime(b).settings.config_dir / "notifications.json").read_text()).get(
        "allowed_targets") is None
    for node in (a, b):
        assert allows(node, OTHER) == {"notifications": False, "basichttp": False, "fcm": False}
        assert allows(node, HOOK) == {"notifications": True, "basichttp": True, "fcm": True}
        config = runtime(node).notifications.config
        assert (config.secret_for(HOOK), config.max_attempts) == (SECRET, 3)
        # FCM's own endpoints stay exempt from the allow list of origins
        assert allows(node, runtime(node).fcm.base_url + "/v1/projects/x/messages:send")["fcm"]
    assert await subscribe(b, OTHER) == 400
    assert await subscribe(b, HOOK) == 200
    assert took < 1.0

    # the secret is stored sealed, never in clear
    stored = await config_docs.read(runtime(a).store, KIND, NAME)
    assert stored is not None and SECRET not in stored.body and "http://127.0.0.1:9/" in stored.body

    # a reload on a node whose file did not change changes nothing; b's file edited, a follows
    assert await reload(a) == []
    write_file(b, {"allowed_networks": ["127.0.0.1/32"]})
    assert await reload(b) == ["notifications notifications"]
    await within_a_second(lambda: allows(a, OTHER)["notifications"] is False and allows(a, "http://example.com/")[
        "basichttp"])
    assert runtime(a).notifications.config.secrets == {}
    assert await subscribe(a, "http://example.com/hook") == 200
    assert await subscribe(a, OTHER) == 400  # 127.0.0.2: outside the one network allowed now


async def test_a_bad_file_or_a_bad_stored_document_is_refused_and_the_last_good_policy_stays(
        two_nodes, caplog: pytest.LogCaptureFixture) -> None:
    a, b, _, _ = two_nodes
    good = {"allowed_targets": ["http://127.0.0.1:9"], "allowed_networks": ["127.0.0.0/8"]}
    write_file(a, good)
    assert await reload(a) == ["notifications notifications"]
    await within_a_second(lambda: not allows(b, OTHER)["notifications"])
    revision = (await config_docs.read(runtime(a).store, KIND, NAME)).revision

    with caplog.at_level(logging.ERROR, logger="engine.notifications"):
        for bad in ('{"allowed_targets": [', {"allowed_networks": ["10.0.0.0/33"]},
                    {"allowed_targets": ["ftp://x"]}, {"max_attempts": 0}):
            write_file(a, bad)
            assert await reload(a) == []
        # documents written behind the engines' backs: bad JSON, a bad CIDR, a secret not sealed,
        # one sealed with another key
        store = runtime(a).store
        for body in ("{not json", json.dumps({"allowed_networks": ["not-a-network"]}),
                     json.dumps({"secrets": {"http://127.0.0.1:9/": SECRET}}),
                     json.dumps({"sealed_secrets": {"http://127.0.0.1:9/": Fernet(Fernet.generate_key()).encrypt(
                         b"x").decode()}})):
            refusals = sum("refused here" in r.getMessage() for r in caplog.records)
            await config_docs.save(store, KIND, NAME, body, "elsewhere")
            await within_a_second(lambda n=refusals: sum(  # by both nodes
                "refused here" in r.getMessage() for r in caplog.records) == n + 2)
    messages = "\n".join(r.getMessage() for r in caplog.records)
    for reason in ("not valid JSON", "10.0.0.0/33", "not an http(s) URL", "max_attempts must be",
                   "not-a-network", "holds secrets in clear", "a secret cannot be opened"):
        assert reason in messages
    assert (await config_docs.read(runtime(a).store, KIND, NAME)).revision == revision + 4  # the direct writes only
    for node in (a, b):
        assert allows(node, OTHER) == {"notifications": False, "basichttp": False, "fcm": False}
        assert allows(node, HOOK)["basichttp"]

    # a good document after them is applied again
    await config_docs.save(runtime(a).store, KIND, NAME, json.dumps({"allowed_networks": ["127.0.0.0/8"]}), "x")
    for node in (a, b):
        await within_a_second(lambda n=node: allows(n, OTHER) == {"notifications": True, "basichttp": True,
                                                                 "fcm": True})


def run_engine(db_url: str, secret_key: str, data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CALLBACK_ENGINE_DATABASE_URL": db_url, "CALLBACK_ENGINE_SECRET_KEY": secret_key}
    return subprocess.run([sys.executable, str(REPO / "run_engine.py"), args[0], "--data", str(data), *args[1:]],
                          capture_output=True, text=True, env=env, timeout=60, check=False)


async def test_an_export_holds_notifications_json_and_imported_again_changes_nothing(
        two_nodes, tmp_path: Path) -> None:
    a, b, db_url, secret_key = two_nodes
    wrote = {"allowed_targets": ["http://127.0.0.1:9"], "allowed_networks": ["127.0.0.0/8"],
             "secrets": {"http://127.0.0.1:9/": SECRET}, "max_attempts": 5}
    write_file(a, wrote)
    assert await reload(a) == ["notifications notifications"]
    out = tmp_path / "export"
    done = await asyncio.to_thread(run_engine, db_url, secret_key, tmp_path / "cli", "config", "export", str(out))
    assert done.returncode == 0, done.stderr
    exported = out / "notifications.json"
    assert json.loads(exported.read_text()) == wrote  # the secrets in clear, as the file holds them
    assert exported.stat().st_mode & 0o777 == 0o600

    before = await config_docs.revisions(runtime(a).store)
    done = await asyncio.to_thread(run_engine, db_url, secret_key, tmp_path / "cli", "config", "import", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("imported 0 changed documents"), done.stdout
    assert await config_docs.revisions(runtime(a).store) == before

    exported.write_text(json.dumps({**wrote, "allowed_targets": ["http://127.0.0.2:9"]}))
    done = await asyncio.to_thread(run_engine, db_url, secret_key, tmp_path / "cli", "config", "import", str(out))
    assert done.returncode == 0, done.stderr
    assert "notifications notifications" in done.stdout
    for node in (a, b):
        await within_a_second(lambda n=node: allows(n, OTHER)["fcm"] and not allows(n, HOOK)["basichttp"])
    assert runtime(b).notifications.config.secret_for(OTHER) is None
    assert runtime(b).notifications.config.secret_for(HOOK) == SECRET

    # an import with another secret key is refused before anything is stored
    exported.write_text(json.dumps({**wrote, "max_attempts": 2}))
    done = await asyncio.to_thread(run_engine, db_url, Fernet.generate_key().decode(), tmp_path / "cli", "config",
                                   "import", str(out))
    assert done.returncode == 2 and "secret key differs" in done.stderr, done.stderr
    assert runtime(b).notifications.config.max_attempts == 5


# -- a node starting ------------------------------------------------------------------------------
async def start_outbound(db_url: str, folder: Path, box: SecretBox, name: str) -> tuple[SharedOutboundConfig, Store]:
    """What ``Runtime.build`` does with the ``notifications.json`` of a cluster node."""
    store = await persistence.open_store(db_url)
    outbound = SharedOutboundConfig(folder / "notifications.json", box, SharedConfig(store, name))
    try:
        await outbound.open()
    except BaseException:
        await store.close()
        raise
    return outbound, store


async def test_a_starting_node_serves_the_stored_policy_and_refuses_to_start_on_nothing_good(
        postgres, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db_url = postgres.new_database()
    box = SecretBox(Fernet.generate_key())
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    for folder in (a_dir, b_dir):
        folder.mkdir()
    (b_dir / "notifications.json").write_text('{"allowed_networks": ["10.0.0.0/33"]}')
    with pytest.raises(ValueError, match=r"10\.0\.0\.0/33"):  # nothing stored, a bad file: as a single engine
        await start_outbound(db_url, b_dir, box, "b")

    (a_dir / "notifications.json").write_text(json.dumps({"allowed_targets": ["http://127.0.0.1:9"],
                                                          "allowed_networks": ["127.0.0.0/8"]}))
    a, a_store = await start_outbound(db_url, a_dir, box, "a")
    with caplog.at_level(logging.ERROR, logger="engine.notifications"):
        b, b_store = await start_outbound(db_url, b_dir, box, "b")  # its file is bad: the stored one serves
    assert "10.0.0.0/33" in caplog.text and "the stored one (revision 1) serves" in caplog.text
    (b_dir / "notifications.json").unlink()
    c, c_store = await start_outbound(db_url, b_dir, box, "c")  # no file at all: the stored one serves
    try:
        for served in (a, b, c):
            with pytest.raises(UrlRefused, match="not in the allow list"):
                served.config.policy.check(OTHER)
            assert served.config.policy.check(HOOK)
        # a stored document this node cannot read, and a file saying nothing new: it does not start
        await config_docs.save(a_store, KIND, NAME, '{"allowed_networks": "all"}', "elsewhere")
        with pytest.raises(ValueError, match="allowed_networks must be a list"):
            await start_outbound(db_url, b_dir, box, "d")
    finally:
        for store in (a_store, b_store, c_store):
            await store.close()


async def test_a_node_that_looked_before_another_imported_the_same_file_serves_what_is_stored(
        postgres, tmp_path: Path) -> None:
    """Two nodes starting at once with the same new file: the one whose import finds the file
    stored already (by the other, after it read nothing) still serves what is stored."""
    db_url = postgres.new_database()
    box = SecretBox(Fernet.generate_key())
    (tmp_path / "notifications.json").write_text(json.dumps({"allowed_targets": ["http://127.0.0.1:9"],
                                                             "allowed_networks": ["127.0.0.0/8"]}))
    _, a_store = await start_outbound(db_url, tmp_path, box, "a")
    b_store = await persistence.open_store(db_url)
    try:
        b = SharedOutboundConfig(tmp_path / "notifications.json", box, SharedConfig(b_store, "b"))
        assert b.config.policy.check("http://example.com/hook")  # what it read at first: nothing stored
        assert await b.import_file() is False  # the stored document says what the file says
        with pytest.raises(UrlRefused, match="not in the allow list"):
            b.config.policy.check("http://example.com/hook")
        assert b.config.policy.check(HOOK)

        # stored since, from this very file's import: another body (written directly, its row keeps
        # the file's hash), which is what every node serves
        await config_docs.save(a_store, KIND, NAME, json.dumps({"allowed_targets": ["http://127.0.0.2:9"],
                                                                "allowed_networks": ["127.0.0.0/8"]}), "a")
        b = SharedOutboundConfig(tmp_path / "notifications.json", box, SharedConfig(b_store, "b"))
        assert await b.import_file() is False
        assert b.config.policy.check(OTHER)
        with pytest.raises(UrlRefused, match="not in the allow list"):
            b.config.policy.check(HOOK)
    finally:
        await a_store.close()
        await b_store.close()


async def test_a_basic_http_send_of_a_flow_on_the_other_node_obeys_the_new_policy(two_nodes) -> None:
    a, b, _, _ = two_nodes
    received: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(request.path)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", hook)
    peer = TestServer(app, host="127.0.0.1")
    await peer.start_server()
    origin = f"http://127.0.0.1:{peer.port}"

    async def post_from_b(path: str) -> str:
        """A poster session started (and run) on b, sending to the peer."""
        deadline = time.monotonic() + 20  # b takes its share of the partitions from a (a rebalance)
        while (started := await b.post("/scxml/session/start", headers=ADMIN,
                                       json={"src": "poster", "target": origin + path})).status == 503:
            assert time.monotonic() < deadline, "b holds no partition"
            await asyncio.sleep(0.1)
        assert started.status == 200, await started.text()
        sid = (await started.json())["sessionid"]
        membership = runtime(b).membership
        assert membership is not None and partition_of(sid) in membership.held  # run by b
        return sid

    async def finished(sid: str) -> bool:
        return (await (await b.get(f"/scxml/session/{sid}/query", headers=ADMIN)).json())["status"] == "finished"

    try:
        await post_from_b("/before")  # loopback allowed by the shipped test file: reached
        await eventually(lambda: received == ["/before"], timeout=5, expected="the send of b reached the peer")

        write_file(a, {"allowed_targets": ["http://127.0.0.1:9"], "allowed_networks": ["127.0.0.0/8"]})
        assert await reload(a) == ["notifications notifications"]
        await within_a_second(lambda: not allows(b, origin)["basichttp"])
        refused = await post_from_b("/after")
        await eventually(lambda: finished(refused), timeout=5, expected="the send of b refused")
        assert received == ["/before"]

        write_file(a, {"allowed_targets": [origin], "allowed_networks": ["127.0.0.0/8"]})
        assert await reload(a) == ["notifications notifications"]
        await within_a_second(lambda: allows(b, origin)["basichttp"])
        await post_from_b("/allowed")
        await eventually(lambda: received == ["/before", "/allowed"], timeout=5,
                         expected="the send of b reached the peer again")
    finally:
        await peer.close()
