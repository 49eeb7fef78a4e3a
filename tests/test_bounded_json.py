"""``bounded_json.loads``: every JSON input of the engine goes through it, so what it refuses
(too deep, no Unicode text) never reaches a session, a record or a row."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.bounded_json import NotUnicode, TooDeep, loads


@pytest.mark.parametrize("text", [
    b'{"a": "x\\ud800"}',  # an escape, in bytes as a body arrives
    '{"a": "x\\ud800"}',  # an escape, in text
    b'{"a": "x\xed\xa0\x80"}',  # the surrogate's own UTF-8 bytes, which json decodes with surrogatepass
    '{"a": "x\ud800"}',  # a str holding one already
])
def test_a_lone_surrogate_is_refused_however_it_is_written(text: str | bytes) -> None:
    with pytest.raises(NotUnicode, match=r"the string at \$\.a holds a lone UTF-16 surrogate \(\\ud800\)"):
        loads(text)


def test_an_object_name_with_a_lone_surrogate_is_refused_naming_where() -> None:
    with pytest.raises(NotUnicode, match=r"\$\.k\[1\] \(an object's name\)"):
        loads('{"k": [0, {"\\udfff": 1}]}')


@pytest.mark.parametrize(("text", "value"), [
    (b'{"a": "\\ud83d\\ude00"}', {"a": "\U0001f600"}),  # a pair of escapes is one character
    ('{"a": "caf\u00e9 \U0001f600"}', {"a": "caf\u00e9 \U0001f600"}),  # plain non-ASCII text
    ("{\"a\": \"caf\u00e9\"}".encode(), {"a": "caf\u00e9"}),
    (b'{"a": "\\u00e9", "b": [1, "x"]}', {"a": "\u00e9", "b": [1, "x"]}),
])
def test_unicode_text_is_welcome(text: str | bytes, value: object) -> None:
    assert loads(text) == value


def test_nesting_beyond_the_limit_is_refused() -> None:
    assert loads("[" * 3 + "]" * 3, max_depth=3) == [[[]]]
    with pytest.raises(TooDeep):
        loads("[" * 4 + "]" * 4, max_depth=3)


def test_brackets_inside_strings_do_not_hide_nesting() -> None:
    """The walk is skipped only when fewer brackets than the limit are written at all."""
    assert loads('{"a": "[[[[[[[["}', max_depth=3) == {"a": "[[[[[[[["}
    with pytest.raises(TooDeep):
        loads(b'{"a": "x", "b": [[[{}]]]}', max_depth=3)


# What orjson (read first) gives differently or refuses: each must be json.loads' answer.
AS_JSON_LOADS = [
    b"123456789012345678901234567890",  # beyond 64 bits: orjson gives a float
    b'{"n": 18446744073709551616, "m": -9223372036854775809}',
    "[0.12345678901234567890123]",
    b"NaN", b'{"a": Infinity, "b": -Infinity}', b"1e400",
    b'\xef\xbb\xbf{"a": 1}',  # a byte order mark
    '{"a": 1}'.encode("utf-16"),  # another encoding, which json detects
    b'{"a": 1, "a": 2}',
    b"-0", b"-0.0", b"[1.5e-320]",
]


@pytest.mark.parametrize("text", AS_JSON_LOADS)
def test_the_value_is_json_loads_value(text: str | bytes) -> None:
    got, expected = loads(text), json.loads(text)
    assert repr(got) == repr(expected) or (isinstance(got, float) and math.isnan(got) and math.isnan(expected))
    assert type(got) is type(expected)


@pytest.mark.parametrize("text", [b'{"a": 1}x', b'{"a": tru}', b'"a\x00"', b"\xff", b"", b"[1,]"])
def test_what_json_loads_refuses_is_refused_with_its_error(text: bytes) -> None:
    with pytest.raises(ValueError) as ours:
        loads(text)
    with pytest.raises(ValueError) as theirs:
        json.loads(text)
    assert type(ours.value) is type(theirs.value) and str(ours.value) == str(theirs.value)


_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
                     st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12))
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)), max_leaves=20)


@settings(max_examples=1500, deadline=None)
@given(_VALUES, st.booleans(), st.booleans())
def test_any_json_reads_as_json_loads_reads_it(value: object, as_bytes: bool, ascii_only: bool) -> None:
    """Text without lone surrogates (hypothesis' text has none), written either way: astral
    characters as pairs of escapes or as themselves, integers beyond 64 bits, any float."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    raw = text.encode() if as_bytes else text
    assert repr(loads(raw, max_depth=64)) == repr(json.loads(raw))


@pytest.mark.parametrize("depth", [0, 257, 5000])
def test_the_depth_setting_stays_within_what_recursive_walks_survive(tmp_path, depth: int) -> None:
    from engine.settings import Settings

    with pytest.raises(ValueError, match="max_json_depth must be between 1 and 256"):
        Settings.load(config_dir=tmp_path / "none", env={}, data_dir=tmp_path / "data", max_json_depth=depth)


def test_input_other_than_text_or_bytes_is_json_loads_to_judge() -> None:
    assert loads(bytearray(b'{"a": 12345678901234567890123}')) == {"a": 12345678901234567890123}
    with pytest.raises(TypeError):
        loads(memoryview(b"{}"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        loads(None)  # type: ignore[arg-type]
