"""The notification service: subscriptions, the status notifier and the dispatcher, kept durable.

It follows callbacks through the callback bus (created, status event, ended) and is the
``Outbox`` other parts enqueue through (push's FCM messages), so nothing calls into it by name.

New subscriptions, deliveries and their progress are written with the session manager's next
batch, in the same transaction as the callback change that caused them; a new delivery is
attempted only once that transaction is committed. Without storage they are dispatched at once.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any

from ..callbacks.bus import CallbackBus, CallbackCreated, CallbackEnded, StatusEvent
from ..callbacks.services import ServiceRegistry
from ..outbound import Sender
from ..sessions.manager import SessionManager
from ..storage import UnitOfWork
from . import rows as notification_rows
from .delivery import DEAD, Delivery, Dispatcher
from .notifier import NotificationConfig, StatusNotifier, TransactionLists
from .subscriptions import Subscription, SubscriptionRegistry

log = logging.getLogger("engine.notifications")


class NotificationService:
    def __init__(self, manager: SessionManager, services: ServiceRegistry, lists: TransactionLists,
                 config: NotificationConfig, bus: CallbackBus):
        self.manager = manager
        self.config = config
        self.lists = lists
        self.subscriptions = SubscriptionRegistry(config.box)
        self.dispatcher = Dispatcher(manager.clock, manager, config.policy, config.box)
        self._ids = 0
        self.notifier = StatusNotifier(services, lists, self.subscriptions, self.dispatcher, manager.clock,
                                       config, self._new_id)
        self._released: list[Delivery] = []
        if manager.store is not None:
            manager.batch_contributors.append(self._contribute)
            manager.after_commit.append(self._after_commit)
        bus.add_create_check(self.notifier.check_request)
        bus.subscribe(CallbackCreated, lambda e: self.notifier.callback_created(e.record))
        bus.subscribe(StatusEvent, self._status_event)
        bus.subscribe(CallbackEnded, self._callback_ended)

    # -- following callbacks (the bus) -----------------------------------------------------------
    def _status_event(self, event: StatusEvent) -> None:
        self.notifier.on_event(event.record, event.name, event.values, event.session_id)
        if self.notifier.new_deliveries:
            self.flush()

    def _callback_ended(self, event: CallbackEnded) -> None:
        self.notifier.callback_ended(event.record)
        self.flush()

    # -- the Outbox port ------------------------------------------------------------------------
    def enqueue(self, kind: str, key: str, target: str, message: dict[str, Any]) -> None:
        self.notifier.new_deliveries.append(Delivery(
            id=self._new_id(), key=key, type=kind, target=target, device_id=target, message=message,
            webhook_id=f"{kind}_{secrets.token_hex(16)}", max_attempts=self.config.max_attempts,
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
        store = self.manager.store
        if store is None:
            return
        self.subscriptions.load(await notification_rows.load_subscriptions(store))
        rows = await notification_rows.load_deliveries(store)
        for row in rows:
            self.dispatcher.submit(Delivery(**json.loads(row["record"])))
        if rows:
            log.info("notifications: %d deliveries restored (%d dead letters)", len(rows),
                     sum(1 for r in rows if r["status"] == DEAD))

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

    def _after_commit(self) -> None:
        released, self._released = self._released, []
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

    def dead_letters(self, limit: int, offset: int) -> list[dict[str, Any]]:
        items = sorted(self.dispatcher.dead.values(), key=lambda d: d.id)
        return [d.public() for d in items[offset: offset + limit]]

    def replay(self, delivery_id: int) -> Delivery | None:
        d = self.dispatcher.dead.get(delivery_id)
        if d is not None:
            self.dispatcher.replay(d)
        return d
