"""Business hours: validation, open/closed answers, DST days, exceptions and availability slots.

Scheduling rejects or moves desired times with these answers, and the availability API offers
only open buckets, so an hour's error on a DST day books customers while nobody is there.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from engine.callbacks.business_hours import (
    SEARCH_DAYS,
    WEEKDAYS,
    BusinessHours,
    bucket_start,
    time_slots,
)

OFFICE = ["09:00-12:00", "13:00-18:00"]
PARIS: dict[str, Any] = {
    "time_zone": "Europe/Paris",
    "weekly": {"mon": OFFICE, "tue": OFFICE, "wed": OFFICE, "thu": OFFICE, "fri": OFFICE, "sat": [], "sun": []},
    "exceptions": {"2026-12-25": [], "2026-12-24": ["09:00-12:00"], "2026-12-27": ["10:00-11:00"]},
}


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.fixture
def paris() -> BusinessHours:
    return BusinessHours.from_dict(PARIS)


def hours(time_zone: str, **days: list[str]) -> BusinessHours:
    return BusinessHours.from_dict({"time_zone": time_zone, "weekly": days})


# -- parsing and validation --------------------------------------------------------------------


def test_round_trip_is_canonical(paris: BusinessHours) -> None:
    data = paris.to_dict()
    assert data["time_zone"] == "Europe/Paris"
    assert list(data["weekly"]) == list(WEEKDAYS)
    assert data["weekly"]["mon"] == OFFICE
    assert data["exceptions"] == {"2026-12-24": ["09:00-12:00"], "2026-12-25": [], "2026-12-27": ["10:00-11:00"]}
    assert BusinessHours.from_dict(data) == paris
    assert BusinessHours.from_dict(data).to_dict() == data


def test_missing_weekdays_are_closed_and_input_is_normalised() -> None:
    parsed = BusinessHours.from_dict(
        {"time_zone": "UTC", "weekly": {"Monday": [" 9:00 - 12:00", "13:00-24:00"]}, "name": "support"}
    )
    assert parsed.to_dict() == {
        "name": "support",
        "time_zone": "UTC",
        "weekly": {"mon": ["09:00-12:00", "13:00-24:00"], **{d: [] for d in WEEKDAYS[1:]}},
        "exceptions": {},
    }


def test_intervals_given_out_of_order_are_sorted() -> None:
    parsed = hours("UTC", mon=["13:00-14:00", "08:00-09:00"])
    assert parsed.to_dict()["weekly"]["mon"] == ["08:00-09:00", "13:00-14:00"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"time_zone": "Mars/Olympus", "weekly": {}}, r"time_zone: unknown IANA time zone 'Mars/Olympus'"),
        ({"time_zone": "", "weekly": {}}, r"time_zone: expected an IANA time zone name, got ''"),
        ({"time_zone": 1, "weekly": {}}, r"time_zone: expected an IANA time zone name, got 1"),
        ({"weekly": {}}, r"time_zone: missing"),
        ({"time_zone": "UTC", "weekly": {"mon": ["25:00-26:00"]}}, r"weekly\.mon\[0\]: '25:00-26:00' has an invalid "
                                                                     r"start time 25:00"),
        ({"time_zone": "UTC", "weekly": {"mon": ["09:00-25:00"]}}, r"weekly\.mon\[0\]: .* invalid end time 25:00"),
        ({"time_zone": "UTC", "weekly": {"mon": ["09:60-10:00"]}}, r"weekly\.mon\[0\]: .* invalid start time 09:60"),
        ({"time_zone": "UTC", "weekly": {"mon": ["24:00-24:00"]}}, r"weekly\.mon\[0\]: .* invalid start time 24:00"),
        ({"time_zone": "UTC", "weekly": {"tue": ["9-17"]}}, r"weekly\.tue\[0\]: '9-17' is not an 'HH:MM-HH:MM'"),
        ({"time_zone": "UTC", "weekly": {"tue": ["12:00-09:00"]}}, r"weekly\.tue\[0\]: '12:00-09:00' ends at or "
                                                                    r"before it starts"),
        ({"time_zone": "UTC", "weekly": {"tue": ["09:00-09:00"]}}, r"weekly\.tue\[0\]: .* ends at or before"),
        ({"time_zone": "UTC", "weekly": {"tue": ["22:00-02:00"]}}, r"cannot cross midnight"),
        ({"time_zone": "UTC", "weekly": {"wed": ["09:00-12:00", "11:00-13:00"]}},
         r"weekly\.wed: intervals '09:00-12:00' and '11:00-13:00' overlap"),
        ({"time_zone": "UTC", "weekly": {"wed": "09:00-12:00"}}, r"weekly\.wed: expected a list"),
        ({"time_zone": "UTC", "weekly": {"wed": [900]}}, r"weekly\.wed\[0\]: expected an 'HH:MM-HH:MM' string"),
        ({"time_zone": "UTC", "weekly": {"funday": []}}, r"weekly: unknown weekday 'funday'"),
        ({"time_zone": "UTC", "weekly": {"mon": [], "Monday": []}}, r"weekly: weekday 'mon' given more than once"),
        ({"time_zone": "UTC", "weekly": []}, r"weekly: expected an object"),
        ({"time_zone": "UTC", "exceptions": {"2026-02-30": []}}, r"exceptions\.2026-02-30: '2026-02-30' is not a "
                                                                   r"valid date"),
        ({"time_zone": "UTC", "exceptions": {"25/12/2026": []}}, r"exceptions\.25/12/2026: '25/12/2026' is not a "
                                                                   r"YYYY-MM-DD date"),
        ({"time_zone": "UTC", "exceptions": {"2026-12-24": ["12:00-11:00"]}},
         r"exceptions\.2026-12-24\[0\]: '12:00-11:00' ends at or before"),
        ({"time_zone": "UTC", "exceptions": ["2026-12-25"]}, r"exceptions: expected an object"),
        ({"time_zone": "UTC", "weekley": {}}, r"business hours: unknown field\(s\) 'weekley'"),
        ({"time_zone": "UTC", "name": 3}, r"name: expected a string, got 3"),
        ("Europe/Paris", r"business hours: expected an object"),
    ],
)
def test_invalid_definitions_name_the_field_and_value(data: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BusinessHours.from_dict(data)


def test_adjacent_intervals_are_allowed() -> None:
    assert hours("UTC", mon=["09:00-12:00", "12:00-13:00"]).to_dict()["weekly"]["mon"] == ["09:00-12:00", "12:00-13:00"]


# -- is_open / next_open / closes_at / open_intervals -------------------------------------------


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (utc(2026, 6, 1, 6, 59), False),  # Mon 08:59 CEST
        (utc(2026, 6, 1, 7, 0), True),  # 09:00: start is open
        (utc(2026, 6, 1, 9, 59, 59), True),
        (utc(2026, 6, 1, 10, 0), False),  # 12:00: end is closed (lunch)
        (utc(2026, 6, 1, 10, 30), False),
        (utc(2026, 6, 1, 11, 0), True),  # 13:00
        (utc(2026, 6, 1, 16, 0), False),  # 18:00
        (utc(2026, 6, 6, 10, 0), False),  # Saturday
        (utc(2026, 12, 25, 10, 0), False),  # Christmas: closed all day though a Friday
        (utc(2026, 12, 24, 10, 0), True),  # Christmas Eve 11:00 CET: its own morning hours
        (utc(2026, 12, 24, 13, 0), False),  # ... and no afternoon
        (utc(2026, 12, 27, 9, 30), True),  # a Sunday opened by an exception
    ],
)
def test_is_open(paris: BusinessHours, when: datetime, expected: bool) -> None:
    assert paris.is_open(when) is expected


def test_is_open_accepts_any_time_zone_and_refuses_naive(paris: BusinessHours) -> None:
    tokyo = datetime(2026, 6, 1, 16, 30, tzinfo=ZoneInfo("Asia/Tokyo"))  # 09:30 Paris
    assert paris.is_open(tokyo)
    with pytest.raises(ValueError, match="has no time zone"):
        paris.is_open(datetime(2026, 6, 1, 9, 30))


def test_next_open_is_t_itself_when_open(paris: BusinessHours) -> None:
    t = datetime(2026, 6, 1, 9, 30, tzinfo=ZoneInfo("Europe/Paris"))
    assert paris.next_open(t) == t
    assert paris.next_open(t).tzinfo is UTC  # type: ignore[union-attr]


def test_next_open_after_lunch(paris: BusinessHours) -> None:
    assert paris.next_open(utc(2026, 6, 1, 10, 15)) == utc(2026, 6, 1, 11, 0)


def test_next_open_across_a_closed_weekend(paris: BusinessHours) -> None:
    friday_evening = utc(2026, 6, 5, 16, 30)  # Fri 18:30 CEST
    assert paris.next_open(friday_evening) == utc(2026, 6, 8, 7, 0)  # Mon 09:00 CEST


def test_next_open_across_a_weekend_with_a_dst_change(paris: BusinessHours) -> None:
    """Clocks go forward on Sunday 2026-03-29: Friday opened at 08:00Z, Monday at 07:00Z."""
    assert paris.next_open(utc(2026, 3, 27, 17, 30)) == utc(2026, 3, 30, 7, 0)


def test_next_open_skips_christmas_and_the_weekend(paris: BusinessHours) -> None:
    assert paris.next_open(utc(2026, 12, 24, 11, 0)) == utc(2026, 12, 27, 9, 0)  # the Sunday exception
    assert paris.next_open(utc(2026, 12, 27, 10, 0)) == utc(2026, 12, 28, 8, 0)  # then Monday 09:00 CET


def test_next_open_is_none_when_never_open() -> None:
    never = BusinessHours.from_dict({"time_zone": "UTC", "weekly": {}})
    assert never.next_open(utc(2026, 1, 1)) is None
    assert never.closes_at(utc(2026, 1, 1)) is None
    assert never.open_intervals(utc(2026, 1, 1), utc(2026, 2, 1)) == []


def test_next_open_searches_at_most_a_year() -> None:
    def only(day: str) -> BusinessHours:
        return BusinessHours.from_dict({"time_zone": "UTC", "exceptions": {day: ["10:00-11:00"]}})

    start = utc(2026, 1, 1)
    assert only("2026-12-31").next_open(start) == utc(2026, 12, 31, 10, 0)
    assert only("2027-01-03").next_open(start) is None  # 367 days away
    assert SEARCH_DAYS == 366


def test_closes_at(paris: BusinessHours) -> None:
    assert paris.closes_at(utc(2026, 6, 1, 8, 0)) == utc(2026, 6, 1, 10, 0)
    assert paris.closes_at(utc(2026, 6, 1, 10, 30)) is None  # closed
    assert paris.closes_at(utc(2026, 12, 24, 8, 0)) == utc(2026, 12, 24, 11, 0)


def test_closes_at_joins_periods_across_midnight() -> None:
    late = hours("UTC", mon=["20:00-24:00"], tue=["00:00-02:00", "02:00-03:00"])
    assert late.closes_at(utc(2026, 6, 1, 21, 0)) == utc(2026, 6, 2, 3, 0)
    assert late.open_intervals(utc(2026, 6, 1), utc(2026, 6, 3)) == [(utc(2026, 6, 1, 20, 0), utc(2026, 6, 2, 3, 0))]


def test_closes_at_is_none_when_open_without_a_break() -> None:
    always = hours("Europe/Paris", **{day: ["00:00-24:00"] for day in WEEKDAYS})
    assert always.is_open(utc(2026, 3, 29, 1, 30))
    assert always.closes_at(utc(2026, 3, 29, 1, 30)) is None


def test_open_intervals_are_clipped_utc(paris: BusinessHours) -> None:
    got = paris.open_intervals(datetime(2026, 6, 1, 10, 0, tzinfo=ZoneInfo("Europe/Paris")), utc(2026, 6, 2, 8, 0))
    assert got == [
        (utc(2026, 6, 1, 8, 0), utc(2026, 6, 1, 10, 0)),
        (utc(2026, 6, 1, 11, 0), utc(2026, 6, 1, 16, 0)),
        (utc(2026, 6, 2, 7, 0), utc(2026, 6, 2, 8, 0)),
    ]
    assert all(start.tzinfo is UTC and end.tzinfo is UTC for start, end in got)
    assert paris.open_intervals(utc(2026, 6, 2), utc(2026, 6, 1)) == []


# -- daylight saving time ------------------------------------------------------------------------


def test_weekday_hours_follow_the_wall_clock_new_york() -> None:
    ny = hours("America/New_York", fri=["09:00-17:00"], mon=["09:00-17:00"])
    # 2026-03-08: EST (-5) -> EDT (-4)
    assert ny.open_intervals(utc(2026, 3, 6), utc(2026, 3, 10)) == [
        (utc(2026, 3, 6, 14, 0), utc(2026, 3, 6, 22, 0)),
        (utc(2026, 3, 9, 13, 0), utc(2026, 3, 9, 21, 0)),
    ]
    # 2026-11-01: EDT -> EST
    assert ny.open_intervals(utc(2026, 10, 30), utc(2026, 11, 3)) == [
        (utc(2026, 10, 30, 13, 0), utc(2026, 10, 30, 21, 0)),
        (utc(2026, 11, 2, 14, 0), utc(2026, 11, 2, 22, 0)),
    ]


@pytest.mark.parametrize(
    ("time_zone", "day", "interval", "expected"),
    [
        # Spring forward, New York 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z): 01:00-04:00 lasts 2 h.
        ("America/New_York", utc(2026, 3, 8), "01:00-04:00", (utc(2026, 3, 8, 6, 0), utc(2026, 3, 8, 8, 0))),
        # A start inside the skipped hour opens at the jump.
        ("America/New_York", utc(2026, 3, 8), "02:30-04:00", (utc(2026, 3, 8, 7, 0), utc(2026, 3, 8, 8, 0))),
        # An end inside the skipped hour closes at the jump.
        ("America/New_York", utc(2026, 3, 8), "00:00-02:30", (utc(2026, 3, 8, 5, 0), utc(2026, 3, 8, 7, 0))),
        # Fall back, New York 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z): 00:00-04:00 lasts 5 h.
        ("America/New_York", utc(2026, 11, 1), "00:00-04:00", (utc(2026, 11, 1, 4, 0), utc(2026, 11, 1, 9, 0))),
        # Repeated wall times: from the first 01:00 to the last 01:30.
        ("America/New_York", utc(2026, 11, 1), "01:00-01:30", (utc(2026, 11, 1, 5, 0), utc(2026, 11, 1, 6, 30))),
        # Paris 2026-03-29 02:00 CET -> 03:00 CEST (01:00Z).
        ("Europe/Paris", utc(2026, 3, 29), "01:00-04:00", (utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 2, 0))),
        ("Europe/Paris", utc(2026, 3, 29), "00:00-24:00", (utc(2026, 3, 28, 23, 0), utc(2026, 3, 29, 22, 0))),
        # Paris 2026-10-25 03:00 CEST -> 02:00 CET (01:00Z): the day lasts 25 h.
        ("Europe/Paris", utc(2026, 10, 25), "01:00-04:00", (utc(2026, 10, 24, 23, 0), utc(2026, 10, 25, 3, 0))),
        ("Europe/Paris", utc(2026, 10, 25), "00:00-24:00", (utc(2026, 10, 24, 22, 0), utc(2026, 10, 25, 23, 0))),
    ],
)
def test_dst_change_day(time_zone: str, day: datetime, interval: str, expected: tuple[datetime, datetime]) -> None:
    sunday = hours(time_zone, sun=[interval])
    window = (day - timedelta(days=1), day + timedelta(days=2))
    assert sunday.open_intervals(*window) == [expected]
    start, end = expected
    assert sunday.is_open(start)
    assert not sunday.is_open(start - timedelta(seconds=1))
    assert sunday.is_open(end - timedelta(seconds=1))
    assert not sunday.is_open(end)
    assert sunday.closes_at(start) == end
    assert sunday.next_open(day - timedelta(hours=12)) == start


def test_hours_wholly_inside_the_skipped_hour_never_open() -> None:
    paris_sunday = hours("Europe/Paris", sun=["02:00-03:00"])
    assert paris_sunday.open_intervals(utc(2026, 3, 28), utc(2026, 3, 31)) == []
    assert not paris_sunday.is_open(utc(2026, 3, 29, 1, 0))
    # ... and open as usual on the Sundays around it.
    assert paris_sunday.next_open(utc(2026, 3, 28)) == utc(2026, 4, 5, 0, 0)  # 02:00 CEST


def test_dst_exception_day_uses_its_own_hours() -> None:
    ny = BusinessHours.from_dict(
        {
            "time_zone": "America/New_York",
            "weekly": {"sun": ["09:00-17:00"]},
            "exceptions": {"2026-11-01": ["01:00-03:00"]},
        }
    )
    assert ny.open_intervals(utc(2026, 11, 1), utc(2026, 11, 2)) == [(utc(2026, 11, 1, 5, 0), utc(2026, 11, 1, 8, 0))]


# -- time slots ----------------------------------------------------------------------------------


def test_time_slots_are_aligned_open_bucket_starts(paris: BusinessHours) -> None:
    # Monday 2026-03-30 (CEST): open 07:00-10:00Z and 11:00-16:00Z.
    slots = time_slots(utc(2026, 3, 30, 6, 50), utc(2026, 3, 30, 11, 0), 30, paris)
    assert slots == [utc(2026, 3, 30, 7, 0) + timedelta(minutes=30 * i) for i in range(6)]


def test_time_slots_start_at_the_first_aligned_bucket(paris: BusinessHours) -> None:
    slots = time_slots(utc(2026, 6, 1, 7, 5), utc(2026, 6, 1, 8, 0), 15, paris)
    assert slots == [utc(2026, 6, 1, 7, 15), utc(2026, 6, 1, 7, 30), utc(2026, 6, 1, 7, 45)]


def test_time_slots_skip_lunch_weekend_and_holidays(paris: BusinessHours) -> None:
    slots = time_slots(utc(2026, 12, 24), utc(2026, 12, 29), 60, paris)
    assert slots == [
        utc(2026, 12, 24, 8, 0), utc(2026, 12, 24, 9, 0), utc(2026, 12, 24, 10, 0),  # Christmas Eve morning
        utc(2026, 12, 27, 9, 0),  # the Sunday exception
        utc(2026, 12, 28, 8, 0), utc(2026, 12, 28, 9, 0), utc(2026, 12, 28, 10, 0),
        utc(2026, 12, 28, 12, 0), utc(2026, 12, 28, 13, 0), utc(2026, 12, 28, 14, 0),
        utc(2026, 12, 28, 15, 0), utc(2026, 12, 28, 16, 0),
    ]


def test_time_slots_count_a_bucket_whose_start_is_open() -> None:
    odd = hours("UTC", mon=["09:10-09:50"])
    assert time_slots(utc(2026, 6, 1, 9), utc(2026, 6, 1, 10), 30, odd) == [utc(2026, 6, 1, 9, 30)]


def test_time_slots_without_hours_cover_the_whole_range() -> None:
    assert time_slots(utc(2026, 6, 1, 10, 7), utc(2026, 6, 1, 11, 0), 20, None) == [
        utc(2026, 6, 1, 10, 20), utc(2026, 6, 1, 10, 40),
    ]
    assert time_slots(utc(2026, 6, 1, 10), utc(2026, 6, 1, 10), 5, None) == []


def test_time_slots_end_is_exclusive() -> None:
    assert time_slots(utc(2026, 6, 1, 10), utc(2026, 6, 1, 10, 10), 5, None) == [
        utc(2026, 6, 1, 10, 0), utc(2026, 6, 1, 10, 5),
    ]


def test_time_slots_across_the_dst_change_keep_utc_alignment() -> None:
    always = hours("Europe/Paris", **{day: ["00:00-24:00"] for day in WEEKDAYS})
    slots = time_slots(utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 2, 0), 30, always)
    assert slots == [utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 30)]


def test_buckets_that_do_not_divide_an_hour_are_aligned_to_the_epoch() -> None:
    slots = time_slots(utc(2026, 6, 1, 10), utc(2026, 6, 1, 11), 7, None)
    assert all(bucket_start(slot, 7) == slot for slot in slots)
    assert all(b - a == timedelta(minutes=7) for a, b in pairwise(slots))
    assert slots[0] - utc(2026, 6, 1, 10) < timedelta(minutes=7)


def test_bucket_start() -> None:
    assert bucket_start(utc(2026, 6, 1, 10, 14, 59), 5) == utc(2026, 6, 1, 10, 10)
    assert bucket_start(utc(2026, 6, 1, 10, 15), 15) == utc(2026, 6, 1, 10, 15)
    assert bucket_start(datetime(2026, 6, 1, 12, 7, tzinfo=ZoneInfo("Europe/Paris")), 5) == utc(2026, 6, 1, 10, 5)


@pytest.mark.parametrize("bucket", [0, -5, 2.5, True])
def test_bad_bucket_sizes_are_refused(bucket: Any) -> None:
    with pytest.raises(ValueError, match="bucket_minutes: expected a positive whole number"):
        time_slots(utc(2026, 6, 1), utc(2026, 6, 2), bucket, None)
