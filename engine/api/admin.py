"""The admin API (SPEC 9): flows, callback services, business hours, the simulator.

Every write here is durable before it is live: the file is written atomically and fsynced
(``engine.atomic_file``), and only then does the engine serve the new value. A write that
cannot be saved answers 503 with the reason and changes nothing (``unsaved_is_503``, which
also covers the admin writes routed elsewhere: transaction lists, CALLBACK_SETTINGS).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout, web

from ..atomic_file import SaveError, write_atomic
from ..callbacks.services import ServiceRegistry
from ..platform.auth import PROOF_HEADER, SETTING, proof_ok, sign
from ..platform.config import SimulatorConfig, save_simulator_config
from ..roles import ADMINISTRATOR
from ..scxml import DocumentError
from ..sessions.flows import FlowError, FlowRegistry, runs_host_code
from .appkeys import ROLE, RUNTIME, SETTINGS
from .body import read_json_object
from .contract import Answer, Body, Param, ok, operation, ref
from .errors import ApiError
from .schemas import ANY_OBJECT, NEW_HOURS, array, obj, string_map
from .times import FLOW_VERSION_TIMES, flow, with_iso

log = logging.getLogger("engine.api")
routes = web.RouteTableDef()
FLOWS = "administration: flows"
SERVICES = "administration: services"
SIMULATOR = "administration: simulator"
FLOW_NAME = {"name": "the flow's name (letters, digits, '.', '_', '-')"}
HELLO = {"name": "hello"}  # names of the shipped configuration
CALLBACK = {"name": "callback"}
OFFICE = {"name": "office"}


def unsaved_is_503(request: web.Request, error: SaveError) -> ApiError:
    """A configuration write that did not reach the disk: 503 with the reason, nothing changed
    (the door raises what this returns for a ``SaveError`` out of a handler)."""
    log.error("%s %s: %s", request.method, request.path, error)
    return ApiError(503, str(error))


def flows(request: web.Request) -> FlowRegistry:
    return request.app[RUNTIME].flows


@routes.get("/admin/flows")
@operation("List the flows and their versions", FLOWS, ok(obj({"flows": string_map(ref("Flow"))})))
async def list_flows(request: web.Request) -> web.Response:
    return web.json_response({"flows": {name: flow(d) for name, d in flows(request).describe().items()}})


@routes.get("/admin/flows/{name}")
@operation("Read a flow (?format=scxml: a version's document)", FLOWS, (Answer(
    200, "the flow, or its document", {"application/json": ref("Flow"), "application/scxml+xml": {"type": "string"}}),),
    errors={404: "no such flow or version"}, path=FLOW_NAME, examples=HELLO, query=(
        Param("format", "scxml: the document itself", {"enum": ["json", "scxml"]}),
        Param("version", "with format=scxml: this version (default: the current one)")))
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
    return web.json_response(flow(described))


@routes.put("/admin/flows/{name}")
@operation("Upload a new version of a flow (validated first; running sessions keep theirs)", FLOWS,
           ok(ref("FlowVersion"), "the new version", links={"read": ("get_flow", {"name": "$request.path.name"})}),
           errors={400: "a bad name or an invalid document (problems lists each with line and column)",
                   403: "a python-datamodel flow from a developer key (unless allowed)"},
           body=Body({"type": "string"}, ("application/scxml+xml", "text/plain"), "the SCXML document"),
           path=FLOW_NAME)
async def put_flow(request: web.Request) -> web.Response:
    text = await request.read()
    if not text.strip():
        raise ApiError(400, "the body must be the SCXML document")
    name = request.match_info["name"]
    if request.get(ROLE) != ADMINISTRATOR and not request.app[SETTINGS].developers_upload_python_flows \
            and runs_host_code(text, flows(request).registry):
        raise ApiError(403, f"flow {name!r} uses the python datamodel, whose expressions run as engine code: "
                            "only the administrator may upload it (or set developers_upload_python_flows)")
    try:
        fv = await flows(request).add(name, text, write_file=True)
    except FlowError as e:
        raise ApiError(400, str(e)) from None
    except DocumentError as e:
        raise ApiError(400, f"flow {name!r} refused; the previous version keeps serving",
                       "InvalidFlow", problems=[
                           {"line": p.line, "column": p.column, "message": p.message} for p in e.problems],
                       ) from None
    return web.json_response(with_iso(fv.describe(), FLOW_VERSION_TIMES))


@routes.post("/admin/flows/reload")
@operation("Read the flows folder again", FLOWS, ok(obj({"reloaded": string_map({"type": "string"})}),
                                                    "what happened to each changed file"))
async def reload_flows(request: web.Request) -> web.Response:
    return web.json_response({"reloaded": await flows(request).reload()})


# -- callback services and business hours (SPEC 4, 9) -----------------------------------------
def _services(request: web.Request) -> ServiceRegistry:
    return request.app[RUNTIME].services


@routes.get("/admin/services")
@operation("List the callback services", SERVICES, ok(obj({"services": array({"type": "string"})})))
async def list_services(request: web.Request) -> web.Response:
    return web.json_response({"services": sorted(_services(request).options)})


@routes.get("/admin/services/{name}")
@operation("Read a callback service: its configured and effective options", SERVICES, ok(ref("Service")),
           errors={404: "no such service"}, path={"name": "the service"}, examples=CALLBACK)
async def get_service(request: web.Request) -> web.Response:
    registry = _services(request)
    name = request.match_info["name"]
    if name not in registry.options:
        raise ApiError(404, f"unknown callback service {name!r}")
    return web.json_response({"name": name, "configured": registry.raw[name], "effective": registry.options[name]})


@routes.put("/admin/services/{name}")
@operation("Create or replace a callback service (saved before it is used)", SERVICES, ok(ref("Service")),
           errors={400: "a bad name or option, or a list or queue that does not exist"},
           body=Body({**ANY_OBJECT, "description": "Genesys option names and values"}), path={"name": "the service"})
async def put_service(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    name = request.match_info["name"]
    try:
        options = await _services(request).put(name, body)
    except ValueError as e:
        raise ApiError(400, f"service {name!r} refused: {e}") from None
    return web.json_response({"name": name, "configured": body, "effective": options})


@routes.get("/admin/business-hours/{name}")
@operation("Read business hours", SERVICES, ok(ref("BusinessHours")), errors={404: "no such business hours"},
           path={"name": "the business hours"}, examples=OFFICE)
async def get_hours(request: web.Request) -> web.Response:
    registry = _services(request)
    name = request.match_info["name"]
    if name not in registry.hours:
        raise ApiError(404, f"unknown business hours {name!r}")
    return web.json_response(registry.hours[name].to_dict())


@routes.put("/admin/business-hours/{name}")
@operation("Create or replace business hours (saved before they are used)", SERVICES, ok(ref("BusinessHours")),
           errors={400: "a bad name, time zone, span or exception"}, body=Body(NEW_HOURS, example={
               "time_zone": "Europe/Paris", "weekly": {"mon": ["09:00-17:00"]}, "exceptions": {}}),
           path={"name": "the business hours"})
async def put_hours(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    name = request.match_info["name"]
    try:
        hours = await _services(request).put_hours(name, body)
    except ValueError as e:
        raise ApiError(400, f"business hours {name!r} refused: {e}") from None
    return web.json_response(hours.to_dict())


# -- the simulator (SPEC 5, 9) -----------------------------------------------------------------
@routes.get("/admin/simulator")
@operation("The simulated contact center: settings and state", SIMULATOR, ok(ref("Simulator")))
async def get_simulator(request: web.Request) -> web.Response:
    sim = request.app[RUNTIME].simulator
    if sim is None:
        found = await _at_platform(request, "GET", "/admin/simulator")
        return web.json_response({"config": found["config"], "state": _state(found["state"])})
    return web.json_response({"config": sim.config.to_dict(), "state": _state(sim.snapshot())})


def _state(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The simulator's state with its times (engine clock) in the API's format."""
    queues = {name: {**q, "interactions": [with_iso(i, ("since",)) for i in q["interactions"]]}
              for name, q in snapshot["queues"].items()}
    return {**with_iso(snapshot, ("now",)), "queues": queues}


