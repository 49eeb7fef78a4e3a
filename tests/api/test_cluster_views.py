"""The console's live views and the Basic HTTP processor in a cluster (issue 14): two engine nodes
in this process on one PostgreSQL database, with the platform as its own process.

Each node holds the callbacks and sessions of its own partitions only. Whichever node answers,
``GET /admin/queues`` lists the callbacks waiting in each queue on every node, with their places
in the platform's queue, and ``GET /admin/call-ins`` the open call-in records of every node. A
session publishes the load balancer's URL (``public_url``) as its Basic HTTP location, and an
event posted there to a node that does not hold the session reaches it (node b stands for the
load balancer in these tests: its URL is the public one)."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient
from cryptography.fernet import Fernet

from engine.api import cluster_reads
from engine.api.cluster import FORWARDER
from engine.ids import PARTITIONS, partition_of
from tests.api.test_cluster_nodes import held, node, runtime, until
from tests.callbacks.conftest import ADMIN, BASE, write_config
from tests.conftest import REPO
from tests.support.eventually import eventually
from tests.support.platform_process import PlatformProcess
from tests.support.ports import free_port

LISTENER = """<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="python" name="listener"
       initial="waiting">
  <datamodel><data id="heard"/><data id="origin"/></datamodel>
  <state id="waiting">
    <transition event="go" target="heard">
      <assign location="heard" expr="_event.data['word']"/>
      <assign location="origin" expr="_event.origin"/>
    </transition>
  </state>
  <state id="heard"/>
</scxml>
"""
# hello.scxml's self-send without its give-up timer (10 s on the test's scaled clock are 50 ms)
ECHO = """<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="python" name="echo"
       initial="calling">
  <datamodel><data id="answer"/></datamodel>
  <state id="calling">
    <onentry>
      <send event="echo" type="basichttp" targetexpr="_ioprocessors['basichttp']['location']">
        <param name="text" expr="'hello, world'"/>
      </send>
    </onentry>
    <transition event="echo" target="pass"><assign location="answer" expr="_event.data['text']"/></transition>
    <transition event="error.*" target="fail"/>
  </state>
  <final id="pass"/>
  <final id="fail"/>
