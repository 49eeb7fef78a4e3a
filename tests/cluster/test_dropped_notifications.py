"""What a callback's macrostep did for its notifications is forgotten with it when a drop forgets
the macrostep (an engine node in this process on a PostgreSQL database, the platform its own
process): the session restored from its last snapshot does it again.

Found in the cluster proof: a node lost its lease between a status event of a callback's flow and
the batch that would have written it. The drop forgot the event row and the session's snapshot,
but the event's delivery waited on in the notifier and went out with the next batch (handed over,
then taken back once the node had claimed the partition again); the session restored from its last
snapshot made the event again, so it reached the receiver twice under two webhook-ids while the
database recorded it once. Likewise the end of a callback removes the subscription made for it:
a forgotten end must not remove it, or the replayed end's status events find nobody to notify.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import select, text

from engine.callbacks import rows as callback_rows
from engine.callbacks.bus import CallbackEnded, RecordUpdated
from engine.ids import partition_of
from engine.notifications import rows as notification_rows
from engine.notifications.subscriptions import Subscription
from engine.runtime import Runtime
from engine.sessions import rows as session_rows
from engine.sessions.manager import BUSY_BATCH_SESSIONS
from engine.storage import StorageUnavailable
from tests.cluster.test_domains_partitions import cluster, later, platform, platform_config
from tests.support.eventually import eventually
from tests.support.receiver import Receiver

__all__ = ["cluster", "platform", "platform_config"]  # the fixtures, shared with the domains' tests

DROPPED_EVENT = "_cbe_on_target_found"  # the hold queue has no agent: the flow never reports it itself
MARKER_EVENT = "_cbe_on_dial_init"


def first_arrivals(receiver: Receiver, callback_id: str) -> list[str]:
    """The status events of ``callback_id`` as the receiver got them, each webhook-id once."""
    seen: set[str] = set()
    found = []
    for r in receiver.received:
        webhook_id = r.headers.get("webhook-id", "")
        message = r.body.get("message", r.body)
        if webhook_id in seen or message.get("_service_id") != callback_id:
            continue
        seen.add(webhook_id)
        found.append(message["event_id"])
    return found


async def recorded(node: Runtime, callback_id: str) -> list[str]:
    """The status events of ``callback_id`` the database holds, in the order they were recorded."""
    table = callback_rows.callback_events
    rows = await node.store.fetch_all(  # type: ignore[union-attr]
        select(table.c.name).where(table.c.callback_id == callback_id).order_by(table.c.id))
    return [row["name"] for row in rows]


def lose_lease(node: Runtime, _part: int) -> Awaitable[None]:
    return node.membership.self_fence("a test")  # type: ignore[union-attr]


async def lose_partition(node: Runtime, part: int) -> None:
    node.membership.forget({part})  # type: ignore[union-attr]  # as after a fenced write


async def waiting_callback(node: Runtime, receiver: Receiver, number: str) -> dict:
    """A callback notifying ``receiver`` whose flow waits for an agent of a queue that has none,
    once every status event so far is recorded and has arrived."""
    notify = {"_enable_status_notification": "subscribe_notify", "_status_notification_type": "httpcb",
              "_status_notification_target": receiver.url()}
    record = await node.callbacks.create("hold", {"_customer_number": number, **notify})
    cid = record["_id"]

    async def settled() -> tuple[list[str], list[str]]:
        await node.manager.commit()
        return await recorded(node, cid), first_arrivals(receiver, cid)

    await eventually(settled, lambda got: "_cbe_on_virtual_ixn_create" in got[0] and got[0] == got[1],
                     timeout=15, interval=0.1, expected="the flow's first events recorded and notified")
    return record


async def adopted_again(node: Runtime, record: dict) -> None:
    """Until the node holds the callback's partition again, its session restored as last stored."""
    part, sid = partition_of(record["_id"]), record["_ors_session_id"]
    await eventually(lambda: part in node.membership.adopted and sid in node.manager.sessions  # type: ignore[union-attr]
                     and record["_id"] in node.callbacks.records, lambda ok: ok, timeout=20, interval=0.05,
                     expected="the callback's partition adopted again")


