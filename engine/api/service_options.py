"""What each callback service option means (``GET /admin/services/options``): the console's
services page shows every option with its description, default and validation from here, the
same table (``engine/callbacks/options.py``) that checks a service when it is saved."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..callbacks.options import OPTIONS, REQUEST_OPTIONS, Option
from .contract import ok, operation
from .schemas import BOOLEAN, NULLABLE_NUMBER, NULLABLE_STRING, STRING, array, obj

routes = web.RouteTableDef()
TAG = "administration: services"
TYPES = {str: "string", int: "integer", bool: "boolean"}
#: Options whose value names something else the engine holds (the service is refused otherwise).
REFERS_TO = {"_callback_events_list": "transaction list", "_urs_virtual_queue": "virtual queue",
             "_business_hours_service": "business hours", "_service": "flow"}

OPTION = obj({"name": STRING, "type": {"enum": sorted(TYPES.values())},
              "default": {"type": ["string", "integer", "boolean"]}, "help": STRING, "choices": array(STRING),
              "minimum": NULLABLE_NUMBER, "maximum": NULLABLE_NUMBER,
              "pattern": {**NULLABLE_STRING, "description": "a regular expression the whole value must match"},
              "request": {**BOOLEAN, "description": "a create or update request may set it for its own callback"},
              "refers_to": {**NULLABLE_STRING, "description": "what the value names (it must exist)"}})


@routes.get("/admin/services/options")
@operation("Every callback service option: type, default, description and validation", TAG,
           ok(obj({"options": array(OPTION)})))
async def service_options(request: web.Request) -> web.Response:
    return web.json_response({"options": [describe(o) for o in OPTIONS.values()]})


def describe(option: Option) -> dict[str, Any]:
    return {"name": option.name, "type": TYPES[option.type], "default": option.default, "help": option.help,
            "choices": list(option.choices), "minimum": option.minimum, "maximum": option.maximum,
            "pattern": option.pattern.pattern if option.pattern is not None else None,
            "request": option.name in REQUEST_OPTIONS, "refers_to": REFERS_TO.get(option.name)}
