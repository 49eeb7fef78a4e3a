"""A snapshot's data keeps every value's type through JSON, also on the fast path that copies a
dict of string keys in one go and visits only the values that are not their own JSON form: a
tuple, a set, bytes, a non-finite float, an ``AttrDict`` or a dict that needs its tag, at the top
of the data or nested in a plain dict, comes back as it was; a value nothing can store is listed
as lost and the others are kept, in their order."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from engine.scxml import RUNNING
from engine.scxml.events import AttrDict
from engine.scxml.session_state import SessionState
from engine.scxml.snapshot import _OPTIONAL, TAG, decode_state, decode_value, encode_state, encode_value
from engine.storage.store import dumps


class Name(str):
    """A string subclass, as lxml gives for XPath results."""


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (and NaN equal to NaN, -0.0 apart from 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def through_json(value: Any) -> Any:
    return decode_value(json.loads(dumps(encode_value(value))))


TRICKY = [
    ("tuple", (1, "a")),
    ("set", {1, 2}),
    ("bytes", b"\x00\xff"),
    ("nan", float("nan")),
    ("inf", float("-inf")),
    ("minus zero", -0.0),
    ("attrdict", AttrDict(a=1, b=(2,), c={"d": {3}})),
    ("tag key", {TAG: "tuple", "v": [1]}),
    ("int key", {1: "one"}),
    ("str subclass key", {Name("k"): 1}),
    ("nested", {"plain": 1, "deep": {"t": (1, 2), "n": [float("nan")]}}),
]


@pytest.mark.parametrize(("label", "value"), TRICKY, ids=[t[0] for t in TRICKY])
def test_a_value_in_a_plain_dict_keeps_its_type(label: str, value: Any) -> None:
    data = {"a": 1, "x": value, "z": "last"}
    back = through_json(data)
    assert same(back, data), (label, back)
    assert list(back) == ["a", "x", "z"]


def test_the_data_of_a_state_keeps_types_order_and_lists_what_cannot_be_stored() -> None:
    data: dict[str, Any] = {"n": 1, "s": "x", "none": None, "flag": True}
    data.update((label, value) for label, value in TRICKY)
    data["fn"] = lambda: 1  # nothing stores a function: lost, the others kept
    data["after"] = 2
    state = SessionState(status=RUNNING, configuration=["s"], data=data)
    encoded = encode_state(state)
    back = decode_state(json.loads(dumps(encoded)))
    assert back.lost == ["fn"]
    kept = {k: v for k, v in data.items() if k != "fn"}
    assert list(back.data) == list(kept)
    assert same(back.data, kept)


def test_encoding_copies_and_never_changes_the_state() -> None:
    inner = {"k": 1}
    data = {"plain": inner, "t": (1,)}
    encoded = encode_state(SessionState(status=RUNNING, data=data))
    encoded["data"]["plain"]["k"] = 2
    encoded["data"]["new"] = 3
    assert data == {"plain": {"k": 1}, "t": (1,)} and inner == {"k": 1}


def test_optional_fields_are_left_out_at_their_default_and_read_back_as_it() -> None:
    encoded = encode_state(SessionState(status=RUNNING, configuration=["s"], data={"a": 1}))
    assert not set(_OPTIONAL) & set(encoded)
    back = decode_state(json.loads(dumps(encoded)))
    assert back == SessionState(status=RUNNING, configuration=["s"], data={"a": 1})


def test_optional_fields_are_written_when_set() -> None:
    state = SessionState(status="finished", configuration=[], data={"a": 1}, parent="p1", invokeid="i1",
                         final_ids=["done"], done_data={"x": (1, 2)}, error="boom", cancel_requested=True)
    state.data["fn"] = lambda: 1  # lost
    encoded = encode_state(state)
    assert set(_OPTIONAL) <= set(encoded)
    back = decode_state(json.loads(dumps(encoded)))
    assert (back.parent, back.invokeid, back.final_ids, back.error, back.cancel_requested, back.lost) == \
        ("p1", "i1", ["done"], "boom", True, ["fn"])
    assert same(back.done_data, {"x": (1, 2)})


def test_a_snapshot_written_with_every_field_restores_the_same() -> None:
    """As the versions before the optional fields were left out wrote them."""
    old = ('{"format":1,"status":"running","configuration":["s"],"data":{"a":1},"lost":[],"history":{},'
           '"internal":[],"external":[],"pending":[],"invocations":[],"late_done":[],"sendseq":3,"parent":null,'
           '"invokeid":null,"final_ids":[],"done_data":null,"error":null,"cancel_requested":false}')
    back = decode_state(json.loads(old))
    assert back == SessionState(status=RUNNING, configuration=["s"], data={"a": 1}, sendseq=3)
    assert decode_state(json.loads(dumps(encode_state(back)))) == back
