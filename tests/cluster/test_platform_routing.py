"""Platform events in a cluster (issue 14): two engine nodes in this process on one PostgreSQL
database, the platform as its own process. A node that claims partitions binds their sessions
(their events come to it); an event that reaches a node not running its session is handed over to
the holder (``send_to`` with the event's number as its source), so a copy delivered again is
taken once. Nor may an orscb subscription aim into another node's callback session (only the
engine raises events in callback flows).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from aiohttp import ClientSession
from cryptography.fernet import Fernet
from sqlalchemy import select

from engine.api.appkeys import RUNTIME
from engine.app import create_app
from engine.callbacks import history
from engine.runtime import Runtime
from engine.settings import Settings
from engine.storage.cluster_tables import inbox_sources
from tests.callbacks.conftest import CLIENT
from tests.cluster.test_domains_partitions import (  # the same platform, services and helpers
    HEARTBEAT,
    LEASE,
    SERVICES,
    balanced,
    history_of,
    platform,  # noqa: F401  (a fixture)
    platform_config,  # noqa: F401  (a fixture)
    stored_records,
    write_config,
)
from tests.conftest import REPO
from tests.support.engine_process import free_port
from tests.support.eventually import eventually
from tests.support.platform_process import PlatformProcess

COUNTER = """<?xml version="1.0" encoding="UTF-8"?>
<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="python" name="counter" initial="counting">
  <datamodel><data id="ticks" expr="0"/></datamodel>
  <state id="counting">
    <transition event="platform.tick"><assign location="ticks" expr="ticks + 1"/></transition>
  </state>
