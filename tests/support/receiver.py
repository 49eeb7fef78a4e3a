"""A real HTTP receiver on loopback for notification tests: records what arrives and answers as
told (fail a few times, 429 with Retry-After, always fail)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from aiohttp import web

from tests.support.eventually import eventually
from tests.support.loopback import serve


@dataclass
class Received:
    path: str
    body: dict
    raw: bytes
    headers: dict[str, str]
    at: float


@dataclass
class Receiver:
    received: list[Received] = field(default_factory=list)
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # consumed first
    default_status: int = 200
    runner: web.AppRunner | None = None
    port: int = 0

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> Receiver:
        async def handler(request: web.Request) -> web.Response:
            raw = await request.read()
            status, headers = self.answers.pop(0) if self.answers else (self.default_status, {})
            if 200 <= status < 300:
                self.received.append(Received(request.path, json.loads(raw), raw, dict(request.headers), time.time()))
            return web.Response(status=status, headers=headers, text="answer")

        app = web.Application()
        app.router.add_post("/{tail:.*}", handler)
        self.runner, self.port = await serve(app, self.port)
        return self

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()

    def messages(self, path: str = "/hook") -> list[dict]:
        return [r.body.get("message", r.body) for r in self.received if r.path == path]

    async def wait_for(self, count: int, path: str = "/hook", timeout: float = 15.0) -> list[dict]:
        return await eventually(lambda: self.messages(path), lambda got: len(got) >= count, timeout=timeout,
                                expected=f"{count} messages at {path}",
                                seen=lambda got: f"{len(got)}: {[m.get('event_id') for m in got]}")
