"""Sessions in a cluster (issue 14, step 5), in one process: two session managers, each with its own
store, membership and listener, on one PostgreSQL database. An event sent through one node to a
session the other runs is durable when the sender's commit returns and is processed at once; a
zombie's write (its partitions claimed meanwhile) is fenced and its sessions dropped, and no
stored epoch ever goes back; an invoked child lives in its parent's partition and is restored with
it on the other node; a graceful stop hands every session over without losing an event."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import text

from engine import persistence
from engine.ids import PARTITIONS, partition_of
from engine.scxml import Event, standard_registry
from engine.sessions import rows
from engine.sessions.flows import FlowRegistry
from engine.sessions.manager import SessionManager
from engine.storage import StorageUnavailable, Store
from engine.storage.listener import Listener
from engine.storage.membership import Membership
from tests.support.eventually import eventually

LEASE, HEARTBEAT = 3.0, 0.5
RELAY = Path(__file__).parent.parent / "sessions" / "flows" / "relay.scxml"

COUNTER = """<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="python" name="counter"
       initial="wait">
  <datamodel><data id="n" expr="0"/><data id="seen" expr="[]"/></datamodel>
  <state id="wait">
    <transition event="go"><assign location="n" expr="n + 1"/>
      <assign location="seen" expr="seen + [_event.data['k']]"/></transition>
  </state>
</scxml>"""

PARENT = """<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="python" name="parent"
       initial="run">
  <state id="run">
    <invoke id="kid" type="scxml">
      <content>
        <scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="python" name="kid" initial="wait">
          <state id="wait"><transition event="go" target="end"/></state>
          <final id="end"/>
        </scxml>
      </content>
    </invoke>
    <transition event="done.invoke.kid" target="done"/>
  </state>
  <final id="done"/>