async def claimed_elsewhere(node: Runtime, part: int) -> None:
    """As a claim of ``part`` by another node: the next batch writing it is refused by the fence."""
    async with node.store.engine.begin() as conn:  # type: ignore[union-attr]
        await conn.execute(text("UPDATE cluster_partitions SET epoch = epoch + 1 WHERE id = :p"), {"p": part})


async def claimed_while_waiting(node: Runtime, receiver: Receiver, number: str) -> tuple[dict, int, Subscription]:
    """A waiting callback notifying ``receiver`` whose partition another node has just claimed
    (its next batch is refused): its record, its partition and its one subscription."""
    record = await waiting_callback(node, receiver, number)
    part = partition_of(record["_id"])
    (sub,) = node.notifications.subscriptions.for_callback(record["_id"])
    await claimed_elsewhere(node, part)
    return record, part, sub


def retargeted(node: Runtime, record: dict, url: str) -> tuple[Subscription, Subscription, dict]:
    """A new notification target for ``record``, published as an update publishes it (nothing
    stored yet): its subscription before, its subscription remade in memory, the record after."""
    (old,) = node.notifications.subscriptions.for_callback(record["_id"])
    updated = dict(record, _status_notification_target=url)
    node.callbacks.bus.publish(RecordUpdated(updated, {"_status_notification_target": url}))
    (new,) = node.notifications.subscriptions.for_callback(record["_id"])
    return old, new, updated


async def stored_subscriptions(node: Runtime) -> set[str]:
    rows = await node.store.fetch_all(select(notification_rows.subscriptions.c.id))  # type: ignore[union-attr]
    return {row["id"] for row in rows}


@pytest.mark.parametrize("drop", [lose_lease, lose_partition], ids=["lease lost", "partition fenced"])
async def test_a_status_event_forgotten_by_a_drop_is_not_notified(
        cluster, drop: Callable[[Runtime, int], Awaitable[None]]) -> None:
    receiver = await Receiver().start()
    try:
        a = await cluster.start("a")
        record = await waiting_callback(a, receiver, "+15550610001")
        cid, sid = record["_id"], record["_ors_session_id"]
        # a status event of a macrostep whose batch is not built yet: its row and its delivery wait
        a.callbacks.flow_event(a.manager.sessions[sid], DROPPED_EVENT)
        assert any(d.message.get("event_id") == DROPPED_EVENT for d in a.notifications.notifier.new_deliveries)
        await drop(a, partition_of(cid))  # before that batch: the event, the session's state, forgotten unwritten

        # the node claims the partition again (a new epoch) and restores the session as last stored
        await adopted_again(a, record)
        # a later event of the same callback: same ordering key, so it comes after any sent before
        a.callbacks.flow_event(a.manager.sessions[sid], MARKER_EVENT)
        await a.manager.commit()
        await eventually(lambda: first_arrivals(receiver, cid), lambda got: MARKER_EVENT in got, timeout=15,
                         interval=0.1, expected="the later event notified")
        stored = await recorded(a, cid)
        assert DROPPED_EVENT not in stored
        assert first_arrivals(receiver, cid) == stored, "a status event the database never recorded was notified"
    finally:
        await receiver.stop()


@pytest.mark.parametrize("drop", [lose_lease, lose_partition], ids=["lease lost", "partition fenced"])
async def test_a_callback_end_forgotten_by_a_drop_keeps_its_subscription(
        cluster, drop: Callable[[Runtime, int], Awaitable[None]]) -> None:
    receiver = await Receiver().start()
    try:
        a = await cluster.start("a")
        record = await waiting_callback(a, receiver, "+15550610002")
        cid, sid = record["_id"], record["_ors_session_id"]
        (sub,) = a.notifications.subscriptions.for_callback(cid)
        a.callbacks.bus.publish(CallbackEnded(record))  # as its flow's end does: the subscription goes
        assert not a.notifications.subscriptions.for_callback(cid)
        await drop(a, partition_of(cid))  # before the batch of that end: forgotten, the flow runs on

        await adopted_again(a, record)
        await a.manager.commit()
        assert sub.id in await stored_subscriptions(a)
        assert [s.id for s in a.notifications.subscriptions.for_callback(cid)] == [sub.id]
        a.callbacks.flow_event(a.manager.sessions[sid], MARKER_EVENT)  # what the replayed flow reports
        await a.manager.commit()
        await eventually(lambda: first_arrivals(receiver, cid), lambda got: MARKER_EVENT in got, timeout=15,
                         interval=0.1, expected="the later event notified")
    finally:
        await receiver.stop()


