"""``/openapi.json`` (the contract, built from the routes) and ``/docs`` (Swagger UI on it).

Both are open (no key): the contract holds no secret, and a browser cannot send a key header
to load a page. The page's files are vendored in ``docs_ui/`` and served from a fixed list, so
the page works without network access and no other file of the package can be reached.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from .contract import Answer, operation
from .errors import error_response
from .openapi import document

routes = web.RouteTableDef()
ASSETS_DIR = Path(__file__).with_name("docs_ui")
ASSETS = {  # what the page loads -> its content type
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "docs.js": "text/javascript",
}
HTML = "text/html"


@routes.get("/openapi.json")
@operation("The OpenAPI 3.1 document of this API", "documentation", Answer(
    200, "the document", {"application/json": {"type": "object", "required": ["openapi", "paths"]}}), open=True)
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(document(request.app))


@routes.get("/docs")
@operation("A browsable view of the document (Swagger UI, served by the engine)", "documentation",
           Answer(200, "the page", {HTML: {"type": "string"}}), open=True)
async def docs_page(request: web.Request) -> web.Response:
    return web.Response(body=(ASSETS_DIR / "index.html").read_bytes(), content_type=HTML, charset="utf-8")


@routes.get("/docs/{asset}")
@operation("A file of the /docs page", "documentation", (
    Answer(200, "the file", {media: {"type": "string"} for media in sorted(set(ASSETS.values()))}),),
    errors={404: "not a file of the page"}, path={"asset": "one of " + ", ".join(sorted(ASSETS))},
    examples={"asset": "docs.js"}, open=True)
async def docs_asset(request: web.Request) -> web.Response:
    name = request.match_info["asset"]
    media = ASSETS.get(name)
    if media is None:
        return error_response(404, f"no file {name!r} in /docs")
    return web.Response(body=(ASSETS_DIR / name).read_bytes(), content_type=media, charset="utf-8",
                        headers={"Cache-Control": "public, max-age=86400"})
