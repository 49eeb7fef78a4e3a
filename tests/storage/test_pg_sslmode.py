"""libpq's ``sslmode`` in a PostgreSQL URL reaches asyncpg (as its ``ssl``): ``disable`` sends no
SSL request, ``require`` does, a bad or conflicting value is refused before any connection. Before,
any ``sslmode=`` failed every connect ("connect() got an unexpected keyword argument")."""

from __future__ import annotations

import asyncio
import struct

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from engine.storage import Store
from tests.storage.loopback_server import LoopbackServer

SSL_REQUEST_CODE = 80877103
PROTOCOL_3 = 196608  # a StartupMessage's first field after its length


class FirstMessage(LoopbackServer):
    """A loopback server recording the code of each connection's first message, then closing."""

    def __init__(self) -> None:
        super().__init__()
        self.codes: list[int] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readexactly(8)
            self.codes.append(struct.unpack("!ll", head)[1])
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()


async def first_message_code(query: str) -> list[int]:
    stage = FirstMessage()
    port = await stage.start()
    engine = create_async_engine(f"postgresql+asyncpg://cbe:secret@127.0.0.1:{port}/cbe?{query}",
                                 poolclass=NullPool, connect_args={"timeout": 5})
    try:
        with pytest.raises(Exception) as failed:  # the server closes: the connect fails, how is not the point
            async with engine.connect():
                pass
        assert "unexpected keyword argument" not in str(failed.value)
    finally:
        await engine.dispose()
        await stage.stop()
    return stage.codes


async def test_sslmode_disable_sends_no_ssl_request_and_require_does() -> None:
    assert await first_message_code("sslmode=disable") == [PROTOCOL_3]
    assert await first_message_code("sslmode=require") == [SSL_REQUEST_CODE]
    assert await first_message_code("ssl=disable") == [PROTOCOL_3]  # asyncpg's own spelling, as before


@pytest.mark.parametrize(("query", "message"), [("sslmode=sometimes", "sslmode='sometimes' is not one of"),
                                                ("sslmode=require&ssl=disable", "disagree")])
async def test_a_bad_sslmode_is_refused_before_connecting(query: str, message: str) -> None:
    stage = FirstMessage()
    port = await stage.start()
    engine = create_async_engine(f"postgresql+asyncpg://cbe:secret@127.0.0.1:{port}/cbe?{query}", poolclass=NullPool)
    try:
        with pytest.raises(ValueError, match=message):
            async with engine.connect():
                pass
    finally:
        await engine.dispose()
        await stage.stop()
    assert stage.codes == []


async def test_a_store_opens_on_postgresql_with_sslmode_disable(postgres) -> None:
    store = await Store.open(postgres.new_database() + "?sslmode=disable")
    try:
        async with store.engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await store.close()
