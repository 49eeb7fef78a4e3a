"""A stand-in for a database's listening socket: a loopback server on a free port whose
connections a subclass serves (``serve``), for tests of what a client sends first."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod


class LoopbackServer(ABC):
    def __init__(self) -> None:
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen on 127.0.0.1 and return the port."""
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    @abstractmethod
    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Handle one connection (the subclass's part of the conversation)."""

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