async def test_a_callback_end_in_a_fenced_batch_keeps_its_subscription(cluster) -> None:
    """The end's batch is being written when the fence refuses the callback's partition (another
    node claimed it): the subscription's delete is left out with the partition's rows."""
    receiver = await Receiver().start()
    try:
        a = await cluster.start("a")
        record, part, sub = await claimed_while_waiting(a, receiver, "+15550610003")
        cid = record["_id"]
        a.callbacks.bus.publish(CallbackEnded(record))
        with pytest.raises(StorageUnavailable):  # the batch of that end was refused
            await a.manager.commit(parts=[part])
        assert part not in a.membership.held  # type: ignore[union-attr]
        assert sub.id in await stored_subscriptions(a)

        await adopted_again(a, record)  # the partition is this node's in the database still: taken again
        await a.manager.commit()
        assert sub.id in await stored_subscriptions(a)
        assert [s.id for s in a.notifications.subscriptions.for_callback(cid)] == [sub.id]
    finally:
        await receiver.stop()


async def test_a_subscription_made_while_all_are_read_again_is_kept(cluster, monkeypatch) -> None:
    """A node reads every subscription again at its first sweep (and after its listener was cut
    off). A subscription made while that read ran, stored and announced before the read's answer
    was applied, was not in what the read saw: applied as "removed", it was gone from memory for
    good (its own announcement came first), and its callback's later status events were never
    notified."""
    receiver = await Receiver().start()
    try:
        a = await cluster.start("a")
        service = a.notifications
        service._resync = False  # only the read below: a later one would hide the loss
        reading, release = asyncio.Event(), asyncio.Event()
        load = notification_rows.load_subscriptions

        async def held_load(store):
            rows = await load(store)  # read before the subscription below is stored
            reading.set()
            await release.wait()
            return rows

        announced = asyncio.Event()
        stored = service.subscriptions.stored

        def noted(sub_id: str, row: dict | None) -> None:
            stored(sub_id, row)
            announced.set()

        monkeypatch.setattr(notification_rows, "load_subscriptions", held_load)
        monkeypatch.setattr(service.subscriptions, "stored", noted)
        read_again = asyncio.create_task(service._reload_subscriptions())
        await reading.wait()
        record = await waiting_callback(a, receiver, "+15550610004")  # its subscription made and stored
        (sub,) = service.subscriptions.for_callback(record["_id"])
        await asyncio.wait_for(announced.wait(), 15)  # and its announcement taken in
        release.set()
        await read_again
        assert [s.id for s in service.subscriptions.for_callback(record["_id"])] == [sub.id]
        a.callbacks.flow_event(a.manager.sessions[record["_ors_session_id"]], MARKER_EVENT)
        await a.manager.commit()
        await eventually(lambda: first_arrivals(receiver, record["_id"]), lambda got: MARKER_EVENT in got,
                         timeout=15, interval=0.1, expected="the later event notified")
    finally:
        await receiver.stop()


async def test_an_update_of_the_target_in_a_fenced_batch_keeps_the_old_subscription(cluster) -> None:
    """A PUT that changes a callback's notification target remakes its subscription. Its batch is
    refused (another node claimed the partition): the record change is left out with the
    partition's rows, and the subscription's change must be too. Before, the old subscription was
    deleted and the new one stored (unfenced rows) while the record kept the old target and the
    client was answered 503."""
    receiver, other = await Receiver().start(), await Receiver().start()
    try:
        a = await cluster.start("a")
        record, part, old = await claimed_while_waiting(a, receiver, "+15550610005")
        cid = record["_id"]
        with pytest.raises(StorageUnavailable):  # the batch of that update was refused
            await a.callbacks.reschedule("hold", cid, {"_status_notification_target": other.url()})
        assert part not in a.membership.held  # type: ignore[union-attr]
        assert await stored_subscriptions(a) == {old.id}, "the refused update changed the stored subscriptions"
        stored = await a.store.fetch_one(  # type: ignore[union-attr]
            select(callback_rows.callbacks.c.record).where(callback_rows.callbacks.c.id == cid))
        assert receiver.url() in stored["record"] and other.url() not in stored["record"]

        await adopted_again(a, record)
        await a.manager.commit()
        assert [s.id for s in a.notifications.subscriptions.for_callback(cid)] == [old.id]
        a.callbacks.flow_event(a.manager.sessions[record["_ors_session_id"]], MARKER_EVENT)
        await a.manager.commit()
        await eventually(lambda: first_arrivals(receiver, cid), lambda got: MARKER_EVENT in got, timeout=15,
                         interval=0.1, expected="the later event notified to the target the record keeps")
        assert not other.received
    finally:
        await receiver.stop()
        await other.stop()


