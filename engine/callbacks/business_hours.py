"""Business hours (Genesys office-hours service): when callbacks may be scheduled and run.

A service names a business-hours definition (``_business_hours_service``); the callback service
uses it to reject or move desired times outside hours and the availability API uses
:func:`time_slots` to offer only open buckets.

A definition is regular weekly hours plus dated exceptions, in an IANA time zone::

    {"time_zone": "Europe/Paris",
     "weekly": {"mon": ["09:00-12:00", "13:00-18:00"], ..., "sun": []},
     "exceptions": {"2026-12-25": [], "2026-12-24": ["09:00-12:00"]}}

Hours are wall-clock hours in the zone, so a DST change moves them in UTC. On a DST change day
an interval runs from the first instant the local clock shows its start to the last instant it
shows its end; a wall time skipped by the clock (spring forward) stands for the instant of the
jump. ``"24:00"`` may end an interval (open until midnight); an interval never crosses
midnight: write ``"22:00-24:00"`` and ``"00:00-02:00"`` on the next day, which join into one
open period.

All results are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "SEARCH_DAYS",
    "WEEKDAYS",
    "BusinessHours",
    "bucket_start",
    "time_slots",
]

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Weekday keys of ``weekly``, in ``date.weekday()`` order."""

_WEEKDAY_ALIASES: dict[str, str] = {
    **{day: day for day in WEEKDAYS},
    **{
        full: short
        for full, short in zip(
            ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
            WEEKDAYS,
            strict=True,
        )
    },
}

SEARCH_DAYS = 366
"""How far :meth:`BusinessHours.next_open` and :meth:`BusinessHours.closes_at` look ahead, so
a definition that is never open (or never closes) cannot loop forever."""

_INTERVAL = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DAY_MINUTES = 24 * 60
_OPTIONAL_TEXT_FIELDS = ("name", "description")
_CACHE_LIMIT = 4096

Span = tuple[int, int]
"""An open interval of one day in minutes since local midnight: [start, end), end <= 1440."""

Interval = tuple[datetime, datetime]
"""An open interval in UTC: [start, end)."""


def _parse_clock(hours: str, minutes: str, *, is_end: bool) -> int | None:
    """Minutes since midnight, or None when out of range (24:00 is only valid as an end)."""
    h, m = int(hours), int(minutes)
    if m > 59:
        return None
    if h == 24 and m == 0 and is_end:
        return _DAY_MINUTES
    if h > 23:
        return None
    return h * 60 + m


def _format_clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _format_span(span: Span) -> str:
    return f"{_format_clock(span[0])}-{_format_clock(span[1])}"


