"""The ORS-style session API (SPEC 3): start, event, terminate, query, list.

Every answer that reports a change is sent only once the change is durable.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from ..ids import partition_of
from ..scxml.events import Event
from ..sessions import rows as session_rows
from ..sessions.flows import FlowError
from ..sessions.manager import BadStartData, NoSuchSession, SessionManager
from .appkeys import RUNTIME
from .body import query_int, read_params
from .cluster import forward
from .contract import FORM, JSON, NOT_JSON_OR_FORM, Body, Param, ok, operation, ref
from .errors import ApiError
from .schemas import EVENT_DATA, SESSION_START, array, obj, paging
from .times import SESSION_TIMES, with_iso

EVENT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,199}$")
routes = web.RouteTableDef()
TAG = "sessions"
SID = {"sid": "the session's id"}
ENDED = {409: "the session has ended (session_status says how)"}
STATUS = {"type": "string", "enum": ["running", "finished", "cancelled", "failed"]}


def manager(request: web.Request) -> SessionManager:
    return request.app[RUNTIME].manager


@routes.post("/scxml/session/start")
@operation("Start a session of a flow", TAG, ok(obj(
    {"sessionid": {"type": "string"}, "flow": {"type": "string"}, "version": {"type": "integer"},
     "status": {"type": "string"}}), "started", links={
        "send": ("event", {"sid": "$response.body#/sessionid"}),
        "read": ("query", {"sid": "$response.body#/sessionid"}),
        "cancel": ("terminate", {"sid": "$response.body#/sessionid"})}),
    errors={400: "no src, or start data the flow refuses", 403: "a flow that runs callbacks", 404: "no such flow",
            **NOT_JSON_OR_FORM},
    body=Body(SESSION_START, (JSON, FORM), example={"src": "hello", "greeting": "bonjour"}),
    query=(Param("persistent", "false: the session is not stored (default true)"),))
async def start(request: web.Request) -> web.Response:
    params = await read_params(request, allow_empty=False)
    src = params.pop("src", None)
    if not isinstance(src, str) or not src:
        raise ApiError(400, "the 'src' parameter (the flow name) is required")
    if src in request.app[RUNTIME].services.flows_in_use():
        raise ApiError(403, f"flow {src!r} runs callbacks: the callback service starts it for each callback "
                            "(create a callback instead)")
    persistent = request.query.get("persistent", "true").lower() not in ("false", "0", "no")
    mgr = manager(request)
    try:
        session = mgr.start_flow(src, params, persistent=persistent)
    except FlowError as e:
        raise ApiError(404, str(e)) from None
    except BadStartData as e:
        raise ApiError(400, str(e)) from None
    await mgr.commit()
    info = mgr.info.get(session.id)
    return web.json_response({
        "sessionid": session.id, "flow": src,
        "version": info.version if info else mgr.flows.get(src).version,
        "status": session.status,
    })


async def _live_session(request: web.Request) -> Any:
    mgr = manager(request)
    sid = request.match_info["sid"]
    session = mgr.sessions.get(sid)
    if session is not None and session.is_running:
        return session
    ended = mgr.describe(sid)
    if ended is None and mgr.store is not None:
        status = await session_rows.stored_status(mgr.store, sid)
        ended = {"status": status} if status is not None else None
    if ended is None:
        raise ApiError(404, f"no session {sid!r}")
    raise ApiError(409, f"session {sid!r} has ended ({ended['status']})", session_status=ended["status"])


@routes.post("/scxml/session/{sid}/event/{name}")
@operation("Send an external event into a running session", TAG, ok(obj(
    {"sessionid": {"type": "string"}, "status": {"type": "string"}, "active_states": array({"type": "string"})}),
    "taken"), errors={400: "not a valid event name", 403: "an event name only the engine may raise",
                      404: "no such session", **ENDED, **NOT_JSON_OR_FORM},
    body=Body(EVENT_DATA, (JSON, FORM), "the event's data (may be empty)"),
    path={**SID, "name": "the event's name"}, examples={"name": "go"})
async def event(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if not EVENT_NAME.match(name):
        raise ApiError(400, f"{name!r} is not a valid event name")
    reason = manager(request).refuses_external(name)
    if reason is not None:
        raise ApiError(403, f"event {name!r} refused: {reason}")
    params = await read_params(request)
    mgr = manager(request)
    if mgr.cluster is not None and request.match_info["sid"] not in mgr.sessions \
            and request.match_info["sid"] not in mgr.ended:
        return await _event_elsewhere(request, mgr, name, params)
    # The body first: between the check that the session runs and the send nothing may wait, or a
    # session ending meanwhile would answer 200 for an event it never took.
    session = await _live_session(request)
    ticket = session.send(name, params or None, type="external")
    await manager(request).commit()
    if not session.took(ticket):
        raise ApiError(409, f"session {session.id!r} ended ({session.status}) before it took the event",
                       session_status=session.status)
    return web.json_response({"sessionid": session.id, "status": session.status,
                              "active_states": session.active_state_ids()})


async def _event_elsewhere(request: web.Request, mgr: SessionManager, name: str,
                           params: dict[str, Any]) -> web.Response:
    """An event for a session not running here (a cluster): stored in its inbox for the node
    holding it, which takes it on the notification. Answered once stored, with the session's state
    as last stored, that is, before the event (the holder has not taken it yet)."""
    sid = request.match_info["sid"]
    assert mgr.store is not None  # a cluster is a PostgreSQL database
    stored = await session_rows.describe_stored(mgr.store, sid)
    if stored is None:
        raise ApiError(404, f"no session {sid!r}")
    if stored["status"] != "running":
        raise ApiError(409, f"session {sid!r} has ended ({stored['status']})", session_status=stored["status"])
    try:
        mgr.send_to(sid, Event(name, params or None, type="external"))
    except NoSuchSession:  # stored as running, in a partition of this node, but not in its memory (yet)
        raise ApiError(503, f"session {sid!r} is not running on this node yet; retry") from None
    await mgr.commit()
    return web.json_response({"sessionid": sid, "status": stored["status"], "active_states": stored["active_states"]})


@routes.post("/scxml/session/{sid}/terminate")
@operation("Cancel a running session", TAG, ok(obj({"sessionid": {"type": "string"}, "status": {"type": "string"}})),
           errors={404: "no such session", **ENDED}, path=SID)
async def terminate(request: web.Request) -> web.StreamResponse:
    if (held_elsewhere := await forward(request, partition_of(request.match_info["sid"]))) is not None:
        return held_elsewhere  # the session runs on the node holding its partition
    session = await _live_session(request)
    session.cancel()
    await manager(request).commit()
    return web.json_response({"sessionid": session.id, "status": session.status})


@routes.get("/scxml/session/{sid}/query")
@operation("A session's status, active states and datamodel", TAG, ok(ref("Session")),
           errors={404: "no such session"}, path=SID)
async def query(request: web.Request) -> web.Response:
    sid = request.match_info["sid"]
    found = await manager(request).find(sid)
    if found is None:
        raise ApiError(404, f"no session {sid!r}")
    return web.json_response(with_iso(found, SESSION_TIMES))


@routes.get("/scxml/sessions")
@operation("List sessions", TAG, ok(obj({"sessions": array(ref("SessionItem")), "limit": {"type": "integer"},
                                         "offset": {"type": "integer"}}), "oldest first"),
           errors={400: "a bad limit, offset or status"}, query=(
               Param("flow", "only this flow's", example="hello"),
               Param("status", "only sessions in this state", STATUS),
               Param("parent", "only the children of this session"),
               *paging("sessions")))
async def list_sessions(request: web.Request) -> web.Response:
    mgr = manager(request)
    limit = query_int(request, "limit", 100, 1, 1000)
    offset = query_int(request, "offset", 0, 0, 10**9)
    flow = request.query.get("flow")
    status = request.query.get("status")
    if status is not None and status not in ("running", "finished", "cancelled", "failed"):
        raise ApiError(400, "status must be running, finished, cancelled or failed")
    if mgr.store is not None:
        items = await session_rows.list_sessions(mgr.store, flow=flow, status=status,
                                                 parent=request.query.get("parent"), limit=limit, offset=offset)
        # Non-persistent live sessions are not in the store; show them too.
        for sid, info in mgr.info.items():
            if not info.persistent and sid in mgr.sessions and (flow is None or info.flow == flow) \
                    and status in (None, "running"):
                items.append({"sessionid": sid, "flow": info.flow, "version": info.version,
                              "status": "running", "parent": info.parent_id, "created_at": info.created_at,
                              "updated_at": None})
    else:
        items = []
        for sid in list(mgr.sessions) + list(mgr.ended):
            d = mgr.describe(sid)
            if d and (flow is None or d["flow"] == flow) and (status is None or d["status"] == status):
                items.append({k: d[k] for k in ("sessionid", "flow", "version", "status", "parent", "created_at")})
        items = items[offset: offset + limit]
    return web.json_response({"sessions": [with_iso(item, SESSION_TIMES) for item in items], "limit": limit,
                              "offset": offset})
