"""``POST /admin/config/reload``: read the configuration files again (services, business hours,
transaction lists, CALLBACK_SETTINGS, and the flows as ``/admin/flows/reload`` does; in a cluster
also ``notifications.json``, which a single engine reads only at start).

On a single engine the files are what it serves, so they are read again. In a cluster they are
imported into the database under the rule of every import: only a file changed since its last
import is taken (``engine/storage/config_docs.py``), and every node then serves it. A file that
does not validate is logged and changes nothing. The answer names what changed here.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from ..notifications.outbound_config import KIND as OUTBOUND_KIND
from ..runtime import Runtime
from .appkeys import RUNTIME
from .contract import ok, operation
from .schemas import array, obj, string_map

log = logging.getLogger("engine.api")
routes = web.RouteTableDef()
TAG = "administration: services"


def _served(engine: Runtime) -> dict[str, dict[str, Any]]:
    """What the engine serves now, per kind and name (compared before and after a reload)."""
    return {"service": dict(engine.services.raw), "business_hours": dict(engine.services.raw_hours),
            "transaction_list": {n: t.text for n, t in engine.lists.lists.items()},
            "callback_settings": {n: r.to_dict() for n, r in engine.queue_settings.rows.items()}}


@routes.post("/admin/config/reload")
@operation("Read the configuration files again (in a cluster: import those changed since their last import)", TAG,
           ok(obj({"changed": array({"type": "string"}), "flows": string_map({"type": "string"})}),
              "what changed: 'kind name' per document, and the flows' reload"))
async def reload_config(request: web.Request) -> web.Response:
    engine = request.app[RUNTIME]
    before = _served(engine)
    await engine.lists.open()
    for problem in await engine.queue_settings.open():
        log.error("CALLBACK_SETTINGS refused: %s", problem)
    await engine.services.open()
    flows = await engine.flows.reload()
    after = _served(engine)
    changed = [f"{kind} {name}" for kind, named in after.items() for name, value in named.items()
               if before[kind].get(name) != value]
    if engine.outbound is not None and await engine.outbound.reload():
        changed.append(f"{OUTBOUND_KIND} {OUTBOUND_KIND}")
    changed.sort()
    return web.json_response({"changed": changed, "flows": flows})