async def test_an_update_forgotten_by_a_drop_before_its_batch_leaves_no_subscription_behind(cluster) -> None:
    """The partition is dropped after the update remade the subscription in memory and before a
    batch carried it: the new subscription goes with the forgotten change, the old one is back."""
    receiver, other = await Receiver().start(), await Receiver().start()
    try:
        a = await cluster.start("a")
        record = await waiting_callback(a, receiver, "+15550610006")
        cid = record["_id"]
        old, new, _updated = retargeted(a, record, other.url())
        assert new.id != old.id and new.device_id == other.url()
        await lose_partition(a, partition_of(cid))
        assert new.id not in a.notifications.subscriptions.items
        await a.manager.commit()
        assert await stored_subscriptions(a) == {old.id}
        await adopted_again(a, record)
        await a.manager.commit()
        assert [s.id for s in a.notifications.subscriptions.for_callback(cid)] == [old.id]
    finally:
        await receiver.stop()
        await other.stop()


async def test_an_orphan_is_resubmitted_after_the_partitions_pending_deliveries_are_taken_in(
        cluster, monkeypatch) -> None:
    """A waiting callback whose session is gone is resubmitted to a new session when its partition
    is adopted; the new flow reports status events at once. The notification service must have
    taken in the partition's pending deliveries by then, or the callback's newer notifications
    could go out before its older ones. It does (a doubt of an earlier stop): it joins the
    membership before the callback service, so it takes a partition in first. This keeps that
    order from changing unnoticed."""
    receiver = await Receiver().start()
    try:
        a = await cluster.start("a")
        record = await waiting_callback(a, receiver, "+15550610007")
        cid, gone = record["_id"], record["_ors_session_id"]
        async with a.store.engine.begin() as conn:  # type: ignore[union-attr]  # its session lost
            await conn.execute(text("DELETE FROM sessions WHERE id = :s"), {"s": gone})
        seen_by_notifications: list[str | None] = []
        take_in = a.notifications.adopt

        async def noting(partitions: dict[int, int]) -> None:
            if partition_of(cid) in partitions:  # the callback as the deliveries are taken in
                seen_by_notifications.append(a.callbacks.records.get(cid, {}).get("_ors_session_id"))
            await take_in(partitions)

        monkeypatch.setattr(a.notifications, "adopt", noting)
        await lose_partition(a, partition_of(cid))
        await eventually(lambda: a.callbacks.records.get(cid, {}).get("_ors_session_id") not in (None, gone),
                         lambda ok: ok, timeout=20, interval=0.05, expected="the callback resubmitted")
        assert seen_by_notifications == [None], "the callback was taken in (and resubmitted) before its deliveries"
        await a.manager.commit()
        assert "_cbe_on_callback_resubmitted" in await recorded(a, cid)
        await eventually(lambda: first_arrivals(receiver, cid), lambda got: "_cbe_on_callback_resubmitted" in got,
                         timeout=15, interval=0.1, expected="the resubmission notified")
    finally:
        await receiver.stop()