@routes.put("/admin/simulator")
@operation("Replace the simulator's settings (saved before they are used)", SIMULATOR, ok(ref("Simulator")),
           errors={400: "bad settings, a change of time_scale, or a queue in use removed"},
           body=Body({**ANY_OBJECT, "description": "the settings as GET shows them under config"}))
async def put_simulator(request: web.Request) -> web.Response:
    engine = request.app[RUNTIME]
    body = await read_json_object(request)
    try:
        config = SimulatorConfig.from_dict(body)
    except ValueError as e:
        raise ApiError(400, f"simulator settings refused: {e}") from None
    if engine.simulator is None:  # the platform process keeps (and checks) its own settings
        found = await _at_platform(request, "PUT", "/admin/simulator", body)
        return web.json_response({"config": found["config"],
                                  "state": _state(found["state"]) if found.get("state") else None})
    if config.time_scale != engine.simulator.config.time_scale:
        raise ApiError(400, "time_scale is read when the engine starts; change config/simulator.toml "
                            "and restart (every timer of the engine reads that clock)")
    path = request.app[SETTINGS].config_dir / "simulator.toml"
    try:
        previous: bytes | None = path.read_bytes()
    except FileNotFoundError:
        previous = None
    except OSError as e:
        raise SaveError("the simulator settings", e) from e
    save_simulator_config(path, config)  # durable first ...
    try:
        engine.simulator.reconfigure(config)  # ... then live; refused (a queue in use): undo the file
    except ValueError as e:
        _restore(path, previous)
        raise ApiError(400, f"simulator settings refused: {e}") from None
    return web.json_response({"config": config.to_dict(), "state": _state(engine.simulator.snapshot())})


