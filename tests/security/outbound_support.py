"""An in-process engine with a chosen notifications.json (the outbound URL policy), and a
loopback peer that counts what reaches it."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from engine.app import create_app
from engine.settings import Settings
from tests.callbacks.conftest import write_config
from tests.conftest import REPO
from tests.support.engine_process import free_port
from tests.support.loopback import serve

CLIENT = {"x-api-key": "client-key"}
ADMIN = {"x-api-key": "admin-key"}


def engine_settings(tmp_path: Path, notifications: dict, flows: Path | None = None, **extra) -> Settings:
    config = write_config(tmp_path)
    (config / "notifications.json").write_text(json.dumps(notifications))
    return Settings.load(config_dir=config, env={}, data_dir=tmp_path / "data", flows_dir=flows or REPO / "scxml",
                         admin_key="admin-key", client_key="client-key", flow_watch_interval=0,
                         port=extra.pop("port", None) or free_port(), **extra)


async def start_engine(aiohttp_client, settings: Settings):
    return await aiohttp_client(create_app(settings), server_kwargs={"port": settings.port})


class Peer:
    """A loopback HTTP server; ``handler`` decides each answer, every request is recorded."""

    def __init__(self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None):
        self.handler = handler
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Peer:
        async def handle(request: web.Request) -> web.StreamResponse:
            self.requests.append((request.path_qs, dict(request.headers), await request.read()))
            if self.handler is not None:
                return await self.handler(request)
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        self.runner, self.port = await serve(app)
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
