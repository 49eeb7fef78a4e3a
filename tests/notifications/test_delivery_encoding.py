"""A delivery's stored record and request body, encoded by hand for speed, say what the plain
encoding of every field said: the record loads back to an equal delivery, and the bodies are the
SPEC's shapes (compact UTF-8 JSON)."""

from __future__ import annotations

import json
from dataclasses import asdict

from hypothesis import given
from hypothesis import strategies as st

from engine.notifications.delivery import DEAD, Delivery

finite = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | finite | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10)
deliveries = st.builds(
    Delivery, id=st.integers(1, 2**62), key=st.text(), type=st.sampled_from(["httpcb", "customhttp", "orscb", "fcm"]),
    target=st.text(), device_id=st.text(), message=st.dictionaries(st.text(max_size=8), json_values, max_size=5),
    webhook_id=st.text(), max_attempts=st.integers(1, 20), created_at=st.floats(0, 2e9),
    secret=st.none() | st.text(), attempts=st.integers(0, 20), next_at=st.floats(0, 2e9),
    status=st.sampled_from(["pending", DEAD]), last_error=st.text())


@given(deliveries)
def test_the_record_holds_every_field(d: Delivery) -> None:
    stored = json.loads(d.record())
    assert stored == json.loads(json.dumps(asdict(d)))
    assert Delivery(**stored) == d


@given(deliveries)
def test_the_body_is_the_specs_shape(d: Delivery) -> None:
    expected = d.message if d.type == "customhttp" else {"deviceId": d.device_id, "message": d.message}
    assert json.loads(d.body().decode("utf-8")) == expected


def test_a_row_written_after_an_attempt_carries_its_progress() -> None:
    d = Delivery(id=7, key="k", type="httpcb", target="https://example.test/h", device_id="dev",
                 message={"event_id": "_cbe_on_dial_init"}, webhook_id="msg_1", max_attempts=3, created_at=1.0)
    first = d.row()
    d.attempts, d.status, d.last_error = 3, DEAD, "HTTP 500"
    again = d.row()
    assert json.loads(first["record"])["attempts"] == 0
    assert (again["attempts"], again["status"]) == (3, DEAD)
    assert Delivery(**json.loads(again["record"])) == d


def test_a_value_json_cannot_hold_is_sent_and_stored_as_null() -> None:
    """NaN and infinities are not JSON: a receiver gets null (as the stored row has it), never
    ``NaN``, which its parser would refuse."""
    d = Delivery(id=8, key="k", type="customhttp", target="https://example.test/h", device_id="dev",
                 message={"a": float("nan"), "b": float("inf"), "c": 1.5}, webhook_id="msg_2", max_attempts=3,
                 created_at=1.0)
    assert json.loads(d.body()) == {"a": None, "b": None, "c": 1.5}
    assert json.loads(d.record())["message"] == {"a": None, "b": None, "c": 1.5}


def test_the_message_is_encoded_once_and_is_no_field() -> None:
    """The stored row and every attempt's body share one encoding of the message, which is not
    a field: the API's view, equality and the stored record hold the fields only."""
    d = Delivery(id=9, key="k", type="httpcb", target="https://example.test/h", device_id="dev",
                 message={"event_id": "_cbe_on_dial_init"}, webhook_id="msg_3", max_attempts=3, created_at=1.0)
    record = d.record()
    d.message["added_later"] = 1  # the engine never does this: it shows the first encoding is reused
    assert json.loads(d.body()) == {"deviceId": "dev", "message": {"event_id": "_cbe_on_dial_init"}}
    assert d.message_json == json.dumps({"event_id": "_cbe_on_dial_init"}, separators=(",", ":"))
    assert "_message_json" not in asdict(d) and "_message_json" not in d.public()
    assert set(json.loads(record)) == set(asdict(d))
    assert Delivery(**json.loads(record)) == Delivery(**{**asdict(d), "message": {"event_id": "_cbe_on_dial_init"}})