async def test_a_subscription_made_and_removed_before_a_batch_does_not_come_back_after_a_drop(cluster) -> None:
    """An update remakes the subscription (S0 removed, S1 made) and the callback ends before a
    batch stores either; then the partition is dropped. The drop puts S0 back (its delete was
    never stored) and must not bring S1 back: it was never stored, and nothing would ever remove
    it from this node's memory (its old target would get the replayed callback's events)."""
    receiver, other = await Receiver().start(), await Receiver().start()
    try:
        a = await cluster.start("a")
        record = await waiting_callback(a, receiver, "+15550610008")
        cid = record["_id"]
        old, new, updated = retargeted(a, record, other.url())
        a.callbacks.bus.publish(CallbackEnded(updated))
        assert a.notifications.subscriptions.for_callback(cid) == []
        await lose_partition(a, partition_of(cid))
        assert new.id not in a.notifications.subscriptions.items, "a subscription never stored came back"
        assert [s.id for s in a.notifications.subscriptions.for_callback(cid)] == [old.id]
        await a.manager.commit()
        assert await stored_subscriptions(a) == {old.id}
    finally:
        await receiver.stop()
        await other.stop()


async def test_an_update_whose_partition_is_dropped_during_its_checks_is_refused(cluster, monkeypatch) -> None:
    """A PUT awaits its capacity check; meanwhile the callback's partition is dropped (a fence).
    The change, made to a record this node no longer holds, would be left out of every batch and
    still answered 200: it is refused (503) and changes nothing."""
    a = await cluster.start("a")
    cid = (await a.callbacks.create("later", {"_customer_number": "+15550610009",
                                               "_desired_time": later(a, 3600)}))["_id"]
    await a.manager.commit()
    check = a.callbacks._check_capacity

    async def dropped_meanwhile(*args, **kwargs) -> None:
        await check(*args, **kwargs)
        await lose_partition(a, partition_of(cid))

    monkeypatch.setattr(a.callbacks, "_check_capacity", dropped_meanwhile)
    with pytest.raises(StorageUnavailable, match="held by another node"):
        await a.callbacks.reschedule("later", cid, {"_new_desired_time": later(a, 7200), "order": "changed"})
    stored = await a.store.fetch_one(  # type: ignore[union-attr]
        select(callback_rows.callbacks.c.record).where(callback_rows.callbacks.c.id == cid))
    assert "changed" not in stored["record"]


async def test_group_commit_holds_on_a_cluster_node(cluster) -> None:
    """A cluster batch carries its snapshots in the partitioned sessions table: the busy test
    counts those (it counted the single-node table's, so a node never waited)."""
    a = await cluster.start("a")
    a.manager.commit_window = 1.0  # far longer than the 50 ms between the two creates below
    batches: list[set[str]] = []
    a.manager.on_commit.append(lambda batch, _s: batches.append(
        {row["id"] for row in batch.upserts.get(session_rows.CLUSTER_SESSIONS, ())}))
    for _ in range(BUSY_BATCH_SESSIONS):  # one batch of that many new sessions: the node is busy
        a.manager.start_flow("hello")
    await a.manager.commit()
    assert len(batches[-1]) >= BUSY_BATCH_SESSIONS, batches
    first = asyncio.ensure_future(a.callbacks.create("hold", {"_customer_number": "+15550620100"}))
    await asyncio.sleep(0.05)
    second = asyncio.ensure_future(a.callbacks.create("hold", {"_customer_number": "+15550620101"}))
    made = {(await first)["_ors_session_id"], (await second)["_ors_session_id"]}
    assert any(made <= ids for ids in batches), "the two creates were written in separate batches"


async def test_the_status_events_of_a_fenced_batch_are_left_out_with_the_record_change(cluster) -> None:
    """A reschedule's batch is refused (another node claimed the callback's partition): the record
    change is left out with the partition's rows, and so are the status events it recorded. Before,
    the event rows carried no partition, so the fence neither covered nor stripped them: the
    database said the callback was rescheduled while its record kept the old time."""
    a = await cluster.start("a")
    cid = (await a.callbacks.create("later", {"_customer_number": "+15550610011",
                                               "_desired_time": later(a, 3600)}))["_id"]
    await a.manager.commit()
    before = await recorded(a, cid)
    await claimed_elsewhere(a, partition_of(cid))
    with pytest.raises(StorageUnavailable):  # the batch of that reschedule was refused
        await a.callbacks.reschedule("later", cid, {"_new_desired_time": later(a, 7200), "order": "changed"})
    stored = await a.store.fetch_one(  # type: ignore[union-attr]
        select(callback_rows.callbacks.c.record).where(callback_rows.callbacks.c.id == cid))
    assert "changed" not in stored["record"]
    assert await recorded(a, cid) == before, "the refused change's status events were stored"
