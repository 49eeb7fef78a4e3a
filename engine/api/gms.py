"""The GMS-style callback REST API (SPEC 4).

Errors are ``{"exception": ..., "message": ...}``: 400 bad input, 404 unknown service or
callback, 503 limits reached. Every answer that reports a change is sent once it is stored.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from aiohttp import web

from ..callbacks.lifecycle import IllegalTransition
from ..callbacks.records import BadRequest
from ..callbacks.service import CallbackService, LimitReached, NotFound
from ..ids import partition_of
from .appkeys import RUNTIME
from .auth import in_scope, scope_of
from .body import read_params
from .cluster import forward
from .contract import FORM, JSON, NOT_JSON_OR_FORM, Body, Param, ok, operation, ref
from .errors import ApiError
from .schemas import CREATE_CALLBACK, UPDATE_CALLBACK, array, obj
from .times import RECORD_TIMES, records, with_iso

BASE = "/genesys/1/service/callback"
routes = web.RouteTableDef()

_EXCEPTIONS = {
    BadRequest: (400, "com.genesyslab.gsg.services.callback.CallbackBadRequest"),
    IllegalTransition: (400, "com.genesyslab.gsg.services.callback.CallbackIllegalState"),
    NotFound: (404, "com.genesyslab.gsg.services.callback.CallbackNotFound"),
    LimitReached: (503, "com.genesyslab.gsg.services.callback.CallbackLimitReached"),
}


def service(request: web.Request) -> CallbackService:
    return request.app[RUNTIME].callbacks


class _ServiceErrors:
    """``with service_errors:`` around a call of the service maps its errors onto HTTP answers. A
    context manager and not a coroutine wrapped around the call: the create request, the hot one,
    goes through one coroutine layer less."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if error is not None and isinstance(error, _MAPPED):
            status, name = next(v for k, v in _EXCEPTIONS.items() if isinstance(error, k))
            raise ApiError(status, str(error), name) from None


_MAPPED = tuple(_EXCEPTIONS)
service_errors = _ServiceErrors()


async def guarded(call: Awaitable[Any]) -> Any:
    """``await call`` with the service's errors mapped onto HTTP answers."""
    with service_errors:
        return await call


TAG = "callbacks"
RECORD = ref("CallbackRecord")
RECORDS = array(RECORD)
SERVICE = {"service": "the callback service (config/services/<name>.json)"}
CALLBACK = {**SERVICE, "id": "the callback's _id"}
SHIPPED = {"service": "callback"}  # a service of the shipped configuration
FILTERS = (Param("_id", "a callback's id"), Param("_customer_number", "the number called", example="+15551234567"),
           Param("_callback_state", "a state, or !STATE for the others", example="!COMPLETED"))
NOT_FOUND = {404: "no such service or callback (or one a scoped key may not see)"}
FILTER_HELP = ("any key of the record to match (?_callback_state=QUEUED&_customer_number=...); a value "
               "starting with ! matches the records without it")


def _filters(request: web.Request) -> dict[str, str]:
    return {k: v for k, v in request.query.items()}


@routes.get(BASE)
@operation("Find callbacks of every service by their keys", TAG, ok(RECORDS, "the matching records"),
           errors={400: "no key to search by"}, description=FILTER_HELP, query=FILTERS)
async def query_all(request: web.Request) -> web.Response:
    filters = _filters(request)
    if not filters:
        raise ApiError(400, "give at least one key to search by, e.g. ?_id=... or ?_customer_number=...",
                       _EXCEPTIONS[BadRequest][1])
    found = await guarded(service(request).query(filters))
    scope = scope_of(request)  # a key scoped to services sees only their callbacks
    if scope is not None:
        found = [r for r in found if r.get("_service_name") in scope]
    return web.json_response(records(found))


@routes.post(BASE + "/{service}")
@operation("Create a callback", TAG, ok(obj({"_id": {"type": "string"}}), "created: its id", links={
    name: (target, {"service": "$request.path.service", "id": "$response.body#/_id"}) for name, target in (
        ("read", "get_one"), ("change", "reschedule"), ("cancel", "cancel"), ("events", "events"),
        ("call_in", "call_in"))} | {"position": ("queue_position", {"id": "$response.body#/_id"})}),
           errors={400: "a bad or refused parameter, a time outside what the service accepts", **NOT_FOUND,
                   503: "a capacity limit of the service is reached", **NOT_JSON_OR_FORM},
           body=Body(CREATE_CALLBACK, (JSON, FORM), example={"_customer_number": "+15551234567", "order": "A-17"}),
           path=SERVICE, examples=SHIPPED)
async def create(request: web.Request) -> web.Response:
    params = await read_params(request, allow_empty=False)
    with service_errors:
        record = await service(request).create(request.match_info["service"], params)
    return web.json_response({"_id": record["_id"]})


