"""The callback record in GMS format, and the parsing of what clients send for it.

A record is a flat JSON object with underscore keys (``_id``, ``_service_name``,
``_customer_number``, ``_callback_state``, ``_callback_reason`` once COMPLETED,
``_desired_time``, ``_expiration_time``, ``_ors_session_id``...) plus the client's own keys.
Times travel as ISO 8601 UTC ``yyyy-MM-ddTHH:mm:ss.SSSZ``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

PHONE = re.compile(r"^\+?[0-9]{3,20}$")
USER_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$")
# Keys the service owns; a client may not set them on create or update.
SYSTEM_KEYS = frozenset({
    "_id", "_service_name", "_service_id", "_callback_state", "_callback_reason", "_expiration_time",
    "_ors_session_id", "_created_time", "_updated_time", "_completed_time", "_access_code",
    "_access_number", "_access_expires", "_submitted_time", "_push_upcoming", "_device_token_dropped",
})
# Request keys that are parameters of the call, not data to keep.
REQUEST_KEYS = frozenset({"_customer_number", "_desired_time", "_new_desired_time"})


class BadRequest(ValueError):
    """Bad client input; the message says what and where."""


def format_time(epoch: float) -> str:
    dt = datetime.fromtimestamp(epoch, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_time(value: Any, field: str) -> float:
    """Epoch seconds from ISO 8601 (``Z`` or an offset; UTC when none is given)."""
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
    return dt.timestamp()


def check_phone(value: Any) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadRequest("_customer_number is required")
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise BadRequest("_customer_number must be a phone number")
    number = re.sub(r"[\s().-]", "", str(value))
    if not PHONE.match(number):
        raise BadRequest(f"_customer_number {str(value)[:40]!r} is not a phone number "
                         f"(digits, optionally a leading +, 3 to 20 digits)")
    return number


def user_keys(params: dict[str, Any], *, allow_empty: bool) -> dict[str, Any]:
    """The client's own keys of a request; underscore keys are ours except known request ones."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key in REQUEST_KEYS:
            continue
        if key in SYSTEM_KEYS:
            raise BadRequest(f"{key} is set by the service and cannot be given")
        if not key.startswith("_") and not USER_KEY.match(key):
            raise BadRequest(f"key {key[:40]!r} must start with a letter and use letters, digits, '_', '.', '-'")
        if value == "" and not allow_empty:
            continue
        if isinstance(value, dict | list):
            raise BadRequest(f"key {key!r}: values are strings, numbers or booleans")
        out[key] = value
    return out


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
