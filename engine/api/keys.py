"""The administrator's key API: list, create, rotate, revoke named API keys.

A secret is shown once, in the answer that made it (create, rotate); listings show the name,
role, scope, times and a short prefix. File writes run in a worker thread (an fsync must not
stall the event loop); a write that fails answers 503 and changes nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from ..keys import ApiKey, KeyRequestError, KeyStore, check_request
from .appkeys import KEYS, RUNTIME
from .body import read_json_object
from .contract import Body, ok, operation, ref
from .errors import ApiError
from .schemas import KEY_WITH_SECRET, NEW_KEY, array, obj
from .times import KEY_TIMES, with_iso

routes = web.RouteTableDef()
BASE = "/admin/keys"
FIELDS = {"name", "role", "services"}
TAG = "administration: keys"
NAME = {"name": "the key's name"}


def store(request: web.Request) -> KeyStore:
    return request.app[KEYS]


def _shown(request: web.Request, key: ApiKey) -> dict[str, Any]:
    return with_iso(key.public(store(request).last_used.get(key.name)), KEY_TIMES)


async def _run(call: Any, *args: Any) -> Any:
    try:
        return await asyncio.to_thread(call, *args)
    except KeyRequestError as e:
        raise ApiError(e.status, str(e)) from None


@routes.get(BASE)
@operation("List the API keys (never their secrets)", TAG, ok(obj({"keys": array(ref("Key"))})))
async def list_keys(request: web.Request) -> web.Response:
    return web.json_response({"keys": [with_iso(k, KEY_TIMES) for k in store(request).listing()]})


@routes.post(BASE)
@operation("Create a key; its secret is in this answer only", TAG, ok(KEY_WITH_SECRET, "created", 201, links={
    name: (target, {"name": "$response.body#/name"}) for name, target in (
        ("read", "get_key"), ("rotate", "rotate_key"), ("revoke", "revoke_key"))}),
           errors={400: "a bad name, role or services", 409: "the name is taken"},
           body=Body(NEW_KEY, example={"name": "mobile-app", "role": "client", "services": ["callback"]}))
async def create_key(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise ApiError(400, f"unknown fields {', '.join(map(repr, unknown))}; a key has name, role and "
                            f"optionally services (client keys)")
    try:
        name, role, services = check_request(body.get("name"), body.get("role"), body.get("services"))
    except KeyRequestError as e:
        raise ApiError(e.status, str(e)) from None
    if services is not None:
        known = request.app[RUNTIME].services.options
        missing = [s for s in services if s not in known]
        if missing:
            raise ApiError(400, f"services: no service {', '.join(map(repr, missing))} "
                                f"(known: {', '.join(sorted(known)) or 'none'})")
    key, secret = await _run(store(request).create, name, role, services)
    return web.json_response({**_shown(request, key), "key": secret}, status=201)


@routes.get(BASE + "/{name}")
@operation("Read a key (never its secret)", TAG, ok(ref("Key")), errors={404: "no such key"}, path=NAME)
async def get_key(request: web.Request) -> web.Response:
    key = store(request).get(request.match_info["name"])
    if key is None:
        raise ApiError(404, f"no key named {request.match_info['name']!r}")
    return web.json_response(_shown(request, key))


@routes.post(BASE + "/{name}/rotate")
@operation("Give a key a new secret (the old one stops working); shown in this answer only", TAG,
           ok(KEY_WITH_SECRET), errors={404: "no such key", 409: "a key from the environment"}, path=NAME)
async def rotate_key(request: web.Request) -> web.Response:
    key, secret = await _run(store(request).rotate, request.match_info["name"])
    return web.json_response({**_shown(request, key), "key": secret})


@routes.delete(BASE + "/{name}")
@operation("Revoke a key", TAG, ok(obj({"name": {"type": "string"}, "role": {"type": "string"},
                                        "revoked": {"const": True}})),
           errors={404: "no such key", 409: "a key from the environment, or the last administrator key"}, path=NAME)
async def revoke_key(request: web.Request) -> web.Response:
    key = await _run(store(request).revoke, request.match_info["name"])
    return web.json_response({"name": key.name, "role": key.role, "revoked": True})
