"""Issue 12 item 1: the OpenAPI 3.1 document covers every route, is built from the routes
themselves, is valid, and is browsable at /docs from files the engine serves itself."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import schemathesis
from aiohttp import web

from engine.api import contract
from engine.api.docs import ASSETS
from engine.api.openapi import document, routes_of, undocumented
from engine.app import create_app
from tests.api.conftest import ADMIN, make_settings


def _app(tmp_path: Path) -> web.Application:
    return create_app(make_settings(tmp_path))


def test_every_route_has_an_entry(tmp_path: Path) -> None:
    app = _app(tmp_path)
    assert undocumented(app) == []
    paths = document(app)["paths"]
    served = {(method.lower(), path) for method, path, _ in routes_of(app)}
    described = {(method, path) for path, item in paths.items() for method in item}
    assert served == described
    assert len(served) >= 50
    ids = [op["operationId"] for item in paths.values() for op in item.values()]
    assert len(ids) == len(set(ids))
    assert paths["/genesys/1/service/callback/{service}"]["post"]["operationId"] == "create"
    links = [(link["operationId"], set(link["parameters"])) for item in paths.values() for op in item.values()
             for answer in op["responses"].values() for link in answer.get("links", {}).values()]
    assert len(links) >= 15
    targets = {op["operationId"]: op for item in paths.values() for op in item.values()}
    for target, params in links:  # a link names an operation that exists, and path parameters it has
        assert target in targets and params <= {p["name"] for p in targets[target].get("parameters", [])
                                                 if p["in"] == "path"}, target


def test_a_route_without_a_declaration_is_caught(tmp_path: Path) -> None:
    app = _app(tmp_path)

    async def forgotten(request: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_get("/admin/forgotten/{x}", forgotten)
    assert undocumented(app) == ["GET /admin/forgotten/{x}"]
    assert "/admin/forgotten/{x}" not in document(app)["paths"]


def test_the_document_is_valid_openapi_3_1(tmp_path: Path) -> None:
    doc = document(_app(tmp_path))
    assert doc["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(doc).validate()
    bad = copy.deepcopy(doc)
    bad["paths"]["/docs"]["get"]["responses"]["200"]["content"] = 5
    try:
        schemathesis.openapi.from_dict(bad).validate()
    except Exception as e:  # the validator this test relies on does refuse a broken document
        assert "content" in str(e)
    else:
        raise AssertionError("a broken document passed validation")


def test_errors_are_documented_with_their_shape(tmp_path: Path) -> None:
    doc = document(_app(tmp_path))
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["exception", "message"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            statuses = set(op["responses"])
            for status, answer in op["responses"].items():
                if int(status) >= 400 and not (path == "/health/ready" and status == "503"):
                    assert answer["content"]["application/json"]["schema"] == contract.ref("Error"), (path, method)
            if op["security"]:  # a key is needed: both refusals are described
                assert {"401", "403"} <= statuses, (method, path)
            if method in ("post", "put", "delete"):
                assert "503" in statuses, (method, path)
            params = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert params == set(re.findall(r"\{(\w+)\}", path)), (method, path)
    open_paths = {p for p, item in doc["paths"].items() if any(not op["security"] for op in item.values())}
    assert open_paths == {"/health", "/health/live", "/health/ready", "/openapi.json", "/docs", "/docs/{asset}",
                          "/basichttp/{sid}", "/basichttp/{sid}/{cap}",
                          "/ui", "/ui/", "/ui/{path}", "/ui/session"}  # the console's files and its sign-in


async def test_the_document_and_the_page_are_served_without_a_key(engine_client) -> None:
    client = await engine_client()
    r = await client.get("/openapi.json")
    assert r.status == 200 and r.content_type == "application/json"
    served = await r.json()
    assert served["paths"]["/genesys/1/service/callback/{service}"]["post"]["summary"] == "Create a callback"
    r = await client.get("/docs")
    assert r.status == 200 and r.content_type == "text/html"
    page = await r.text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert refs and all(ref.startswith("/docs/") for ref in refs), refs  # nothing from elsewhere
    assert "://" not in page
    for ref in refs:
        asset = await client.get(ref)
        assert asset.status == 200, ref
        assert asset.content_type == ASSETS[ref.removeprefix("/docs/")]
        assert len(await asset.read()) > 100
    script = await (await client.get("/docs/docs.js")).text()
    assert '"/openapi.json"' in script and "validatorUrl: null" in script
    for name in ("index.html", "VENDORED.md", "LICENSE", "..%2Fdocs.py", "nothing.js"):
        r = await client.get(f"/docs/{name}")
        assert r.status == 404 and (await r.json())["message"], name
    r = await client.get("/openapi.json", headers=ADMIN)  # a key changes nothing
    assert r.status == 200 and await r.json() == served


def test_the_vendored_files_are_the_ones_the_page_needs() -> None:
    folder = Path(contract.__file__).with_name("docs_ui")
    assert {p.name for p in folder.iterdir()} == {*ASSETS, "index.html", "VENDORED.md", "LICENSE", "NOTICE",
                                                  "swagger-ui-bundle.js.LICENSE.txt"}
