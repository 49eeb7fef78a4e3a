"""The admin API for flows (SPEC 9): list, read, upload a version, reload the folder."""

from __future__ import annotations

from aiohttp import web

from ..callbacks.services import ServiceRegistry
from ..flows import FlowError, FlowRegistry
from ..platform.config import SimulatorConfig
from ..scxml import DocumentError
from .appkeys import ENGINE, FLOWS, MANAGER
from .body import read_json_object
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


# -- callback services and business hours (SPEC 4, 9) -----------------------------------------
def _services(request: web.Request) -> ServiceRegistry:
    return request.app[ENGINE].services


@routes.get("/admin/services")
async def list_services(request: web.Request) -> web.Response:
    return web.json_response({"services": sorted(_services(request).options)})


@routes.get("/admin/services/{name}")
async def get_service(request: web.Request) -> web.Response:
    registry = _services(request)
    name = request.match_info["name"]
    if name not in registry.options:
        raise ApiError(404, f"unknown callback service {name!r}")
    return web.json_response({"name": name, "configured": registry.raw[name], "effective": registry.options[name]})


@routes.put("/admin/services/{name}")
async def put_service(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    name = request.match_info["name"]
    try:
        options = _services(request).put(name, body)
    except ValueError as e:
        raise ApiError(400, f"service {name!r} refused: {e}") from None
    return web.json_response({"name": name, "configured": body, "effective": options})


@routes.get("/admin/business-hours/{name}")
async def get_hours(request: web.Request) -> web.Response:
    registry = _services(request)
    name = request.match_info["name"]
    if name not in registry.hours:
        raise ApiError(404, f"unknown business hours {name!r}")
    return web.json_response(registry.hours[name].to_dict())


@routes.put("/admin/business-hours/{name}")
async def put_hours(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    name = request.match_info["name"]
    try:
        hours = _services(request).put_hours(name, body)
    except ValueError as e:
        raise ApiError(400, f"business hours {name!r} refused: {e}") from None
    return web.json_response(hours.to_dict())


# -- the simulator (SPEC 5, 9) -----------------------------------------------------------------
@routes.get("/admin/simulator")
async def get_simulator(request: web.Request) -> web.Response:
    sim = request.app[ENGINE].simulator
    return web.json_response({"config": sim.config.to_dict(), "state": sim.snapshot()})


@routes.put("/admin/simulator")
async def put_simulator(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    body = await read_json_object(request)
    try:
        config = SimulatorConfig.from_dict(body)
    except ValueError as e:
        raise ApiError(400, f"simulator settings refused: {e}") from None
    if config.time_scale != engine.simulator.config.time_scale:
        raise ApiError(400, "time_scale is read when the engine starts; change config/simulator.toml "
                            "and restart (every timer of the engine reads that clock)")
    engine.simulator.reconfigure(config)
    return web.json_response({"config": config.to_dict(), "state": engine.simulator.snapshot()})


@routes.post("/admin/simulator/call-in")
async def simulate_call_in(request: web.Request) -> web.Response:
    """A customer dials the access number and keys in the code (what a phone would do)."""
    body = await read_json_object(request)
    number, code = body.get("number"), body.get("access_code")
    if not isinstance(number, str) or not isinstance(code, str):
        raise ApiError(400, "give number and access_code as strings")
    matched = request.app[ENGINE].simulator.call_in(number, code)
    if matched is None:
        raise ApiError(404, "no callback waits for that access code (unknown or expired)")
    await request.app[MANAGER].commit()
    return web.json_response({"matched_session": matched})


