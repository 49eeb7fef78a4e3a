"""Callbacks under fence churn (issue 14): two engine nodes in this process on one PostgreSQL
database and the platform process, each node fencing itself again and again while callbacks are
made and run (as a node starved of CPU loses its lease: found by bench/cluster.py on an overloaded
machine). Every create answered as stored is stored, and every stored callback completes once.

How many creates a node answers between two of its fences depends on how fast it registers
again and adopts its partitions (it refuses with 503 until it holds one adopted), so on a loaded
machine a fixed cadence of fences left few creates made (15 of 80 against a floor of 20) while
nothing was wrong. So each fence waits until its node has made a callback again since its last
fence: fences always race callbacks being made on a working node, whatever the machine's speed."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text

from engine.ids import partition_of
from engine.scxml import Event
from engine.sessions import rows
from engine.storage import Fenced, StorageUnavailable
from tests.cluster.test_domains_partitions import (
    balanced,
    cluster,
    history_of,
    platform,
    platform_config,
    stored_records,
)
from tests.cluster.test_platform_routing import Nodes
from tests.support.eventually import eventually

__all__ = ["cluster", "platform", "platform_config"]  # the fixtures, shared with the domains' tests

FENCES = 8
CREATE_EVERY = 0.06  # seconds between two creates, made on the nodes in turn
RECOVERY = 30.0  # seconds a fenced node may take to make callbacks again (a starved one is slow)


async def test_callbacks_complete_once_while_the_nodes_fence_themselves_again_and_again(cluster) -> None:
    a = await cluster.start("a")
    b = await cluster.start("b")
    await balanced(a, b)
    nodes = (a, b)
    made: list[str] = []
    refused: list[str] = []
    # per node: how many creates it answered as made that it began after its last fence
    made_since_fence = [0, 0]
    churning = True

    async def create(i: int) -> None:
        node = i % 2
        fences_before = nodes[node].membership.fences  # type: ignore[union-attr]
        try:
            record = await nodes[node].callbacks.create("later", {"_customer_number": f"+1555060{i:04d}"})
        except StorageUnavailable as e:
            refused.append(str(e))
            return
        made.append(record["_id"])
        if nodes[node].membership.fences == fences_before:  # type: ignore[union-attr]
            made_since_fence[node] += 1

    async def creates() -> None:
        pending = []
        i = 0
        while churning:
            pending.append(asyncio.create_task(create(i)))
            i += 1
            await asyncio.sleep(CREATE_EVERY)
        await asyncio.gather(*pending)

    async def churn() -> None:
        nonlocal churning
        try:
            for k in range(FENCES):
                node = k % 2
                await asyncio.sleep(0.6)
                # the fence races callbacks being made: the node works again since its last fence
                await eventually(lambda node=node: made_since_fence[node], timeout=RECOVERY, interval=0.02,
                                 expected=f"node {nodes[node].membership.node} making callbacks again",  # type: ignore[union-attr]
                                 seen=lambda _n: f"refused so far: {refused[-3:]}")
                made_since_fence[node] = 0
                await nodes[node].membership.self_fence("a test")  # type: ignore[union-attr]
        finally:
            churning = False

    await asyncio.gather(churn(), creates())

    async def states() -> dict[str, str]:
        stored = await stored_records(a)
        return {cid: stored[cid]["_callback_state"] if cid in stored else "NOT STORED" for cid in made}

    try:
        await eventually(states, lambda got: set(got.values()) == {"COMPLETED"}, timeout=60, interval=0.5,
                         expected="every callback answered as made stored and COMPLETED")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{await stuck_detail(a, nodes, await states())}") from None
    for cid, timeline in (await history_of(a)).items():
        if cid in made:
            assert [r["data"]["to"] for r in timeline if r["kind"] == "state"].count("COMPLETED") == 1, cid


async def stuck_detail(a: Any, nodes: tuple[Any, ...], states: dict[str, str]) -> str:
    """What each callback not COMPLETED stands at: its stored session, inbox and outbox rows, and
    where the nodes hold it in memory."""
    stored = await stored_records(a)
    lines = []
    for cid, state in states.items():
        if state == "COMPLETED":
            continue
        sid = (stored.get(cid) or {}).get("_ors_session_id")
        async with a.store.engine.connect() as conn:
            found = [tuple(r) for q in (
                "SELECT status, part, epoch, seq, substr(snapshot, position('\"configuration\"' in snapshot), 60), "
                "substr(snapshot, position('\"external\"' in snapshot), 120) FROM sessions WHERE id = :s",
                "SELECT 'inbox', id, taken_epoch, part, substr(event, 1, 60) FROM inbox WHERE session_id = :s",
                "SELECT 'outbox', id, kind, part FROM outbox WHERE session_id = :s")
                for r in (await conn.execute(text(q), {"s": sid})).all()]
        memory = [(n.membership.node, sid in n.manager.sessions, cid in n.callbacks.records,
                   partition_of(cid) in n.membership.held) for n in nodes]
        lines.append(f"{cid} {state} session {sid}: {found}; (node, session, record, held): {memory}")
    return "\n".join(lines)


ENDER = """<?xml version="1.0" encoding="UTF-8"?>
<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="python" name="ender" initial="waiting">
  <state id="waiting"><transition event="finish" target="done"/></state>
  <final id="done"/>