def _parse_spans(field: str, value: Any) -> tuple[Span, ...]:
    """Validate one day's list of "HH:MM-HH:MM" strings; sorted, non-overlapping spans."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValueError(f"{field}: expected a list of 'HH:MM-HH:MM' intervals, got {value!r}")
    spans: list[tuple[Span, str]] = []
    for index, text in enumerate(value):
        where = f"{field}[{index}]"
        if not isinstance(text, str):
            raise ValueError(f"{where}: expected an 'HH:MM-HH:MM' string, got {text!r}")
        match = _INTERVAL.match(text)
        if match is None:
            raise ValueError(f"{where}: {text!r} is not an 'HH:MM-HH:MM' interval")
        start = _parse_clock(match[1], match[2], is_end=False)
        if start is None:
            raise ValueError(f"{where}: {text!r} has an invalid start time {match[1]}:{match[2]}")
        end = _parse_clock(match[3], match[4], is_end=True)
        if end is None:
            raise ValueError(f"{where}: {text!r} has an invalid end time {match[3]}:{match[4]}")
        if end <= start:
            raise ValueError(
                f"{where}: {text!r} ends at or before it starts "
                "(an interval cannot cross midnight; split it over two days)"
            )
        spans.append(((start, end), text))
    spans.sort()
    for (previous, previous_text), (current, current_text) in pairwise(spans):
        if current[0] < previous[1]:
            raise ValueError(f"{field}: intervals {previous_text!r} and {current_text!r} overlap")
    return tuple(span for span, _ in spans)


def _parse_zone(value: Any) -> ZoneInfo:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"time_zone: expected an IANA time zone name, got {value!r}")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as err:
        raise ValueError(f"time_zone: unknown IANA time zone {value!r}") from err


def _parse_date(field: str, value: Any) -> date:
    if not isinstance(value, str) or not _DATE.match(value):
        raise ValueError(f"{field}: {value!r} is not a YYYY-MM-DD date")
    try:
        return date.fromisoformat(value)
    except ValueError as err:
        raise ValueError(f"{field}: {value!r} is not a valid date") from err


def _require_aware(name: str, value: datetime) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name}: expected a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}: {value.isoformat()} has no time zone; pass an aware datetime")
    return value.astimezone(UTC)


def _local_to_utc(day: date, minutes: int, zone: tzinfo, *, is_end: bool) -> datetime:
    """The UTC instant a wall-clock time of ``day`` stands for.

    Ambiguous times (fall back) resolve to the first occurrence for a start and the second for
    an end, so the interval covers every instant the clock shows a time inside it. A skipped
    time (spring forward) resolves to the instant of the jump.
    """
    if minutes >= _DAY_MINUTES:
        day, minutes = day + timedelta(days=1), minutes - _DAY_MINUTES
    wall = datetime.combine(day, time(minutes // 60, minutes % 60))
    candidate = wall.replace(tzinfo=zone, fold=1 if is_end else 0).astimezone(UTC)
    if candidate.astimezone(zone).replace(tzinfo=None) == wall:
        return candidate
    # Skipped by a forward jump: find the jump between the two readings of the wall time.
    early = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    late = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    low, high = min(early, late), max(early, late)
    after_offset = high.astimezone(zone).utcoffset()
    # Whole seconds: zone offsets and transitions are whole seconds.
    low_s, high_s = int(low.timestamp()), int(high.timestamp())
    while high_s - low_s > 1:
        middle_s = (low_s + high_s) // 2
        if datetime.fromtimestamp(middle_s, UTC).astimezone(zone).utcoffset() == after_offset:
            high_s = middle_s
        else:
            low_s = middle_s
    return datetime.fromtimestamp(high_s, UTC)


class BusinessHours:
    """Weekly open hours plus dated exceptions in one IANA time zone.

    Build with :meth:`from_dict` (validates and names the bad field); instances are treated as
    immutable and cache the UTC intervals of the days they were asked about.
    """

    __slots__ = ("_cache", "description", "exceptions", "name", "time_zone", "weekly", "zone")

    def __init__(
        self,
        time_zone: str,
        weekly: Mapping[str, tuple[Span, ...]],
        exceptions: Mapping[date, tuple[Span, ...]] | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> None:
        """Prefer :meth:`from_dict`; this takes already-parsed spans (minutes since midnight)."""
        self.zone: ZoneInfo = _parse_zone(time_zone)
        self.time_zone: str = time_zone
        self.weekly: dict[str, tuple[Span, ...]] = {day: tuple(weekly.get(day, ())) for day in WEEKDAYS}
        self.exceptions: dict[date, tuple[Span, ...]] = dict(sorted((exceptions or {}).items()))
        self.name = name
        self.description = description
        self._cache: dict[date, tuple[Interval, ...]] = {}

    # -- (de)serialisation ---------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BusinessHours:
        """Parse and validate a definition as found in ``config/``; ValueError names the field."""
        if not isinstance(data, Mapping):
            raise ValueError(f"business hours: expected an object, got {data!r}")
        known = {"time_zone", "weekly", "exceptions", *_OPTIONAL_TEXT_FIELDS}
        unknown = sorted(str(key) for key in data if key not in known)
        if unknown:
            raise ValueError(f"business hours: unknown field(s) {', '.join(map(repr, unknown))}")
        if "time_zone" not in data:
            raise ValueError("time_zone: missing (an IANA time zone name such as 'Europe/Paris')")
        time_zone = data["time_zone"]
        _parse_zone(time_zone)

        weekly_in = data.get("weekly", {})
        if not isinstance(weekly_in, Mapping):
            raise ValueError(f"weekly: expected an object of weekday -> intervals, got {weekly_in!r}")
        weekly: dict[str, tuple[Span, ...]] = {}
        for key, value in weekly_in.items():
            day = _WEEKDAY_ALIASES.get(str(key).strip().lower())
            if day is None:
                raise ValueError(f"weekly: unknown weekday {key!r} (expected one of {', '.join(WEEKDAYS)})")
            if day in weekly:
                raise ValueError(f"weekly: weekday {day!r} given more than once (as {key!r})")
            weekly[day] = _parse_spans(f"weekly.{key}", value)

        exceptions_in = data.get("exceptions", {})
        if not isinstance(exceptions_in, Mapping):
            raise ValueError(f"exceptions: expected an object of date -> intervals, got {exceptions_in!r}")
        exceptions: dict[date, tuple[Span, ...]] = {}
        for key, value in exceptions_in.items():
            day_date = _parse_date(f"exceptions.{key}", key)
            exceptions[day_date] = _parse_spans(f"exceptions.{key}", value)

        texts: dict[str, str | None] = {}
        for field in _OPTIONAL_TEXT_FIELDS:
            value = data.get(field)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{field}: expected a string, got {value!r}")
            texts[field] = value
        return cls(time_zone, weekly, exceptions, name=texts["name"], description=texts["description"])

    def to_dict(self) -> dict[str, Any]:
        """The canonical form (every weekday listed, exceptions by date); from_dict round-trips it."""
        result: dict[str, Any] = {}
        if self.name is not None:
            result["name"] = self.name
        if self.description is not None:
            result["description"] = self.description
        result["time_zone"] = self.time_zone
        result["weekly"] = {day: [_format_span(span) for span in self.weekly[day]] for day in WEEKDAYS}
        result["exceptions"] = {
            day.isoformat(): [_format_span(span) for span in spans] for day, spans in self.exceptions.items()
        }
        return result

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BusinessHours):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.time_zone, tuple(self.weekly.items()), tuple(self.exceptions.items())))

    def __repr__(self) -> str:
        return f"BusinessHours(time_zone={self.time_zone!r}, name={self.name!r})"

    # -- per-day intervals ---------------------------------------------------------------------

    def spans_for(self, day: date) -> tuple[Span, ...]:
        """The wall-clock spans of a local date: its exception if it has one, else its weekday's."""
        spans = self.exceptions.get(day)
        if spans is None:
            spans = self.weekly[WEEKDAYS[day.weekday()]]
        return spans

    def _day(self, day: date) -> tuple[Interval, ...]:
        """UTC intervals of one local date (cached: the availability API asks for many slots)."""
        cached = self._cache.get(day)
        if cached is not None:
            return cached
        intervals: list[Interval] = []
        for start, end in self.spans_for(day):
            utc_start = _local_to_utc(day, start, self.zone, is_end=False)
            utc_end = _local_to_utc(day, end, self.zone, is_end=True)
            if utc_end > utc_start:  # a span wholly inside a skipped hour is never open
                intervals.append((utc_start, utc_end))
        result = tuple(intervals)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[day] = result
        return result

    def _local_date(self, t: datetime) -> date:
        return t.astimezone(self.zone).date()

    def _iter_merged(self, first_day: date, last_day: date) -> Iterator[Interval]:
        """Intervals of local dates first_day..last_day in order, touching ones joined."""
        pending: Interval | None = None
        day = first_day
        while day <= last_day:
            for start, end in self._day(day):
                if pending is not None and start <= pending[1]:
                    pending = (pending[0], max(pending[1], end))
                    continue
                if pending is not None:
                    yield pending
                pending = (start, end)
            day += timedelta(days=1)
        if pending is not None:
            yield pending

    # -- queries ---------------------------------------------------------------------------------

    def is_open(self, t: datetime) -> bool:
        """Whether the service is open at instant ``t`` (aware, any zone)."""
        t = _require_aware("t", t)
        day = self._local_date(t)
        for offset in (-1, 0, 1):
            for start, end in self._day(day + timedelta(days=offset)):
                if start <= t < end:
                    return True
        return False

    def next_open(self, t: datetime) -> datetime | None:
        """``t`` (in UTC) if open, else the next opening within SEARCH_DAYS; None if none."""
        t = _require_aware("t", t)
        if self.is_open(t):
            return t
        day = self._local_date(t)
        for offset in range(-1, SEARCH_DAYS + 1):
            for start, _end in self._day(day + timedelta(days=offset)):
                if start > t:
                    return start if start - t <= timedelta(days=SEARCH_DAYS) else None
        return None

    def closes_at(self, t: datetime) -> datetime | None:
        """When the open period containing ``t`` ends (periods joined across midnight).

        None when closed at ``t``, or when open without a break for SEARCH_DAYS.
        """
        t = _require_aware("t", t)
        if not self.is_open(t):
            return None
        day = self._local_date(t)
        for start, end in self._iter_merged(day - timedelta(days=1), day + timedelta(days=SEARCH_DAYS)):
            if start <= t < end:
                horizon_end = _local_to_utc(day + timedelta(days=SEARCH_DAYS), 0, self.zone, is_end=False)
                return end if end < horizon_end else None
        return None  # pragma: no cover - is_open said otherwise

    def open_intervals(self, start: datetime, end: datetime) -> list[Interval]:
        """Open periods overlapping [start, end), clipped to it, touching periods joined."""
        start = _require_aware("start", start)
        end = _require_aware("end", end)
        if end <= start:
            return []
        result: list[Interval] = []
        first = self._local_date(start) - timedelta(days=1)
        last = self._local_date(end) + timedelta(days=1)
        for open_start, open_end in self._iter_merged(first, last):
            clipped_start, clipped_end = max(open_start, start), min(open_end, end)
            if clipped_start < clipped_end:
                result.append((clipped_start, clipped_end))
        return result


