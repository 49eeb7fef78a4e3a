"""A PostgreSQL connect abandoned during SSL negotiation logs no ERROR (cluster proof flake).

asyncpg (sslmode ``prefer`` by default) opens a connection by sending an SSLRequest and waiting for
the server's answer on a future. A connect cancelled (its timeout, a stopped task) just after the TCP
connection is made left that future failed with nobody to await it, and asyncio logged "Future
exception was never retrieved ... unexpected connection_lost() call" at ERROR when it was collected:
the cluster proof fails on any ERROR line. Here a loopback server plays the database's side of the
SSL request, and the engine's own engine makes connects that are cancelled after 0, 1, 2, ... turns
of the event loop, so that one of them lands in that window whatever the machine's speed."""

from __future__ import annotations

import asyncio
import gc
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

import engine.storage  # noqa: F401  (what every store's engine is made under)
from tests.storage.loopback_server import LoopbackServer

SSL_REQUEST = struct.pack("!ll", 8, 80877103)  # its length, then the SSLRequest code
TURNS = 80  # cancellation points swept, in event loop turns after the connect starts


async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A database (or a proxy in front of it) that stalls at the SSL request."""
    await reader.read()  # until the client gives up and closes


async def cuts_at_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A database cutting the connection on the SSL request (a restart, a proxy dropping it)."""


async def accepts_then_cuts(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A server answering 'S' (SSL accepted) and then cutting the connection."""
    writer.write(b"S")
    await writer.drain()


Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class SslStage(LoopbackServer):
    """A loopback server that counts the SSL requests it got and then runs ``behaviour``."""

    def __init__(self, behaviour: Behaviour):
        super().__init__()
        self.behaviour = behaviour
        self.requests = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if await reader.read(len(SSL_REQUEST)) == SSL_REQUEST:  # not prefer's retry in plain text
                self.requests += 1
                await self.behaviour(reader, writer)
        except asyncio.CancelledError:
            pass
        finally:
            writer.close()


async def connect_once(engine: AsyncEngine) -> None:
    async with engine.connect():
        pass


async def sweep_cancelled_connects(engine: AsyncEngine, turns: int) -> int:
    """Start a connect, cancel it after k loop turns, for k in 0..turns; return how many failed
    on their own (the server cut them) before their cancellation came."""
    failed_alone = 0
    for k in range(turns):
        attempt = asyncio.get_running_loop().create_task(connect_once(engine))
        for _ in range(k):
            await asyncio.sleep(0)
        attempt.cancel()
        try:
            await attempt
        except asyncio.CancelledError:
            pass
        except Exception:
            failed_alone += 1
    return failed_alone


@pytest.mark.parametrize("behaviour", [never_answers, cuts_at_request, accepts_then_cuts],
                         ids=["never answers", "cuts at the request", "answers S then cuts"])
async def test_a_connect_abandoned_during_ssl_negotiation_leaves_no_unretrieved_future(behaviour: Behaviour) -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    stage = SslStage(behaviour)
    port = await stage.start()
    engine = create_async_engine(f"postgresql+asyncpg://cbe:secret@127.0.0.1:{port}/cbe", poolclass=NullPool,
                                 connect_args={"timeout": 5})
    try:
        await sweep_cancelled_connects(engine, TURNS)
        for _ in range(5):  # the transports' connection_lost callbacks run, then the garbage goes
            await asyncio.sleep(0.01)
            gc.collect()
    finally:
        loop.set_exception_handler(previous)
        await engine.dispose()
        await stage.stop()
    # The window (TCP connected, create_connection not yet returned) comes before the request is
    # sent: most attempts got past it before their cancellation, the first ones did not reach it.
    assert TURNS // 2 <= stage.requests < TURNS
    assert [(c.get("message"), repr(c.get("exception"))) for c in reported] == []


async def test_a_failed_ssl_answer_still_reaches_the_connect_waiting_for_it() -> None:
    """Observing the answer's outcome must not swallow it: a connect cut at the SSL request fails."""
    stage = SslStage(cuts_at_request)
    port = await stage.start()
    engine = create_async_engine(f"postgresql+asyncpg://cbe:secret@127.0.0.1:{port}/cbe", poolclass=NullPool,
                                 connect_args={"timeout": 5})
    try:
        with pytest.raises(ConnectionError, match="unexpected connection_lost"):
            await connect_once(engine)
    finally:
        await engine.dispose()
        await stage.stop()
