"""JSON Schemas of the bodies the API takes and answers, shared by the operations that use them
(``components/schemas`` of the OpenAPI document). Each says what a client may rely on: the fields
always present are required, and objects stay open where the engine adds fields of its own or of
the client (callback records carry the client's keys)."""

from __future__ import annotations

from ..callbacks.vocabulary import CallbackState
from .contract import Param, Schema, ref

STRING: Schema = {"type": "string"}
NULLABLE_STRING: Schema = {"type": ["string", "null"]}
INTEGER: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}
# Times (engine/api/times.py): every answer gives ISO 8601 UTC with milliseconds, the GMS format;
# a request may also give an offset (or none: UTC). Which clock each is on: the README.
TIME_EXAMPLE = "2026-05-01T14:00:00.000Z"
ISO_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"
ISO_TIME: Schema = {"type": "string", "format": "date-time", "pattern": ISO_PATTERN,
                    "description": "ISO 8601 UTC with milliseconds", "examples": [TIME_EXAMPLE]}
NULLABLE_ISO_TIME: Schema = {**ISO_TIME, "type": ["string", "null"]}
TIME_INPUT: Schema = {"type": "string", "format": "date-time", "examples": [TIME_EXAMPLE],
                      "description": "ISO 8601 (Z or an offset; none: UTC), on the engine clock"}
SCALAR: Schema = {"type": ["string", "number", "boolean"]}
ANY_OBJECT: Schema = {"type": "object"}


def obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None, *, closed: bool = False,
        description: str = "") -> Schema:
    """An object with these fields; ``closed``: no others."""
    schema: Schema = {"type": "object", "properties": {**required, **(optional or {})},
                      "required": sorted(required)}
    if closed:
        schema["additionalProperties"] = False
    if description:
        schema["description"] = description
    return schema


def paging(what: str) -> tuple[Param, Param]:
    """``limit`` and ``offset`` as ``body.query_int`` checks them."""
    return (Param("limit", f"at most this many {what} (default 100)",
                  {"type": "integer", "minimum": 1, "maximum": 1000}),
            Param("offset", "skip this many (default 0)", {"type": "integer", "minimum": 0, "maximum": 10**9}))


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def string_map(values: Schema) -> Schema:
    return {"type": "object", "additionalProperties": values}


ERROR = obj({"exception": STRING, "message": STRING}, description=(
    "Every error: the kind (GMS exception names on the callback API) and what went wrong and why. "
    "Some errors add fields: problems (a refused flow), section and line (a refused transaction list), "
    "session_status (an ended session)."))

CALLBACK_RECORD = obj(
    {"_id": STRING, "_service_name": STRING, "_customer_number": STRING, "_callback_state": {
        "type": "string", "enum": [state.value for state in CallbackState]}},
    {"_callback_reason": STRING, "_desired_time": ISO_TIME, "_expiration_time": ISO_TIME,
     "_created_time": ISO_TIME, "_updated_time": ISO_TIME, "_submitted_time": ISO_TIME, "_completed_time": ISO_TIME,
     "_access_expires": ISO_TIME, "_ors_session_id": STRING, "_call_direction": STRING,
     "_urs_virtual_queue": STRING},
    description="A callback as GMS shows it: the engine's fields (underscore first) and the client's keys.")

CALLBACK_PARAMS = {
    "type": "object", "additionalProperties": SCALAR,
    "description": "Request options (see the README), push fields and keys of the client's own; values are "
                   "strings, numbers or booleans.",
}
CREATE_CALLBACK = {**CALLBACK_PARAMS, "properties": {
    "_customer_number": {"type": "string", "description": "the number to call, e.g. +15551234567"},
    "_desired_time": {**TIME_INPUT, "description": "when to call, on the engine clock (absent: now)"}},
    "required": ["_customer_number"]}
UPDATE_CALLBACK = {**CALLBACK_PARAMS, "properties": {
    "_new_desired_time": {**TIME_INPUT, "description": "a new time on the engine clock (only while SCHEDULED)"}},
    "minProperties": 1}

STATUS_EVENT = obj(
    {"event_id": STRING, "timestamp": {"type": "string", "pattern": r"^\d+$", "examples": ["1777644000"],
                                       "description": "Unix seconds on the engine clock, as a string (the GMS "
                                                      "message format; the one API time that is not ISO 8601)"},
     "_service_id": STRING, "_service_name": STRING, "_callback_state": STRING},
    description="A status event as it was published: the seed's message format, then the event's attributes.")

