"""Micro-benchmark: what the engine adds to a create request outside the callback service.

Run from a clone's root as ``python bench/request_chain.py``. It builds the real application
(``create_app``: routes, middlewares, keys, the access log through the engine's own log handler
into a discarded stream) with a stub runtime whose callback service answers at once, and times
``POST /genesys/1/service/callback/{service}`` handed straight to the application (no socket, no
HTTP parsing: the bare server's share is measured by ``bench/callbacks.py``). ``--bare`` times
the same request on an application with no middleware and a handler that only answers, the floor.

Prints one JSON object: microseconds per request, the median of ``--rounds`` rounds. To compare
two revisions, run it alternately from both clones (A/B/A/B...) and compare the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from aiohttp import web  # noqa: E402
from aiohttp.streams import StreamReader  # noqa: E402
from aiohttp.test_utils import make_mocked_request  # noqa: E402

PATH = "/genesys/1/service/callback/bench"
BODY = b'{"_customer_number": "+15551234567", "order": "A-17"}'
HEADERS = {"x-api-key": "client-key", "content-type": "application/json", "content-length": str(len(BODY))}


class _Service:
    """A callback service that creates nothing: the handler's answer without the engine's work."""

    async def create(self, service: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"_id": "cb-1"}


def _runtime() -> Any:
    from engine.observability.metrics import SECONDS, EngineMetrics, Histogram
    metrics = SimpleNamespace(requests={}, request_seconds=Histogram(SECONDS))  # what a request counts
    metrics.http_request = functools.partial(EngineMetrics.http_request, metrics)
    return SimpleNamespace(metrics=metrics, callbacks=_Service(),
                           manager=SimpleNamespace(check_writer=lambda: None))


def engine_app(tmp: Path) -> web.Application:
    from engine.api.appkeys import RUNTIME
    from engine.app import create_app
    from engine.logs import setup_logging
    from engine.settings import Settings
    setup_logging("INFO", "text", stream=open(os.devnull, "w", buffering=1 << 16, encoding="utf-8"))  # noqa: SIM115
    settings = Settings.load(config_dir=tmp / "config", env={}, data_dir=tmp / "data", flows_dir=tmp / "flows",
                             admin_key="admin-key", client_key="client-key")
    app = create_app(settings)
    app.cleanup_ctx.clear()  # no real runtime: the stub below stands for it
    app[RUNTIME] = _runtime()
    return app


def bare_app() -> web.Application:
    async def create(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"_id": "cb-1"})

    app = web.Application()
    app.router.add_post("/genesys/1/service/callback/{service}", create)
    return app


async def _time(app: web.Application, requests: int) -> float:
    loop = asyncio.get_running_loop()
    # A real request on stand-ins for the connection: make_mocked_request's mocks cost more than the app.
    reader = SimpleNamespace(_reading_paused=False, resume_reading=lambda **kw: None, pause_reading=lambda: None)
    connection = SimpleNamespace(ssl_context=None, peername=("127.0.0.1", 50000), sockname=("127.0.0.1", 8080),
                                 transport=None)
    message = make_mocked_request("POST", PATH, headers=HEADERS, app=app)._message
    task = asyncio.current_task()
    started = time.thread_time()
    for _ in range(requests):
        payload = StreamReader(reader, 2 ** 16, loop=loop)  # type: ignore[arg-type]
        payload.feed_data(BODY)
        payload.feed_eof()
        request = web.Request(message, payload, connection, None, task, loop,  # type: ignore[arg-type]
                              client_max_size=app._client_max_size)
        response = await app._handle(request)
        if response.status != 200:
            raise SystemExit(f"answer {response.status}: {getattr(response, 'text', '')}")
    return (time.thread_time() - started) / requests


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "flows").mkdir()
        app = bare_app() if args.bare else engine_app(Path(tmp))
        app.freeze()
        await app.startup()
        await _time(app, args.requests)  # warm-up
        rounds = [await _time(app, args.requests) for _ in range(args.rounds)]
    return {"us_per_request": round(statistics.median(rounds) * 1e6, 2),
            "rounds_us": [round(r * 1e6, 2) for r in rounds], "bare": args.bare}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--bare", action="store_true", help="no middleware, a handler that only answers")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
