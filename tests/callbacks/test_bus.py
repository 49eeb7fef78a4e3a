"""The callback bus: typed events reach their subscribers in order, checks can refuse a create."""

from __future__ import annotations

import pytest

from engine.callbacks.bus import CallbackBus, CallbackCreated, CallbackEnded, RecordUpdated, StatusEvent
from engine.callbacks.records import BadRequest


def test_each_event_reaches_its_own_subscribers_in_subscription_order() -> None:
    bus = CallbackBus()
    seen: list[tuple[str, object]] = []
    bus.subscribe(CallbackCreated, lambda e: seen.append(("first", e)))
    bus.subscribe(CallbackCreated, lambda e: seen.append(("second", e)))
    bus.subscribe(CallbackEnded, lambda e: seen.append(("ended", e)))
    record = {"_id": "c1"}
    created = CallbackCreated(record)
    bus.publish(created)
    bus.publish(RecordUpdated(record, {"_access_code": "1234"}))  # nobody listens: nothing happens
    assert seen == [("first", created), ("second", created)]
    bus.publish(StatusEvent(record, "_cbe_on_dial_init", {}, "s1"))
    bus.publish(CallbackEnded(record))
    assert [name for name, _ in seen] == ["first", "second", "ended"]


def test_only_callback_events_can_be_subscribed() -> None:
    with pytest.raises(TypeError, match="not a callback event"):
        CallbackBus().subscribe(dict, lambda e: None)  # type: ignore[arg-type]


def test_a_failing_subscriber_fails_the_change_that_published() -> None:
    """Swallowing it would lose a notification without a trace."""
    bus = CallbackBus()

    def broken(event: CallbackCreated) -> None:
        raise RuntimeError("outbox full")

    bus.subscribe(CallbackCreated, broken)
    with pytest.raises(RuntimeError, match="outbox full"):
        bus.publish(CallbackCreated({"_id": "c1"}))


def test_a_create_check_refuses_with_its_reason() -> None:
    bus = CallbackBus()
    calls: list[tuple[str, dict]] = []
    bus.add_create_check(lambda service, keys: calls.append((service, keys)))

    def no_example_targets(service: str, keys: dict) -> None:
        if "example" in str(keys.get("_status_notification_target")):
            raise BadRequest("_status_notification_target: example.com is not allowed")

    bus.add_create_check(no_example_targets)
    bus.check_create("svc", {"_status_notification_target": "http://ok.test/"})
    with pytest.raises(BadRequest, match="not allowed"):
        bus.check_create("svc", {"_status_notification_target": "http://example.com/"})
    assert [service for service, _ in calls] == ["svc", "svc"]