POSITION = obj({"_id": STRING, "_position": INTEGER, "_total_waiting": INTEGER,
                "ewt": {"type": "number", "description": "estimated wait in seconds, -1 unknown"},
                "_eta": {**NULLABLE_ISO_TIME, "description": "engine clock; null when unknown"},
                "_callback_state": STRING})
AVAILABILITY = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0},
                "description": "free places per time slot, keyed by the slot's start (ISO 8601 UTC)"}

SUBSCRIPTION = obj(
    {"id": STRING, "subscriberId": STRING, "providerName": STRING, "filter": STRING,
     "expires": {**ISO_TIME, "description": "engine clock"},
     "notificationDetails": obj({"deviceId": STRING, "type": STRING, "properties": ANY_OBJECT})},
    {"owner": {**NULLABLE_STRING, "description": "the name of the key that made it"}})
SUBSCRIBE = obj(
    {"notificationDetails": obj({"deviceId": STRING, "type": {
        "type": "string", "enum": ["httpcb", "customhttp", "orscb", "fcm"]}},
        {"properties": obj({}, {"url": STRING, "secret": STRING})}),
     "filter": {"type": "string", "description": "a tag or a shell-style pattern, e.g. callback/samples/*"}},
    {"expire": {"type": "number", "description": "seconds (30 to ten years; default 3600)"},
     "subscriberId": STRING, "providerName": STRING})
PUBLISH = obj({"tag": {"type": "string", "minLength": 1},
               "message": {"description": "an object, or any value but null (sent as {message: value})"}},
              {"event_id": {"description": "message.event_id, when message is an object: an id the engine has not "
                                           "issued"}})

SESSION = obj(
    {"sessionid": STRING, "flow": STRING, "status": STRING},
    {"version": {"type": ["integer", "null"]}, "active_states": array(STRING), "final_state": NULLABLE_STRING,
     "datamodel": ANY_OBJECT, "error": {}, "parent": NULLABLE_STRING, "persistent": BOOLEAN,
     "created_at": NULLABLE_ISO_TIME})
SESSION_ITEM = obj({"sessionid": STRING, "flow": STRING, "status": STRING},
                   {"version": {"type": ["integer", "null"]}, "parent": NULLABLE_STRING,
                    "created_at": NULLABLE_ISO_TIME, "updated_at": NULLABLE_ISO_TIME})
SESSION_START = {"type": "object", "properties": {"src": {"type": "string", "minLength": 1,
                                                          "description": "the flow's name"}},
                 "required": ["src"], "additionalProperties": SCALAR,
                 "description": "src and the session's start data (matching <data> ids replace their values)"}
EVENT_DATA = {"type": "object", "additionalProperties": SCALAR, "description": "the event's data"}

FLOW_VERSION = obj({"name": STRING, "version": INTEGER, "hash": STRING, "created_at": ISO_TIME, "states": INTEGER})
FLOW = obj({"name": STRING, "current": {"type": ["integer", "null"]}, "versions": array(ref("FlowVersion")),
            "refused": array(STRING)})

SERVICE = obj({"name": STRING, "configured": ANY_OBJECT, "effective": ANY_OBJECT})
HOURS_FIELDS = {"name": STRING, "description": STRING, "time_zone": {**STRING, "description": "an IANA time zone"},
                "weekly": {**string_map(array(STRING)), "description": "mon..sun -> spans such as 09:00-17:00"},
                "exceptions": {**string_map(array(STRING)), "description": "YYYY-MM-DD -> spans (none: closed)"}}
BUSINESS_HOURS = obj({"time_zone": STRING, "weekly": string_map(array(STRING))}, HOURS_FIELDS)
NEW_HOURS = obj({}, HOURS_FIELDS, closed=True)
NULLABLE_NUMBER: Schema = {"type": ["number", "null"]}
SIMULATOR_CONFIG = obj(
    {"time_scale": {**NUMBER, "description": "the engine clock's speed (read at start)"}, "ring_seconds": NUMBER,
     "route_seconds": NUMBER, "treatment_seconds": NUMBER, "callin_valid_seconds": NUMBER,
     "auto_callin_seconds": NUMBER, "default_handle_seconds": NUMBER, "default_outcome": STRING,
     "access_number": STRING,
     "queues": string_map(obj({"agents": INTEGER, "handle_seconds": NUMBER, "handle_jitter": NUMBER})),
     "dial_rules": array(obj({"pattern": STRING}, {"sequence": array(STRING), "probabilities": string_map(NUMBER)}))},
    {"seed": INTEGER})
