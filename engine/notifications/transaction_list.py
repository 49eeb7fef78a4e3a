"""Transaction lists: which status events a service reports, with which attributes (seed 000).

The format is the seed's ``GMS_Events.cfg``: a ``[properties]`` section with the
``_status_notification_*`` and ``_enable_status_notification`` options, then one section per
event with ``notify_params`` (a comma-separated list that may continue on the following lines)
and an optional ``notify_custom`` JSON object merged into each message. A malformed list is
refused with its section and line (an unclosed ``[header`` with its line); event names that are
not status events are reported.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .. import bounded_json
from ..callbacks.event_catalog import ALL_EVENTS
from ..callbacks.options import OPTIONS, coerce

PROPERTY_KEYS = frozenset({
    "_enable_status_notification", "_status_notification_type", "_status_notification_target",
    "_status_notification_provider", "_status_notification_debug", "_status_notification_language",
})
_SECTION = re.compile(r"^\[\s*([^\]]+?)\s*\]\s*$")
_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]*)\s*[=:]\s*(.*)$")
_PARAM = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


class TransactionListError(ValueError):
    def __init__(self, message: str, section: str | None, line: int):
        where = f"line {line}" + (f", section [{section}]" if section else "")
        super().__init__(f"{where}: {message}")
        self.section = section
        self.line = line


@dataclass(frozen=True)
class EventSpec:
    params: tuple[str, ...]
    custom: dict[str, Any] = field(default_factory=dict)


@dataclass
class TransactionList:
    name: str
    properties: dict[str, str]
    events: dict[str, EventSpec]
    warnings: list[str]
    text: str = ""


def parse(text: str, name: str = "list") -> TransactionList:
    """Parse a list; raises ``TransactionListError`` naming the section and line."""
    sections: dict[str, dict[str, tuple[str, int]]] = {}
    order: list[str] = []
    current: str | None = None
    last_key: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        m = _SECTION.match(line)
        if not m and line.startswith("["):  # never read as a value of the section above
            problem = "is not closed with ']'" if "]" not in line else "must be '[name]' alone on its line"
            raise TransactionListError(f"section header {line[:40]!r} {problem}", None, number)
        if m:
            current = m.group(1)
            if current in sections:
                raise TransactionListError(f"section [{current}] appears twice", current, number)
            sections[current] = {}
            order.append(current)
            last_key = None
            continue
        if current is None:
            raise TransactionListError(f"{line[:40]!r} is outside any [section]", None, number)
        m = _KEY.match(line)
        if m and not (last_key == "notify_params" and sections[current][last_key][0].rstrip().endswith(",")):
            key, value = m.group(1), m.group(2).strip()
            if key in sections[current]:
                raise TransactionListError(f"{key} is set twice", current, number)
            sections[current][key] = (value, number)
            last_key = key
            continue
        if last_key is None:
            raise TransactionListError(f"{line[:40]!r} is not 'name = value'", current, number)
        # A value continued on the following line (the seed's notify_params does this).
        value, first = sections[current][last_key]
        joiner = "" if value.endswith(",") or line.startswith(",") else " "
        sections[current][last_key] = (value + joiner + line, first)

    properties: dict[str, str] = {}
    events: dict[str, EventSpec] = {}
    warnings: list[str] = []
    for section in order:
        entries = sections[section]
        if section == "properties":
            for key, (value, number) in entries.items():
                if key not in PROPERTY_KEYS:
                    warnings.append(f"line {number}, section [properties]: unknown property {key}")
                    properties[key] = value
                    continue
                properties[key] = _property(key, value, number)
            continue
        first_line = min((n for _, n in entries.values()), default=0)
        if section not in ALL_EVENTS:
            warnings.append(f"section [{section}] (line {first_line}): {section} is not a status event; ignored")
            continue
        events[section] = _event(section, entries)
    return TransactionList(name, properties, events, warnings, text)


def _property(key: str, value: str, number: int) -> str:
    """A switch of the notification settings (one of fixed choices, or yes/no) checked as the
    same option of a service is, so a list cannot turn notifications to a value nothing
    understands (``true`` read as off, a type nothing delivers); a yes/no kept as ``true`` or
    ``false``. Free values (the target, the language, the provider) are left as written: the
    seed's own list holds placeholders there, and a target meets the URL policy where it is used."""
    option = OPTIONS.get(key)
    if option is None or not (option.choices or option.type is bool) or value == "":
        return value  # blank: not set here (the service's value, or the default, applies)
    try:
        checked = coerce(key, value)
    except ValueError as e:
        raise TransactionListError(str(e), "properties", number) from None
    if isinstance(checked, bool):
        return "true" if checked else "false"
    return value


def _event(section: str, entries: dict[str, tuple[str, int]]) -> EventSpec:
    for key, (_, number) in entries.items():
        if key not in ("notify_params", "notify_custom"):
            raise TransactionListError(f"unknown option {key} (notify_params or notify_custom)", section, number)
    params: list[str] = []
    if "notify_params" in entries:
        value, number = entries["notify_params"]
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            if not _PARAM.match(item):
                raise TransactionListError(f"notify_params: {item!r} is not a parameter name", section, number)
            if item not in params:
                params.append(item)
    custom: dict[str, Any] = {}
    if "notify_custom" in entries:
        value, number = entries["notify_custom"]
        try:
            custom = bounded_json.loads(value)
        except bounded_json.TooDeep as e:
            raise TransactionListError(f"notify_custom: {e}", section, number) from None
        except json.JSONDecodeError as e:
            raise TransactionListError(f"notify_custom is not valid JSON: {e.msg}", section, number) from None
        if not isinstance(custom, dict):
            raise TransactionListError("notify_custom must be a JSON object", section, number)
    return EventSpec(tuple(params), custom)
