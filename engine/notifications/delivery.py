"""Delivery of notifications: at least once, in order per ordering key, retried, then dead-lettered.

Each delivery is a stored row written in the same transaction as the change that caused it (the
session manager's batch); it is attempted only after that commit. Deliveries sharing an ordering
key (a callback and a target) go strictly one after the other. A failure is retried with
exponential backoff, honouring ``Retry-After``; after ``max_attempts`` (or at once for an answer
that retrying cannot fix) the delivery is kept as a dead letter that the admin API lists and
replays. A retried message keeps its ``webhook-id``, so receivers can drop duplicates.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ..callbacks import history
from ..outbound import DeliveryFailure, Sender, retry_after_seconds
from ..scxml import AttrDict, Event
from ..scxml.interning import Interner
from ..sessions.manager import NoSuchSession
from ..storage import dumps
from ..urlpolicy import UrlPolicy, UrlRefused, describe_error, printable, refusal
from . import webhooks
from .webhook_client import WebhookClient

if TYPE_CHECKING:
    from ..scxml.clock import Clock
    from ..secretbox import SecretBox
    from ..sessions.manager import SessionManager

log = logging.getLogger("engine.notifications")
PENDING, DEAD = "pending", "dead"
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
MAX_BACKOFF = 300.0
FLUSH_DELAY = 0.5  # seconds a delivered row may wait for a batch before one is forced
BURST = 32  # attempts of one ordering key in a row before the dispatcher lets others run
LEASE_WAIT = 0.25  # seconds before a key held back by a short lease looks again (cluster)
PUBLIC_TARGETS_KEPT = 4096
ABOUTS_KEPT = 4096  # ordering keys whose callback is kept (``_callback_of``)
CLOSE_WAIT = 10.0  # seconds close() waits for the attempts it cancelled to finish unwinding


@dataclass
class Delivery:
    id: int
    key: str
    type: str
    target: str
    device_id: str
    message: dict[str, Any]
    webhook_id: str
    max_attempts: int
    created_at: float
    secret: str | None = None  # sealed with the engine's data key; opened only to sign
    attempts: int = 0
    next_at: float = 0.0
    status: str = PENDING
    last_error: str = ""

    @property
    def message_json(self) -> str:
        """The message as compact JSON, encoded once for the stored row and every attempt's body
        (the message is never changed once the delivery exists). Kept in the instance's dict
        beside the fields (``asdict`` and ``==`` see fields only); not ``functools.cached_property``,
        which takes a lock shared by every delivery at each first read (3.11)."""
        text = self.__dict__.get("_message_json")
        if text is None:
            text = self.__dict__["_message_json"] = dumps(self.message)
        return text

    def row(self) -> dict[str, Any]:
        return {"id": self.id, "ordering_key": self.key, "status": self.status, "attempts": self.attempts,
                "next_at": self.next_at, "record": self.record(), "updated_at": time.time()}

    def record(self) -> str:
        """Every field as one JSON object; the message spliced in as already encoded (what
        ``asdict`` and one ``json.dumps`` wrote, at a fraction of the cost)."""
        head = dumps({"id": self.id, "key": self.key, "type": self.type, "target": self.target,
                           "device_id": self.device_id, "webhook_id": self.webhook_id,
                           "max_attempts": self.max_attempts, "created_at": self.created_at, "secret": self.secret,
                           "attempts": self.attempts, "next_at": self.next_at, "status": self.status,
                           "last_error": self.last_error})
        return f'{head[:-1]},"message":{self.message_json}}}'

    def body(self) -> bytes:
        """What an httpcb (``{"deviceId", "message"}``) or customhttp (the message) target receives."""
        if self.type == "customhttp":
            return self.message_json.encode()
        return f'{{"deviceId":{dumps(self.device_id)},"message":{self.message_json}}}'.encode()

    def log_fields(self) -> dict[str, Any]:
        """What a log line about this delivery carries: its id and type, whose callback, which service."""
        about = self.message.get("data", self.message) if self.type == "fcm" else self.message
        return {"delivery_id": self.id, "type": self.type,
                "callback_id": about.get("_service_id") or about.get("_id"), "service": about.get("_service_name")}

    def public(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("secret")
        return out


class Dispatcher:
    """Carries deliveries out; one in flight per ordering key."""

    def __init__(self, clock: Clock, manager: SessionManager, policy: UrlPolicy, box: SecretBox,
                 timeout: float = 10.0, base_backoff: float = 1.0,
                 serial_of: Callable[[str], int | None] = lambda _cid: None):
        """``policy``: where HTTP deliveries may go (checked again at every attempt, on the
        address connected to); ``box`` opens the sealed webhook secrets; ``serial_of``: a
        callback's serial, which keys its attempts' history rows (``CallbackSerials.of``)."""
        self.clock = clock
        self.manager = manager
        self.policy = policy
        self.box = box
        self.timeout = timeout
        self.base_backoff = base_backoff
        self.queues: dict[str, deque[Delivery]] = {}
        self.busy: set[str] = set()
        self.dead: dict[int, Delivery] = {}
        self.changed: dict[int, Delivery] = {}
        self.done: list[int] = []
        self.delivered = 0
        self._client: WebhookClient | None = None
        self._tasks: dict[str, asyncio.Task] = {}  # the task draining each busy key
        self._timers: dict[str, Any] = {}
        # A cluster node attempts only while its lease outlasts an attempt (None: always may).
        self.may_attempt: Callable[[], bool] | None = None
        # Whether an ordering key's deliveries may be attempted yet (None: always): a restart's
        # are held until the records they report on are loaded, then ``start`` sets them going.
        self.ready: Callable[[str], bool] | None = None
        self.on_delivered: list[Any] = []  # test and benchmark hooks: fn(delivery)
        self.on_failed: list[Any] = []  # fn(delivery) after a failed attempt: status DEAD, or retried
        # Delivery types carried by other components (``fcm`` by the push service).
        self.senders: dict[str, Sender] = {}
        self.closed = False
        self._flush_timer: asyncio.TimerHandle | None = None
        self._public_targets: Interner[tuple[str, str], str] = Interner(PUBLIC_TARGETS_KEPT)
        self._abouts: Interner[str, tuple[str, str] | None] = Interner(ABOUTS_KEPT)  # key -> callback_of(key)
        # Each attempt in its callback's history, written in the batch that writes its outcome.
        store = manager.store if manager is not None else None
        # A delivered attempt's row waits for the batch that deletes the delivery (``_write_soon``);
        # a failed one goes with the batch ``_persist`` asks for at once.
        self.history = history.HistoryLog(store, self._write_soon if manager is not None else _nothing,
                                          clock.now, partitioned=manager is not None and manager.cluster is not None,
                                          serial_of=serial_of)
        if store is not None:
            manager.batch_contributors.append(self.history.contribute)
            manager.after_commit.append(self.history.written)

    # -- queueing ------------------------------------------------------------------------
    def submit(self, delivery: Delivery) -> None:
        if self.closed:
            return  # stored as pending: the next start delivers it
        if delivery.status == DEAD:
            self.dead[delivery.id] = delivery
            return
        self.queues.setdefault(delivery.key, deque()).append(delivery)
        self._kick(delivery.key)

    def take(self, delivery: Delivery) -> bool:
        """``submit`` a delivery another node stored (handed over, or of a partition taken over)
        in id order among its key's, unless it is already here; False if it was."""
        if delivery.id in self.dead:
            return False
        queue = self.queues.get(delivery.key)
        if queue and any(d.id == delivery.id for d in queue):
            return False
        if delivery.status == DEAD or not queue or queue[-1].id < delivery.id:
            self.submit(delivery)
            return True
        place = len(queue)
        while place > (1 if delivery.key in self.busy else 0) and queue[place - 1].id > delivery.id:
            place -= 1  # never ahead of the head being attempted
        queue.insert(place, delivery)
        self._kick(delivery.key)
        return True

    def forget(self, leaving: Callable[[str], bool], *, cancel: bool) -> set[str]:
        """Forget the deliveries whose ordering key is ``leaving`` (their partition left this
        node): queued, timed and dead ones. ``cancel``: stop their attempts in flight too (this node
        lost them), else those finish (their outcome is written). Returns the keys still busy."""
        keys = [k for k in self.queues if leaving(k)] + [k for k in self.busy if leaving(k) and k not in self.queues]
        busy = set()
        for key in keys:
            self.queues.pop(key, None)
            timer = self._timers.pop(key, None)
            if timer is not None:
                timer.cancel()
            task = self._tasks.get(key)
            if key in self.busy and task is not None:
                if cancel:
                    task.cancel()
                else:
                    busy.add(key)
        for delivery_id in [i for i, d in self.dead.items() if leaving(d.key)]:
            del self.dead[delivery_id]
        if cancel:
            self.changed = {i: d for i, d in self.changed.items() if not leaving(d.key)}
        return busy

    def replay(self, delivery: Delivery) -> None:
        self.dead.pop(delivery.id, None)
        delivery.status, delivery.attempts, delivery.next_at, delivery.last_error = PENDING, 0, 0.0, ""
        self._persist(delivery)
        self.submit(delivery)

    def start(self, which: Callable[[str], bool] | None = None) -> None:
        """Set going the queued deliveries that ``ready`` held back (of the keys ``which`` picks)."""
        for key in list(self.queues):
            if which is None or which(key):
                self._kick(key)

    def pending(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def of_callback(self, callback_id: str) -> list[Delivery]:
        """The deliveries and pushes of a callback not delivered yet: queued, retried or dead."""
        found = [d for key, queue in self.queues.items() if _about(key, callback_id) for d in queue]
        found.extend(d for d in self.dead.values() if _about(d.key, callback_id))
        return sorted(found, key=lambda d: d.id)

    def _kick(self, key: str) -> None:
        """Start carrying out ``key``'s queue, or arm a timer for its head's next attempt."""
        if key in self.busy or self.closed:
            return
        queue = self.queues.get(key)
        if not queue:
            self.queues.pop(key, None)
            return
        if self.ready is not None and not self.ready(key):
            return  # held until ``start``
        head = queue[0]
        wait = head.next_at - self.clock.now()
        if wait > 0:
            if key not in self._timers:
                self._timers[key] = self.clock.call_at(head.next_at, self._timer_fired, key)
            return
        loop = asyncio.get_running_loop()
        if self.may_attempt is not None and not self.may_attempt():
            if key not in self._timers:  # the lease may not outlast an attempt: look again soon
                self._timers[key] = loop.call_later(LEASE_WAIT, self._timer_fired, key)
            return
        self.busy.add(key)
        task = self._tasks[key] = loop.create_task(self._drain(key))
        task.add_done_callback(functools.partial(self._drained, key))

    def _drained(self, key: str, task: asyncio.Task) -> None:
        """The task draining ``key`` is done. Still the key's task (no other started since): the
        key is free. ``_drain`` frees it itself, but a task cancelled before its first step (a
        partition dropped in the turn its delivery was submitted) never ran its body: the key
        stayed busy for good, and its deliveries taken again later were never attempted."""
        if self._tasks.get(key) is task:
            del self._tasks[key]
            if key in self.busy:  # only such a task leaves it busy: what was queued since goes now
                self.busy.discard(key)
                self._kick(key)

    def _timer_fired(self, key: str) -> None:
        self._timers.pop(key, None)
        self._kick(key)

    async def _drain(self, key: str) -> None:
        """Attempt ``key``'s due deliveries one after the other: one task per burst, not per delivery."""
        attempts = 0
        try:
            while (queue := self.queues.get(key)) and queue[0].next_at <= self.clock.now():
                if self.may_attempt is not None and not self.may_attempt():
                    break  # _kick looks again once the lease is renewed
                await self._attempt(queue[0])
                attempts += 1
                if attempts % BURST == 0:  # attempts that never wait (orscb) must not hold the loop
                    await asyncio.sleep(0)
        finally:
            self.busy.discard(key)
        self._kick(key)

    # -- one attempt ---------------------------------------------------------------------
    async def _attempt(self, d: Delivery) -> None:
        try:
            status = await self._send(d)
        except DeliveryFailure as f:
            self._failed(d, f)
            self._remember(d, None, f)
        except Exception as e:  # a bug must not stop the queue
            log.exception("delivery %s failed unexpectedly", d.id)
            failure = DeliveryFailure(f"{type(e).__name__}: {e}", retry=True)
            self._failed(d, failure)
            self._remember(d, None, failure)
        else:
            self._succeeded(d)
            self._remember(d, status, None)

    def _remember(self, d: Delivery, status: int | None, failure: DeliveryFailure | None) -> None:
        """The attempt in its callback's history (a message published by a client has none)."""
        about = self._callback_of(d.key)
        if about is None:
            return
        if failure is None:
            result, error = history.DELIVERED, ""
        else:
            result = history.DEAD if d.status == DEAD else history.RETRY
            error = history.scrub(str(failure), d.target)
            status = history.http_status(error)
        event = (d.message.get("data") or {}) if d.type == "fcm" else d.message
        self.history.add(about[0], about[1], history.attempt(
            d.id, d.type, event.get("event") or event.get("event_id"), self._public_target(d.type, d.target),
            result, status, error))

    def _callback_of(self, key: str) -> tuple[str, str] | None:
        """``callback_of(key)``, kept per ordering key: a callback's ~15 deliveries share one, and
        splitting it again for every attempt's history row was a fifth of ``_remember``. Bounded."""
        return self._abouts.get(key, callback_of)

    def _public_target(self, kind: str, target: str) -> str:
        """``history.public_target``, kept per target: parsing the URL again for every attempt's
        row cost ~4 % of the event loop's time under a notification load. Bounded."""
        return self._public_targets.get((kind, target), _public_target_of)

    async def _send(self, d: Delivery) -> int | None:
        """One attempt; the HTTP status of a webhook that took it."""
        sender = self.senders.get(d.type)
        if sender is not None:
            await sender(d)
            return None
        if d.type not in ("orscb", "httpcb", "customhttp"):
            raise DeliveryFailure(f"nothing delivers {d.type} notifications in this engine", retry=False)
        if d.type == "orscb":
            session = self.manager.sessions.get(d.target)
            if self.manager.cluster is None and (session is None or not session.is_running):
                raise DeliveryFailure(f"no running session {d.target!r} for orscb", retry=False)
            name = str(d.message.get("event_id", "notification"))
            reason = self.manager.refuses_external(name)
            if reason is not None:  # a published message must not steer a flow as if from the engine
                raise DeliveryFailure(f"event {name!r} not raised in session {d.target!r}: {reason}", retry=False)
            event = Event(name, AttrDict(d.message))
            if self.manager.cluster is None:
                self.manager.route_event(None, session, event)  # type: ignore[arg-type]
                return None
            try:  # in a cluster the session may run on another node: handed over, in this node's next batch
                self.manager.send_to(d.target, event)
            except NoSuchSession:
                raise DeliveryFailure(f"no running session {d.target!r} for orscb", retry=False) from None
            return None
        body = d.body()
        headers = {"Content-Type": "application/json"}
        if d.secret:
            try:
                secret = self.box.open(d.secret)
            except ValueError as e:
                raise DeliveryFailure(str(e), retry=False) from None
            headers.update(webhooks.headers(secret, d.webhook_id, int(time.time()), body))
        else:
            headers["webhook-id"] = d.webhook_id
        if self._client is None:
            self._client = WebhookClient(self.policy, self.timeout)
        try:
            answer = await self._client.post(d.target, body, headers)
        except UrlRefused as e:
            raise DeliveryFailure(f"refused by the outbound URL policy: {e}", retry=False) from None
        except OSError as e:  # TimeoutError, ProtocolFault and the resolver's AddressRefused among them
            reason = refusal(e)
            if reason is not None:
                raise DeliveryFailure(f"refused by the outbound URL policy: {reason}", retry=False) from None
            raise DeliveryFailure(describe_error(e), retry=True) from e
        status = answer.status
        if 200 <= status < 300:
            return status
        if 300 <= status < 400:
            raise DeliveryFailure(f"HTTP {status} (redirects are not followed)", retry=False)
        raise DeliveryFailure(f"HTTP {status}", retry=status in RETRYABLE_STATUS,
                              retry_after=retry_after_seconds(answer.headers.get("retry-after")))

    def _succeeded(self, d: Delivery) -> None:
        self._pop(d)
        self.delivered += 1
        self.done.append(d.id)
        self.changed.pop(d.id, None)
        self._write_soon()
        for hook in self.on_delivered:
            hook(d)

    def _write_soon(self) -> None:
        """Deleting delivered rows (and writing their attempts' history) can wait for the next
        batch: a crash before it only means a redelivery with the same webhook-id. A short timer
        bounds the wait when all is quiet; before, each delivery's history row asked for a batch
        of its own, a commit per message at low rates."""
        if self._flush_timer is None and not self.closed:
            self._flush_timer = asyncio.get_running_loop().call_later(FLUSH_DELAY, self._flush)

    def _flush(self) -> None:
        self._flush_timer = None
        if self.done or self.history.new:
            self.manager.request_write()

    def _failed(self, d: Delivery, f: DeliveryFailure) -> None:
        d.attempts += 1
        d.last_error = str(f)
        if not f.retry or d.attempts >= d.max_attempts:
            d.status = DEAD
            self._pop(d)
            self.dead[d.id] = d
            log.warning("delivery %s to %s dead after %d attempts: %s", d.id, printable(d.target), d.attempts,
                        printable(f), extra=d.log_fields())
        else:
            backoff = min(self.base_backoff * 2 ** (d.attempts - 1), MAX_BACKOFF) * random.uniform(0.8, 1.2)
            # Retry-After is the receiver's wall-clock time; our clock may run faster (simulator).
            delay = max(backoff, (f.retry_after or 0.0) * self.clock.scale)
            d.next_at = self.clock.now() + delay
            log.info("delivery %s to %s failed (%s); attempt %d in %.1f s", d.id, printable(d.target), printable(f),
                     d.attempts + 1, delay, extra=d.log_fields())
        self._persist(d)
        for hook in self.on_failed:
            hook(d)

    def _pop(self, d: Delivery) -> None:
        queue = self.queues.get(d.key)
        if queue and queue[0] is d:
            queue.popleft()

    def _persist(self, d: Delivery) -> None:
        self.changed[d.id] = d
        self.manager.request_write()

    async def close(self) -> None:
        self.closed = True
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        for timer in self._timers.values():
            timer.cancel()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            # An attempt may be cancelled in a storage call (the push sender stores the credentials'
            # status): it unwinds by closing that connection, which must end here, before the store
            # closes. Left running, the loop's owner cancels it again when the loop closes, and
            # aiosqlite's close, cancelled twice, waits forever for its stopped thread.
            _done, late = await asyncio.wait(tasks, timeout=CLOSE_WAIT)
            if late:
                log.error("%d delivery attempts still unwinding %g s after they were cancelled: %s",
                          len(late), CLOSE_WAIT, ", ".join(sorted(repr(t.get_coro()) for t in late)))
        if self._client is not None:
            await self._client.close()


def callback_of(key: str) -> tuple[str, str] | None:
    """The callback a delivery is about and the history kind of its attempts, from its ordering
    key: ``fcm|<callback id>`` for a push (``engine.push``), ``<type>|<target>|callback/<service>/<id>``
    for a status notification. Clients cannot publish under ``callback/``, so no message of theirs
    lands in a callback's history."""
    kind, _, rest = key.partition("|")
    if kind == "fcm" and rest and "|" not in rest:
        return rest, history.PUSH
    tag = key.rsplit("|", 1)[-1]
    if tag.startswith("callback/"):
        return tag.rsplit("/", 1)[-1], history.DELIVERY
    return None


def _about(key: str, callback_id: str) -> bool:
    found = callback_of(key)
    return found is not None and found[0] == callback_id


def _nothing() -> None:
    """No session manager (a benchmark's dispatcher that never dispatches): nothing to write."""


def _public_target_of(kind_and_target: tuple[str, str]) -> str:
    """``history.public_target`` of a ``(kind, target)`` key (``Dispatcher._public_target``)."""
    return history.public_target(*kind_and_target)