SIMULATOR = obj({"config": SIMULATOR_CONFIG, "state": obj({}, {"now": {**ISO_TIME, "description": "engine clock"}},
                                                               description="queues, agents, calls now")})
QUEUE_FIELDS = {"max_dial_attempts": {"type": ["integer", "null"]},
                "retry_interval_seconds": {"type": ["integer", "null"]}, "purge_minutes": NULLABLE_NUMBER}
QUEUE_SETTINGS = obj({"virtual_queue": STRING, "push_threshold_minutes": NUMBER}, QUEUE_FIELDS)
NEW_QUEUE_SETTINGS = obj({}, {"push_threshold_minutes": NUMBER, **QUEUE_FIELDS}, closed=True)
CREDENTIALS = obj({"project_id": STRING, "client_email": STRING, "private_key": STRING},
                  {"updated_at": NULLABLE_ISO_TIME, "status": NULLABLE_STRING, "status_reason": NULLABLE_STRING,
                   "result": STRING})
PUSH_TEST = obj({"result": STRING}, {"reason": STRING})
CALL_IN = obj({"_access_number": STRING, "_access_code": STRING,
               "_access_expires": {**ISO_TIME, "description": "engine clock"}})

DEAD_LETTER = obj({"id": INTEGER, "type": STRING, "target": STRING, "status": STRING},
                  {"created_at": {**ISO_TIME, "description": "wall clock"},
                   "next_at": {**ISO_TIME, "description": "engine clock"}})
TRANSACTION_LIST = obj({"name": STRING, "properties": string_map(STRING), "warnings": array(STRING),
                        "events": string_map(obj({"notify_params": array(STRING), "notify_custom": ANY_OBJECT}))})
TRANSACTION_LIST_SAVED = obj({"name": STRING, "events": array(STRING), "warnings": array(STRING)})

KEY = obj({"name": STRING, "role": STRING, "prefix": NULLABLE_STRING,
           "services": {"type": ["array", "null"], "items": STRING}, "created": ISO_TIME, "rotated": NULLABLE_ISO_TIME,
           "last_used": NULLABLE_ISO_TIME, "source": STRING})
KEY_WITH_SECRET = {"allOf": [ref("Key"), obj({"key": {"type": "string", "description": "the secret, shown once"}})]}
NEW_KEY = obj({"name": STRING, "role": {"type": "string", "enum": [
    "administrator", "supervisor", "monitor", "developer", "client"]}},
    {"services": {"type": "array", "items": STRING, "description": "client keys: the services it may reach"}},
    closed=True)

HEALTH = obj({"status": STRING, "version": STRING, "sessions": INTEGER, "flows": INTEGER, "persistence": BOOLEAN,
              "uptime": NUMBER, "clock": {**ISO_TIME, "description": "the engine clock (ahead of the wall clock "
                                                                      "when time_scale > 1)"},
              "wall_clock": ISO_TIME, "time_scale": NUMBER}, {
    # a cluster node only (issue 14):
    "node": STRING, "partitions": array(INTEGER), "lease_remaining": NUMBER,
    "platform": {**STRING, "description": "the platform process's URL, or embedded"}})

COMPONENTS: dict[str, Schema] = {
    "Error": ERROR, "CallbackRecord": CALLBACK_RECORD, "StatusEvent": STATUS_EVENT, "Position": POSITION,
    "Availability": AVAILABILITY,
    "Subscription": SUBSCRIPTION, "Session": SESSION, "SessionItem": SESSION_ITEM, "FlowVersion": FLOW_VERSION,
    "Flow": FLOW, "Service": SERVICE, "BusinessHours": BUSINESS_HOURS, "Simulator": SIMULATOR,
    "QueueSettings": QUEUE_SETTINGS, "Credentials": CREDENTIALS, "DeadLetter": DEAD_LETTER,
    "TransactionList": TRANSACTION_LIST, "Key": KEY, "Health": HEALTH,
}
