"""Callback service options: the Genesys names (SPEC 4, 6, 7), their types and defaults.

Options a service does not know are kept as given and handed to the flow too. Values arrive as
JSON/TOML types from configuration and as strings from REST requests; ``coerce`` turns both into
the declared type or explains what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

USERTERMINATED, USERORIGINATED = "USERTERMINATED", "USERORIGINATED"


@dataclass(frozen=True)
class Option:
    name: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None


OPTIONS: dict[str, Option] = {o.name: o for o in (
    Option("_service", str, "callback", "flow (SCXML document name) this service runs"),
    Option("_call_direction", str, USERTERMINATED, "who calls: the enterprise or the customer",
           (USERTERMINATED, USERORIGINATED)),
    Option("_urs_virtual_queue", str, "Callback_VQ", "virtual queue the callback waits in"),
    Option("_vq_for_outbound_calls", str, "", "virtual queue reported for the outbound call"),
    Option("_ttl", int, 86400, "seconds after creation before an unhandled callback ends", minimum=1),
    Option("_max_dial_attempts", int, 3, "outbound attempts before giving up", minimum=1),
    Option("_dial_retry_timeout", int, 300, "seconds between outbound attempts", minimum=0),
    Option("_business_hours_service", str, "", "business hours a desired time must fall in"),
    Option("_request_time_bucket", int, 5, "minutes per capacity bucket", minimum=1),
    Option("_max_request_by_time_bucket", int, 100, "callbacks allowed per bucket", minimum=0),
    Option("_request_execution_time_buffer", int, 120,
           "seconds before the desired time at which a scheduled callback's session starts", minimum=0),
    Option("_max_queued_callbacks_per_service", int, 1000, "callbacks waiting at once", minimum=0),
    Option("_wait_for_agent", bool, True, "reserve an agent before dialling the customer"),
    Option("_wait_for_user_confirm", bool, False, "ask the customer to confirm before routing"),
    Option("_user_confirm_timeout", int, 30, "seconds to wait for that confirmation", minimum=1),
    Option("_callin_timeout", int, 600, "seconds a customer has to call in once told it is their turn",
           minimum=1),
    Option("_enable_status_notification", str, "false", "status notifications",
           ("false", "notify", "subscribe_notify", "to_notify")),
    Option("_status_notification_type", str, "httpcb", "delivery type", ("httpcb", "orscb")),
    Option("_status_notification_target", str, "", "URL (httpcb) or session id (orscb)"),
    Option("_status_notification_provider", str, "", "notification provider; blank = default"),
    Option("_status_notification_debug", bool, False, "extra diagnostics in notifications"),
    Option("_status_notification_language", str, "en", "language of push texts"),
    Option("_callback_events_list", str, "", "transaction list naming the events to report"),
    Option("_max_notify_delivery_attempts", int, 8, "attempts to deliver a notification before it is "
           "kept as a dead letter", minimum=1),
)}

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
    return result


def with_defaults(options: dict[str, Any]) -> dict[str, Any]:
    """Every known option (default where unset) plus the unknown ones as given, all coerced."""
    out = {name: o.default for name, o in OPTIONS.items()}
    for name, value in options.items():
        out[name] = coerce(name, value)
    if out["_enable_status_notification"] == "to_notify":
        out["_enable_status_notification"] = "notify"
    return out