def bucket_start(t: datetime, bucket_minutes: int) -> datetime:
    """The start of the capacity bucket holding ``t``: buckets are multiples of bucket_minutes
    from the Unix epoch in UTC (for divisors of 60, from each hour), so booking and the
    availability API agree on bucket boundaries."""
    t = _require_aware("t", t)
    width = _bucket_width(bucket_minutes)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((t - epoch) // width) * width


def _bucket_width(bucket_minutes: int) -> timedelta:
    if isinstance(bucket_minutes, bool) or not isinstance(bucket_minutes, int) or bucket_minutes < 1:
        raise ValueError(f"bucket_minutes: expected a positive whole number of minutes, got {bucket_minutes!r}")
    return timedelta(minutes=bucket_minutes)


def time_slots(
    start: datetime, end: datetime, bucket_minutes: int, hours: BusinessHours | None
) -> list[datetime]:
    """Starts of the buckets (see :func:`bucket_start`) in [start, end) whose start is open.

    With ``hours`` None every bucket counts. Used by the availability API, which then shows
    each slot's free capacity.
    """
    start = _require_aware("start", start)
    end = _require_aware("end", end)
    width = _bucket_width(bucket_minutes)
    if end <= start:
        return []
    windows = [(start, end)] if hours is None else hours.open_intervals(start, end)
    slots: list[datetime] = []
    for window_start, window_end in windows:
        slot = bucket_start(window_start, bucket_minutes)
        if slot < window_start:
            slot += width
        while slot < window_end:
            if not slots or slot > slots[-1]:
                slots.append(slot)
            slot += width
    return slots
