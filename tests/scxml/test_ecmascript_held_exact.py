"""The one-call check of the ECMAScript datamodel's hot paths (``_held_exact``) agrees with the two
calls it replaced (``_exact`` then ``_held``) on every kind of value a flow gives it."""

from __future__ import annotations

import enum
import math

from engine.scxml.datamodel import Foreign
from engine.scxml.ecmascript import codec
from engine.scxml.ecmascript.data import _INEXACT, _exact, _held, _held_exact
from engine.scxml.events import AttrDict


class Level(enum.IntEnum):
    LOW = 1


class Text(str):
    pass


VALUES = [
    "", "abc", "é", "\ud800", "a\udfffb", Text("x"), True, False, None, 0, 1, -7, 2**53 - 1, 2**53, -(2**53), 10**30,
    Level.LOW, 0.0, -0.0, 2.5, 3.0, float(2**53), math.nan, math.inf, -math.inf,
    Foreign({codec.TAG: "u"}), Foreign({codec.TAG: "n", "v": "-0"}), Foreign({codec.TAG: "big", "v": "1"}),
    Foreign({codec.TAG: "fn", "v": "x"}), Foreign(["not", "a", "dict"]), {}, [], AttrDict(a=1), (1,), b"x",
]


def test_held_exact_is_held_of_exact_values_and_inexact_otherwise() -> None:
    for value in VALUES:
        expected = _held(value) if _exact(value) else _INEXACT
        got = _held_exact(value)
        assert type(got) is type(expected) and (got == expected or got is expected or (
            isinstance(got, Foreign) and got.form == expected.form)), value