async def _at_platform(request: web.Request, method: str, path: str, body: Any = None) -> dict[str, Any]:
    """The simulator runs in the platform process (``platform_url``): ask it, the request signed
    with ``platform_key`` and the answer believed only with the platform's proof of it. Its
    refusals (400, 404) are passed on; an unreachable or refusing platform is 503."""
    settings = request.app[SETTINGS]
    url = settings.platform_url.rstrip("/") + path
    headers, nonce = {}, ""
    if settings.platform_key:
        headers["Authorization"], nonce = sign(settings.platform_key, method, path)
    try:
        async with ClientSession(timeout=ClientTimeout(total=15)) as client, \
                client.request(method, url, json=body, headers=headers) as r:
            found = await r.json(content_type=None)
            shown = r.headers.get(PROOF_HEADER)
    except (ClientError, TimeoutError, ValueError) as e:
        raise ApiError(503, f"the platform process ({url}) did not answer: {e or type(e).__name__}") from None
    if r.status == 401:
        log.error("platform %s refused this node's %s (401)", settings.platform_url, SETTING)
        raise ApiError(503, f"the platform process ({url}) refused this node's platform_key")
    if r.status in (200, 400, 404) and settings.platform_key and not proof_ok(settings.platform_key, nonce, shown):
        log.error("platform %s: its answer does not prove it holds %s; not believed", settings.platform_url, SETTING)
        raise ApiError(503, f"the answer from {url} does not prove it holds platform_key: not believed")
    if r.status in (400, 404):
        raise ApiError(r.status, str(found.get("error") if isinstance(found, dict) else found))
    if r.status != 200 or not isinstance(found, dict):
        raise ApiError(503, f"the platform process answered {r.status}: {found}")
    return found


def _restore(path: Path, previous: bytes | None) -> None:
    """Put back the file a refused change replaced (or remove the one it created)."""
    try:
        if previous is None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        else:
            write_atomic(path, previous)
    except OSError as e:
        log.error("could not restore %s after a refused change: %s", path, e)


@routes.post("/admin/simulator/call-in")
@operation("Simulate a customer calling in with an access code", SIMULATOR,
           ok(obj({"matched_session": {"type": "string"}})),
           errors={400: "number or access_code missing", 404: "no callback waits for that code"},
           body=Body(obj({"number": {"type": "string"}, "access_code": {"type": "string"}}),
                     example={"number": "+15551234567", "access_code": "1234"}))
async def simulate_call_in(request: web.Request) -> web.Response:
    """A customer dials the access number and keys in the code (what a phone would do)."""
    body = await read_json_object(request)
    number, code = body.get("number"), body.get("access_code")
    if not isinstance(number, str) or not isinstance(code, str):
        raise ApiError(400, "give number and access_code as strings")
    simulator = request.app[RUNTIME].simulator
    if simulator is None:  # answered there once a node stored callin.arrived
        found = await _at_platform(request, "POST", "/admin/simulator/call-in",
                                   {"number": number, "access_code": code})
        await request.app[RUNTIME].manager.commit()
        return web.json_response({"matched_session": found["matched_session"]})
    matched = simulator.call_in(number, code)
    if matched is None:
        raise ApiError(404, "no callback waits for that access code (unknown or expired)")
    await request.app[RUNTIME].manager.commit()
    return web.json_response({"matched_session": matched})


