"""Which sessions run on which version of a flow (``GET /admin/flows/{name}/sessions``): the
console's flow page shows it beside the versions, so an operator sees when an old version has
drained after an upload.

Stored sessions are counted by the database (``sessions.rows.count_by_version``); sessions the
store does not hold (started with persistent=false, or every session when persistence is off)
are counted from memory.
"""

from __future__ import annotations

from collections import defaultdict

from aiohttp import web

from ..sessions import rows as session_rows
from ..sessions.flows import FlowError
from .appkeys import RUNTIME
from .contract import ok, operation
from .errors import ApiError
from .schemas import INTEGER, array, obj

routes = web.RouteTableDef()
TAG = "administration: flows"
RUNNING = session_rows.RUNNING

VERSION_COUNTS = obj({"version": INTEGER, "running": INTEGER, "ended": INTEGER})


@routes.get("/admin/flows/{name}/sessions")
@operation("Sessions of a flow per version: how many run, how many ended", TAG,
           ok(obj({"name": {"type": "string"}, "versions": array(VERSION_COUNTS)}), "every version, newest first"),
           errors={404: "no such flow"}, path={"name": "the flow's name"}, examples={"name": "hello"})
async def flow_sessions(request: web.Request) -> web.Response:
    engine = request.app[RUNTIME]
    name = request.match_info["name"]
    try:
        described = engine.flows.describe_flow(name)
    except FlowError as e:
        raise ApiError(404, str(e)) from None
    mgr = engine.manager
    counts: dict[int, dict[str, int]] = defaultdict(lambda: {"running": 0, "ended": 0})
    for v in described.get("versions", []):
        counts[int(v["version"])]  # every version shows, with none running too
    if mgr.store is not None:
        for version, by_status in (await session_rows.count_by_version(mgr.store, name)).items():
            for status, n in by_status.items():
                counts[version]["running" if status == RUNNING else "ended"] += n
        for sid, info in list(mgr.info.items()):
            if not info.persistent and sid in mgr.sessions and info.flow == name:
                counts[info.version]["running"] += 1
    else:
        for sid, info in list(mgr.info.items()):
            if sid in mgr.sessions and info.flow == name:
                counts[info.version]["running"] += 1
        for ended in list(mgr.ended.values()):
            if ended.flow == name and ended.version is not None:
                counts[ended.version]["ended"] += 1
    return web.json_response({"name": name, "versions": [
        {"version": version, **counts[version]} for version in sorted(counts, reverse=True)]})
