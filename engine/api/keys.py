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
from .errors import ApiError

routes = web.RouteTableDef()
BASE = "/admin/keys"
FIELDS = {"name", "role", "services"}


def store(request: web.Request) -> KeyStore:
    return request.app[KEYS]


def _shown(request: web.Request, key: ApiKey) -> dict[str, Any]:
    return key.public(store(request).last_used.get(key.name))


async def _run(call: Any, *args: Any) -> Any:
    try:
        return await asyncio.to_thread(call, *args)
    except KeyRequestError as e:
        raise ApiError(e.status, str(e)) from None


@routes.get(BASE)
async def list_keys(request: web.Request) -> web.Response:
    return web.json_response({"keys": store(request).listing()})


@routes.post(BASE)
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
async def get_key(request: web.Request) -> web.Response:
    key = store(request).get(request.match_info["name"])
    if key is None:
        raise ApiError(404, f"no key named {request.match_info['name']!r}")
    return web.json_response(_shown(request, key))


@routes.post(BASE + "/{name}/rotate")
async def rotate_key(request: web.Request) -> web.Response:
    key, secret = await _run(store(request).rotate, request.match_info["name"])
    return web.json_response({**_shown(request, key), "key": secret})


@routes.delete(BASE + "/{name}")
async def revoke_key(request: web.Request) -> web.Response:
    key = await _run(store(request).revoke, request.match_info["name"])
    return web.json_response({"name": key.name, "role": key.role, "revoked": True})
