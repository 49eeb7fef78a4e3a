"""``bounded_json.loads``: every JSON input of the engine goes through it, so what it refuses
(too deep, no Unicode text) never reaches a session, a record or a row."""

from __future__ import annotations

import pytest

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
