"""The notification API (SPEC 6): subscribe, unsubscribe, publish; and its admin side:
transaction lists and dead letters."""

from __future__ import annotations

from aiohttp import web

from ..callbacks.records import BadRequest
from ..notifications.service import NotificationService
from ..notifications.subscriptions import parse_request
from ..notifications.transaction_list import TransactionListError
from .appkeys import RUNTIME
from .auth import scope_of
from .body import query_int, read_json_object
from .errors import ApiError

routes = web.RouteTableDef()
BASE = "/genesys/1/notification"


def service(request: web.Request) -> NotificationService:
    return request.app[RUNTIME].notifications




@routes.post(BASE + "/subscription")
async def subscribe(request: web.Request) -> web.Response:
    svc = service(request)
    try:
        sub = parse_request(await read_json_object(request), svc.now(), svc.config.policy)
    except BadRequest as e:
        raise ApiError(400, str(e)) from None
    _check_scope(request, sub.filter)
    if sub.type == "orscb" and request.app[RUNTIME].callbacks.runs_session(sub.target):
        raise ApiError(403, "an orscb subscription cannot target the session of a callback: only the engine "
                            "raises events in callback flows")
    svc.subscribe(sub)
    await request.app[RUNTIME].manager.commit()
    return web.json_response({"id": sub.id, **sub.public()})


def _check_scope(request: web.Request, pattern: str) -> None:
    """A key scoped to services may only listen to their callbacks: ``callback/<service>/...``
    with the service spelled out (service names hold no wildcard characters)."""
    scope = scope_of(request)
    parts = pattern.split("/")
    if scope is not None and not (len(parts) >= 3 and parts[0] == "callback" and parts[1] in scope):
        raise ApiError(403, f"this key is scoped to the services {', '.join(scope)}; a filter must start "
                            f"with callback/<one of them>/")


@routes.delete(BASE + "/subscription/{id}")
async def unsubscribe(request: web.Request) -> web.Response:
    svc = service(request)
    if not svc.unsubscribe(request.match_info["id"]):
        raise ApiError(404, f"no subscription {request.match_info['id']!r}")
    await request.app[RUNTIME].manager.commit()
    return web.json_response({"id": request.match_info["id"], "deleted": True})


@routes.post(BASE + "/publish")
async def publish(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    tag, message = body.get("tag"), body.get("message")
    if not isinstance(tag, str) or not tag:
        raise ApiError(400, "tag is required")
    if message is None:
        raise ApiError(400, "message is required")
    if tag.split("/", 1)[0] == "callback":
        raise ApiError(403, "the callback/ tag space is the engine's: status events of callbacks are published "
                            "only by the callback service")
    event_id = message.get("event_id") if isinstance(message, dict) else None
    reason = request.app[RUNTIME].manager.refuses_external(str(event_id)) if event_id is not None else None
    if reason is not None:
        raise ApiError(403, f"event_id {event_id!r} refused: {reason}")
    svc = service(request)
    count = svc.publish(tag, message if isinstance(message, dict) else {"message": message})
    await request.app[RUNTIME].manager.commit()
    return web.json_response({"tag": tag, "deliveries": count})


@routes.get("/admin/transaction-lists/{name}")
async def get_list(request: web.Request) -> web.Response:
    tlist = service(request).lists.get(request.match_info["name"])
    if tlist is None:
        raise ApiError(404, f"no transaction list {request.match_info['name']!r}")
    if request.query.get("format") == "text":
        return web.Response(text=tlist.text, content_type="text/plain")
    return web.json_response({
        "name": tlist.name, "properties": tlist.properties, "warnings": tlist.warnings,
        "events": {k: {"notify_params": list(v.params), "notify_custom": v.custom} for k, v in tlist.events.items()},
    })


@routes.put("/admin/transaction-lists/{name}")
async def put_list(request: web.Request) -> web.Response:
    try:
        text = (await request.read()).decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError(400, f"the list must be UTF-8 text: byte {e.start} is not") from None
    if not text.strip():
        raise ApiError(400, "the body must be the list in the GMS_Events.cfg format (text/plain)")
    try:
        tlist = service(request).lists.put(request.match_info["name"], text)
    except TransactionListError as e:
        raise ApiError(400, f"transaction list refused: {e}", "InvalidTransactionList",
                       section=e.section, line=e.line) from None
    except ValueError as e:
        raise ApiError(400, str(e)) from None
    return web.json_response({"name": tlist.name, "events": sorted(tlist.events), "warnings": tlist.warnings})


@routes.get("/admin/dead-letters")
async def dead_letters(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", 100, 1, 1000)
    offset = query_int(request, "offset", 0, 0, 10**9)
    return web.json_response({"dead_letters": service(request).dead_letters(limit, offset)})


@routes.post("/admin/dead-letters/{id}/replay")
async def replay(request: web.Request) -> web.Response:
    try:
        delivery_id = int(request.match_info["id"])
    except ValueError:
        raise ApiError(400, "a dead letter id is a number") from None
    d = service(request).replay(delivery_id)
    if d is None:
        raise ApiError(404, f"no dead letter {delivery_id}")
    await request.app[RUNTIME].manager.commit()
    return web.json_response({"id": d.id, "status": d.status})
