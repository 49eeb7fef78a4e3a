"""Record times: ``yyyy-MM-ddTHH:mm:ss.SSSZ`` in UTC, milliseconds truncated, read back exactly."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.callbacks.records import MAX_TIME, BadRequest, format_time, parse_time


@pytest.mark.parametrize(
    ("epoch", "text"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (0.0009, "1970-01-01T00:00:00.000Z"),
        (1.9999, "1970-01-01T00:00:01.999Z"),
        (1777645800.5, "2026-05-01T14:30:00.500Z"),
        (MAX_TIME, "9000-01-01T00:00:00.000Z"),
    ],
)
def test_format_time(epoch: float, text: str) -> None:
    assert format_time(epoch) == text


def test_format_time_agrees_with_the_strftime_spelling_over_the_whole_range() -> None:
    rng = random.Random(10)
    for _ in range(20_000):
        epoch = rng.uniform(0, MAX_TIME)
        dt = datetime.fromtimestamp(epoch, UTC)
        assert format_time(epoch) == dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
        assert 0 <= epoch - parse_time(format_time(epoch), "t") < 0.0011  # truncated, float noise


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.floats(min_value=-2e9, max_value=4e9, allow_nan=False),
                 st.integers(min_value=0, max_value=4_000_000_000).map(float),
                 st.tuples(st.integers(min_value=0, max_value=4_000_000_000),
                           st.sampled_from([0.0005, 0.9995, 0.9999995, 0.0000005, 0.9994999, 0.5]))
                 .map(lambda t: t[0] + t[1])))
def test_format_time_formats_as_datetime_does(epoch: float) -> None:
    """The per-second cache gives exactly what ``datetime`` gives, carries and rounding included."""
    expected = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
    assert format_time(epoch) == expected


def test_a_stamp_just_formatted_reads_back_as_its_text_does() -> None:
    """format_time remembers what parse_time gives for each new stamp (without parsing it): the
    same float datetime makes of the text, and a stamp out of the accepted range still refused."""
    rng = random.Random(11)
    for i in range(20_000):
        epoch = rng.uniform(1.6e9, 1.9e9) if i % 2 else rng.uniform(0, MAX_TIME)
        text = format_time(epoch)
        assert parse_time(text, "t") == datetime.fromisoformat(text[:-1] + "+00:00").timestamp()
    for outside in (-0.5, -86_400.25, MAX_TIME + 0.001):
        with pytest.raises(BadRequest):
            parse_time(format_time(outside), "t")
