"""Push administration (SPEC 7, 9): FCM credentials and their test, CALLBACK_SETTINGS; and the
app's call-in request for click-to-call-in callbacks."""

from __future__ import annotations

from aiohttp import web

from ..callbacks.records import BadRequest
from ..ids import partition_of
from ..push.service import PushService
from .appkeys import RUNTIME
from .body import read_json_object
from .cluster import forward
from .contract import Body, ok, operation, ref
from .errors import ApiError
from .gms import guarded
from .schemas import ANY_OBJECT, CALL_IN, NEW_QUEUE_SETTINGS, PUSH_TEST, obj
from .times import CREDENTIAL_TIMES, with_iso

routes = web.RouteTableDef()
TAG = "administration: push"
QUEUE = {"queue": "the virtual queue"}


def push(request: web.Request) -> PushService:
    return request.app[RUNTIME].push


@routes.get("/admin/push/credentials")
@operation("The FCM credentials, masked", TAG, ok(ref("Credentials")), errors={404: "none configured"})
async def get_credentials(request: web.Request) -> web.Response:
    creds = push(request).fcm.credentials
    if creds is None:
        raise ApiError(404, "no FCM credentials are configured")
    return web.json_response(with_iso(creds.shown(), CREDENTIAL_TIMES))


@routes.put("/admin/push/credentials")
@operation("Set the FCM credentials (a service account's project_id, client_email, private_key)", TAG,
           ok(ref("Credentials")), errors={400: "refused credentials"},
           body=Body(obj({"project_id": {"type": "string"}, "client_email": {"type": "string"},
                          "private_key": {"type": "string"}})))
async def put_credentials(request: web.Request) -> web.Response:
    try:
        creds = await push(request).set_credentials(await read_json_object(request))
    except BadRequest as e:
        raise ApiError(400, f"credentials refused: {e}") from None
    return web.json_response({"result": "credentials updated", **with_iso(creds.shown(), CREDENTIAL_TIMES)})


@routes.post("/admin/push/credentials/test")
@operation("Test the FCM credentials (and optionally a device token)", TAG, ok(PUSH_TEST),
           errors={400: "missing or bad test fields"}, body=Body(ANY_OBJECT))
async def test_credentials(request: web.Request) -> web.Response:
    try:
        result = await push(request).test(await read_json_object(request))
    except BadRequest as e:
        raise ApiError(400, str(e)) from None
    return web.json_response(result)


@routes.get("/admin/callback-settings/{queue}")
@operation("A CALLBACK_SETTINGS row (push thresholds of a virtual queue)", TAG, ok(ref("QueueSettings")),
           errors={404: "no row for that queue"}, path=QUEUE, examples={"queue": "Callback_VQ"})
async def get_queue_settings(request: web.Request) -> web.Response:
    settings = request.app[RUNTIME].queue_settings
    queue = request.match_info["queue"]
    if queue not in settings.rows:
        raise ApiError(404, f"no CALLBACK_SETTINGS row for virtual queue {queue!r}")
    return web.json_response({"virtual_queue": queue, **settings.rows[queue].to_dict()})


@routes.put("/admin/callback-settings/{queue}")
@operation("Set a CALLBACK_SETTINGS row (saved before it is used)", TAG, ok(ref("QueueSettings")),
           errors={400: "refused settings"}, body=Body(NEW_QUEUE_SETTINGS, example={"push_threshold_minutes": 3}),
           path=QUEUE, examples={"queue": "Callback_VQ"})
async def put_queue_settings(request: web.Request) -> web.Response:
    queue = request.match_info["queue"]
    try:
        row = await request.app[RUNTIME].queue_settings.put(queue, await read_json_object(request))
    except ValueError as e:
        raise ApiError(400, f"CALLBACK_SETTINGS refused: {e}") from None
    return web.json_response({"virtual_queue": queue, **row.to_dict()})


@routes.post("/genesys/1/service/callback/{service}/{id}/call-in")
@operation("Click-to-call-in: the access number and code to call (pushed to the device too)", "callbacks",
           ok(CALL_IN), errors={400: "not a call-in callback, COMPLETED, or not at the front of the queue yet",
                                404: "no such service or callback"},
           path={"service": "the callback service", "id": "the callback's _id"}, examples={"service": "callin"})
async def call_in(request: web.Request) -> web.StreamResponse:
    if (held_elsewhere := await forward(request, partition_of(request.match_info["id"]))) is not None:
        return held_elsewhere  # the record and its queue watch are the holding node's
    callbacks = request.app[RUNTIME].callbacks
    record = await guarded(callbacks.owned(request.match_info["service"], request.match_info["id"]))
    try:
        details = push(request).call_in_details(record)
    except BadRequest as e:
        raise ApiError(400, str(e)) from None
    await request.app[RUNTIME].manager.commit()
    return web.json_response(details)
