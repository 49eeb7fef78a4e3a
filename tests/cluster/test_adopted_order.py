"""A partition's next holder takes the events left to its sessions in the order they came, whichever
node stored them: the ids two nodes mint are not in time order (each node counts in its own
slot, at its own pace), so ``id`` alone does not say which row is older.

The proof test left four callbacks in ``with_agent`` this way: node2 took a ``route.done`` straight
in, stored its inbox row and was killed before the snapshot that processed it; the platform sent
the ``call.ended`` after it to node1, which handed it over (a row with node1's id) and then
adopted node2's partition. node2 had minted more ids than node1, so the older ``route.done`` row
had the larger id: taken in id order, ``call.ended`` came first and the flow, still in ``route``,
discarded it, then took ``route.done`` and waited for ever."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.ids import PARTITIONS, partition_of
from engine.scxml import Event
from engine.sessions.rows import oldest_first
from engine.storage import SLOTS
from tests.cluster.test_sessions_cluster import COUNTER, LEASE, Node, query
from tests.support.eventually import eventually


@pytest.fixture
async def pair(postgres, tmp_path: Path):
    """Node ``a`` holds every partition; then ``b`` joins and the two settle at half each (it takes
    a's half when a dies). Settled first: while ``a`` still gives partitions back, a commit that
    waits on every partition fails (a drop may have taken the change), and that is not this test."""
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "counter.scxml").write_text(COUNTER)
    url = postgres.new_database()
    a = await Node("a", url, folder).start()
    await eventually(lambda: len(a.membership.adopted), lambda n: n == PARTITIONS, timeout=15, interval=0.05,
                     expected="node a holding every partition")
    b = await Node("b", url, folder).start()
    half = PARTITIONS // 2
    await eventually(lambda: (len(a.membership.adopted), len(b.membership.adopted)),
                     lambda got: got == (half, half), timeout=15, interval=0.05,
                     expected="the partitions shared half and half")
    yield a, b
    for node in (a, b):
        if node.store.engine is not None:
            try:
                await node.crash()
            except Exception:
                pass


async def test_the_next_holder_takes_a_dead_nodes_event_before_a_later_one_handed_over(pair, monkeypatch) -> None:
    a, b = pair
    session = a.manager.start_flow("counter")
    sid = session.id
    await a.manager.commit()
    for _ in range(10_000):  # a has minted far more ids than b (it ran more sessions, say)
        a.store.new_id()
    # a takes the first event straight in and stores its inbox row, then dies before delivering it
    # (and so before the snapshot that would have processed it and deleted the row).
    monkeypatch.setattr(a.manager, "_release", lambda events, effects: None)
    a.manager.route_event(None, session, Event("go", {"k": 1}, type="external"))
    await a.manager.commit()
    await a.crash()
    # The later event comes to b while a's lease still runs: handed over through its source, as
    # the platform's next event for a session of a dead node is.
    assert partition_of(sid) not in b.membership.held
    b.manager.send_to(sid, Event("go", {"k": 2}, type="external"), source="p-adopt:2")
    await b.manager.commit()
    # Stored: a's row (taken at a's epoch) and b's handoff (not taken yet); the older has the larger id.
    found = dict(await query(b.store, "SELECT taken_epoch IS NOT NULL, id FROM inbox WHERE session_id = :s", s=sid))
    assert len(found) == 2 and found[True] > found[False], found
    await eventually(lambda: sid in b.manager.sessions and len(b.manager.sessions[sid].variables["seen"]),
                     lambda n: n == 2, timeout=LEASE + 10, interval=0.02,
                     expected="the session restored on b with both events processed")
    assert b.manager.sessions[sid].variables["seen"] == [1, 2]


def test_rows_of_two_nodes_are_taken_in_the_order_made_and_each_nodes_in_its_own_order() -> None:
    """``(id, created_at)``: the busy node (slot 0) made ``a`` before the quiet one (slot 1) made
    ``b``, with a larger id; then its clock stepped back and it made ``c``: still after ``a``."""
    a, c = (900 * SLOTS, 10.0), (901 * SLOTS, 9.5)
    b = (100 * SLOTS + 1, 11.0)
    assert oldest_first([b, c, a]) == [a, c, b]
