"""The notification service: subscriptions, the status notifier and the dispatcher, kept durable.

It follows callbacks through the callback bus (created, status event, ended) and is the
``Outbox`` other parts enqueue through (push's FCM messages), so nothing calls into it by name.

New subscriptions, deliveries and their progress are written with the session manager's next
batch, in the same transaction as the callback change that caused them; a new delivery is
attempted only once that transaction is committed. Without storage they are dispatched at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from ..callbacks.bus import CallbackBus, CallbackCreated, CallbackEnded, RecordUpdated, StatusEvent
from ..callbacks.services import ServiceRegistry
from ..ids import partition_of, partition_of_ordering_key
from ..outbound import Sender
from ..sessions.manager import SessionManager
from ..storage import UnitOfWork
from ..storage.listener import Listener
from . import rows as notification_rows
from .delivery import DEAD, Delivery, Dispatcher, callback_of
from .notifier import NotificationConfig, StatusNotifier, TransactionLists
from .subscriptions import Subscription, SubscriptionRegistry
from .webhooks import message_id

log = logging.getLogger("engine.notifications")


DELIVERIES_CHANNEL = "cbe_deliveries"  # payload: the partition a delivery was handed over to


class NotificationService:
    def __init__(self, manager: SessionManager, services: ServiceRegistry, lists: TransactionLists,
                 config: NotificationConfig, bus: CallbackBus, listener: Listener | None = None,
                 serial_of: Callable[[str], int | None] = lambda _cid: None):
        """``listener``: a cluster node's notifications (deliveries handed over to it, changed
        subscriptions). ``serial_of``: a callback's serial (the callback service's), the key
        of its deliveries' attempts in its history."""
        self.manager = manager
        self.config = config
        self.lists = lists
        self.subscriptions = SubscriptionRegistry(config.box)
        self.dispatcher = Dispatcher(manager.clock, manager, config.policy, config.box, serial_of=serial_of)
        self._ids = 0
        self.notifier = StatusNotifier(services, lists, self.subscriptions, self.dispatcher, manager.clock,
                                       config, self._new_id)
        self._released: list[Delivery] = []
        self._parts: dict[int, int] = {}  # delivery id -> partition, of those held here (cluster)
        # Cluster: subscriptions made for a callback and removed as it ended, until the batch that
        # deletes them commits (not yet in a batch, in the batch being written): a drop of the
        # callback's partition forgets that end, so it puts them back (``_undo_ends``).
        self._ending: dict[str, Subscription] = {}
        self._ending_written: dict[str, Subscription] = {}
        # ...and those made for a callback (its create, or an update remaking it) in the batch
        # being written: the rows are its partition's, fenced with the record change that made
        # them; a drop of that partition forgets them (``_undo_makes``), as it forgets the change.
        self._making_written: dict[str, Subscription] = {}
        if manager.store is not None:
            manager.batch_contributors.append(self._contribute)
            manager.after_commit.append(self._after_commit)
            # Deliveries wait until the callbacks they are about are loaded (``run_restored``; in a
            # cluster ``adopted``, per partition): a push's outcome changes its record (a dead token
            # dropped), which an attempt made while ``callbacks.open`` read the records found absent.
            self.dispatcher.ready = self._may_start
        self._started = False  # ``run_restored`` was called
        self._ready_parts: set[int] = set()  # partitions adopted by every participant (cluster)
        bus.add_create_check(self.notifier.check_request)
        bus.subscribe(CallbackCreated, lambda e: self.notifier.callback_created(e.record))
        bus.subscribe(RecordUpdated, self._record_updated)
        bus.subscribe(StatusEvent, self._status_event)
        bus.subscribe(CallbackEnded, self._callback_ended)
        # In a cluster this node carries out the deliveries of its partitions only (an ordering
        # key has one partition: its callback's); a delivery for another partition is handed over
        # (stored untaken, its holder woken); subscriptions are every node's.
        self.cluster = manager.cluster
        self._taking: asyncio.Lock | None = None
        self._resync = False  # read every subscription again at the next sweep (cluster)
        if self.cluster is not None and manager.store is not None:
            cluster = self.cluster
            self._taking = asyncio.Lock()
            cluster.join(self)
            cluster.on_beat(self.sweep)
            self.dispatcher.timeout = min(self.dispatcher.timeout, cluster.lease / 2)
            # an attempt starts only if it ends before this node's local deadline (DB expiry after it)
            self.dispatcher.may_attempt = lambda: cluster.lease_remaining > self.dispatcher.timeout
            if listener is not None:
                listener.subscribe(DELIVERIES_CHANNEL, self._handed_over)
                listener.subscribe(notification_rows.SUBSCRIPTIONS_CHANNEL, self._subscription_changed)
                listener.on_reconnect(self._reconnected)

    # -- following callbacks (the bus) -----------------------------------------------------------
    def _status_event(self, event: StatusEvent) -> None:
        self.notifier.on_event(event.record, event.name, event.values, event.session_id)
        if self.notifier.new_deliveries:
            self.flush()

    def _record_updated(self, event: RecordUpdated) -> None:
        if self.cluster is not None and self.notifier.remakes(event.keys):  # its old ones go as an end's do
            self._note_ending(event.record["_id"])
        self.notifier.callback_updated(event.record, event.keys)

    def _callback_ended(self, event: CallbackEnded) -> None:
        if self.cluster is not None:
            self._note_ending(event.record["_id"])
        self.notifier.callback_ended(event.record)
        self.flush()

    def _note_ending(self, callback_id: str) -> None:
        """The callback's subscriptions are about to be removed: a drop before their deletes are
        stored puts the stored ones back (``_undo_ends``). One made since the last batch was never
        stored: a drop forgets it with the change that made it (``_undo_makes``), never restores it."""
        subs = self.subscriptions
        self._ending.update((sub.id, sub) for sub in subs.for_callback(callback_id) if sub.id not in subs.changed)

    # -- the Outbox port ------------------------------------------------------------------------
    def enqueue(self, kind: str, key: str, target: str, message: dict[str, Any]) -> None:
        self.notifier.new_deliveries.append(Delivery(
            id=self._new_id(), key=key, type=kind, target=target, device_id=target, message=message,
            webhook_id=message_id(kind), max_attempts=self.config.max_attempts,
            created_at=time.time()))
        self.flush()

    def add_sender(self, kind: str, sender: Sender) -> None:
        if kind in self.dispatcher.senders:
            raise ValueError(f"{kind} deliveries already have a sender")
        self.dispatcher.senders[kind] = sender

    def _new_id(self) -> int:
        if self.manager.store is not None:
            return self.manager.store.new_id()
        self._ids += 1
        return self._ids

    async def open(self) -> None:
        """Load the subscriptions and the deliveries (in a cluster: every node's subscriptions,
        and no delivery: ``adopt`` takes those of each partition this node claims)."""
        store = self.manager.store
        if store is None:
            return
        self.subscriptions.load(await notification_rows.load_subscriptions(store))
        if self.cluster is not None:
            # changes other nodes announce before this node's listener is connected are missed:
            # the first sweep (after the first heartbeat, the listener up) reads them all again
            self._resync = True
            return
        rows = await notification_rows.load_deliveries(store)
        for row in rows:
            self.dispatcher.submit(Delivery(**json.loads(row["record"])))
        if rows:
            log.info("notifications: %d deliveries restored (%d dead letters)", len(rows),
                     sum(1 for r in rows if r["status"] == DEAD))

    def run_restored(self) -> None:
        """The other parts have loaded what deliveries report on (the callbacks): the deliveries
        restored by ``open``, and those made since, are attempted from now on (without a cluster;
        ``adopted`` does it for a cluster's partitions)."""
        self._started = True
        self.dispatcher.start()

    def _may_start(self, key: str) -> bool:
        if self.cluster is None:
            return self._started
        return partition_of_ordering_key(key) in self._ready_parts

    async def close(self) -> None:
        await self.dispatcher.close()

    def flush(self) -> None:
        """Without storage, deliveries go out as soon as they exist."""
        if self.manager.store is None:
            new, self.notifier.new_deliveries = self.notifier.new_deliveries, []
            for d in new:
                self.dispatcher.submit(d)
        else:
            self.manager.request_write()

    def _contribute(self, batch: UnitOfWork) -> None:
        subs, dispatcher, notifier = self.subscriptions, self.dispatcher, self.notifier
        if self.cluster is not None:
            # A callback's subscription is part of its partition's state, like its record: fenced
            # with the change that made it, and left out with it.
            rows, making = [], {}
            for sub_id, sub in subs.changed.items():
                row = sub.row()
                if sub.callback_id is not None:
                    row["part"], making[sub_id] = partition_of(sub.callback_id), sub
                rows.append(row)
            batch.add(notification_rows.SUBSCRIPTIONS, rows)
            self._making_written = making
            batch.notify.extend((notification_rows.SUBSCRIPTIONS_CHANNEL, sub_id)
                                for sub_id in [*subs.changed, *subs.removed])
            # A callback's end deletes its subscriptions as part of its partition's state: fenced
            # with it, and left out with it (the end is made again by the session's next holder).
            ending = {i: sub for i in subs.removed if (sub := self._ending.pop(i, None)) is not None}
            batch.delete(notification_rows.SUBSCRIPTIONS, [i for i in subs.removed if i not in ending])
            if ending:
                self.manager.delete_partitioned(batch, notification_rows.SUBSCRIPTIONS,
                                                [(i, partition_of(sub.callback_id or "")) for i, sub in ending.items()])
            self._ending_written = ending
            subs.changed, subs.removed = {}, []
            self._contribute_partitioned(batch)
            return
        batch.add(notification_rows.SUBSCRIPTIONS, [sub.row() for sub in subs.changed.values()])
        batch.delete(notification_rows.SUBSCRIPTIONS, subs.removed)
        subs.changed, subs.removed = {}, []
        new, notifier.new_deliveries = notifier.new_deliveries, []
        deliveries = batch.rows(notification_rows.DELIVERIES)
        deliveries.extend(d.row() for d in new)
        deliveries.extend(d.row() for d in dispatcher.changed.values())
        batch.delete(notification_rows.DELIVERIES, dispatcher.done)
        dispatcher.changed, dispatcher.done = {}, []
        self._released.extend(new)

    def _contribute_partitioned(self, batch: UnitOfWork) -> None:
        """The deliveries on a cluster node: each row with its ordering key's partition; one of a
        partition this node holds is taken at its epoch and carried out here after the commit,
        one of another partition is handed over (the batch wakes its holder)."""
        assert self.cluster is not None
        held, dispatcher, notifier = self.cluster.held, self.dispatcher, self.notifier
        new, notifier.new_deliveries = notifier.new_deliveries, []
        deliveries = batch.rows(notification_rows.CLUSTER_DELIVERIES)
        for d in new:
            part = partition_of_ordering_key(d.key)
            row = d.row()
            row["part"], row["taken_epoch"] = part, held.get(part)
            deliveries.append(row)
            if part in held:
                self._released.append(d)
        for d in dispatcher.changed.values():
            part = partition_of_ordering_key(d.key)
            if part in held:  # one of a partition lost meanwhile is its new holder's now
                row = d.row()
                row["part"], row["taken_epoch"] = part, held[part]
                deliveries.append(row)
        done = [(i, self._parts.pop(i)) for i in dispatcher.done if i in self._parts]
        self.manager.delete_partitioned(batch, notification_rows.CLUSTER_DELIVERIES, done)
        dispatcher.changed, dispatcher.done = {}, []

    # -- a cluster's partitions (PartitionParticipant) ------------------------------------------
    async def adopt(self, partitions: dict[int, int]) -> None:
        """This node claimed ``partitions``: take their deliveries (pending and dead, by id: the
        ids minted after a claim come later, so each key keeps its order) and carry them out."""
        await self._take(sorted(partitions), adopting=True)

    async def adopted(self, partitions: dict[int, int]) -> None:
        """Every participant holds ``partitions`` now (the callback service has loaded their
        records): their deliveries, held since they were taken, are attempted."""
        held = self.cluster.held if self.cluster is not None else {}
        self._ready_parts.update(p for p in partitions if held.get(p) == partitions[p])
        self.dispatcher.start(_in(set(partitions)))

    async def release(self, partitions: dict[int, int]) -> None:
        """This node gives ``partitions`` back: their deliveries leave the dispatcher; attempts in
        flight finish (bounded by the attempt timeout) and their outcome is written first."""
        self._ready_parts.difference_update(partitions)
        busy = self.dispatcher.forget(_in(set(partitions)), cancel=False)
        deadline = time.monotonic() + self.dispatcher.timeout + 1.0
        while busy & self.dispatcher.busy and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await self.manager.commit()
        self._forget_ids(set(partitions))

    def drop(self, partitions: set[int]) -> None:
        """This node no longer holds ``partitions``: forget their deliveries at once, stopping the
        attempts in flight, writing nothing.

        Those not yet in a batch that a callback's state made (its status events, its pushes) go
        too: the drop forgot that state unwritten (the event rows, the session's snapshot), and
        the session restored from its last snapshot makes them again. Kept, such a delivery was
        written with the next batch (handed over, or taken again once the partition was claimed
        anew) and sent beside the one of the replay: the same status event twice, under two
        webhook-ids, one of them never recorded (seen in the cluster proof)."""
        self._ready_parts.difference_update(partitions)
        self.dispatcher.forget(_in(partitions), cancel=True)
        self.dispatcher.history.drop(partitions)
        self._released = [d for d in self._released if partition_of_ordering_key(d.key) not in partitions]
        notifier = self.notifier
        notifier.new_deliveries = [d for d in notifier.new_deliveries if not _made_in(d.key, partitions)]
        self._undo_makes(partitions)
        self._undo_ends(partitions)
        self._forget_ids(partitions)

    def _undo_ends(self, partitions: set[int]) -> None:
        """The subscriptions of callbacks of ``partitions`` removed by an end not yet stored are
        live again: the drop forgot that end (their deletes, not yet in a batch, never are, and
        one in the batch being written is left out if the fence refuses it), and the session
        restored from its last snapshot ends the callback again. Gone, its last status events
        found no subscription and were never sent. (Were the end stored after all, its commit's
        notification removes them again.)"""
        undone = {i: sub for i, sub in [*self._ending.items(), *self._ending_written.items()]
                  if partition_of(sub.callback_id or "") in partitions}
        if not undone:
            return
        subs = self.subscriptions
        subs.removed = [i for i in subs.removed if i not in undone]
        for sub_id, sub in undone.items():
            self._ending.pop(sub_id, None)
            self._ending_written.pop(sub_id, None)
            subs.stored(sub_id, sub.row())

    def _undo_makes(self, partitions: set[int]) -> None:
        """The subscriptions made for callbacks of ``partitions`` by a change not yet stored are
        gone again: the drop forgot that change (a create answered 503, an update whose record
        the partition's next holder has as it was), so nothing may be left of it here either."""
        subs = self.subscriptions
        unmade = {sub.id for sub in [*subs.changed.values(), *self._making_written.values()]
                  if sub.callback_id is not None and partition_of(sub.callback_id) in partitions}
        for sub_id in unmade:
            self._making_written.pop(sub_id, None)
            # made in the batch being written, then removed: not one for _undo_ends to put back
            self._ending.pop(sub_id, None)
            self._ending_written.pop(sub_id, None)
            subs.forget(sub_id)
        if unmade:
            subs.removed = [i for i in subs.removed if i not in unmade]

    def _forget_ids(self, partitions: set[int]) -> None:
        for delivery_id in [i for i, p in self._parts.items() if p in partitions]:
            del self._parts[delivery_id]

    async def sweep(self) -> None:
        """Take what was handed over to this node's partitions (each heartbeat: a notification
        may have been lost)."""
        if self._resync:
            self._resync = False
            await self._reload_subscriptions()
        if self.cluster is not None and self.cluster.held:
            await self._take(sorted(self.cluster.held), adopting=False)

    def _reconnected(self) -> Any:
        """The listener was cut off: handed-over deliveries and subscription changes told
        meanwhile are lost, so look for both."""
        return asyncio.gather(self.sweep(), self._reload_subscriptions())

    async def _handed_over(self, payload: str) -> None:
        try:
            part = int(payload)
        except ValueError:
            return
        if self.cluster is not None and part in self.cluster.held:
            await self._take([part], adopting=False)

    async def _take(self, partitions: list[int], *, adopting: bool) -> None:
        assert self.cluster is not None and self._taking is not None and self.manager.store is not None
        async with self._taking:  # one take at a time: the same row is never submitted twice
            rows = await notification_rows.take(self.manager.store, partitions, self.cluster.node,
                                                self.cluster.incarnation, adopting=adopting)
            taken = 0
            for row in rows:
                d = Delivery(**json.loads(row["record"]))
                part = partition_of_ordering_key(d.key)
                if part not in self.cluster.held:  # dropped while the statement ran
                    continue
                self._parts[d.id] = part
                taken += self.dispatcher.take(d)
        if taken:
            log.info("notifications: %d deliveries taken over (%s)", taken, "adopted" if adopting else "handed over")

    async def _subscription_changed(self, payload: str) -> None:
        store = self.manager.store
        assert store is not None
        self.subscriptions.stored(payload, await notification_rows.load_subscription(store, payload))

    async def _reload_subscriptions(self) -> None:
        """Take every stored subscription as it is, but those changed here or announced since the
        read began, and those with a change of this node's not yet stored: the read saw an older
        state of them. Applied, a subscription made and announced while the read ran (absent from
        it) was removed from memory for good, and its callback's status events went unnotified."""
        store = self.manager.store
        assert store is not None
        subs = self.subscriptions
        with subs.reading() as since:
            rows = {r["id"]: r for r in await notification_rows.load_subscriptions(store)}
        newer = since | set(subs.changed) | set(subs.removed)
        for sub_id in (set(subs.items) | set(rows)) - newer:
            subs.stored(sub_id, rows.get(sub_id))

    def _after_commit(self) -> None:
        self._ending_written, self._making_written = {}, {}
        released, self._released = self._released, []
        if self.cluster is not None:
            for d in released:
                self._parts[d.id] = partition_of_ordering_key(d.key)
        for d in released:
            self.dispatcher.submit(d)

    # -- admin ----------------------------------------------------------------------------
    # -- the notification API -------------------------------------------------------------------
    def now(self) -> float:
        """The engine clock's time (subscriptions expire on it)."""
        return self.manager.clock.now()

    def subscribe(self, sub: Subscription) -> None:
        self.subscriptions.add(sub)
        self.flush()

    def subscriptions_of(self, owner: str | None = None) -> list[Subscription]:
        """Live subscriptions, oldest first; ``owner``: only those made with that key."""
        return self.subscriptions.live(self.now(), owner)

    def subscription(self, subscription_id: str) -> Subscription | None:
        """The live subscription with this id, if any."""
        sub = self.subscriptions.items.get(subscription_id)
        return sub if sub is not None and self.now() < sub.expires_at else None

    def unsubscribe(self, subscription_id: str) -> bool:
        """False when there is no such subscription."""
        if self.subscriptions.remove(subscription_id) is None:
            return False
        self.flush()
        return True

    def publish(self, tag: str, message: dict[str, Any]) -> int:
        """A message from outside to every subscription matching ``tag``; how many deliveries."""
        count = self.notifier.publish(tag, message)
        self.flush()
        return count

    async def all_dead_letters(self, limit: int, offset: int) -> list[dict[str, Any]]:
        """``dead_letters`` of every node: in a cluster a node holds only its partitions' in
        memory, so they are read from the database (oldest first)."""
        store = self.manager.store
        if self.cluster is None or store is None:
            return self.dead_letters(limit, offset)
        rows = await notification_rows.load_deliveries(store, status=DEAD, limit=limit, offset=offset)
        return [Delivery(**json.loads(row["record"])).public() for row in rows]

    def dead_letters(self, limit: int, offset: int) -> list[dict[str, Any]]:
        items = sorted(self.dispatcher.dead.values(), key=lambda d: d.id)
        return [d.public() for d in items[offset: offset + limit]]

    def replay(self, delivery_id: int) -> Delivery | None:
        d = self.dispatcher.dead.get(delivery_id)
        if d is not None:
            self.dispatcher.replay(d)
        return d


def _in(partitions: set[int]) -> Callable[[str], bool]:
    """Whether an ordering key falls in ``partitions``."""
    return lambda key: partition_of_ordering_key(key) in partitions


def _made_in(key: str, partitions: set[int]) -> bool:
    """Whether a delivery with ordering key ``key`` was made by the state of a callback held in
    one of ``partitions`` (a callback's deliveries live in its partition). A message a client
    published is nobody's state: one for a partition this node does not hold is handed over."""
    return callback_of(key) is not None and partition_of_ordering_key(key) in partitions
