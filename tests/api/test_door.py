"""The door (``engine/api/door.py``): one middleware doing what five did, in their order. A
configuration write that was not saved is a 503 (its reason logged), an unexpected error a JSON
500, a redirect goes out as it is; every answer, refusals included, has its access line."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from engine.api.appkeys import KEYS, RUNTIME
from engine.api.auth import key_refusal
from engine.api.door import door
from engine.app import create_app
from engine.atomic_file import SaveError
from engine.storage import StorageUnavailable
from tests.api.conftest import ADMIN, CLIENT, make_settings
from tests.support.engine_process import free_port


async def _save_fails(request: web.Request) -> web.Response:
    raise SaveError("flows/x.scxml", OSError(28, "No space left on device"))


async def _breaks(request: web.Request) -> web.Response:
    raise RuntimeError("a bug")


async def _moves(request: web.Request) -> web.Response:
    raise web.HTTPFound("/admin/flows")


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    port = free_port()
    app = create_app(make_settings(tmp_path, port=port))
    app.router.add_post("/admin/test/save", _save_fails)
    app.router.add_get("/admin/test/bug", _breaks)
    app.router.add_get("/admin/test/moved", _moves)
    return await aiohttp_client(app, server_kwargs={"port": port})


def test_the_app_has_one_middleware_layer(tmp_path) -> None:
    assert list(create_app(make_settings(tmp_path)).middlewares) == [door]


async def test_what_escapes_a_handler_is_answered_and_logged(client, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    async with client.post("/admin/test/save", headers=ADMIN) as r:
        assert r.status == 503
        assert await r.json() == {"exception": "ServiceUnavailable",
                                  "message": "could not save flows/x.scxml: No space left on device"}
    async with client.get("/admin/test/bug", headers=ADMIN) as r:
        assert r.status == 500
        assert await r.json() == {"exception": "InternalError", "message": "internal error; see the engine log"}
    async with client.get("/admin/test/moved", headers=ADMIN, allow_redirects=False) as r:
        assert r.status == 302 and r.headers["Location"] == "/admin/flows"
    async with client.get("/admin/test/bug") as r:
        assert r.status == 401  # the key is checked before anything runs
    async with client.get("/admin/test/nowhere", headers=ADMIN) as r:
        assert r.status == 404 and (await r.json())["exception"] == "NotFound"
    errors = [(r.name, r.getMessage()) for r in caplog.records if r.levelno >= logging.ERROR]
    assert ("engine.api", "POST /admin/test/save: could not save flows/x.scxml: No space left on device") in errors
    assert any(n == "engine.api" and m == "unhandled error in GET /admin/test/bug" for n, m in errors)
    access = [(r.route, r.status, r.key) for r in caplog.records if r.name == "engine.access"]
    assert access == [("/admin/test/save", 503, "env-administrator"), ("/admin/test/bug", 500, "env-administrator"),
                      ("/admin/test/moved", 302, "env-administrator"), ("/admin/test/bug", 401, "-"),
                      ("(unmatched)", 404, "env-administrator")]


async def test_while_storage_fails_the_key_and_role_are_checked_first(client, monkeypatch, caplog) -> None:
    """The storage gate stands behind the key check: a change without a key (or with a key nobody
    issued, or one whose role may not make it) is refused as such, not told that storage fails;
    reads and the probes go on; the access line holds the status the client got."""
    def failing() -> None:
        raise StorageUnavailable("storage is failing: [Errno 28] No space left on device")

    made = await (await client.post("/admin/keys", json={"name": "m-1", "role": "monitor"}, headers=ADMIN)).json()
    monkeypatch.setattr(client.app[RUNTIME].manager, "check_writer", failing)
    caplog.set_level(logging.DEBUG)
    cases = [
        ("POST", "/admin/test/save", {}, 401), ("POST", "/admin/test/save", {"x-api-key": "nope"}, 401),
        ("POST", "/genesys/1/service/callback/callback", {}, 401),
        ("POST", "/admin/flows/reload", {"x-api-key": made["key"]}, 403),
        ("DELETE", "/admin/keys/m-1", {"x-api-key": made["key"]}, 403),
        ("POST", "/admin/nowhere", {}, 401),
        ("POST", "/admin/test/save", ADMIN, 503), ("POST", "/admin/nowhere", ADMIN, 503),
        ("GET", "/admin/flows", {"x-api-key": made["key"]}, 200), ("GET", "/health/live", {}, 200),
    ]
    for method, path, headers, status in cases:
        async with client.request(method, path, headers=headers) as r:
            body = await r.json()
            assert r.status == status, (method, path, body)
            assert (r.status == 503) == ("storage is failing" in str(body)), (method, path, body)
    access = [r.status for r in caplog.records if r.name == "engine.access"]
    assert access == [status for _, _, _, status in cases]


async def _restricted(request: web.Request) -> web.Response:
    return web.json_response({"part": request.match_info["part"]})


async def test_the_key_check_reads_the_path_the_router_matches(aiohttp_client, tmp_path) -> None:
    """An encoded slash is no area boundary: the router matches ``%2F`` as part of a segment, so the
    role check must too, or a route with a variable segment outside the client's areas (here a
    stand-in for a future one) could be reached by a path that decodes into them."""
    port = free_port()
    app = create_app(make_settings(tmp_path, port=port))
    app.router.add_get("/genesys/{part}/probe", _restricted)
    client = await aiohttp_client(app, server_kwargs={"port": port})
    sneaky = "/genesys/1%2Fservice%2F..%2F..%2Fx/probe"  # decodes to /genesys/1/service/../../x/probe
    async with client.get(sneaky, headers=CLIENT) as r:
        assert r.status == 403, await r.text()
    async with client.get(sneaky, headers=ADMIN) as r:
        assert r.status == 200 and (await r.json())["part"] == "1/service/../../x"
    async with client.get("/genesys/plain/probe", headers=CLIENT) as r:
        assert r.status == 403  # the same route without the trick: outside the client's areas


async def test_a_role_learns_which_routes_exist_only_inside_its_areas(client) -> None:
    """The role is checked before the router's 404 and 405: outside its areas a key gets the same
    403 for a path or method that exists and for one that does not; inside them, and for the
    administrator, the router's answer stands."""
    outside = [("GET", "/admin/no-such-thing"), ("GET", "/admin/flows/x/y/z"),
               ("DELETE", "/admin/reports/callbacks"), ("PATCH", "/admin/flows")]
    for method, path in outside:
        async with client.request(method, path, headers=CLIENT) as r:
            assert r.status == 403, (method, path)
            body = await r.json()
            assert body["exception"] == "Forbidden" and "client role may not" in body["message"]
    async with client.get("/admin/no-such-thing", headers=ADMIN) as r:
        assert r.status == 404
    async with client.delete("/admin/reports/callbacks", headers=ADMIN) as r:
        assert r.status == 405
    async with client.get("/genesys/1/service/no/such/route", headers=CLIENT) as r:
        assert r.status == 404  # inside the client's areas: the router's answer
    async with client.request("PATCH", "/genesys/1/service/callback/x", headers=CLIENT) as r:
        assert r.status == 405


async def test_a_save_error_in_the_door_checks_is_a_503_too(client, monkeypatch) -> None:
    """Not only a handler's: a configuration write that fails under the key check (the keys file,
    say) answers 503 with the reason, as one in a handler does, not a bare 500."""
    def fails(presented: str) -> None:
        raise SaveError("config/keys.json", OSError(28, "No space left on device"))

    monkeypatch.setattr(client.app[KEYS], "authenticate", fails)
    async with client.get("/admin/flows", headers=ADMIN) as r:
        assert r.status == 503
        assert (await r.json())["message"] == "could not save config/keys.json: No space left on device"


async def test_the_open_paths_are_whole_segments(client) -> None:
    """``/health`` is open, and so is what lies under ``/health/``; a path that only begins with
    the same letters is not (none of today's routes is such: the key check is asked directly)."""
    for path, is_open in (("/health", True), ("/health/ready", True), ("/healthcheck", False),
                          ("/health.json", False), ("/docsx", False), ("/uix", False)):
        request = make_mocked_request("GET", path, app=client.app)
        refusal = key_refusal(request)
        assert (refusal is None) == is_open, path
        if not is_open:
            assert refusal.status == 401
