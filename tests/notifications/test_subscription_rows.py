"""What a subscription stores and what a status message is built from: the pure functions the
notification path runs for each callback and each event."""

from __future__ import annotations

import json
import re

from cryptography.fernet import Fernet

from engine.notifications.notifier import status_message
from engine.notifications.subscriptions import Subscription, SubscriptionRegistry
from engine.secretbox import SecretBox


def subscription(**changes) -> Subscription:
    fields = {"id": "s1", "subscriber_id": "callback:c1", "provider": "default", "type": "httpcb",
              "device_id": "http://127.0.0.1:9/hook",
              "properties": {"url": "http://127.0.0.1:9/x", "n": [1, {"a": None}]},
              "filter": "callback/svc/c1", "expires_at": 1e9 + 0.5, "created_at": 12.25, "callback_id": "c1",
              "max_attempts": 3, "owner": "client-key"}
    return Subscription(**{**fields, **changes})


def test_a_stored_row_reads_back_as_the_same_subscription() -> None:
    registry = SubscriptionRegistry(SecretBox(Fernet.generate_key()))
    sub = registry.add(subscription(properties={"secret": "whsec_abc", "url": "http://127.0.0.1:9/x"}))
    assert sub.sealed_secret and "secret" not in sub.properties
    row = sub.row()
    assert (row["id"], row["expires_at"]) == ("s1", 1e9 + 0.5)
    assert Subscription(**json.loads(row["record"])) == sub
    plain = subscription(callback_id=None, max_attempts=None, owner=None)
    assert Subscription(**json.loads(plain.row()["record"])) == plain


def test_a_row_holds_the_fields_and_nothing_else() -> None:
    """``row`` encodes the instance's attributes: one set beside the fields would be stored and
    then refused when the row is loaded."""
    sub = subscription()
    assert set(json.loads(sub.row()["record"])) == set(Subscription.__dataclass_fields__)


class Values(dict):
    """A flow's values as ``StatusValues`` answers: ``get`` only, no record fallback of its own."""


def test_a_status_message_takes_each_param_from_the_values_then_the_record() -> None:
    record = {"_id": "c1", "_service_name": "svc", "_callback_state": "QUEUED", "_customer_number": "+1555",
              "from_record": "r", "both": "record's"}
    values = Values({"both": "value's", "none_value": None, "event_id": "not this"})
    message = status_message("CALLBACK_QUEUED", 42.9, record, values,
                             ["both", "from_record", "none_value", "absent", "event_id"], {"custom": 1})
    assert message == {"event_id": "CALLBACK_QUEUED", "timestamp": "42", "_service_id": "c1", "_service_name": "svc",
                       "_callback_state": "QUEUED", "both": "value's", "from_record": "r", "none_value": None,
                       "custom": 1}


def test_subscription_ids_are_random_hex_like_before() -> None:
    from engine.notifications import subscriptions
    from engine.urlpolicy import UrlPolicy
    body = {"notificationDetails": {"deviceId": "http://127.0.0.1:9/h", "type": "httpcb"}, "filter": "callback/*"}
    ids = {subscriptions.parse_request(body, 0.0, UrlPolicy(networks=["127.0.0.0/8"])).id for _ in range(300)}
    assert len(ids) == 300 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
