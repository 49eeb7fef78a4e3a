"""The API of a cluster (issue 14, step 8): two engine nodes in this process on one PostgreSQL
database, with the platform as its own process. A request that needs the memory of the node
holding a callback or session (cancel, reschedule, terminate) is done by that node whichever node
received it; a forwarded request is never forwarded again; an event for a session of the other
node is stored for it and taken there; readiness says when a node holds no partitions or lost its
lease, and /health names the node and what it holds."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography.fernet import Fernet

from engine import persistence
from engine.api.appkeys import RUNTIME
from engine.api.cluster import FORWARDED, FORWARDER
from engine.app import create_app
from engine.ids import PARTITIONS, partition_of, random_id_in
from engine.notifications.delivery import DEAD, Delivery
from engine.runtime import Runtime
from engine.settings import Settings
from tests.callbacks.conftest import ADMIN, BASE, write_config
from tests.conftest import REPO
from tests.support.eventually import eventually
from tests.support.platform_process import PlatformProcess
from tests.support.ports import free_port
from tests.support.receiver import Receiver

LEASE, HEARTBEAT = 3.0, 0.5
WAITER = """<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="python" name="waiter"
       initial="waiting">
  <state id="waiting"><transition event="go" target="done"/></state>
  <final id="done"/>
</scxml>
"""


@dataclass
class Place:
    """Where the nodes of one test share their database, platform, settings folder and flows."""

    root: Path
    database_url: str
    config: Path
    flows: Path
    platform_url: str
    receiver: Receiver
    platform_key: str
    dead_letters: dict[int, int] = field(default_factory=dict)  # partition -> a dead letter's id


@pytest.fixture
async def place(postgres, tmp_path, monkeypatch) -> AsyncIterator[Place]:
    monkeypatch.setenv("CALLBACK_ENGINE_SECRET_KEY", Fernet.generate_key().decode())  # one key for every node
    config = write_config(tmp_path)
    flows = tmp_path / "flows"
    shutil.copytree(REPO / "scxml", flows)
    (flows / "waiter.scxml").write_text(WAITER)
    platform = PlatformProcess(config, tmp_path / "platform.log")
    await platform.start()
    receiver = await Receiver().start()
    try:
        yield Place(tmp_path, postgres.new_database(), config, flows, platform.url, receiver, platform.key)
    finally:
        await receiver.stop()
        platform.stop()


async def node(aiohttp_client, place: Any, name: str, port: int | None = None, public_url: str = "") -> TestClient:
    """A node of ``place`` (any object with its fields: root, config, flows, database_url,
    platform_url, platform_key) on ``port`` (a free one by default)."""
    port = port or free_port()
    settings = Settings.load(
        config_dir=place.config, env={}, data_dir=place.root / name, flows_dir=place.flows, admin_key="admin-key",
        client_key="client-key", flow_watch_interval=0, port=port, database_url=place.database_url, node_name=name,
        platform_url=place.platform_url, platform_key=place.platform_key, public_url=public_url,
        cluster_lease_seconds=LEASE, cluster_heartbeat_seconds=HEARTBEAT)
    return await aiohttp_client(create_app(settings), server_kwargs={"port": port})


def runtime(client: TestClient) -> Runtime:
    return client.app[RUNTIME]


def held(client: TestClient) -> set[int]:
    membership = runtime(client).membership
    assert membership is not None
    return set(membership.held)


async def until(check, timeout: float = 20.0, what: str = "") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.05)


async def json_of(request) -> Any:
    return await (await request).json()


async def dead_letters_in_every_partition(database_url: str, target: str) -> dict[int, int]:
    """One dead letter stored in each partition before any node starts: partition -> its id."""
    store = await persistence.open_store(database_url)
    try:
        ids = {}
        async with store.engine.begin() as conn:
            for part in range(PARTITIONS):
                ids[part] = delivery_id = 1000 + part
                letter = Delivery(delivery_id, f"fcm|{random_id_in(part)}", "customhttp", target, "",
                                  {"n": part}, f"w{part}", 1, 0.0, attempts=1, status=DEAD, last_error="refused")
                row = letter.row()
                await conn.exec_driver_sql(
                    "INSERT INTO deliveries (id, ordering_key, status, attempts, next_at, record, updated_at, part) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    (row["id"], row["ordering_key"], row["status"], row["attempts"], row["next_at"], row["record"],
                     row["updated_at"], part))
        return ids
    finally:
        await store.close()


@pytest.fixture
async def two(aiohttp_client, place) -> tuple[TestClient, TestClient]:
    place.dead_letters = await dead_letters_in_every_partition(place.database_url, place.receiver.url())
    a = await node(aiohttp_client, place, "a")
    b = await node(aiohttp_client, place, "b")
    await until(lambda: len(held(a)) == len(held(b)) == PARTITIONS // 2, what="32 partitions each")
    for client in (a, b):  # every partition adopted: sessions and callbacks restored
        await until(lambda c=client: runtime(c).membership.adopted >= held(c), what="adopted")
    return a, b


async def test_cancel_and_reschedule_sent_to_the_other_node_are_done_by_the_holder(two) -> None:
    a, b = two
    r = await b.post(f"{BASE}/tiny", json={"_customer_number": "+15550900007"}, headers=ADMIN)
    assert r.status == 200, await r.text()
    cid = (await r.json())["_id"]
    assert partition_of(cid) in held(b)  # placed in a partition of the node that made it
    await until(lambda: cid in runtime(b).callbacks.records, what="the callback in b's memory")
    assert cid not in runtime(a).callbacks.records

    # reads are a's own, from the database: the record, its events, its place in the queue
    await eventually(lambda: json_of(a.get(f"{BASE}/tiny/{cid}", headers=ADMIN)),
                     lambda found: found.get("_callback_state") == "QUEUED", timeout=10, expected="QUEUED")
    r = await a.get(f"{BASE}/tiny/{cid}/events", headers=ADMIN)
    assert r.status == 200 and "_cbe_on_service_create" in [e["event_id"] for e in await r.json()]
    r = await a.get(f"/genesys/1/service/{cid}/check-queue-position", headers=ADMIN)
    assert r.status == 200 and (await r.json())["_callback_state"] == "QUEUED", await r.text()
    assert a.app[FORWARDER].forwarded == 0

    r = await a.put(f"{BASE}/tiny/{cid}", json={"order": "A-18"}, headers=ADMIN)
    assert r.status == 200, await r.text()
    assert (await r.json())["order"] == "A-18"
    assert runtime(b).callbacks.records[cid]["order"] == "A-18"  # b changed it: its record in memory
    assert a.app[FORWARDER].forwarded == 1

    r = await a.post(f"{BASE}/tiny/{cid}/call-in", headers=ADMIN)  # b's answer: a has no such record in memory
    assert r.status == 400 and "call-in" in (await r.json())["message"], await r.text()
    assert a.app[FORWARDER].forwarded == 2

    r = await a.delete(f"{BASE}/tiny/{cid}", headers={**ADMIN, FORWARDED: "c"})  # came forwarded already
    assert r.status == 503 and r.headers["Retry-After"] == "1", await r.text()
    assert a.app[FORWARDER].forwarded == 2  # not sent on

    r = await a.delete(f"{BASE}/tiny/{cid}", headers=ADMIN)
    assert r.status == 200, await r.text()
    done = await r.json()
    assert (done["_callback_state"], done["_callback_reason"]) == ("COMPLETED", "CANCELLED")
    assert a.app[FORWARDER].forwarded == 3
    r = await a.get(BASE, params={"_id": cid}, headers=ADMIN)  # a reads it from the database
    assert (await r.json())[0]["_callback_state"] == "COMPLETED"


async def test_session_events_and_terminate_through_the_other_node(two) -> None:
    a, b = two
    sids = []
    for _ in range(2):
        r = await b.post("/scxml/session/start", data={"src": "waiter"}, headers=ADMIN)
        assert r.status == 200, await r.text()
        sids.append((await r.json())["sessionid"])
    assert all(partition_of(sid) in held(b) for sid in sids)

    r = await a.post(f"/scxml/session/{sids[0]}/event/go", headers=ADMIN)  # stored for b, taken there
    assert r.status == 200, await r.text()
    assert await r.json() == {"sessionid": sids[0], "status": "running", "active_states": ["waiting"]}
    await eventually(lambda: json_of(a.get(f"/scxml/session/{sids[0]}/query", headers=ADMIN)),
                     lambda found: found.get("status") == "finished", timeout=10, expected="finished by b")

    r = await a.post(f"/scxml/session/{sids[0]}/event/go", headers=ADMIN)
    assert r.status == 409 and (await r.json())["session_status"] == "finished"
    r = await a.post("/scxml/session/0123456789abcdef0123456789abcdef/event/go", headers=ADMIN)
    assert r.status == 404

    r = await a.post(f"/scxml/session/{sids[1]}/terminate", headers=ADMIN)
    assert r.status == 200, await r.text()
    assert await r.json() == {"sessionid": sids[1], "status": "cancelled"}
    assert runtime(b).manager.describe(sids[1])["status"] == "cancelled"


async def test_readiness_needs_partitions_and_a_live_lease(aiohttp_client, place, postgres) -> None:
    """Every partition held by a node that is alive but never gives any back: a new node starts
    and holds none (503), until that node's lease runs out; then it claims all (200). Its lease
    lost: 503 again."""
    store = await persistence.open_store(place.database_url)
    try:
        async with store.engine.begin() as conn:
            await conn.exec_driver_sql(
                "INSERT INTO cluster_nodes (name, incarnation, slot, started_at, heartbeat_at, expires_at) "
                "VALUES ('ghost', 'g', 0, 0, 0, extract(epoch from clock_timestamp()) + 600)")
            await conn.exec_driver_sql("UPDATE cluster_partitions SET owner = 'ghost', owner_incarnation = 'g'")
        a = await node(aiohttp_client, place, "a")
        r = await a.get("/health/ready")
        body = await r.json()
        assert r.status == 503 and body["reasons"] == ["this node holds no partitions yet"], body
        r = await a.get("/health")
        body = await r.json()
        assert r.status == 200 and (body["node"], body["partitions"]) == ("a", [])
        assert body["platform"] == place.platform_url and 0 < body["lease_remaining"] <= LEASE

        async with store.engine.begin() as conn:
            await conn.exec_driver_sql("UPDATE cluster_nodes SET expires_at = 0 WHERE name = 'ghost'")
        await eventually(lambda: a.get("/health/ready"), lambda r: r.status == 200, timeout=10,
                         expected="ready once the ghost's lease ran out")
        body = await (await a.get("/health")).json()
        assert body["partitions"] == list(range(PARTITIONS))

        membership = runtime(a).membership
        await membership._halt()  # no heartbeat, no new registration: the lease stays lost
        await membership.self_fence("a test")
        r = await a.get("/health/ready")
        body = await r.json()
        assert r.status == 503 and body["reasons"] == ["lease lost"], body
        body = await (await a.get("/health")).json()
        assert (body["partitions"], body["lease_remaining"]) == ([], 0)
    finally:
        await store.close()


async def test_a_dead_letter_is_replayed_by_the_node_holding_it(two, place) -> None:
    a, b = two
    theirs = place.dead_letters[min(held(b))]
    ours = place.dead_letters[min(held(a))]
    assert theirs in runtime(b).notifications.dispatcher.dead and theirs not in runtime(a).notifications.dispatcher.dead

    r = await a.post(f"/admin/dead-letters/{theirs}/replay", headers=ADMIN)
    assert r.status == 200, await r.text()
    assert (await r.json())["id"] == theirs
    assert a.app[FORWARDER].forwarded == 1
    assert await place.receiver.wait_for(1) == [{"n": min(held(b))}]  # b sent it: a never had it
    assert theirs not in runtime(b).notifications.dispatcher.dead

    r = await a.post(f"/admin/dead-letters/{ours}/replay", headers=ADMIN)  # a's own: done here
    assert r.status == 200
    assert (await place.receiver.wait_for(2))[1] == {"n": min(held(a))}
    r = await a.post("/admin/dead-letters/999999/replay", headers=ADMIN)  # no such row anywhere
    assert r.status == 404
    assert a.app[FORWARDER].forwarded == 1
    r = await b.get("/admin/dead-letters", headers=ADMIN)  # every node lists all of them, from the database
    listed = [d["id"] for d in (await r.json())["dead_letters"]]
    assert listed == sorted(set(place.dead_letters.values()) - {theirs, ours})