</scxml>
"""


@dataclass
class Place:
    root: Path
    database_url: str
    config: Path
    flows: Path
    platform_url: str
    platform_key: str


@pytest.fixture
async def place(postgres, tmp_path, monkeypatch) -> AsyncIterator[Place]:
    monkeypatch.setenv("CALLBACK_ENGINE_SECRET_KEY", Fernet.generate_key().decode())  # one key for every node
    config = write_config(tmp_path)
    services = config / "services"
    (services / "waiting.json").write_text(json.dumps({"_service": "callback", "_urs_virtual_queue": "Empty_VQ"}))
    (services / "callin.json").write_text(json.dumps(  # a code that stays good for the whole test
        {"_service": "callback", "_call_direction": "USERORIGINATED", "_callin_timeout": 86400}))
    flows = tmp_path / "flows"
    shutil.copytree(REPO / "scxml", flows)
    (flows / "listener.scxml").write_text(LISTENER)
    (flows / "echo.scxml").write_text(ECHO)
    platform = PlatformProcess(config, tmp_path / "platform.log")
    await platform.start()
    try:
        yield Place(tmp_path, postgres.new_database(), config, flows, platform.url, platform.key)
    finally:
        platform.stop()


@pytest.fixture
async def two(aiohttp_client, place) -> tuple[TestClient, TestClient]:
    port_a, port_b = free_port(), free_port()
    public = f"http://127.0.0.1:{port_b}/"  # b stands for the load balancer (a trailing slash is dropped)
    a = await node(aiohttp_client, place, "a", port_a, public)
    b = await node(aiohttp_client, place, "b", port_b, public)
    await until(lambda: len(held(a)) == len(held(b)) == PARTITIONS // 2, what="32 partitions each")
    for client in (a, b):
        await until(lambda c=client: runtime(c).membership.adopted >= held(c), what="adopted")
    return a, b


async def create(client: TestClient, service: str, number: str) -> str:
    r = await client.post(f"{BASE}/{service}", json={"_customer_number": number}, headers=ADMIN)
    assert r.status == 200, await r.text()
    cid = (await r.json())["_id"]
    assert partition_of(cid) in held(client)  # placed in a partition of the node that made it
    return cid


async def queues(client: TestClient) -> dict[str, dict]:
    r = await client.get("/admin/queues", headers=ADMIN)
    body = await r.json()
    assert r.status == 200, body
    return {q["name"]: q for q in body["queues"]}


async def call_ins(client: TestClient, query: str = "") -> dict[str, Any]:
    r = await client.get(f"/admin/call-ins?{query}", headers=ADMIN)
    body = await r.json()
    assert r.status == 200, body
    return body


async def test_each_node_shows_the_queues_and_call_ins_of_every_node(two, monkeypatch) -> None:
    a, b = two
    made = [await create(a, "waiting", "+15550900031"), await create(b, "waiting", "+15550900032"),
            await create(a, "waiting", "+15550900033")]
    in_a, in_b = set(runtime(a).callbacks.records), set(runtime(b).callbacks.records)
    assert {made[0], made[2]} <= in_a - in_b and made[1] in in_b - in_a  # each node holds its own only
    for client in (a, b):
        found = await eventually(lambda c=client: queues(c),
                                 lambda qs: [w["position"] for w in qs["Empty_VQ"]["callbacks_waiting"]] == [1, 2, 3],
                                 timeout=15, expected="the three callbacks of both nodes, each with its place")
        empty = found["Empty_VQ"]
        assert empty["callbacks_in_queue"] == 3 and empty["waiting"] == 3
        assert sorted(w["id"] for w in empty["callbacks_waiting"]) == sorted(made)
        shown = {w["id"]: w for w in empty["callbacks_waiting"]}
        assert [(shown[cid]["service"], shown[cid]["number"], shown[cid]["state"]) for cid in made] == [
            ("waiting", "+15550900031", "QUEUED"), ("waiting", "+15550900032", "QUEUED"),
            ("waiting", "+15550900033", "QUEUED")]
        assert all(w["since"].endswith("Z") for w in empty["callbacks_waiting"])
        assert found["Callback_VQ"]["callbacks_waiting"] == []
    for client, cid in ((b, made[0]), (a, made[1])):  # a place in the queue, asked of the node not holding it
        r = await client.get(f"/genesys/1/service/{cid}/check-queue-position", headers=ADMIN)
        assert r.status == 200, await r.text()
        where = await r.json()
        assert (where["_position"], where["_total_waiting"]) == (made.index(cid) + 1, 3), where

    # a callback of a cancelled through b (forwarded to a) leaves both nodes' views
    assert (await b.delete(f"{BASE}/waiting/{made[0]}", headers=ADMIN)).status == 200
    for client in (a, b):
        after = await eventually(  # the platform takes the cancelled one out of its queue a moment later
            lambda c=client: queues(c),
            lambda qs: [(w["id"], w["position"]) for w in qs["Empty_VQ"]["callbacks_waiting"]] == [
                (made[1], 1), (made[2], 2)], timeout=10, expected="the cancelled callback gone, the others moved up")
        assert after["Empty_VQ"]["callbacks_in_queue"] == 2
    monkeypatch.setattr(cluster_reads, "WAITING_CAP", 1)  # more waiting rows than a view reads: counted apart
    for client in (a, b):
        assert (await queues(client))["Empty_VQ"]["callbacks_in_queue"] == 2
    monkeypatch.undo()

    codes = [await create(a, "callin", "+15550900041"), await create(b, "callin", "+15550900042")]
    for client in (a, b):
        listed = await eventually(lambda c=client: call_ins(c), lambda body: body["total"] == 2, timeout=15,
                                  expected="the call-in records of both nodes")
        assert [c["id"] for c in listed["call_ins"]] == [codes[1], codes[0]]  # latest created first
        for shown in listed["call_ins"]:
            r = await client.get(f"{BASE}?_id={shown['id']}", headers=ADMIN)
            [record] = await r.json()
            assert shown == {"id": record["_id"], "service": "callin", "number": record["_customer_number"],
                             "access_number": str(record["_access_number"]),
                             "access_code": str(record["_access_code"]), "expires": record["_access_expires"],
                             "state": record["_callback_state"]}
        page = await call_ins(client, "limit=1&offset=1")
        assert [c["id"] for c in page["call_ins"]] == [codes[0]] and page["total"] == 2
        assert (await call_ins(client, "offset=5"))["call_ins"] == []

    assert (await a.delete(f"{BASE}/callin/{codes[1]}", headers=ADMIN)).status == 200  # b's, forwarded
    for client in (a, b):
        left = await eventually(lambda c=client: call_ins(c), lambda body: body["total"] == 1, timeout=10,
                                expected="the cancelled call-in gone")
        assert [c["id"] for c in left["call_ins"]] == [codes[0]]


async def query(client: TestClient, sid: str) -> dict[str, Any]:
    r = await client.get(f"/scxml/session/{sid}/query", headers=ADMIN)
    assert r.status == 200, await r.text()
    return await r.json()


async def test_the_basic_http_location_is_the_public_url_and_any_node_takes_the_event(two) -> None:
    a, b = two
    r = await a.post("/scxml/session/start", data={"src": "listener"}, headers=ADMIN)
    assert r.status == 200, await r.text()
    sid = (await r.json())["sessionid"]
    assert partition_of(sid) in held(a) and sid not in runtime(b).manager.sessions
    location = runtime(a).manager.sessions[sid].datamodel.variable("_ioprocessors")["basichttp"]["location"]
    public = str(b.make_url("")).rstrip("/")
    assert location.startswith(f"{public}/basichttp/{sid}/"), location

    cap = location.rsplit("/", 1)[1]
    other = "y" if cap.endswith("x") else "x"  # a changed last character, never the capability itself
    for wrong in (f"/basichttp/{sid}", f"/basichttp/{sid}/{cap[:-1]}{other}"):  # the holder's 404, as on one node
        r = await b.post(wrong, data={"_scxmleventname": "go", "word": "no"})
        assert r.status == 404, await r.text()
    forwarded = b.app[FORWARDER].forwarded
    async with ClientSession() as caller, caller.post(  # to the published location, as a caller does
            location, data={"_scxmleventname": "go", "word": "hello"},
            headers={"X-SCXML-Origin": "https://caller.example.com/reply"}) as r:
        assert r.status == 200, await r.text()
    assert b.app[FORWARDER].forwarded == forwarded + 1  # b does not hold it: sent to a
    state = await eventually(lambda: query(a, sid), lambda s: s["active_states"] == ["heard"], timeout=10,
                             expected="the event taken by a")
    assert state["datamodel"]["heard"] == "hello"
    assert state["datamodel"]["origin"] == "https://caller.example.com/reply"

    # a flow sending itself an event over its published location (b), as hello.scxml does
    r = await a.post("/scxml/session/start", data={"src": "echo"}, headers=ADMIN)
    assert r.status == 200, await r.text()
    echo = (await r.json())["sessionid"]
    assert partition_of(echo) in held(a)
    done = await eventually(lambda: query(a, echo), lambda s: s["status"] == "finished", timeout=15,
                            expected="echo finished")
    assert done["final_state"] == "pass" and done["datamodel"]["answer"] == "hello, world"
