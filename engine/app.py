"""The engine process as an aiohttp application: routes, middlewares and one ``Runtime``.

The runtime is built and started in the app's cleanup context, before the server accepts a
request, and closed when it stops (SIGTERM): the server stops accepting requests, the macrostep
in progress finishes (macrosteps never yield to the loop), storage is flushed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from .api import (
    admin,
    basichttp,
    call_ins,
    callback_history,
    callback_views,
    cluster,
    config_admin,
    docs,
    flow_sessions,
    gms,
    health,
    keys,
    list_preview,
    metrics,
    notifications,
    ors,
    push,
    queues,
    reports,
    service_options,
)
from .api.appkeys import INITIAL_KEY, KEYS, RUNTIME, SETTINGS
from .api.door import door
from .api.malformed import quiet_malformed_requests
from .console import routes as console
from .console.session import SESSIONS as CONSOLE_SESSIONS
from .keys import open_keys, scrub_environment
from .runtime import Runtime
from .scxml import Registry
from .settings import Settings
from .storage.api_keys import KIND as KEYS_KIND
from .storage.api_keys import KeyTable
from .storage.console_sessions import KIND as SIGN_IN_KIND
from .storage.console_sessions import SignInTable


def create_app(settings: Settings | None = None, registry: Registry | None = None,
               freeze_gc: bool = False) -> web.Application:
    settings = settings or Settings.load()
    quiet_malformed_requests()  # a client's garbage: one short line, not an ERROR with a traceback
    app = web.Application(client_max_size=settings.max_body_bytes,
                          middlewares=[door])
    key_store = open_keys(settings)
    scrub_environment()  # the keys are read; subprocesses and flows must not see them
    app[SETTINGS] = settings
    app[KEYS] = key_store
    # In a cluster the keys are the database's: its first node makes the first administrator key.
    app[INITIAL_KEY] = None if settings.in_cluster else key_store.ensure_administrator(settings.data_dir)
    for module in (health, ors, gms, notifications, push, admin, keys, basichttp, docs, metrics,
                   callback_views, queues, reports, call_ins, service_options, list_preview, flow_sessions,
                   callback_history, config_admin):
        app.router.add_routes(module.routes)
    console.install(app, settings, key_store)  # /ui: the console's files, sign-in sessions and headers

    async def runtime(app: web.Application) -> AsyncIterator[None]:
        built = await Runtime.build(settings, registry, freeze_gc=freeze_gc)
        try:
            if built.shared is not None:  # a cluster: every node serves the keys of the database
                await key_store.share(KeyTable(built.shared))
                built.shared.follow(KEYS_KIND, key_store.reread, versioned=False)
                await asyncio.to_thread(key_store.ensure_administrator, settings.data_dir)
                await app[CONSOLE_SESSIONS].share(SignInTable(built.shared))  # a sign-in valid on every node
                built.shared.follow(SIGN_IN_KIND, app[CONSOLE_SESSIONS].reread, versioned=False)
            await built.start()
            app[RUNTIME] = built
            yield
        finally:
            await app[CONSOLE_SESSIONS].close()
            await built.close()

    app.cleanup_ctx.append(runtime)
    cluster.install(app)  # a cluster node forwards what needs another node's memory (after the runtime is built)
    return app
