"""The callback record in GMS format, and the parsing of what clients send for it.

A record is a flat JSON object with underscore keys (``_id``, ``_service_name``,
``_customer_number``, ``_callback_state``, ``_callback_reason`` once COMPLETED,
``_desired_time``, ``_expiration_time``, ``_ors_session_id``...) plus the client's own keys.
Times travel as ISO 8601 UTC ``yyyy-MM-ddTHH:mm:ss.SSSZ``.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

from ..bounded_json import MAX_DEPTH, nesting_exceeds
from .options import OPTIONS, REQUEST_OPTIONS, request_option

PHONE = re.compile(r"^\+?[0-9]{3,20}$")
_PHONE_NOISE = re.compile(r"[\s().-]")  # spaces, brackets, dots and dashes people write numbers with
USER_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,99}")
UNDERSCORE_KEY = re.compile(r"_[A-Za-z0-9_.-]{1,99}")
# Keys the service owns; a client may not set them on create or update.
SYSTEM_KEYS = frozenset({
    "_id", "_service_name", "_service_id", "_callback_state", "_callback_reason", "_expiration_time",
    "_ors_session_id", "_created_time", "_updated_time", "_completed_time", "_access_code",
    "_access_number", "_access_expires", "_submitted_time", "_push_upcoming", "_device_token_dropped",
})
# What a flow's ``<cb:update>`` may not set: the service's own fields (the record's identity, its
# state, which only the lifecycle changes, its times and timers), except the call-in details the
# flow learns from the platform; the desired time changes by a reschedule only.
FLOW_REFUSED_KEYS = (SYSTEM_KEYS - {"_access_code", "_access_number", "_access_expires"}) | {
    "_desired_time", "_new_desired_time"}
# Request keys that are parameters of the call, not data to keep.
REQUEST_KEYS = frozenset({"_customer_number", "_desired_time", "_new_desired_time"})
PUSH_FIELDS = frozenset({"_device_os", "_device_notification_id"})
# Options a record must always carry: a request may change them, never remove them.
_KEPT_OPTIONS = frozenset({"_call_direction", "_urs_virtual_queue"})
# Record keys that are the service's, not the client's: the flow gets them as variables.
SERVICE_FIELDS = SYSTEM_KEYS | REQUEST_KEYS | PUSH_FIELDS | frozenset(REQUEST_OPTIONS)
# Times are kept between the epoch and well before year 9999, so adding a TTL or a day to one
# never leaves what ``datetime`` can represent; services refuse anything near either end anyway.
MAX_TIME = datetime(9000, 1, 1, tzinfo=UTC).timestamp()


class BadRequest(ValueError):
    """Bad client input; the message says what and where."""


def check_storable(value: Any, what: str) -> None:
    """A value a flow puts into a record must be plain JSON of modest depth: the record is
    written with every batch, so one that cannot be encoded would stop all of them."""
    if nesting_exceeds(value, MAX_DEPTH):
        raise ValueError(f"{what} nests deeper than {MAX_DEPTH} levels")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} cannot be stored as JSON: {e}") from None


_MINUTES: dict[int, str] = {}  # minutes formatted lately (``yyyy-MM-ddTHH:mm:``), by minutes since the epoch
_MINUTES_KEPT = 64
_DAYS: dict[int, str] = {}  # days formatted lately (``yyyy-MM-dd``), by days since the epoch
_DAYS_KEPT = 64
_SECOND_TEXT = tuple(f"{second:02d}." for second in range(60))  # ``ss.`` of each second of a minute
_MILLI_TEXT = tuple(f"{milli:03d}Z" for milli in range(1000))  # ``SSSZ`` of each millisecond
# Stamps made lately, by millisecond: a record's created, desired, submitted and updated times
# mostly fall in one millisecond, and callbacks created together share them too; one string
# object for all of them, not one each (~73 bytes a time field of every live record).
_STAMPS: dict[int, str] = {}
_STAMPS_KEPT = 256


def format_time(epoch: float) -> str:
    """``yyyy-MM-ddTHH:mm:ss.SSSZ``, milliseconds truncated (microseconds rounded first, as
    ``datetime.fromtimestamp`` does). Every record change writes a time, so the whole stamp of a
    millisecond is kept for a while (one string shared by every record holding it). The engine's
    clock may also run thousands of times faster than the wall's (a simulated contact center),
    where almost every time falls in a new second: so a new stamp is the text of its minute (a
    small cache, a minute lasts tens of milliseconds even then) and the texts of its second and
    millisecond (tables), never ``strftime`` or number formatting."""
    frac, whole = math.modf(epoch)
    micros = round(frac * 1e6)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    elif micros < 0:
        whole, micros = whole - 1, micros + 1_000_000
    second = int(whole)
    milli = micros // 1000
    key = second * 1000 + milli
    stamp = _STAMPS.get(key)
    if stamp is not None:
        return stamp
    minute, second = divmod(second, 60)
    text = _MINUTES.get(minute)
    if text is None:
        if len(_MINUTES) >= _MINUTES_KEPT:
            _MINUTES.clear()
        text = _MINUTES[minute] = _minute_text(minute)
    if len(_STAMPS) >= _STAMPS_KEPT:
        _STAMPS.clear()
    stamp = _STAMPS[key] = text + _SECOND_TEXT[second] + _MILLI_TEXT[milli]
    # What parse_time gives for it, as datetime computes it (whole microseconds over 10**6): a
    # record's new times are read back as it is armed and written, not parsed from the text.
    epoch = key * 1000 / 1_000_000
    if 0 <= epoch <= MAX_TIME:
        if len(_PARSED) >= _PARSED_KEPT:
            _PARSED.clear()
        _PARSED[stamp] = epoch
    return stamp


def _minute_text(minute: int) -> str:
    """``yyyy-MM-ddTHH:mm:`` of a minute since the epoch."""
    day, minute = divmod(minute, 1440)
    date = _DAYS.get(day)
    if date is None:
        if len(_DAYS) >= _DAYS_KEPT:
            _DAYS.clear()
        date = _DAYS[day] = datetime.fromtimestamp(day * 86400, UTC).strftime("%Y-%m-%d")
    hour, minute = divmod(minute, 60)
    return f"{date}T{hour:02d}:{minute:02d}:"


_PARSED: dict[str, float] = {}  # times parsed lately: a record's rows and timers read them again
_PARSED_KEPT = 1024


def parse_time(value: Any, field: str) -> float:
    """Epoch seconds from ISO 8601 (``Z`` or an offset; UTC when none is given). A record's
    desired and expiry times are parsed each time it is written and armed (several times a
    callback), so the times parsed lately are kept."""
    if type(value) is str:
        epoch = _PARSED.get(value)
        if epoch is not None:
            return epoch
    epoch = _parse_time(value, field)
    if len(_PARSED) >= _PARSED_KEPT:
        _PARSED.clear()
    _PARSED[value] = epoch
    return epoch


def _parse_time(value: Any, field: str) -> float:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{field} must be an ISO 8601 time such as 2026-05-01T14:30:00.000Z")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(
            f"{field} {value!r} is not an ISO 8601 time such as 2026-05-01T14:30:00.000Z") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    epoch = dt.timestamp()
    if not 0 <= epoch <= MAX_TIME:
        raise BadRequest(f"{field} {value!r} is out of range (1970 to 8999)")
    return epoch


def check_not_past(field: str, when: float, engine_now: float, scale: float) -> None:
    """Refuse a desired time more than a minute behind the engine clock. That clock runs
    ``scale`` times faster than the wall clock when the simulator speeds time up, so the message
    names both: "10 minutes from now" on a wall clock may already be past on the engine's."""
    if when < engine_now - 60:
        ahead = f"; time_scale {scale:g} runs it ahead of the wall clock" if scale != 1 else ""
        raise BadRequest(f"{field} {format_time(when)} is in the past: desired times are read on the engine clock "
                         f"(engine clock now {format_time(engine_now)}, wall clock now {format_time(time.time())}"
                         f"{ahead})")


