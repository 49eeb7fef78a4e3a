"""A platform event is applied to its session at most once across a cluster (issue 14), and still
at least once: two engine nodes in this process on one PostgreSQL database, the platform app on a
test server in this process (so a node's acks can be lost on the way, deterministically).

A node that stored an event (its session's new snapshot reflects it) and died before its ``eack``
reached the platform: the platform sends the event again, to the next holder of the session's
partition, which restored the session from that snapshot; it must not apply it a second time.
Likewise an event handed over by one node, whose ack was lost, and sent again to the holder. An
event sent again goes through its source even to a session running here, and still reaches it
before the session's later events.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import pytest

from engine.ids import partition_of
from engine.platform.server import PLATFORM_SERVER, PendingEvent, PlatformServer, create_platform_app
from engine.runtime import Runtime
from engine.sessions import rows
from tests.cluster.test_domains_partitions import balanced, write_config
from tests.cluster.test_platform_routing import Nodes
from tests.support.eventually import eventually


@pytest.fixture
async def platform_app(aiohttp_server, tmp_path: Path) -> tuple[str, PlatformServer]:
    app = create_platform_app(write_config(tmp_path / "platform", {}), secrets.token_urlsafe(24))
    server = await aiohttp_server(app)
    return str(server.make_url("/")).rstrip("/"), app[PLATFORM_SERVER]


@pytest.fixture
async def cluster(postgres, platform_app, tmp_path):
    nodes = Nodes(tmp_path, postgres.new_database(), platform_app[0], platform_app[1].key)
    yield nodes
    await nodes.close()


def ticks_on(node: Runtime, sid: str) -> int | None:
    found = node.manager.describe(sid)
    return found["datamodel"]["ticks"] if found is not None else None


async def stored_ticks(node: Runtime, sid: str) -> int:
    found = await rows.describe_stored(node.store, sid)  # type: ignore[arg-type]
    assert found is not None
    return found["datamodel"]["ticks"]


def losing_acks_of(platform: PlatformServer, node: str) -> None:
    """The platform never hears ``node``'s acks (as if each was lost with the node's death)."""
    take = platform._frame

    def frame(link: Any, message: dict[str, Any]) -> None:
        if link.node != node or message.get("t") != "eack":
            take(link, message)

    platform._frame = frame  # type: ignore[method-assign]


async def test_an_event_stored_by_a_node_killed_before_its_ack_is_not_applied_again_by_the_next_holder(
        cluster, platform_app) -> None:
    _url, platform = platform_app
    a = await cluster.start("dedup-a")
    b = await cluster.start("dedup-b")
    await balanced(a, b)
    session = a.manager.start_flow("counter")
    await a.manager.commit()
    sid = session.id
    platform.bound[sid] = "dedup-a"  # as after a request of a's: its events go to a
    losing_acks_of(platform, "dedup-a")
    platform._event(sid, "platform.tick", {})
    await eventually(lambda: ticks_on(a, sid), lambda n: n == 1, timeout=5, interval=0.02,
                     expected="the tick applied on a")
    await a.manager.commit()
    assert await stored_ticks(a, sid) == 1  # a's snapshot reflects the event...
    assert set(platform.pending) == {1}  # ...whose ack the platform never got
    # a is killed: no heartbeat (its lease runs out), its platform connection gone
    await a.membership.crash()  # type: ignore[union-attr]
    await a.platform.close()  # type: ignore[attr-defined]
    await eventually(lambda: partition_of(sid) in b.membership.adopted, timeout=15, interval=0.05,  # type: ignore[union-attr]
                     expected="b holding the session's partition")
    await eventually(lambda: ticks_on(b, sid), lambda n: n == 1, timeout=5, interval=0.02,
                     expected="the session restored on b from a's snapshot")
    # the platform sends the unacked event again, now to b: stored once, acked, not applied again
    await eventually(lambda: set(platform.pending), lambda left: not left, timeout=15, interval=0.1,
                     expected="the event sent again and acked by b")
    await b.manager.commit()
    await asyncio.sleep(1.0)  # b's heartbeat would take anything handed over meanwhile
    assert ticks_on(b, sid) == 1
    assert await stored_ticks(b, sid) == 1
    assert platform.stats["dedup-b"].events_resent >= 1
    # at least once still: a new event reaches the session on b once
    platform._event(sid, "platform.tick", {})
    await eventually(lambda: ticks_on(b, sid), lambda n: n == 2, timeout=5, interval=0.02,
                     expected="the next tick applied on b")
    await eventually(lambda: set(platform.pending), lambda left: not left, timeout=10, interval=0.05,
                     expected="the next tick acked")
    await asyncio.sleep(0.5)
    assert ticks_on(b, sid) == 2


async def test_an_event_handed_over_and_sent_again_to_the_holder_is_applied_once(cluster) -> None:
    a = await cluster.start("dedup-c")
    b = await cluster.start("dedup-d")
    await balanced(a, b)
    session = b.manager.start_flow("counter")
    await b.manager.commit()
    sid = session.id
    assert sid not in a.manager.sessions
    seq = 10**9  # a number this platform never gave: an ack of it changes nothing there (it is "lost")
    frame = {"t": "ev", "seq": seq, "sid": sid, "name": "platform.tick", "data": {}}
    a.platform._frame(frame)  # type: ignore[attr-defined]  # a does not run it: handed over to b
    await eventually(lambda: ticks_on(b, sid), lambda n: n == 1, timeout=5, interval=0.02,
                     expected="the handed-over tick applied on b")
    b.platform._frame({**frame, "again": 1})  # type: ignore[attr-defined]  # sent again, now to the holder
    await b.manager.commit()
    await asyncio.sleep(1.0)
    assert ticks_on(b, sid) == 1
    await eventually(lambda: (b.platform._handed, b.platform._to_ack, b.platform._in_batch),  # type: ignore[attr-defined]
                     lambda left: left == ([], [], []), timeout=5, interval=0.05, expected="acked by b")
    # a first copy taken by b itself and sent again: recognised there, before any statement
    frame = {**frame, "seq": seq + 1}
    b.platform._frame(frame)  # type: ignore[attr-defined]
    await eventually(lambda: ticks_on(b, sid), lambda n: n == 2, timeout=5, interval=0.02,
                     expected="the second tick applied on b")
    await b.manager.commit()
    a.platform._frame({**frame, "again": 1})  # type: ignore[attr-defined]  # a's copy: handed over, inserts nothing
    b.platform._frame({**frame, "again": 1})  # type: ignore[attr-defined]
    await a.manager.commit()
    await b.manager.commit()
    await asyncio.sleep(1.0)
    assert ticks_on(b, sid) == 2
    assert await stored_ticks(b, sid) == 2


RECORDER = """<?xml version="1.0" encoding="UTF-8"?>
<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="python" name="recorder" initial="on">
  <datamodel><data id="heard" expr="[]"/></datamodel>
  <state id="on">
    <transition event="platform"><assign location="heard" expr="heard + [_event.name]"/></transition>
  </state>