</scxml>
"""


class Nodes:
    """Engine nodes of one cluster in this process: the shipped flows plus a counter of
    ``platform.tick`` events."""

    def __init__(self, root: Path, db_url: str, platform_url: str, platform_key: str | None = None):
        self.root, self.db_url, self.platform_url, self.platform_key = root, db_url, platform_url, platform_key
        self.config = write_config(root, SERVICES)
        self.flows = root / "flows"
        shutil.copytree(REPO / "scxml", self.flows)
        (self.flows / "counter.scxml").write_text(COUNTER)
        self.key = Fernet.generate_key()
        self.nodes: list[Runtime] = []

    def settings(self, name: str, **more) -> Settings:
        data = self.root / f"data-{name}"
        data.mkdir(parents=True, exist_ok=True)
        (data / "secret.key").write_bytes(self.key)
        return Settings.load(
            config_dir=self.config, env={}, data_dir=data, flows_dir=self.flows, flow_watch_interval=0,
            admin_key="admin-key", client_key="client-key", database_url=self.db_url, node_name=name,
            platform_url=self.platform_url, platform_key=self.platform_key, cluster_lease_seconds=LEASE,
            cluster_heartbeat_seconds=HEARTBEAT, retention_days=0, **more)

    async def start(self, name: str) -> Runtime:
        runtime = await Runtime.build(self.settings(name))
        await runtime.start()
        self.nodes.append(runtime)
        return runtime

    async def close(self) -> None:
        for runtime in reversed(self.nodes):
            await runtime.close()


@pytest.fixture
async def cluster(postgres, platform, tmp_path):  # noqa: F811
    nodes = Nodes(tmp_path, postgres.new_database(), platform.url, platform.key)
    yield nodes
    await nodes.close()


async def platform_stats(process: PlatformProcess) -> dict:
    async with ClientSession() as http, \
            http.get(process.url + "/platform/stats", headers=process.signed("GET", "/platform/stats")) as r:
        return await r.json()


async def test_waiting_callbacks_moved_to_another_node_hear_the_platform_there_and_complete_once(
        cluster, platform) -> None:  # noqa: F811
    a = await cluster.start("route-a")
    made = [(await a.callbacks.create("hold", {"_customer_number": f"+1555070{i:04d}"}))["_id"] for i in range(40)]
    await eventually(lambda: [a.callbacks.records[c]["_callback_state"] for c in made],
                     lambda got: set(got) == {"QUEUED"}, timeout=5, interval=0.05, expected="all waiting on a")
    b = await cluster.start("route-b")
    await balanced(a, b)
    moved = {b.callbacks.records[cid]["_ors_session_id"] for cid in set(b.callbacks.records) & set(made)}
    assert moved  # their queue requests were sent by a: the platform knew them as a's
    # b bound the sessions it adopted: the platform sends their events to b from now on
    stats = await platform_stats(platform)
    assert stats["nodes"]["route-b"]["bound"] >= len(moved)
    async with ClientSession() as http:
        async with http.get(platform.url + "/admin/simulator", headers=platform.signed("GET", "/admin/simulator")) as r:
            config = (await r.json())["config"]
        config["queues"]["Hold_VQ"]["agents"] = 40
        async with http.put(platform.url + "/admin/simulator", json=config,
                            headers=platform.signed("PUT", "/admin/simulator")) as r:
            assert r.status == 200, await r.text()
    try:
        async def states() -> dict[str, str]:
            records = await stored_records(a)
            return {cid: records[cid]["_callback_state"] for cid in made if cid in records}

        await eventually(states, lambda got: len(got) == 40 and set(got.values()) == {"COMPLETED"}, timeout=30,
                         interval=0.2, expected="every callback COMPLETED")
        records = await stored_records(a)
        assert {records[cid]["_callback_reason"] for cid in made} == {"AGENT_CONNECTED"}
        found = await history_of(a)
        for cid in made:
            assert [r["data"]["to"] for r in found[cid] if r["kind"] == history.STATE].count("COMPLETED") == 1
        # bound, nothing had to be handed over: each event went to the node running its session
        assert a.platform.handoffs == 0 and b.platform.handoffs == 0  # type: ignore[attr-defined]
    finally:  # the platform is the module's: its queue empty again for the others
        config["queues"]["Hold_VQ"]["agents"] = 0
        async with ClientSession() as http, http.put(platform.url + "/admin/simulator", json=config,
                                                    headers=platform.signed("PUT", "/admin/simulator")) as r:
            assert r.status == 200


async def test_an_event_reaching_a_node_not_running_its_session_is_handed_over_and_taken_once(cluster) -> None:
    a = await cluster.start("route-c")
    b = await cluster.start("route-d")
    await balanced(a, b)
    session = b.manager.start_flow("counter")
    await b.manager.commit()
    assert session.id not in a.manager.sessions

    def ticks() -> int:
        return b.manager.describe(session.id)["datamodel"]["ticks"]  # type: ignore[index]

    seq = 10**9  # a number this platform never gave: its ack changes nothing there
    frame = {"t": "ev", "seq": seq, "sid": session.id, "name": "platform.tick", "data": {}}
    a.platform._frame(frame)  # type: ignore[attr-defined]  # as the platform sends it, twice at once
    a.platform._frame(dict(frame))  # type: ignore[attr-defined]
    await eventually(ticks, lambda n: n == 1, timeout=5, interval=0.02, expected="the event taken by b")
    a.platform._frame(dict(frame))  # type: ignore[attr-defined]  # and again, after it was processed
    await a.manager.commit()
    await asyncio.sleep(1.0)  # b's heartbeat takes what is handed over: nothing more
    assert ticks() == 1
    assert a.platform.handoffs == 3  # type: ignore[attr-defined]
    source = f"p{a.platform.platform_incarnation}:{seq}"  # type: ignore[attr-defined]
    rows = await a.store.fetch_all(select(inbox_sources).where(inbox_sources.c.source == source))  # type: ignore[union-attr]
    assert len(rows) == 1
    # the handoffs written, their number is acked: nothing waits for a batch any more
    await eventually(lambda: (a.platform._handed, a.platform._to_ack, a.platform._in_batch),  # type: ignore[attr-defined]
                     lambda left: left == ([], [], []), timeout=5, interval=0.05, expected="the event acked")


async def test_an_orscb_subscription_cannot_target_a_callback_session_on_another_node(cluster,
                                                                                     aiohttp_client) -> None:
    b = await cluster.start("route-f")
    port = free_port()
    client = await aiohttp_client(create_app(cluster.settings("route-e", port=port)), server_kwargs={"port": port})
    await balanced(client.app[RUNTIME], b)
    made = await b.callbacks.create("hold", {"_customer_number": "+15550710001"})
    sid = made["_ors_session_id"]
    assert sid in b.manager.sessions and sid not in client.app[RUNTIME].manager.sessions
    r = await client.post("/genesys/1/notification/subscription", headers=CLIENT, json={
        "subscriberId": "x", "providerName": "x", "expire": 600, "filter": "apps/*",
        "notificationDetails": {"deviceId": sid, "type": "orscb", "properties": {}}})
    assert r.status == 403, await r.text()


async def test_a_restarted_platform_is_told_by_each_node_to_the_callbacks_it_holds(postgres, tmp_path) -> None:
    config = write_config(tmp_path / "own-platform", {})
    own = PlatformProcess(config, tmp_path / "platform.log")  # this test kills it
    await own.start()
    nodes = Nodes(tmp_path, postgres.new_database(), own.url, own.key)
    try:
        a = await nodes.start("route-g")
        b = await nodes.start("route-h")
        await balanced(a, b)
        made = [(await node.callbacks.create("hold", {"_customer_number": f"+1555072{i:04d}"}))["_id"]
                for i, node in enumerate((a, b) * 5)]

        def waiting() -> list[str]:
            return [n.callbacks.records[c]["_callback_state"] for n in (a, b) for c in made if c in n.callbacks.records]

        await eventually(waiting, lambda got: got == ["QUEUED"] * 10, timeout=5, interval=0.05,
                         expected="all waiting, on both nodes")
        assert all(set(n.callbacks.records) & set(made) for n in (a, b))
        # the new platform has agents, but not the calls of the old one: each node's flows queue again
        simulator = config / "simulator.toml"
        staffed = simulator.read_text().replace("[queues.Hold_VQ]\nagents = 0", "[queues.Hold_VQ]\nagents = 10")
        simulator.write_text(staffed)
        own.kill()
        await own.start()

        async def states() -> set[str]:
            records = await stored_records(a)
            return {records[cid]["_callback_state"] for cid in made}

        await eventually(states, lambda got: got == {"COMPLETED"}, timeout=20, interval=0.2,
                         expected="every callback COMPLETED")
        assert (await own.stats())["by_request"].get("vixn.create", 0) == 10
    finally:
        await nodes.close()
        own.stop()
