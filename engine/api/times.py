"""One time format for the API: every timestamp it answers is ISO 8601 UTC with milliseconds
(``yyyy-MM-ddTHH:mm:ss.SSSZ``, the GMS format the callback records already use).

Storage keeps epoch seconds where it always did (cheap to compare, index and migrate); the
conversion happens here, at the API boundary, so one format holds for every resource whatever
its row looks like. The one exception is the status event ``timestamp`` (Unix seconds as a
string), which the events API shows as GMS sends it (seed 000).

Which clock a time is on is the resource's business (the README lists them): the engine clock
runs ``time_scale`` times faster than the wall clock when the simulator speeds time up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..callbacks.records import MAX_TIME, format_time

# Fields of each resource that hold a time, as their dictionaries name them.
RECORD_TIMES = ("_access_expires",)  # set by the flow as the platform's epoch; the others are ISO already
SUBSCRIPTION_TIMES = ("expires",)
SESSION_TIMES = ("created_at", "updated_at")
DELIVERY_TIMES = ("created_at", "next_at")
KEY_TIMES = ("created", "rotated", "last_used")
CREDENTIAL_TIMES = ("updated_at",)
FLOW_VERSION_TIMES = ("created_at",)


def iso(epoch: float) -> str:
    return format_time(epoch)


def with_iso(item: Mapping[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """A copy of ``item`` with these fields, when they hold epoch seconds, as ISO times. A field
    absent, null or already text stays as it is (a record's values may come from a flow)."""
    out = dict(item)
    for name in fields:
        value = out.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= MAX_TIME:
            out[name] = format_time(value)
    return out


def records(found: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [with_iso(r, RECORD_TIMES) for r in found]


def flow(described: Mapping[str, Any]) -> dict[str, Any]:
    """A flow as ``FlowRegistry.describe_flow`` gives it: its versions' times converted."""
    return {**described, "versions": [with_iso(v, FLOW_VERSION_TIMES) for v in described.get("versions", [])]}