</scxml>
"""


async def test_an_event_sent_again_reaches_a_session_running_here_before_the_events_after_it(
        cluster, monkeypatch) -> None:
    (cluster.flows / "recorder.scxml").write_text(RECORDER)
    a = await cluster.start("dedup-e")
    # taken back by the write that hands it over, before the batch of the later ones is built:
    # not left to the notification, which may come after that batch was written and released
    monkeypatch.setattr(a.manager, "_take_soon", lambda: None)
    session = a.manager.start_flow("recorder")
    await a.manager.commit()
    sid = session.id
    frame = {"t": "ev", "sid": sid, "data": {}}
    # as the platform sends them after a failover: the session's unacked events again, first, then
    # its new ones, all in one burst (one write of this node)
    for seq in (1, 2, 3):
        a.platform._frame({**frame, "seq": seq, "name": f"platform.again{seq}", "again": 1})  # type: ignore[attr-defined]
    for seq in (4, 5):
        a.platform._frame({**frame, "seq": seq, "name": f"platform.new{seq}"})  # type: ignore[attr-defined]
    expected = ["platform.again1", "platform.again2", "platform.again3", "platform.new4", "platform.new5"]
    await eventually(lambda: a.manager.describe(sid)["datamodel"]["heard"], lambda got: len(got) == 5,  # type: ignore[index]
                     timeout=5, interval=0.02, expected="every event heard")
    assert a.manager.describe(sid)["datamodel"]["heard"] == expected  # type: ignore[index]
    assert a.platform.taken_again == 3  # type: ignore[attr-defined]


async def test_an_event_taken_before_its_partition_was_dropped_and_claimed_again_is_not_acked_unstored(
        cluster, platform_app) -> None:
    """Found by bench/cluster.py on an overloaded machine (callbacks stuck in ROUTING, their
    route.done never applied): a node took an event, a fence dropped the session's partition
    (forgetting the event's inbox row unwritten), the node claimed the partition again, and the
    batch's commit then acked the event, since its partition was held again. The platform never
    sent it again. Now what was taken for a dropped partition is not acked: it comes again."""
    _url, platform = platform_app
    a = await cluster.start("fence-a")
    session = a.manager.start_flow("counter")
    await a.manager.commit()
    sid, part = session.id, partition_of(session.id)
    platform.bound[sid] = "fence-a"
    gate = asyncio.Event()  # the next batch waits at the database until the partition is claimed again
    write = a.store.write  # type: ignore[union-attr]

    async def gated(unit: Any) -> None:
        await gate.wait()
        await write(unit)

    a.store.write = gated  # type: ignore[union-attr,method-assign]
    platform._seq += 1
    seq = platform._seq
    platform.pending[seq] = PendingEvent(seq, sid, "platform.tick", {})  # not sent yet: sent on its next tick
    a.platform._frame({"t": "ev", "seq": seq, "sid": sid, "name": "platform.tick", "data": {}})  # type: ignore[attr-defined]
    a.membership.forget({part})  # type: ignore[union-attr]  # a fence, before the batch storing it was built
    await eventually(lambda: part in a.membership.held, timeout=10, interval=0.02,  # type: ignore[union-attr]
                     expected="the partition claimed again")
    gate.set()
    # the session restored from its last snapshot gets the tick when the platform sends it again
    await eventually(lambda: ticks_on(a, sid), lambda n: n == 1, timeout=15, interval=0.05,
                     expected="the tick applied once the platform sent it again")
    await eventually(lambda: set(platform.pending), lambda left: not left, timeout=10, interval=0.05,
                     expected="the tick acked")
    await a.manager.commit()
    assert await stored_ticks(a, sid) == 1


ORDER = """<?xml version="1.0" encoding="UTF-8"?>
<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="python" name="order" initial="taking">
  <datamodel><data id="seen" expr="[]"/></datamodel>
  <state id="taking">
    <transition event="platform.*"><assign location="seen" expr="seen + [_event.name]"/></transition>
  </state>
</scxml>
"""


async def test_an_event_left_untaken_is_not_overtaken_by_a_later_one_of_its_session(cluster) -> None:
    """Found by tests/cluster/test_fence_churn.py: a node without a lease left a session's
    route.done untaken (the platform sends it again), then, registered again, took its call.ended:
    the flow, still routing, dropped call.ended and waited for ever. A session's later event is not
    taken before an earlier one left untaken here comes again."""
    (cluster.flows / "order.scxml").write_text(ORDER)
    a = await cluster.start("order-a")
    session = a.manager.start_flow("order")
    await a.manager.commit()
    sid = session.id

    def frame(seq: int, name: str, again: bool = False) -> dict[str, Any]:
        return {"t": "ev", "seq": 10**9 + seq, "sid": sid, "name": name, "data": {}, **({"again": 1} if again else {})}

    membership = a.membership
    assert membership is not None
    membership.lease_lost = True  # for one event: as between a fence and the next registration
    a.platform._frame(frame(1, "platform.first"))  # type: ignore[attr-defined]
    membership.lease_lost = False
    a.platform._frame(frame(2, "platform.second"))  # type: ignore[attr-defined]  # must wait for the first
    await a.manager.commit()
    await asyncio.sleep(0.3)
    assert a.manager.describe(sid)["datamodel"]["seen"] == []  # type: ignore[index]
    a.platform._frame(frame(1, "platform.first", again=True))  # type: ignore[attr-defined]  # the platform sends both again
    a.platform._frame(frame(2, "platform.second", again=True))  # type: ignore[attr-defined]
    await eventually(lambda: a.manager.describe(sid)["datamodel"]["seen"],  # type: ignore[index]
                     lambda seen: seen == ["platform.first", "platform.second"], timeout=10, interval=0.05,
                     expected="both events, in their order")