</scxml>"""


class Node:
    """What ``Runtime`` builds of a cluster node for sessions, in the same order."""

    def __init__(self, name: str, url: str, flows: Path):
        self.name, self.url, self.flows_dir = name, url, flows

    async def start(self) -> Node:
        self.store: Store = await persistence.open_store(self.url)
        registry = standard_registry()
        self.flows = FlowRegistry(self.flows_dir, registry, self.store, watch_interval=0)
        self.listener = Listener(self.store.engine.url, probe_seconds=1.0)
        self.membership = Membership(self.store, self.name, lease=LEASE, heartbeat=HEARTBEAT)
        self.manager = SessionManager(self.flows, self.store, registry=registry, cluster=self.membership,
                                      listener=self.listener, audit=True, durability_timeout=5.0)
        await self.flows.start()
        await self.manager.open()
        await self.listener.start()
        await self.membership.start()
        return self

    async def stop(self) -> None:
        """SIGTERM: the partitions given back (written first), then the rest closed."""
        await self.membership.stop()
        await self._close()

    async def crash(self) -> None:
        """kill -9, as far as the database sees it: no heartbeat, nothing written any more."""
        await self.membership.crash()
        self.manager.drop(set(range(PARTITIONS)))
        await self._close()

    async def _close(self) -> None:
        await self.manager.close()
        await self.listener.close()
        await self.flows.close()
        await self.store.close()


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "counter.scxml").write_text(COUNTER)
    (folder / "parent.scxml").write_text(PARENT)
    (folder / "relay.scxml").write_text(RELAY.read_text())
    return folder


@pytest.fixture
async def pair(postgres, flows):
    """Two nodes sharing the partitions half and half."""
    url = postgres.new_database()
    started: list[Node] = []
    a = await Node("a", url, flows).start()
    started.append(a)
    b = await Node("b", url, flows).start()
    started.append(b)
    await eventually(lambda: (len(a.membership.adopted), len(b.membership.adopted)), lambda got: got == (32, 32),
                     timeout=15, interval=0.05, expected="the partitions shared 32/32")
    yield a, b
    for node in started:
        if node.store.engine is not None:
            try:
                await node.crash()
            except Exception:
                pass


async def query(store: Store, sql: str, **params) -> list[tuple]:
    async with store.engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(text(sql), params)).all()]


async def test_an_event_through_one_node_reaches_the_session_the_other_runs(pair) -> None:
    a, b = pair
    sid = b.manager.start_flow("counter").id
    await b.manager.commit()
    assert partition_of(sid) in b.membership.held and sid not in a.manager.sessions
    delays, last = [], 0
    for k in range(5):
        a.manager.send_to(sid, Event("go", {"k": k}, type="external"))
        await a.manager.commit()
        sent = time.monotonic()
        # Durable when the commit returns: the handed-over row (the newest one for the session: the
        # previous ones may wait for the snapshot that deletes them), or already the receiver's snapshot.
        [(newest,)] = await query(a.store, "SELECT max(id) FROM inbox WHERE session_id = :s", s=sid)
        stored = await rows.describe_stored(a.store, sid)
        assert (newest or 0) > last or stored["datamodel"]["n"] == k + 1, (newest, last, stored)
        last = newest or last
        await eventually(lambda k=k: b.manager.sessions[sid].variables["n"], lambda n, k=k: n == k + 1,
                         timeout=1.0, interval=0.002, expected=f"event {k} processed by the node running the session")
        delays.append(time.monotonic() - sent)
    assert b.manager.sessions[sid].variables["seen"] == [0, 1, 2, 3, 4]  # in order, each once
    # An event named by its source (a platform event's number) is handed over once, however often sent.
    for _copy in range(2):
        a.manager.send_to(sid, Event("go", {"k": "p:1"}, type="external"), source="p-test:1")
        await a.manager.commit()
    a.manager.send_to(sid, Event("go", {"k": 5}, type="external"))
    await a.manager.commit()
    await eventually(lambda: b.manager.sessions[sid].variables["seen"], lambda seen: seen[-1] == 5, timeout=1,
                     expected="the event after the sourced ones processed")
    assert b.manager.sessions[sid].variables["seen"] == [0, 1, 2, 3, 4, "p:1", 5]
    print(f"handed-over event processed by the other node after {max(delays) * 1000:.0f} ms at most")
    await eventually(lambda: query(a.store, "SELECT count(*) FROM inbox WHERE session_id = :s", s=sid),
                     lambda got: got == [(0,)], timeout=2, expected="the inbox rows deleted with the snapshot")


async def test_a_zombie_write_is_fenced_and_its_sessions_dropped(pair) -> None:
    a, b = pair
    sids = [a.manager.start_flow("counter").id for _ in range(6)]
    await a.manager.commit()
    for sid in sids:
        a.manager.send_to(sid, Event("go", {"k": "a"}, type="external"))
    await a.manager.commit()
    # A stops heartbeating but goes on as if it still held its partitions (a paused process).
    await a.membership.crash()
    await eventually(lambda: len(b.membership.adopted), lambda n: n == PARTITIONS, timeout=LEASE + 5, interval=0.05,
                     expected="the other node holding every partition")
    assert all(sid in b.manager.sessions for sid in sids)
    zombie = sids[0]
    a.manager.send_to(zombie, Event("go", {"k": "zombie"}, type="external"))
    with pytest.raises(StorageUnavailable):
        await a.manager.commit()
    assert not any(sid in a.manager.sessions for sid in sids)  # dropped, not written
    assert b.manager.sessions[zombie].variables["seen"] == ["a"]
    b.manager.send_to(zombie, Event("go", {"k": "b"}, type="external"))
    await b.manager.commit()
    await eventually(lambda: rows.describe_stored(b.store, zombie),
                     lambda found: found["datamodel"]["seen"] == ["a", "b"], timeout=2,
                     expected="the event through the new holder stored")
    # No stored epoch went back: per session, the audit's epochs never fall and its seq rises.
    history = defaultdict(list)
    for sid, epoch, seq, node in await query(b.store, "SELECT session_id, epoch, seq, node FROM session_writes "
                                                      "ORDER BY id"):
        history[sid].append((epoch, seq, node))
    for sid in sids:
        writes = history[sid]
        assert [w[0] for w in writes] == sorted(w[0] for w in writes), writes
        assert all(x[1] < y[1] for x, y in pairwise(writes)), writes
        assert writes[0][2] == "a"
    assert history[zombie][-1][2] == "b" and history[zombie][-1][0] > history[zombie][0][0]
    epochs = dict(await query(b.store, "SELECT id, epoch FROM cluster_partitions"))
    for sid, epoch in await query(b.store, "SELECT id, epoch FROM sessions WHERE id = ANY(:ids)", ids=sids):
        assert epoch == epochs[partition_of(sid)] if sid == zombie else epoch < epochs[partition_of(sid)]


async def test_an_invoked_child_is_restored_with_its_parent_on_the_other_node(pair) -> None:
    a, b = pair
    parent = a.manager.start_flow("parent")
    child = parent.invocation("kid").handle
    assert partition_of(child.id) == partition_of(parent.id) and child.id in a.manager.sessions
    await a.manager.commit()
    await a.crash()
    await eventually(lambda: parent.id in b.manager.sessions and child.id in b.manager.sessions, lambda ok: ok,
                     timeout=LEASE + 5, interval=0.05, expected="parent and child restored on the other node")
    restored = b.manager.sessions[child.id]
    assert restored.parent is b.manager.sessions[parent.id]
    b.manager.send_to(child.id, Event("go", type="external"))
    await b.manager.commit()
    await eventually(lambda: rows.stored_status(b.store, parent.id), lambda status: status == "finished",
                     timeout=2, expected="the parent finished once its restored child did")


async def test_a_graceful_stop_hands_every_session_over_without_loss(pair) -> None:
    a, b = pair
    rounds = 25
    firsts = [a.manager.start_flow("relay", {"rounds": rounds, "period": f"{20 + i % 7 * 5}ms"}).id for i in range(8)]
    firsts += [b.manager.start_flow("relay", {"rounds": rounds, "period": f"{20 + i % 5 * 5}ms"}).id for i in range(8)]
    seconds = [(b if i % 2 else a).manager.start_flow(
        "relay", {"rounds": rounds, "partner": first, "period": f"{22 + i % 6 * 5}ms"}).id
        for i, first in enumerate(firsts)]
    await asyncio.gather(a.manager.commit(), b.manager.commit())
    await asyncio.sleep(0.3)  # ticks and pings in flight, across the nodes
    assert any(s in a.manager.sessions for s in firsts + seconds)
    await a.stop()
    ids = firsts + seconds

    async def running() -> int:
        return (await query(b.store, "SELECT count(*) FROM sessions WHERE status = 'running' AND id = ANY(:ids)",
                            ids=ids))[0][0]

    await eventually(running, lambda n: n == 0, timeout=20, interval=0.1, expected="every pair finished")
    for sid in ids:
        found = await rows.describe_stored(b.store, sid)
        assert found["status"] == "finished", found
        assert found["datamodel"]["pings"] == list(range(1, rounds + 1)), (sid, found["datamodel"])
        assert found["datamodel"]["errors"] == [], found["datamodel"]
    claims = await query(b.store, "SELECT reason, count(*) FROM partition_claims WHERE node = 'b' GROUP BY reason")
    assert dict(claims).get("released", 0) >= 32, claims