</scxml>
"""


async def test_a_session_ended_but_not_stored_when_its_partition_is_dropped_keeps_its_event(
        postgres, platform, tmp_path) -> None:
    """The churn test's stuck callbacks, made deterministic: a session took an event and ended,
    and its partition was dropped before the batch storing its end was built. The drop looked for
    the partition's sessions among the running ones, so the ended one stayed waiting to be stored:
    the next batch left its snapshot out (a partition not held) but wrote the delete of its event's
    inbox row, no longer known as the partition's. The next holder restored it before the event,
    with the event gone. Now the drop forgets it, and the next holder finds the event."""
    nodes = Nodes(tmp_path, postgres.new_database(), platform.url, platform.key)
    (nodes.flows / "ender.scxml").write_text(ENDER)
    try:
        a = await nodes.start("ender-a")
        session = a.manager.start_flow("ender")
        await a.manager.commit()
        sid, part = session.id, partition_of(session.id)
        ended = a.manager.session_ended
        fenced: list[str] = []

        def ending(s: Any) -> None:  # the fence comes as the session first ends, before its end is stored
            ended(s)
            if s.id == sid and not fenced:
                fenced.append(sid)
                a.membership.forget({part})  # type: ignore[union-attr]

        a.manager.session_ended = ending  # type: ignore[method-assign]
        a.manager.send_to(sid, Event("finish"))
        await a.manager.commit()
        # a holds the partition again on a coming tick: the session restored, its event taken again
        await eventually(lambda: rows.stored_status(a.store, sid), lambda status: status not in (None, "running"),
                         timeout=15, interval=0.1, expected="the session's end stored by the partition's next holder")
    finally:
        await nodes.close()


async def test_a_failing_write_then_refused_by_the_fence_leaves_the_node_ready(cluster) -> None:
    """Found by tests/cluster/test_partition.py (about 1 run in 3): a write failed while the node
    was cut from the database, and, healed, the fence refused the rest of it (its partitions
    claimed by another node). Nothing was left to write, so the writer returned without clearing
    the failure, and readiness said "storage failing" until some later write went through: the
    node, holding partitions again but idle, stayed out of the load balancer."""
    a = await cluster.start("a")
    session = a.manager.start_flow("hello")
    part = partition_of(session.id)
    write = a.store.write  # type: ignore[union-attr]
    answers: list[Exception] = [ConnectionResetError("the database went away"),
                                Fenced(frozenset({part}), node_lost=False)]

    async def failing(unit: Any) -> None:
        if answers:
            raise answers.pop(0)
        await write(unit)

    a.store.write = failing  # type: ignore[union-attr,method-assign]
    a.manager.session_changed(session)
    await eventually(lambda: answers, lambda left: not left, timeout=5, interval=0.05,
                     expected="the write failed, then refused by the fence")
    await asyncio.sleep(0.2)
    assert a.manager.writer_status()["error"] is None
