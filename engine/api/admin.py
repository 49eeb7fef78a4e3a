"""The admin API for flows (SPEC 9): list, read, upload a version, reload the folder."""

from __future__ import annotations

from aiohttp import web

from ..flows import FlowError, FlowRegistry
from ..scxml import DocumentError
from .appkeys import FLOWS
from .errors import ApiError

routes = web.RouteTableDef()


def flows(request: web.Request) -> FlowRegistry:
    return request.app[FLOWS]


@routes.get("/admin/flows")
async def list_flows(request: web.Request) -> web.Response:
    return web.json_response({"flows": flows(request).describe()})


@routes.get("/admin/flows/{name}")
async def get_flow(request: web.Request) -> web.Response:
    registry = flows(request)
    name = request.match_info["name"]
    try:
        described = registry.describe_flow(name)
    except FlowError as e:
        raise ApiError(404, str(e)) from None
    if request.query.get("format") == "scxml":
        version = request.query.get("version")
        fv = registry.current.get(name)
        if version is not None:
            fv = next((v for v in registry.versions.get(name, []) if str(v.version) == version), None)
        if fv is None:
            raise ApiError(404, f"flow {name!r} has no version {version!r}")
        return web.Response(text=fv.doc.text, content_type="application/scxml+xml")
    return web.json_response(described)


@routes.put("/admin/flows/{name}")
async def put_flow(request: web.Request) -> web.Response:
    text = await request.read()
    if not text.strip():
        raise ApiError(400, "the body must be the SCXML document")
    name = request.match_info["name"]
    try:
        fv = await flows(request).add(name, text, write_file=True)
    except FlowError as e:
        raise ApiError(400, str(e)) from None
    except DocumentError as e:
        raise ApiError(400, f"flow {name!r} refused; the previous version keeps serving",
                       "InvalidFlow", problems=[
                           {"line": p.line, "column": p.column, "message": p.message} for p in e.problems],
                       ) from None
    return web.json_response(fv.describe())


@routes.post("/admin/flows/reload")
async def reload_flows(request: web.Request) -> web.Response:
    return web.json_response({"reloaded": await flows(request).reload()})
