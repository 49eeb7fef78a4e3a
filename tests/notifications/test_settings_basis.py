"""A callback's notification settings are resolved once per basis (service, transaction list,
the record's own notification keys) and shared by every callback of that basis, never kept per
callback (half a KiB of each waiting callback), yet never stale after a reload."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from engine.callbacks.records import BadRequest
from engine.notifications.notifier import StatusNotifier
from engine.notifications.transaction_list import TransactionList, TransactionListError, parse
from engine.urlpolicy import UrlPolicy


def notifier(raw: dict[str, dict[str, Any]], lists: dict[str, TransactionList] | None = None) -> StatusNotifier:
    services = SimpleNamespace(raw=raw, options={})
    return StatusNotifier(services, SimpleNamespace(lists=lists or {}), None, None, None, None, None)  # type: ignore[arg-type]


def record(n: int, **keys: Any) -> dict[str, Any]:
    return {"_id": f"cb{n}", "_service_name": "svc", "_callback_state": "QUEUED", **keys}


SERVICE = {"_enable_status_notification": "notify", "_status_notification_target": "https://example.com/a"}


def test_callbacks_of_one_basis_share_one_settings_object() -> None:
    n = notifier({"svc": dict(SERVICE)})
    first = n._settings(record(1))
    assert first["_enable_status_notification"] == "notify"
    assert first["_status_notification_target"] == "https://example.com/a"
    assert all(n._settings(record(i)) is first for i in range(2, 200))
    assert len(n._resolved) == 1


def test_a_callbacks_own_keys_make_its_own_basis() -> None:
    n = notifier({"svc": dict(SERVICE)})
    shared = n._settings(record(1))
    own = n._settings(record(2, _status_notification_target="https://example.com/own"))
    assert own is not shared and own["_status_notification_target"] == "https://example.com/own"
    assert n._settings(record(3, _status_notification_target="https://example.com/own")) is own
    assert n._settings(record(4))["_status_notification_target"] == "https://example.com/a"


def test_equal_values_of_other_types_are_other_bases() -> None:
    """True == 1 as dict keys; the settings read them differently ("true" against "1")."""
    n = notifier({"svc": dict(SERVICE)})
    assert n._settings(record(1, _status_notification_debug=True))["_status_notification_debug"] is True
    assert n._settings(record(2, _status_notification_debug=1))["_status_notification_debug"] is False


def test_a_reloaded_service_or_list_is_resolved_again() -> None:
    raw = {"svc": dict(SERVICE)}
    n = notifier(raw)
    before = n._settings(record(1))
    raw["svc"] = {**SERVICE, "_status_notification_target": "https://example.com/b"}  # a reload replaces it
    after = n._settings(record(2))
    assert after is not before and after["_status_notification_target"] == "https://example.com/b"
    lists = {"l": TransactionList("l", {"_status_notification_target": "https://example.com/list"}, {}, [])}
    n = notifier({"svc": {"_callback_events_list": "l", "_enable_status_notification": "notify"}}, lists)
    assert n._settings(record(3))["_status_notification_target"] == "https://example.com/list"
    lists["l"] = TransactionList("l", {"_status_notification_target": "https://example.com/list2"}, {}, [])
    assert n._settings(record(4))["_status_notification_target"] == "https://example.com/list2"


def test_a_value_that_cannot_be_a_key_is_resolved_without_the_cache() -> None:
    """A flow may put a list into a record key (``cb:update``): it is resolved each time."""
    n = notifier({"svc": dict(SERVICE)})
    settings = n._settings(record(1, _status_notification_language=["en", "fr"]))
    assert settings["_status_notification_language"] == ["en", "fr"]
    assert len(n._resolved) == 0


def test_a_record_naming_its_own_list_is_not_given_the_services_settings() -> None:
    """A record with no notification key of its own shares its service's basis (found by the
    service's name alone); one naming a list of its own, or holding a key of its own even empty,
    is resolved on its own basis, before and after the service's basis is cached."""
    lists = {"mine": TransactionList("mine", {"_status_notification_target": "https://example.com/mine"}, {}, [])}
    n = notifier({"svc": dict(SERVICE)}, lists)
    plain = n._settings(record(1))
    assert plain["_status_notification_target"] == "https://example.com/a" and plain["list"] is None
    own = n._settings(record(2, _callback_events_list="mine"))
    assert own["list"] is lists["mine"] and own["list_name"] == "mine"
    empty = n._settings(record(3, _status_notification_target=""))  # empty: the service's value
    assert empty is not plain and empty == plain
    assert n._settings(record(4)) is plain


def test_a_lists_properties_are_checked_like_a_services_options() -> None:
    """SPEC 6: a malformed list is refused with the section and line; a value the engine would
    read as something else (``true`` as off, a type nothing delivers) is malformed too."""
    for value, wanted in (("_enable_status_notification = true", "must be one of false, notify"),
                          ("_status_notification_type = foo", "must be one of httpcb, orscb"),
                          ("_status_notification_debug = maybe", "must be a bool")):
        with pytest.raises(TransactionListError, match=wanted) as caught:
            parse(f"[_cbe_on_service_create]\n\n[properties]\n{value}\n")
        assert str(caught.value).startswith("line 4, section [properties]:"), caught.value
    blank = parse("[properties]\n_status_notification_type =\n_enable_status_notification =\n")
    assert blank.properties == {"_status_notification_type": "", "_enable_status_notification": ""}  # not set
    listed = parse("[properties]\n_status_notification_debug = yes\n_enable_status_notification = to_notify\n"
                   "_status_notification_target = <your URL>\n")
    assert listed.properties == {"_status_notification_debug": "true", "_enable_status_notification": "to_notify",
                                 "_status_notification_target": "<your URL>"}  # the seed's placeholder


def test_a_create_is_checked_against_its_services_settings_each_time_and_after_a_reload() -> None:
    """``check_request`` reads the service's resolved settings (the cache) when the request sets
    no notification key of its own: a refused target stays refused on every create, and a
    reloaded service is what the next create is checked against."""
    raw = {"svc": {**SERVICE, "_status_notification_target": "https://refused.example/x"}}
    n = notifier(raw)
    n.config = SimpleNamespace(policy=UrlPolicy(["https://example.com"]))
    for _ in range(3):
        with pytest.raises(BadRequest, match="_status_notification_target"):
            n.check_request("svc", {"_customer_number": "+15550100001"})
    raw["svc"] = dict(SERVICE)  # an allowed target (a reload replaces the object)
    n.check_request("svc", {"_customer_number": "+15550100001"})
    with pytest.raises(BadRequest, match="_status_notification_target"):  # the request's own key decides
        n.check_request("svc", {"_status_notification_target": "https://refused.example/y"})
    n.check_request("svc", {})
