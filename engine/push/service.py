"""Push notifications for callbacks (seed 002, SPEC 7).

A callback created with ``_device_os=fcm`` and ``_device_notification_id=<FCM token>`` gets:

* ``CALLBACK_UPCOMING`` once its EWT falls below its queue's push threshold: sent once, never when
  the EWT was already below the threshold at creation, never while the callback could not finish
  before it is purged, expires or the business closes;
* ``CALLBACK_READY`` (click-to-call-in) when it reaches the front of the queue, then
  ``CALLBACK_CALL_IN_DETAILS`` when the app asks for the call-in details;
* ``CALLBACK_PURGED`` when it was purged (not rescheduled);
* ``CALLBACK_ATTEMPT_FAILED`` / ``CALLBACK_FINAL_ATTEMPT_FAILED`` on failed outbound attempts.

EWT is re-evaluated when the platform reports a queue change, never by polling. The service
follows callbacks through the callback bus and hands its messages to an ``Outbox`` (the
notification service's, stored with the change that caused them, retried, dead-lettered), so none
is lost on a restart and push needs nothing of the notification package.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..callbacks.bus import AttemptFailed, CallbackBus, CallbackCompleted, CallbackCreated, RecordUpdated
from ..callbacks.callback_settings import CallbackSettings
from ..callbacks.record_index import RecordIndex
from ..callbacks.records import BadRequest, format_time, parse_time
from ..callbacks.service import CallbackService
from ..callbacks.vocabulary import CallbackState, CompletionReason
from ..ids import partition_of
from ..outbound import OutboundMessage, Outbox
from ..platform.adapter import Platform
from ..storage.errors import StorageUnavailable
from ..storage.shared_config import SharedConfig
from .credentials import Credentials, check_test_fields, seal, unseal, validate
from .fcm import FcmClient, PushFailure
from .texts import localized

if TYPE_CHECKING:
    from ..secretbox import SecretBox

log = logging.getLogger("engine.push")
# States in which a callback waits for an agent, so its estimated wait time is pushed.
_WAITING = (CallbackState.QUEUED, CallbackState.ROUTING)
CREDENTIALS_KEY = "fcm_credentials"
UPCOMING_SENT, UPCOMING_SUPPRESSED = "sent", "suppressed"


class PushService:
    def __init__(self, callbacks: CallbackService, bus: CallbackBus, outbox: Outbox, settings: CallbackSettings,
                 fcm: FcmClient, box: SecretBox, platform: Platform | None,
                 language_for: Callable[[dict[str, Any]], str | None], shared: SharedConfig | None = None):
        self.callbacks = callbacks
        # The language of a callback's push texts, resolved as its status notifications' settings
        # are (the transaction list's [properties] included): the notifier's ``language_for``.
        self.language_for = language_for
        self.outbox = outbox
        self.settings = settings
        self.fcm = fcm
        self.box = box
        self.platform = platform
        self.clock = callbacks.clock
        self.store = callbacks.store
        self.pushed: list[tuple[str, str]] = []  # (callback id, event): what was queued, for tests
        # What a queue change may concern: push-enabled waiting callbacks not yet told, by queue.
        self.watched = RecordIndex(_watched_in)
        callbacks.add_index(self.watched)
        outbox.add_sender("fcm", self._deliver)
        bus.subscribe(CallbackCreated, lambda e: self.callback_created(e.record))
        bus.subscribe(AttemptFailed, self.attempt_failed)
        bus.subscribe(CallbackCompleted, self.completed)
        bus.subscribe(RecordUpdated, lambda e: self.record_updated(e.record, e.keys))
        if platform is not None:
            platform.add_listener(self.queue_changed)
        # In a cluster each node watches the callbacks of its partitions (the callback service
        # adopts them first: it joined before).
        if callbacks.cluster is not None:
            callbacks.cluster.join(self)
        # In a cluster the sealed credentials are one value for every node: a change made on
        # another node is read again here when it is announced (and on every sweep).
        self.shared = shared
        if shared is not None:
            shared.follow(CREDENTIALS_KEY, lambda _name: self.open(), versioned=False)

    # -- a cluster's partitions (PartitionParticipant) ------------------------------------------
    async def adopt(self, partitions: dict[int, int]) -> None:
        """Watch the waiting push callbacks of ``partitions``; those whose wait has already
        fallen below their threshold while nobody held them are told now, not at the next
        change of their queue."""
        records = self.callbacks.records
        for queue in list(self.watched.counts()):
            for cid in self.watched.ids(queue):
                record = records.get(cid)
                if record is not None and partition_of(cid) in partitions and _watched_in(record) == queue:
                    self._evaluate(record)

    async def release(self, partitions: dict[int, int]) -> None:
        self._unwatch(set(partitions))

    def drop(self, partitions: set[int]) -> None:
        self._unwatch(partitions)

    def _unwatch(self, partitions: set[int]) -> None:
        """The callback service forgets the records of ``partitions`` in every index it keeps,
        this one included; what it no longer holds must not stay watched here either."""
        for queue in list(self.watched.counts()):
            for cid in self.watched.ids(queue):
                if partition_of(cid) in partitions and cid not in self.callbacks.records:
                    self.watched.forget(cid)

    # -- credentials ------------------------------------------------------------------------
    async def open(self) -> None:
        if self.store is not None:
            stored = await self.store.get_value(CREDENTIALS_KEY)
            if stored:
                try:
                    self.fcm.use(unseal(stored, self.box))
                except ValueError as e:
                    log.error("FCM credentials cannot be read: %s", e)

    async def set_credentials(self, body: dict[str, Any]) -> Credentials:
        creds = validate(body)
        if self.store is not None:
            await self.store.put_value(CREDENTIALS_KEY, seal(creds, self.box), creds.updated_at)
            await self._announce()
        self.fcm.use(creds)
        return creds

    async def _flag(self, status: str, reason: str) -> None:
        creds = self.fcm.credentials
        if creds is None or (creds.status, creds.status_reason) == (status, reason):
            return
        creds.status, creds.status_reason = status, reason
        if self.store is not None:
            await self.store.put_value(CREDENTIALS_KEY, seal(creds, self.box), time.time())
            await self._announce()

    async def _announce(self) -> None:
        """Tell the other nodes the credentials changed. They are stored already: a notice that
        cannot be sent is only late (every node reads them again on its listener's next sweep)."""
        if self.shared is None:
            return
        try:
            await self.shared.announce(CREDENTIALS_KEY, "")
        except StorageUnavailable as e:
            log.warning("FCM credentials saved, but the other nodes were not told yet: %s", e)

    async def test(self, body: dict[str, Any]) -> dict[str, Any]:
        """The seed's test: fields checked, a token minted, and a dry run to a device if given."""
        app_id, _api_key, sender = check_test_fields(body)
        if self.fcm.credentials is None:
            return {"result": "failure", "reason": "no FCM credentials are configured"}
        try:
            await self.fcm.token()
            device = body.get("device_token")
            if device:
                await self.fcm.send({"token": str(device), "data": {"event": "TEST"},
                                     "notification": {"title": "Test", "body": "Callback push test"}},
                                    validate_only=True)
        except PushFailure as e:
            if e.credentials:
                await self._flag("failing", str(e))
            return {"result": "failure", "reason": str(e)}
        await self._flag("ok", "")
        return {"result": "successful configuration", "project_id": self.fcm.credentials.project_id,
                "app_id": app_id, "sender_id": sender, "dry_run": bool(body.get("device_token"))}

    # -- following callbacks (the bus) ------------------------------------------------------------
    def callback_created(self, record: dict[str, Any]) -> None:
        if not _wants_push(record) or self.platform is None:
            return
        threshold = self._threshold(record)
        try:
            ewt = self.platform.queue_stats(record["_urs_virtual_queue"]).ewt_seconds
        except KeyError:
            return
        if 0 <= ewt < threshold:
            record["_push_upcoming"] = UPCOMING_SUPPRESSED  # already close at creation: never sent

    def attempt_failed(self, event: AttemptFailed) -> None:
        if _wants_push(event.record):
            kind = "CALLBACK_ATTEMPT_FAILED" if event.attempt < event.max_attempts else "CALLBACK_FINAL_ATTEMPT_FAILED"
            self._push(event.record, kind, {"attempt": event.attempt, "max_attempts": event.max_attempts})

    def completed(self, event: CallbackCompleted) -> None:
        if _wants_push(event.record) and event.reason in (CompletionReason.PURGED, CompletionReason.FAIL_TIMEOUT_TTL):
            self._push(event.record, "CALLBACK_PURGED", {"reason": event.reason})

    def record_updated(self, record: dict[str, Any], keys: dict[str, Any]) -> None:
        """The flow registered the call-in (its turn came): CALLBACK_READY."""
        if _wants_push(record) and keys.get("_access_code"):
            self._push(record, "CALLBACK_READY", {})

    def call_in_details(self, record: dict[str, Any]) -> dict[str, Any]:
        """What the app gets from ``POST .../{id}/call-in``; also pushed as CALLBACK_CALL_IN_DETAILS."""
        if record["_callback_state"] == CallbackState.COMPLETED:
            raise BadRequest(f"callback {record['_id']} is COMPLETED")
        if record.get("_call_direction") != "USERORIGINATED":
            raise BadRequest(f"callback {record['_id']} is not a click-to-call-in callback")
        if not record.get("_access_code"):
            raise BadRequest(f"callback {record['_id']} is not at the front of the queue yet; wait for CALLBACK_READY")
        details = {"_access_number": record["_access_number"], "_access_code": record["_access_code"],
                   "_access_expires": format_time(float(record["_access_expires"]))}
        if _wants_push(record):
            self._push(record, "CALLBACK_CALL_IN_DETAILS", {
                "access_number": details["_access_number"], "access_code": details["_access_code"],
                "expires": details["_access_expires"]})
        return details

    # -- EWT ----------------------------------------------------------------------------------
    def queue_changed(self, queue: str) -> None:
        records = self.callbacks.records
        for cid in self.watched.ids(queue):
            record = records.get(cid)
            if record is not None and _watched_in(record) == queue:
                self._evaluate(record)

    def _threshold(self, record: dict[str, Any]) -> float:
        return self.settings.get(record.get("_urs_virtual_queue", "")).push_threshold_minutes * 60

    def _evaluate(self, record: dict[str, Any]) -> None:
        position = self.platform.position(record.get("_ors_session_id") or "") if self.platform else None
        if position is None or position.ewt_seconds < 0:
            return
        ewt = position.ewt_seconds
        if ewt >= self._threshold(record):
            return
        now = self.clock.now()
        deadline, why = self._deadline(record, now)
        if now + ewt > deadline or deadline <= now:  # the second: closed now, even with no wait
            log.info("callback %s: no CALLBACK_UPCOMING, it cannot finish before %s", record["_id"], why)
            return
        record["_push_upcoming"] = UPCOMING_SENT
        self._push(record, "CALLBACK_UPCOMING", {"minutes": max(1, round(ewt / 60))}, ewt=ewt)

    def _deadline(self, record: dict[str, Any], now: float) -> tuple[float, str]:
        candidates = [(parse_time(record["_expiration_time"], ""), "it expires")]
        purge = self.settings.purge_seconds(record.get("_urs_virtual_queue", ""))
        if purge and record.get("_submitted_time"):
            candidates.append((parse_time(record["_submitted_time"], "") + purge, "it is purged"))
        options = self.callbacks.services.options.get(record["_service_name"], {})
        hours = self.callbacks.services.business_hours(options)
        if hours is not None:
            at = datetime.fromtimestamp(now, UTC)
            if not hours.is_open(at):
                candidates.append((now, "the business is closed"))
            elif (closes := hours.closes_at(at)) is not None:  # None: open without a break for a year
                candidates.append((closes.timestamp(), "the business closes"))
        return min(candidates)

    # -- sending ------------------------------------------------------------------------------
    def _push(self, record: dict[str, Any], event: str, extra: dict[str, Any], ewt: float | None = None) -> None:
        token = record.get("_device_notification_id")
        if not token:
            return
        if ewt is None and self.platform is not None:
            position = self.platform.position(record.get("_ors_session_id") or "")
            ewt = position.ewt_seconds if position is not None else -1
        language = self.language_for(record)
        title, body, used = localized(event, language, {**extra, "minutes": extra.get("minutes", "?")})
        data = {"event": event, "_id": record["_id"], "_service_name": record["_service_name"],
                "_callback_state": record["_callback_state"], "ewt": str(int(ewt if ewt is not None else -1)),
                "language": used, **{k: str(v) for k, v in extra.items()}}
        message = {"token": token, "data": data, "notification": {"title": title, "body": body}}
        self.outbox.enqueue("fcm", f"fcm|{record['_id']}", token, message)
        self.pushed.append((record["_id"], event))
        self.callbacks.mark(record)

    async def _deliver(self, d: OutboundMessage) -> None:
        try:
            await self.fcm.send(d.message)
        except PushFailure as e:
            if e.drop_token:
                self._drop_token(d)
            if e.credentials:
                await self._flag("failing", str(e))
            raise
        if self.fcm.credentials is not None and self.fcm.credentials.status != "ok":
            await self._flag("ok", "")

    def _drop_token(self, d: OutboundMessage) -> None:
        cid = str(d.message.get("data", {}).get("_id", ""))
        record = self.callbacks.records.get(cid)
        if record is not None and record.get("_device_notification_id") == d.target:
            log.info("callback %s: FCM token dropped (%s)", cid, "unregistered or invalid")
            record.pop("_device_notification_id", None)
            record["_device_token_dropped"] = "true"
            self.callbacks.mark(record)


def _watched_in(record: dict[str, Any]) -> str | None:
    """The queue whose changes may bring this record its CALLBACK_UPCOMING, if any."""
    if record["_callback_state"] in _WAITING and _wants_push(record) and not record.get("_push_upcoming"):
        return record.get("_urs_virtual_queue")
    return None


def _wants_push(record: dict[str, Any]) -> bool:
    return record.get("_device_os") == "fcm" and bool(record.get("_device_notification_id"))

