"""Push administration (SPEC 7, 9): FCM credentials and their test, CALLBACK_SETTINGS; and the
app's call-in request for click-to-call-in callbacks."""

from __future__ import annotations

from aiohttp import web

from ..callbacks.records import BadRequest
from ..push.service import PushService
from .appkeys import RUNTIME
from .body import read_json_object
from .errors import ApiError
from .gms import guarded

routes = web.RouteTableDef()


def push(request: web.Request) -> PushService:
    return request.app[RUNTIME].push


@routes.get("/admin/push/credentials")
async def get_credentials(request: web.Request) -> web.Response:
    creds = push(request).fcm.credentials
    if creds is None:
        raise ApiError(404, "no FCM credentials are configured")
    return web.json_response(creds.shown())


@routes.put("/admin/push/credentials")
async def put_credentials(request: web.Request) -> web.Response:
    try:
        creds = await push(request).set_credentials(await read_json_object(request))
    except BadRequest as e:
        raise ApiError(400, f"credentials refused: {e}") from None
    return web.json_response({"result": "credentials updated", **creds.shown()})


@routes.post("/admin/push/credentials/test")
async def test_credentials(request: web.Request) -> web.Response:
    try:
        result = await push(request).test(await read_json_object(request))
    except BadRequest as e:
        raise ApiError(400, str(e)) from None
    return web.json_response(result)


@routes.get("/admin/callback-settings/{queue}")
async def get_queue_settings(request: web.Request) -> web.Response:
    settings = request.app[RUNTIME].queue_settings
    queue = request.match_info["queue"]
    if queue not in settings.rows:
        raise ApiError(404, f"no CALLBACK_SETTINGS row for virtual queue {queue!r}")
    return web.json_response({"virtual_queue": queue, **settings.rows[queue].to_dict()})


@routes.put("/admin/callback-settings/{queue}")
async def put_queue_settings(request: web.Request) -> web.Response:
    queue = request.match_info["queue"]
    try:
        row = request.app[RUNTIME].queue_settings.put(queue, await read_json_object(request))
    except ValueError as e:
        raise ApiError(400, f"CALLBACK_SETTINGS refused: {e}") from None
    return web.json_response({"virtual_queue": queue, **row.to_dict()})


@routes.post("/genesys/1/service/callback/{service}/{id}/call-in")
async def call_in(request: web.Request) -> web.Response:
    callbacks = request.app[RUNTIME].callbacks
    record = await guarded(callbacks.owned(request.match_info["service"], request.match_info["id"]))
    try:
        details = push(request).call_in_details(record)
    except BadRequest as e:
        raise ApiError(400, str(e)) from None
    await request.app[RUNTIME].manager.commit()
    return web.json_response(details)
