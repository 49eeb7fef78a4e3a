"""The OpenAPI 3.1 document, built from the application's own router and the ``@operation``
declarations on its handlers (``contract.py``), served at ``/openapi.json``.

A route whose handler declares nothing is left out of the document and listed by
``undocumented``; the test suite fails on any.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from aiohttp import web

from .contract import JSON, Answer, Operation, operation_of, ref
from .health import VERSION
from .schemas import COMPONENTS

TITLE = "Callback engine API"
CHANGING = frozenset({"POST", "PUT", "DELETE", "PATCH"})
PATH_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
SECURITY_SCHEMES = {
    "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    "bearer": {"type": "http", "scheme": "bearer", "description": "the same key as Authorization: Bearer <key>"},
}
SHARED_ERRORS = {
    401: "no key, or a key nobody issued (revoked, rotated away)",
    403: "the key's role may not do this (the message names the roles that may), or the key is scoped to "
         "other services",
    503: "storage is failing, or a configuration write could not be saved (nothing changed); in a cluster also "
         "while the node holding the callback or session moves or does not answer (Retry-After; the message says "
         "whether the change may have been made)",
    400: "the body cannot be read (invalid JSON, too deeply nested, too many or too long parameters)",
    413: "the body is larger than the configured limit",
}


def routes_of(app: web.Application) -> list[tuple[str, str, Any]]:
    """(method, path template, handler) of every route; HEAD is GET's own shadow."""
    return [(r.method, r.resource.canonical, r.handler) for r in app.router.routes()
            if r.method != "HEAD" and r.resource is not None]


def undocumented(app: web.Application) -> list[str]:
    return [f"{method} {path}" for method, path, handler in routes_of(app) if operation_of(handler) is None]


def document(app: web.Application) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    routes = routes_of(app)
    names = Counter(handler.__name__ for _, _, handler in routes)
    for method, path, handler in routes:
        declared = operation_of(handler)
        if declared is not None:
            # The handler's name is the operation's (what a generated client calls it), made unique
            # with the path where one handler serves several routes.
            name = handler.__name__ if names[handler.__name__] == 1 else f"{handler.__name__}_{_slug(path)}"
            paths.setdefault(path, {})[method.lower()] = _operation(method, path, name, declared)
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION, "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
                 "description": (
            "A GMS-style callback engine: the callback API, the notification API, the ORS-style session "
            "API, administration and health. Every error is a JSON object {exception, message}. Send a key "
            "as x-api-key: <key> or Authorization: Bearer <key>; what a key may reach depends on its role.")},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": COMPONENTS, "securitySchemes": SECURITY_SCHEMES},
    }


def _operation(method: str, path: str, name: str, op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": name, "summary": op.summary, "tags": [op.tag]}
    if op.description:
        out["description"] = op.description
    params = [{"name": p, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1},
               **({"description": op.path[p]} if p in op.path else {}),
               **({"example": op.examples[p]} if p in op.examples else {})} for p in PATH_PARAM.findall(path)]
    params += [{"name": q.name, "in": "query", "required": q.required, "description": q.description,
                "schema": q.schema, **({"example": q.example} if q.example is not None else {})} for q in op.query]
    if params:
        out["parameters"] = params
    if op.body is not None:
        example = {} if op.body.example is None else {"example": op.body.example}
        out["requestBody"] = {"required": True, "description": op.body.description,
                              "content": {media: {"schema": op.body.schema, **example} for media in op.body.media}}
    out["responses"] = {str(a.status): _answer(a) for a in op.answers}
    for status, when in sorted(_errors(method, op).items()):
        out["responses"][str(status)] = {"description": when, "content": {JSON: {"schema": ref("Error")}}}
    out["security"] = [] if op.open else [{"apiKey": []}, {"bearer": []}]
    return out


def _errors(method: str, op: Operation) -> dict[int, str]:
    shared = []
    if not op.open:
        shared += [401, 403]
    if method in CHANGING:
        shared.append(503)
    if op.body is not None:
        shared += [400, 413]
    found = {status: SHARED_ERRORS[status] for status in shared}
    for status, when in op.errors.items():
        found[status] = f"{found[status]}; {when}" if status in found else when
    return found


def _answer(answer: Answer) -> dict[str, Any]:
    out: dict[str, Any] = {"description": answer.description}
    if answer.contents:
        out["content"] = {media: {"schema": schema} for media, schema in answer.contents.items()}
    if answer.links:
        out["links"] = {name: {"operationId": target, "parameters": params}
                        for name, (target, params) in answer.links.items()}
    return out


def _slug(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_")

