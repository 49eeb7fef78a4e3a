"""The callback event bus: what the callback service tells the parts built on top of it.

The callback service knows nothing of status notifications or push; it publishes typed events
here and the parts above it (``engine.notifications``, ``engine.push``) subscribe when they are
built. Handlers run synchronously, in subscription order, inside the change that raised the
event, so whatever they queue (a delivery, a push) is written in the same transaction as the
record change. An exception in a handler propagates to the change that published the event, as
a direct call would: a bus that swallowed it would lose a notification without a trace.

Events are named tuples: immutable, and made at a fraction of a frozen dataclass's cost (a
callback publishes ~20 of them: its status events, created, completed, ended).

Besides events, parts may add *admission checks*: a create request that one of them refuses
(an outbound target the URL policy forbids...) is answered 400 and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple, TypeVar

Record = dict[str, Any]


class CallbackCreated(NamedTuple):
    """A callback was accepted (before it is stored: a handler may still add keys to it)."""

    record: Record


class RecordUpdated(NamedTuple):
    """Record keys changed: the flow's ``<cb:update>`` params (e.g. the call-in access code), or a
    client's update or reschedule (its keys, and ``_desired_time`` / ``_expiration_time``)."""

    record: Record
    keys: dict[str, Any]


class StatusEvent(NamedTuple):
    """A status event was recorded: one of the flow's (``<cb:notify>``) or of the lifecycle.
    Its attributes are taken from ``values`` (the flow's params and session data, a lifecycle
    event's ``_v_queue``), else from the record: read them while handling the event, do not keep
    the mapping (it may look into the live session)."""

    record: Record
    name: str
    values: Mapping[str, Any]
    session_id: str | None


_ABSENT = object()  # StatusValues: the session has no variable of that name


class StatusValues(Mapping[str, Any]):
    """What a flow's status event takes its attributes from: the action's params, else the
    session's variables, else the record. Looked up name by name: an event names a handful of
    attributes, and copying a session's variables (the service's options are among them) for
    each of the ~15 events of a callback cost more than everything the event is then used for."""

    __slots__ = ("_data", "_extra", "_record")

    def __init__(self, extra: Mapping[str, Any], data: Any, record: Record):
        self._extra, self._data, self._record = extra, data, record  # data: the session's DataModel

    def __getitem__(self, name: str) -> Any:
        if name in self._extra:
            return self._extra[name]
        value = self._data.lookup(name, _ABSENT)
        return self._record[name] if value is _ABSENT else value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._extra or self._data.defines(name) or name in self._record)

    def get(self, name: str, default: Any = None) -> Any:
        """One lookup where ``in`` then ``[]`` made two (``Mapping.get`` also raised KeyError
        for every name the record lacks), and one call into the session's data."""
        if name in self._extra:
            return self._extra[name]
        value = self._data.lookup(name, _ABSENT)
        return self._record.get(name, default) if value is _ABSENT else value

    def _merged(self) -> dict[str, Any]:
        return {**self._record, **self._data.variables(), **self._extra}

    def __iter__(self) -> Iterator[str]:
        return iter(self._merged())

    def __len__(self) -> int:
        return len(self._merged())


class AttemptFailed(NamedTuple):
    """An outbound attempt of the callback failed (the flow's ``_cbe_on_dial_done`` with a
    result other than answered); ``attempt`` of ``max_attempts``."""

    record: Record
    attempt: int
    max_attempts: int


class CallbackCompleted(NamedTuple):
    """The record reached COMPLETED with ``reason`` (its flow may still be winding down)."""

    record: Record
    reason: str


class CallbackEnded(NamedTuple):
    """The callback and its flow are both over."""

    record: Record


CallbackEvent = CallbackCreated | RecordUpdated | StatusEvent | AttemptFailed | CallbackCompleted | CallbackEnded
E = TypeVar("E", CallbackCreated, RecordUpdated, StatusEvent, AttemptFailed, CallbackCompleted, CallbackEnded)
CreateCheck = Callable[[str, dict[str, Any]], None]
"""``check(service_name, keys)``: raise ``BadRequest`` to refuse a create request."""


class CallbackBus:
    """Typed publish/subscribe between the callback service and the parts above it."""

    def __init__(self) -> None:
        self._handlers: dict[type, list[Callable[[Any], None]]] = {
            kind: [] for kind in (CallbackCreated, RecordUpdated, StatusEvent, AttemptFailed, CallbackCompleted,
                                  CallbackEnded)}
        self._checks: list[CreateCheck] = []

    def subscribe(self, kind: type[E], handler: Callable[[E], None]) -> None:
        if kind not in self._handlers:
            raise TypeError(f"{kind!r} is not a callback event")
        self._handlers[kind].append(handler)

    def publish(self, event: CallbackEvent) -> None:
        for handler in self._handlers[type(event)]:
            handler(event)

    def add_create_check(self, check: CreateCheck) -> None:
        self._checks.append(check)

    def check_create(self, service_name: str, keys: dict[str, Any]) -> None:
        for check in self._checks:
            check(service_name, keys)