def check_horizon(when: float, now: float, days: int, field: str) -> None:
    """Refuse a time further ahead than a service accepts (``_desired_time_horizon_days``)."""
    if when > now + days * 86400:
        raise BadRequest(f"{field} {format_time(when)} is more than {days} days ahead "
                         f"(the service's _desired_time_horizon_days)")


def check_phone(value: Any) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadRequest("_customer_number is required")
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise BadRequest("_customer_number must be a phone number")
    number = _PHONE_NOISE.sub("", str(value))
    if not PHONE.match(number):
        raise BadRequest(f"_customer_number {str(value)[:40]!r} is not a phone number "
                         f"(digits, optionally a leading +, 3 to 20 digits)")
    return number


def check_device(params: dict[str, Any]) -> None:
    """The push fields of a create request: ``_device_os`` must be fcm (the only push service) and
    come with the device's FCM registration token."""
    os_name, token = params.get("_device_os"), params.get("_device_notification_id")
    if os_name in (None, "") and token in (None, ""):
        return
    if os_name != "fcm":
        raise BadRequest(f"_device_os must be fcm (the only push service), not {os_name!r}")
    if not isinstance(token, str) or not (20 <= len(token) <= 4096) or any(c.isspace() for c in token):
        raise BadRequest("_device_notification_id must be the device's FCM registration token")


