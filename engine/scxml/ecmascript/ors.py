"""``_genesys``: the Orchestration Server objects an ecmascript flow may use, backed by this
engine's own data.

A sandboxed context cannot call back into Python, so everything is precomputed here and pushed
into the context when it is built: UTC offsets of the time zones flows name (for ``dateInZone``,
``timeInZone``, ``dayInZone``) over the coming week, the dated exceptions of the business-hours
services (``isSpecialDay``), the transaction lists (``getListItemValue``), the tenant and server
name, and the session's virtual interaction (``_genesys.ixn.interactions``). The engine hands the
sources in as plain callables (``OrsSources``): this module imports nothing above the interpreter.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

log = logging.getLogger("engine.scxml")

# How far ahead the pushed offsets reach (a context lives seconds; a busy one may live longer).
HORIZON = timedelta(days=7)
STEP = timedelta(minutes=15)
SHARED_TTL = 60.0  # seconds the zones, lists and business hours are reused before being recomputed


@dataclass
class OrsSources:
    """Where the facts come from. ``business_hours()``: name -> object with ``time_zone`` and
    ``exceptions`` (dates); ``lists()``: name -> raw text of a transaction list; ``interaction(session_id)``:
    the session's virtual interaction (JSON-ready) or None; ``now()``: engine time (epoch seconds);
    ``scale``: how much faster than the wall clock engine time runs."""

    tenant: str = "Environment"
    server_name: str = "callback-engine"
    business_hours: Callable[[], Mapping[str, Any]] = dict
    lists: Callable[[], Mapping[str, str]] = dict
    interaction: Callable[[str], Mapping[str, Any] | None] = lambda _sid: None
    now: Callable[[], float] = time.time
    scale: float = 1.0
    zones: tuple[str, ...] = ("UTC",)


def list_items(text: str) -> dict[str, dict[str, str]]:
    """A transaction list as ORS sees a list object: each ``[section]`` an item, its
    ``key = value`` lines the item's keys (continuation lines joined)."""
    items: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    last: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = items.setdefault(line[1:-1].strip(), {})
            last = None
        elif current is not None and "=" in line and not (last and current[last].endswith(",")):
            key, _, value = line.partition("=")
            last = key.strip()
            current[last] = value.strip()
        elif current is not None and last is not None:
            current[last] += line
    return items


def zone_offsets(name: str, start: datetime) -> list[list[int]] | None:
    """``[[utc_ms_from, offset_minutes], ...]`` from ``start`` over ``HORIZON``; None if unknown."""
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    out: list[list[int]] = []
    t = start
    while t <= start + HORIZON:
        offset = t.astimezone(zone).utcoffset()
        minutes = int(offset.total_seconds() // 60) if offset is not None else 0
        if not out or out[-1][1] != minutes:
            out.append([0 if not out else int(t.timestamp() * 1000), minutes])
        t += STEP
    return out


@dataclass
class OrsFacilities:
    """The ``facilities`` of the ecmascript kind: ``facts(session_id, zones)`` as JSON text."""

    sources: OrsSources
    _shared: str = ""
    _shared_key: tuple = ()
    _shared_at: float = field(default=-1e18)

    def _shared_json(self, zones: Iterable[str]) -> str:
        wanted = tuple(sorted(set(zones) | set(self.sources.zones)))
        if self._shared and self._shared_key == wanted and time.monotonic() - self._shared_at < SHARED_TTL:
            return self._shared
        src = self.sources
        special: dict[str, Any] = {}
        names = set(wanted)
        for name, hours in src.business_hours().items():
            zone = getattr(hours, "time_zone", "UTC")
            names.add(zone)
            special[name] = {"zone": zone, "dates": sorted(d.isoformat() for d in getattr(hours, "exceptions", {}))}
        start = datetime.fromtimestamp(src.now(), UTC) - timedelta(days=1)
        offsets = {}
        for name in sorted(names):
            found = zone_offsets(name, start)
            if found is not None:
                offsets[name] = found
        lists = {name: list_items(text) for name, text in src.lists().items()}
        shared = {"tenant": src.tenant, "server": src.server_name, "zones": offsets, "special": special,
                  "lists": lists, "clock": [src.now() * 1000, time.time() * 1000, src.scale]}
        self._shared = json.dumps(shared, separators=(",", ":"), default=str)
        self._shared_key, self._shared_at = wanted, time.monotonic()
        return self._shared

    def __call__(self, session_id: str | None, zones: Iterable[str] = ()) -> str:
        shared = self._shared_json(zones)
        interaction = self.sources.interaction(session_id) if session_id else None
        interactions = json.dumps([interaction] if interaction else [], separators=(",", ":"), default=str)
        return shared[:-1] + ',"interactions":' + interactions + "}"


# Built in the context from the facts above; compiled only for flows that name _genesys.
ORS_JS = r"""(function (text) {
"use strict";
var facts = JSON.parse(text);
function now() { var c = facts.clock; return c[0] + Math.max(0, Date.now() - c[1]) * c[2]; }
function offset(tz, ms) {
  var z = facts.zones[tz];
  if (z === undefined) {
    throw new RangeError("time zone " + tz + " is unknown here: name it literally in the flow, " +
                         "or in a business-hours service");
  }
  var minutes = z[0][1];
  for (var i = 0; i < z.length && z[i][0] <= ms; i++) minutes = z[i][1];
  return minutes;
}
function local(tz) { var t = now(); return new Date(t + offset(String(tz), t) * 60000); }
function pad(n) { return (n < 10 ? "0" : "") + n; }
function dateOf(d) { return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()); }
var DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
function freeze(o) {
  if (o !== null && typeof o === "object" && !Object.isFrozen(o)) {
    Object.freeze(o);
    Object.keys(o).forEach(function (k) { freeze(o[k]); });
  }
  return o;
}
var session = {
  tenant: facts.tenant,
  server: {name: facts.server},
  dateInZone: function (tz) { return dateOf(local(tz)); },
  timeInZone: function (tz) { var d = local(tz); return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()); },
  dayInZone: function (tz) { return DAYS[local(tz).getUTCDay()]; },
  isSpecialDay: function (name, tz) {
    var hours = facts.special[name];
    if (hours === undefined) throw new RangeError("no business-hours service " + name);
    return hours.dates.indexOf(dateOf(local(tz || hours.zone))) >= 0;
  },
  getListItemValue: function (list, item, key) {
    var found = facts.lists[list], entry = found === undefined ? undefined : found[item];
    return entry !== undefined && Object.prototype.hasOwnProperty.call(entry, key) ? entry[key] : undefined;
  }
};
Object.defineProperty(globalThis, "_genesys", {
  value: freeze({session: session, ixn: {interactions: facts.interactions}}),
  writable: false, enumerable: false, configurable: false
});
})"""