@routes.get(BASE + "/{service}")
@operation("Find callbacks of one service by their keys", TAG, ok(RECORDS, "the matching records"),
           errors={400: "a filter that cannot be used", **NOT_FOUND}, path=SERVICE, description=FILTER_HELP,
           query=FILTERS, examples=SHIPPED)
async def query_service(request: web.Request) -> web.Response:
    svc = service(request)
    name = request.match_info["service"]
    await guarded(_known(svc, name))
    return web.json_response(records(await guarded(svc.query(_filters(request), service=name))))


async def _known(svc: CallbackService, name: str) -> None:
    svc.service(name)


@routes.get(BASE + "/{service}/availability")
@operation("Free capacity per time slot within business hours", TAG, ok(ref("Availability")),
           errors={400: "a bad start, end or count", **NOT_FOUND}, path=SERVICE, examples=SHIPPED, query=(
               Param("start", "ISO 8601 UTC; absent: now (within the service's horizon)"),
               Param("end", "ISO 8601 UTC, after start, at most 31 days later"),
               Param("number-of-days", "1 to 31 (when end is absent; default 1)", example="2"),
               Param("max-time-slots", "1 to 10000 (default 1000)", example="10")))
async def availability(request: web.Request) -> web.Response:
    q = request.query
    slots = await guarded(service(request).availability(
        request.match_info["service"], q.get("start"), q.get("end"), q.get("number-of-days"),
        q.get("max-time-slots")))
    return web.json_response(slots)


@routes.get(BASE + "/{service}/{id}")
@operation("Read one callback", TAG, ok(RECORD), errors=NOT_FOUND, path=CALLBACK, examples=SHIPPED)
async def get_one(request: web.Request) -> web.Response:
    svc = service(request)
    filters = {"_id": request.match_info["id"]}
    found = await guarded(svc.query(filters, service=request.match_info["service"]))
    if not found:
        raise ApiError(404, f"no callback {request.match_info['id']!r} in service "
                            f"{request.match_info['service']!r}", _EXCEPTIONS[NotFound][1])
    return web.json_response(with_iso(found[0], RECORD_TIMES))


@routes.delete(BASE + "/{service}/{id}")
@operation("Cancel a callback (COMPLETED with reason CANCELLED)", TAG, ok(RECORD, "the record, cancelled"),
           errors={400: "already COMPLETED", **NOT_FOUND}, path=CALLBACK, examples=SHIPPED)
async def cancel(request: web.Request) -> web.StreamResponse:
    if (held_elsewhere := await forward(request, partition_of(request.match_info["id"]))) is not None:
        return held_elsewhere  # its timers and session run on the node holding its partition
    record = await guarded(service(request).cancel(request.match_info["service"], request.match_info["id"]))
    return web.json_response(with_iso(record, RECORD_TIMES))


@routes.put(BASE + "/{service}/{id}")
@operation("Reschedule a callback or change its options and keys (an empty value removes a key)", TAG,
           ok(RECORD, "the record, changed"),
           errors={400: "nothing to change, a refused parameter or time, or a callback that cannot change now",
                   **NOT_FOUND, 503: "the new time slot is full", **NOT_JSON_OR_FORM},
           body=Body(UPDATE_CALLBACK, (JSON, FORM), example={"order": "A-18"}), path=CALLBACK, examples=SHIPPED)
async def reschedule(request: web.Request) -> web.StreamResponse:
    if (held_elsewhere := await forward(request, partition_of(request.match_info["id"]))) is not None:
        return held_elsewhere
    params = await read_params(request, allow_empty=False)
    record = await guarded(service(request).reschedule(
        request.match_info["service"], request.match_info["id"], params))
    return web.json_response(with_iso(record, RECORD_TIMES))


@routes.get(BASE + "/{service}/{id}/events")
@operation("The status events recorded for a callback", TAG,
           ok(array(ref("StatusEvent")), "the events, oldest first"), errors=NOT_FOUND, path=CALLBACK,
           examples=SHIPPED)
async def events(request: web.Request) -> web.Response:
    found = await guarded(service(request).events_of(request.match_info["service"], request.match_info["id"]))
    return web.json_response(found)


@routes.get("/genesys/1/service/{id}/check-queue-position")
@operation("A queued callback's position and estimated wait", TAG, ok(ref("Position")),
           errors={400: "the callback is not waiting in a queue (SCHEDULED or COMPLETED)", **NOT_FOUND},
           path={"id": "the callback's _id"})
async def queue_position(request: web.Request) -> web.Response:
    svc, cid = service(request), request.match_info["id"]
    if scope_of(request) is not None:
        record = await guarded(svc.get(cid))
        if not in_scope(request, record["_service_name"]):
            raise ApiError(404, f"no callback {cid!r}", _EXCEPTIONS[NotFound][1])
    return web.json_response(await guarded(svc.position(cid)))

