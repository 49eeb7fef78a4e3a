"""``_genesys``: the Orchestration Server objects an ecmascript flow may use, backed by this
engine's own data.

A sandboxed context cannot call back into Python, so everything is precomputed here and pushed
into the context when it is built: UTC offsets of the time zones flows name (for ``dateInZone``,
``timeInZone``, ``dayInZone``) over the coming week, the dated exceptions of the business-hours
services (``isSpecialDay``), the transaction lists (``getListItemValue``), the tenant and server
name, and the session's virtual interaction (``_genesys.ixn.interactions``). The engine hands the
sources in as plain callables (``OrsSources``): this module imports nothing above the interpreter.

``_genesys.queue`` is the one part that acts: its readers (``ewt``, ``waiting``, ``readyAgents``)
answer from the virtual queues' figures, pushed into a context before code that may call them
(``queue_json``, cached until the platform says a queue changed); its actions
(``createInteraction``, ``reserveTarget``, ``releaseTarget``, ``cancelInteraction``) only record a
request in the context, which the session's datamodel takes out after the evaluation and sends
as a ``<send type="platform">`` of the same request would be sent (see ``EcmaData``).
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
QUEUE_TTL = 1.0  # seconds queue figures are reused when no change was heard of (a safety net)


@dataclass
class OrsSources:
    """Where the facts come from. ``business_hours()``: name -> object with ``time_zone`` and
    ``exceptions`` (dates); ``lists()``: name -> raw text of a transaction list; ``interaction(session_id)``:
    the session's virtual interaction (JSON-ready) or None; ``now()``: engine time (epoch seconds);
    ``scale``: how much faster than the wall clock engine time runs; ``queues()``: virtual queue
    name -> its figures now (an object with ``ewt_seconds``, ``waiting``, ``agents_free``,
    ``agents_staffed``, ``agents_busy``: the platform's ``QueueStats``)."""

    tenant: str = "Environment"
    server_name: str = "callback-engine"
    business_hours: Callable[[], Mapping[str, Any]] = dict
    lists: Callable[[], Mapping[str, str]] = dict
    interaction: Callable[[str], Mapping[str, Any] | None] = lambda _sid: None
    now: Callable[[], float] = time.time
    scale: float = 1.0
    zones: tuple[str, ...] = ("UTC",)
    queues: Callable[[], Mapping[str, Any]] = dict


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
    _queues: str | None = None
    _queues_at: float = field(default=-1e18)

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

    def queue_json(self) -> str:
        """Every virtual queue's figures as JSON text: ``{name: {ewt, waiting, ready, staffed,
        busy}}``. The same text (the same object) until a queue changes, so a session pushes it
        into its context only when it is new."""
        if self._queues is not None and time.monotonic() - self._queues_at < QUEUE_TTL:
            return self._queues
        figures = {}
        for name, stats in self.sources.queues().items():
            figures[name] = {"ewt": getattr(stats, "ewt_seconds", -1), "waiting": getattr(stats, "waiting", 0),
                             "ready": getattr(stats, "agents_free", 0), "staffed": getattr(stats, "agents_staffed", 0),
                             "busy": getattr(stats, "agents_busy", 0)}
        text = json.dumps(figures, separators=(",", ":"), default=str)
        if text == self._queues:
            text = self._queues  # the same object: nothing new to push
        self._queues, self._queues_at = text, time.monotonic()
        return text

    def queue_changed(self, _queue: str = "") -> None:
        """A platform listener: a queue changed, its figures are read again on next need."""
        self._queues_at = -1e18


# Built in the context from the facts above; compiled only for flows that name _genesys. With
# ``withQueue`` it defines ``_genesys.queue``. It returns the control function only the session's
# datamodel holds: ``control("figures", json)`` replaces the queue figures, ``control("take")``
# gives the requests recorded since (JSON text of ``[[request, data, request_id], ...]``, or "").
ORS_JS = r"""(function (text, withQueue) {
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
var figures = {}, requests = [], made = 0;
var prefix = "q-" + Math.random().toString(36).slice(2, 10) + "-";  // request ids unique across contexts
function figure(vq, key) {
  if (typeof vq !== "string") throw new TypeError("a virtual queue is named by a string, not " + typeof vq);
  if (!Object.prototype.hasOwnProperty.call(figures, vq)) throw new RangeError("no virtual queue " + vq);
  return figures[vq][key];
}
function id(value, what) {
  if (typeof value !== "string" || value === "") throw new TypeError(what + " must be a non-empty string");
  return value;
}
function request(name, data) {
  var rid = prefix + (++made);
  requests.push([name, data, rid]);
  return rid;
}
var queue = {
  ewt: function (vq) { return figure(vq, "ewt"); },
  waiting: function (vq) { return figure(vq, "waiting"); },
  readyAgents: function (vq) { return figure(vq, "ready"); },
  createInteraction: function (vq, priority) {
    figure(vq, "ewt");
    var data = {queue: vq};
    if (priority !== undefined) {
      if (!Number.isInteger(priority)) throw new TypeError("a priority must be an integer");
      data.priority = priority;
    }
    return request("vixn.create", data);
  },
  reserveTarget: function (vixnId) { return request("target.find", {vixn_id: id(vixnId, "an interaction id")}); },
  releaseTarget: function (agentId) { return request("agent.release", {agent_id: id(agentId, "an agent id")}); },
  cancelInteraction: function (vixnId) { return request("vixn.cancel", {vixn_id: id(vixnId, "an interaction id")}); }
};
var genesys = {session: session, ixn: {interactions: facts.interactions}};
if (withQueue) genesys.queue = queue;
Object.defineProperty(globalThis, "_genesys", {
  value: freeze(genesys), writable: false, enumerable: false, configurable: false
});
return function (op, arg) {
  if (op === "figures") { figures = JSON.parse(arg); return ""; }
  if (requests.length === 0) return "";
  var out = JSON.stringify(requests);
  requests = [];
  return out;
};
})"""