def request_keys(params: dict[str, Any], service: dict[str, Any], *, allow_empty: bool) -> dict[str, Any]:
    """What a create or update request sets on the record: the options a request may set (checked
    against ``service``), push fields and the client's own keys. Service-only options and the
    service's own keys are refused naming them; with ``allow_empty`` an empty value removes a key."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key in REQUEST_KEYS:
            continue
        if key in SYSTEM_KEYS:
            raise BadRequest(f"{key} is set by the service and cannot be given")
        if not isinstance(key, str) or not (USER_KEY.fullmatch(key) or UNDERSCORE_KEY.fullmatch(key)):
            raise BadRequest(f"key {str(key)[:40]!r} must start with a letter (or '_' for the documented "
                             f"options) and use letters, digits, '_', '.', '-' (at most 100)")
        # A JSON body's keys are new strings in each request, but the records of a service share
        # a few names: every record holds the one interned copy.
        key = sys.intern(key)
        if value == "" or value is None:
            if key in _KEPT_OPTIONS and allow_empty:
                raise BadRequest(f"{key} cannot be removed; give one of its values instead")
            if allow_empty:
                out[key] = ""
            continue
        if isinstance(value, dict | list):
            raise BadRequest(f"key {key!r}: values are strings, numbers or booleans")
        if key in OPTIONS:
            try:
                value = request_option(key, value, service)
            except ValueError as e:
                raise BadRequest(str(e)) from None
        out[key] = value
    return out


def client_data(record: dict[str, Any]) -> dict[str, Any]:
    """The client's own keys of a record (what a flow reads as ``_data``)."""
    return {k: v for k, v in record.items() if k not in SERVICE_FIELDS and k not in OPTIONS}


def service_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The service's keys of a record; a service-only option an older record still holds is left
    out, so the service's own value is what the flow sees."""
    return {k: v for k, v in record.items() if k in SERVICE_FIELDS}


def matches(record: dict[str, Any], filters: dict[str, str]) -> bool:
    """GMS query semantics: every key equal; a value starting with ``!`` negates."""
    for key, wanted in filters.items():
        have = record.get(key)
        have_text = "" if have is None else str(have)
        if wanted.startswith("!"):
            if have_text == wanted[1:]:
                return False
        elif have_text != wanted:
            return False
    return True
