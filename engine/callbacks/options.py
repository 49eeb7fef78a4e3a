"""Callback service options: the Genesys names (SPEC 4, 6, 7), their types and defaults.

Options a service does not know are kept as given and handed to the flow too. Values arrive as
JSON/TOML types from configuration and as strings from REST requests; ``coerce`` turns both into
the declared type or explains what is wrong.

Who may set what. The service (its operator) sets every option. A create or update request may
set only the few in ``REQUEST_OPTIONS``: what a customer-facing app legitimately chooses for its
own callback (how it is told about progress, who calls whom, which of the queues the operator
allows). Dialling, capacity, TTL and flow options are ``SERVICE_ONLY``: a request naming one is
refused (400 naming it) rather than silently ignored, so a client learns at once that its value
is not used.
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass
from typing import Any

from ..scxml.datamodel import SYSTEM_NAMES

USERTERMINATED, USERORIGINATED = "USERTERMINATED", "USERORIGINATED"
DAY = 86400
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?")
_TOKEN = re.compile(r"[A-Za-z0-9_.:-]{0,100}")
_NO_SPACE = re.compile(r"[^\s\x00-\x1f\x7f-\x9f]{0,2048}")  # a URL or a session id: no spaces or controls
_QUEUE_LIST = re.compile(r"([A-Za-z0-9_.-]+( *, *[A-Za-z0-9_.-]+)*)?")


@dataclass(frozen=True)
class Option:
    name: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None  # keeps times and counts far from overflowing date arithmetic
    pattern: re.Pattern[str] | None = None  # for strings: what the whole value must look like


OPTIONS: dict[str, Option] = {o.name: o for o in (
    Option("_service", str, "callback", "flow (SCXML document name) this service runs"),
    Option("_call_direction", str, USERTERMINATED, "who calls: the enterprise or the customer",
           (USERTERMINATED, USERORIGINATED)),
    Option("_urs_virtual_queue", str, "Callback_VQ", "virtual queue the callback waits in",
           pattern=re.compile(r"[A-Za-z0-9_.-]{1,100}")),
    Option("_allowed_virtual_queues", str, "", "other virtual queues a create request may choose with "
           "_urs_virtual_queue (comma-separated; empty = only the service's own)", pattern=_QUEUE_LIST),
    Option("_vq_for_outbound_calls", str, "", "virtual queue reported for the outbound call"),
    Option("_ttl", int, DAY, "seconds after the desired time (creation, for an immediate callback) before "
           "an unhandled callback ends",
           minimum=1, maximum=366 * DAY),
    Option("_max_dial_attempts", int, 3, "outbound attempts before giving up", minimum=1, maximum=100),
    Option("_dial_retry_timeout", int, 300, "seconds between outbound attempts", minimum=0, maximum=DAY),
    Option("_business_hours_service", str, "", "business hours a desired time must fall in"),
    Option("_desired_time_horizon_days", int, 365, "how far ahead (days) a _desired_time may be",
           minimum=1, maximum=3660),
    Option("_request_time_bucket", int, 5, "minutes per capacity bucket", minimum=1, maximum=1440),
    Option("_max_request_by_time_bucket", int, 100, "callbacks allowed per bucket", minimum=0,
           maximum=10**7),
    Option("_request_execution_time_buffer", int, 120,
           "seconds before the desired time at which a scheduled callback's session starts",
           minimum=0, maximum=DAY),
    Option("_max_queued_callbacks_per_service", int, 1000, "callbacks waiting at once", minimum=0,
           maximum=10**7),
    Option("_wait_for_agent", bool, True, "reserve an agent before dialling the customer"),
    Option("_wait_for_user_confirm", bool, False, "ask the customer to confirm before routing"),
    Option("_user_confirm_timeout", int, 30, "seconds to wait for that confirmation", minimum=1,
           maximum=DAY),
    Option("_callin_timeout", int, 600, "seconds a customer has to call in once told it is their turn",
           minimum=1, maximum=DAY),
    Option("_enable_status_notification", str, "false", "status notifications",
           ("false", "notify", "subscribe_notify", "to_notify")),
    Option("_status_notification_type", str, "httpcb", "delivery type", ("httpcb", "orscb")),
    Option("_status_notification_target", str, "", "URL (httpcb) or session id (orscb)", pattern=_NO_SPACE),
    Option("_status_notification_provider", str, "", "notification provider; blank = default",
           pattern=_TOKEN),
    Option("_status_notification_debug", bool, False, "extra diagnostics in notifications"),
    Option("_status_notification_language", str, "en", "language of push texts (en, fr, de; others "
           "fall back to English)", pattern=_LANGUAGE),
    Option("_callback_events_list", str, "", "transaction list naming the events to report"),
    Option("_max_notify_delivery_attempts", int, 8, "attempts to deliver a notification before it is "
           "kept as a dead letter", minimum=1, maximum=10**6),
)}

# What a create (or update) request may set for its own callback, each checked like the service's
# value (type, choices, range, pattern). Why each one:
REQUEST_OPTIONS: dict[str, str] = {
    "_call_direction": "the customer chooses to be called or to call in (click-to-call-in)",
    "_urs_virtual_queue": "the queue for the customer's topic, among the service's own and its "
                          "_allowed_virtual_queues",
    "_enable_status_notification": "the app asks to be told about progress",
    "_status_notification_type": "how the app is told (httpcb or orscb)",
    "_status_notification_target": "where the app is told (checked against the outbound URL policy)",
    "_status_notification_provider": "the app's notification provider",
    "_status_notification_debug": "the app's developer asks for diagnostics in its notifications (the seed's "
                                  "'additional parameters to your Callback queries'; nothing the record does not "
                                  "show already)",
    "_status_notification_language": "the customer's language for push texts",
}
# Every other known option is the operator's: dialling (_max_dial_attempts, _dial_retry_timeout,
# _wait_for_agent...), capacity (_max_request_by_time_bucket, _request_time_bucket,
# _max_queued_callbacks_per_service...), time (_ttl, _request_execution_time_buffer,
# _desired_time_horizon_days, _business_hours_service), the flow (_service), and what is reported
# (_callback_events_list, _max_notify_delivery_attempts).
SERVICE_ONLY: frozenset[str] = frozenset(OPTIONS) - frozenset(REQUEST_OPTIONS)
# Fields of a create request that are not options: checked where they are used.
REQUEST_FIELDS: dict[str, str] = {
    "_customer_number": "the number to call (required)",
    "_desired_time": "when (ISO 8601; absent = now; within _desired_time_horizon_days)",
    "_device_os": "push: fcm",
    "_device_notification_id": "push: the device's FCM registration token",
}
# Names a service option may not have: the flow receives options as variables, and these would
# shadow a Python builtin or a name the interpreter or the callback service defines.
_RESERVED_NAMES = frozenset(dir(builtins)) | SYSTEM_NAMES | {"_data"}

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def coerce(name: str, value: Any) -> Any:
    """A value of the option's declared type; raises ``ValueError`` naming the option."""
    option = OPTIONS.get(name)
    if option is None:
        return value
    try:
        if option.type is bool:
            if isinstance(value, bool):
                result: Any = value
            elif str(value).strip().lower() in _TRUE:
                result = True
            elif str(value).strip().lower() in _FALSE:
                result = False
            else:
                raise ValueError
        elif option.type is int:
            if isinstance(value, bool):
                raise ValueError
            result = int(str(value).strip())
        else:
            result = "" if value is None else str(value)
    except ValueError:
        raise ValueError(f"option {name} must be a {option.type.__name__}, not {value!r}") from None
    if option.choices and result not in option.choices:
        raise ValueError(f"option {name} must be one of {', '.join(option.choices)}, not {result!r}")
    if option.minimum is not None and result < option.minimum:
        raise ValueError(f"option {name} must be at least {option.minimum:g}, not {result!r}")
    if option.maximum is not None and result > option.maximum:
        raise ValueError(f"option {name} must be at most {option.maximum:g}, not {result!r}")
    if option.pattern is not None and not option.pattern.fullmatch(result):
        raise ValueError(f"option {name}: {_shown(result)} is not an accepted value ({option.help})")
    return result


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def with_defaults(options: dict[str, Any]) -> dict[str, Any]:
    """Every known option (default where unset) plus the unknown ones as given, all coerced."""
    out = {name: o.default for name, o in OPTIONS.items()}
    for name, value in options.items():
        if name in _RESERVED_NAMES or name.startswith("__"):
            raise ValueError(f"option name {name!r} is reserved: the flow would see it in place of "
                             f"Python's or the engine's own {name}")
        out[name] = coerce(name, value)
    if out["_enable_status_notification"] == "to_notify":
        out["_enable_status_notification"] = "notify"
    return out


def request_option(name: str, value: Any, service: dict[str, Any]) -> Any:
    """A request's value for an option it may set, checked; ``ValueError`` says why not."""
    if name in SERVICE_ONLY:
        raise ValueError(f"{name} is a service option and cannot be set by a request "
                         f"(request options: {', '.join(sorted(REQUEST_OPTIONS))})")
    result = coerce(name, value)
    if name == "_urs_virtual_queue":
        allowed = {service["_urs_virtual_queue"], *allowed_queues(service)}
        if result not in allowed:
            raise ValueError(f"_urs_virtual_queue {_shown(result)} is not offered by this service "
                             f"(choose from {', '.join(sorted(allowed))})")
    return result


def allowed_queues(service: dict[str, Any]) -> list[str]:
    """The service's ``_allowed_virtual_queues`` as a list."""
    return [q.strip() for q in str(service.get("_allowed_virtual_queues") or "").split(",") if q.strip()]
