"""The notification API (SPEC 6): subscribe, read and remove subscriptions, publish; and its admin
side: transaction lists and dead letters.

A subscription remembers the key that made it: a client key reads and removes only its own; the
other roles that may read the notification API (administrator, supervisor, monitor, developer) read
them all.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..callbacks.records import BadRequest
from ..notifications.rows import delivery_partition
from ..notifications.service import NotificationService
from ..notifications.subscriptions import Subscription, parse_request
from ..notifications.transaction_list import TransactionListError
from ..roles import CLIENT
from .appkeys import API_KEY, ROLE, RUNTIME
from .auth import scope_of
from .body import query_int, read_json_object, read_list_text
from .cluster import forward
from .contract import Answer, Body, Param, ok, operation, ref
from .errors import ApiError
from .schemas import PUBLISH, SUBSCRIBE, TRANSACTION_LIST_SAVED, array, obj, paging
from .times import DELIVERY_TIMES, SUBSCRIPTION_TIMES, with_iso

routes = web.RouteTableDef()
BASE = "/genesys/1/notification"


TAG = "notifications"
ADMIN_TAG = "administration: notifications"
PAGE = paging("items")
SUBSCRIPTION_ID = {"id": "the subscription's id"}
LIST_NAME = {"name": "the transaction list (config/transaction-lists/<name>.cfg)"}
EXAMPLE_LIST = "[_cbe_on_service_create]\nnotify_params = _service_id, _service_name\n"


def service(request: web.Request) -> NotificationService:
    return request.app[RUNTIME].notifications


def _owner_filter(request: web.Request) -> str | None:
    """Whose subscriptions the request may see: the key's own for a client, everyone's otherwise."""
    return request[API_KEY].name if request.get(ROLE) == CLIENT else None


def _visible(request: web.Request, sub_id: str) -> Subscription:
    """The live subscription the request may see (a client: one of its own); 404 otherwise."""
    sub, owner = service(request).subscription(sub_id), _owner_filter(request)
    if sub is None or (owner is not None and sub.owner != owner):
        raise ApiError(404, f"no subscription {sub_id!r}")
    return sub


@routes.post(BASE + "/subscription")
@operation("Subscribe to messages published under a tag (filter)", TAG, ok(ref("Subscription"), "subscribed", links={
    "read": ("get_subscription", {"id": "$response.body#/id"}),
    "remove": ("unsubscribe", {"id": "$response.body#/id"})}),
           errors={400: "a missing or bad field, or a target the outbound URL policy refuses",
                   403: "an orscb target running a callback's session"}, body=Body(SUBSCRIBE, example={
               "filter": "callback/callback/*", "expire": 600, "subscriberId": "app-1", "notificationDetails": {
                   "deviceId": "app-1", "type": "httpcb", "properties": {"url": "https://app.example.com/hook"}}}))
async def subscribe(request: web.Request) -> web.Response:
    svc = service(request)
    try:
        sub = parse_request(await read_json_object(request), svc.now(), svc.config.policy)
    except BadRequest as e:
        raise ApiError(400, str(e)) from None
    sub.owner = request[API_KEY].name
    _check_scope(request, sub.filter)
    if sub.type == "orscb" and await request.app[RUNTIME].callbacks.runs_session_anywhere(sub.target):
        raise ApiError(403, "an orscb subscription cannot target the session of a callback: only the engine "
                            "raises events in callback flows")
    svc.subscribe(sub)
    await request.app[RUNTIME].manager.commit()
    return web.json_response({"id": sub.id, **_shown(sub)})


def _shown(sub: Subscription) -> dict[str, Any]:
    return with_iso(sub.public(), SUBSCRIPTION_TIMES)


def _check_scope(request: web.Request, pattern: str) -> None:
    """A key scoped to services may only listen to their callbacks: ``callback/<service>/...``
    with the service spelled out (service names hold no wildcard characters)."""
    scope = scope_of(request)
    parts = pattern.split("/")
    if scope is not None and not (len(parts) >= 3 and parts[0] == "callback" and parts[1] in scope):
        raise ApiError(403, f"this key is scoped to the services {', '.join(scope)}; a filter must start "
                            f"with callback/<one of them>/")


@routes.get(BASE + "/subscription")
@operation("List live subscriptions (a client key: its own)", TAG,
           ok(obj({"subscriptions": array(ref("Subscription")), "limit": {"type": "integer"},
                   "offset": {"type": "integer"}}), "oldest first"),
           errors={400: "a bad limit or offset"}, query=PAGE)
async def list_subscriptions(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", 100, 1, 1000)
    offset = query_int(request, "offset", 0, 0, 10**9)
    found = service(request).subscriptions_of(_owner_filter(request))[offset: offset + limit]
    return web.json_response({"subscriptions": [_shown(sub) for sub in found], "limit": limit, "offset": offset})


@routes.get(BASE + "/subscription/{id}")
@operation("Read one subscription (a client key: one of its own)", TAG, ok(ref("Subscription")),
           errors={404: "no such live subscription (or one of another client)"}, path=SUBSCRIPTION_ID)
async def get_subscription(request: web.Request) -> web.Response:
    return web.json_response(_shown(_visible(request, request.match_info["id"])))


@routes.delete(BASE + "/subscription/{id}")
@operation("Remove a subscription (a client key: one of its own)", TAG,
           ok(obj({"id": {"type": "string"}, "deleted": {"const": True}})),
           errors={404: "no such live subscription (or one of another client)"}, path=SUBSCRIPTION_ID)
async def unsubscribe(request: web.Request) -> web.Response:
    svc = service(request)
    _visible(request, request.match_info["id"])
    if not svc.unsubscribe(request.match_info["id"]):
        raise ApiError(404, f"no subscription {request.match_info['id']!r}")
    await request.app[RUNTIME].manager.commit()
    return web.json_response({"id": request.match_info["id"], "deleted": True})


@routes.post(BASE + "/publish")
@operation("Publish a message to the subscriptions matching a tag", TAG,
           ok(obj({"tag": {"type": "string"}, "deliveries": {"type": "integer"}}), "how many deliveries"),
           errors={400: "no tag or no message", 403: "a tag under callback/ (the engine's) or a refused event_id"},
           body=Body(PUBLISH, example={"tag": "apps/news", "message": {"text": "hello"}}))
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


@routes.get("/admin/transaction-lists")
@operation("List the transaction lists", ADMIN_TAG, ok(obj({"transaction_lists": array(TRANSACTION_LIST_SAVED)}),
                                                         "every list: its name, events and warnings"))
async def list_lists(request: web.Request) -> web.Response:
    lists = service(request).lists
    found = [lists.get(name) for name in sorted(lists.names())]
    return web.json_response({"transaction_lists": [
        {"name": t.name, "events": sorted(t.events), "warnings": t.warnings} for t in found if t is not None]})


@routes.get("/admin/transaction-lists/{name}")
@operation("Read a transaction list (?format=text: as written)", ADMIN_TAG, (
    Answer(200, "the list", {"application/json": ref("TransactionList"), "text/plain": {"type": "string"}}),),
    errors={404: "no such list"}, path=LIST_NAME, examples={"name": "GMS_Events"},
    query=(Param("format", "text: the list as written (GMS_Events.cfg format)", {"enum": ["json", "text"]}),))
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
@operation("Replace a transaction list (saved before it is used)", ADMIN_TAG,
           ok(TRANSACTION_LIST_SAVED, links={"read": ("get_list", {"name": "$request.path.name"})}),
           errors={400: "not UTF-8, empty, or refused (the answer names the section and line)"},
           body=Body({"type": "string"}, ("text/plain",), "the list in the GMS_Events.cfg format",
                     example=EXAMPLE_LIST), path=LIST_NAME, examples={"name": "Mine"})
async def put_list(request: web.Request) -> web.Response:
    text = await read_list_text(request)
    try:
        tlist = await service(request).lists.put(request.match_info["name"], text)
    except TransactionListError as e:
        raise ApiError(400, f"transaction list refused: {e}", "InvalidTransactionList",
                       section=e.section, line=e.line) from None
    except ValueError as e:
        raise ApiError(400, str(e)) from None
    return web.json_response({"name": tlist.name, "events": sorted(tlist.events), "warnings": tlist.warnings})


@routes.get("/admin/dead-letters")
@operation("Deliveries that gave up (dead letters)", ADMIN_TAG,
           ok(obj({"dead_letters": array(ref("DeadLetter"))}), "oldest first"),
           errors={400: "a bad limit or offset"}, query=PAGE)
async def dead_letters(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", 100, 1, 1000)
    offset = query_int(request, "offset", 0, 0, 10**9)
    found = await service(request).all_dead_letters(limit, offset)  # a cluster: every node's, from the database
    return web.json_response({"dead_letters": [with_iso(d, DELIVERY_TIMES) for d in found]})


@routes.post("/admin/dead-letters/{id}/replay")
@operation("Send a dead letter again", ADMIN_TAG, ok(obj({"id": {"type": "integer"}, "status": {"type": "string"}})),
           errors={400: "the id is not a number", 404: "no such dead letter"},
           path={"id": "the dead letter's id (a number)"})
async def replay(request: web.Request) -> web.StreamResponse:
    try:
        delivery_id = int(request.match_info["id"])
    except ValueError:
        raise ApiError(400, "a dead letter id is a number") from None
    d = service(request).replay(delivery_id)
    runtime = request.app[RUNTIME]
    if d is None and runtime.manager.cluster is not None and runtime.store is not None:
        # In a cluster the dead letter may be another node's: the one holding its partition.
        part = await delivery_partition(runtime.store, delivery_id)
        if part is not None and (held_elsewhere := await forward(request, part)) is not None:
            return held_elsewhere
    if d is None:
        raise ApiError(404, f"no dead letter {delivery_id}")
    await request.app[RUNTIME].manager.commit()
    return web.json_response({"id": d.id, "status": d.status})
