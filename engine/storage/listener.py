"""One LISTEN connection per cluster node (issue 14): PostgreSQL's notifications, fanned out to the
parts that subscribed to a channel.

A notification is only a wake-up call: PostgreSQL queues nothing for a listener that is not
connected, so whoever subscribes also looks for its work on its own (on every heartbeat) and is
told, through ``on_reconnect``, when the connection came back after a loss (notifications sent
meanwhile are gone: sweep). The connection is its own (``NullPool``): a pooled connection would
go back to the pool, and a listener must stay put. A connection that dies, or that stops
answering a probe (a cut cable closes nothing), is replaced with backoff.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

log = logging.getLogger("engine.cluster")

#: What a subscriber is handed: the notification's payload; it may be a coroutine function.
Subscriber = Callable[[str], Any]


class Listener:
    """``subscribe`` while the parts are built, ``start`` once, ``close`` at the end."""

    def __init__(self, url: str | URL, *, probe_seconds: float = 5.0, max_backoff: float = 5.0):
        self.url = url
        self.probe_seconds = probe_seconds
        self.max_backoff = max_backoff
        self.connected = asyncio.Event()
        self.reconnects = 0  # connections made after the first (for /health and the tests)
        self._subscribers: dict[str, list[Subscriber]] = {}
        self._sweeps: list[Callable[[], Any]] = []
        self._engine: AsyncEngine | None = None
        self._conn: AsyncConnection | None = None
        self._raw: Any = None  # the asyncpg connection of _conn
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[Any]] = set()  # subscribers' coroutines, held until done
        # asyncpg runs one operation at a time on a connection: the probe and the LISTENs of
        # channels subscribed after the start take turns (overlapping, they failed).
        self._using = asyncio.Lock()

    def subscribe(self, channel: str, callback: Subscriber) -> None:
        """Call ``callback(payload)`` for every notification on ``channel``."""
        first = channel not in self._subscribers
        self._subscribers.setdefault(channel, []).append(callback)
        if first and self._raw is not None:  # subscribed after start: listen on the live connection too
            self._spawn(self._listen_late(self._raw, channel))

    async def _listen_late(self, raw: Any, channel: str) -> None:
        """LISTEN on ``channel`` on the connection ``raw``, in turn with the other operations on it.
        If it fails, the connection is replaced: the next one listens on every channel."""
        async with self._using:
            if raw is not self._raw:  # replaced meanwhile: ``_connect`` listened on every channel
                return
            try:
                await asyncio.wait_for(raw.add_listener(channel, self._dispatch), self.probe_seconds)
            except Exception as e:
                log.warning("cluster: cannot listen on %s (%s); connecting the listener again", channel, e)
                self._lost.set()

    def on_reconnect(self, sweep: Callable[[], Any]) -> None:
        """Call ``sweep()`` (sync or async) after each reconnection: what was notified meanwhile is lost."""
        self._sweeps.append(sweep)

    async def start(self, timeout: float = 10.0) -> None:
        """Connect and listen; waits for the first connection up to ``timeout`` (then goes on
        trying in the background, with a warning)."""
        self._engine = create_async_engine(self.url, poolclass=NullPool,
                                           connect_args={"timeout": self.probe_seconds})
        self._task = asyncio.get_running_loop().create_task(self._run(), name="cluster listener")
        try:
            await asyncio.wait_for(self.connected.wait(), timeout)
        except TimeoutError:
            log.warning("cluster: the notification listener is not connected yet; it keeps trying")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self._disconnect()
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    # -- the connection --------------------------------------------------------------------------
    async def _run(self) -> None:
        delay = 0.1
        first = True
        while True:
            try:
                await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("cluster: cannot connect the notification listener (%s); retrying in %.1f s", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
                continue
            delay = 0.1
            if not first:
                self.reconnects += 1
                log.info("cluster: the notification listener is connected again; sweeping")
                for sweep in self._sweeps:
                    self._call(sweep)
            first = False
            await self._watch()
            self.connected.clear()
            await self._disconnect()

    async def _connect(self) -> None:
        assert self._engine is not None
        self._lost.clear()
        conn = await self._engine.connect()
        try:
            raw = (await conn.get_raw_connection()).driver_connection
            raw.add_termination_listener(lambda *_args: self._lost.set())
            for channel in self._subscribers:
                await raw.add_listener(channel, self._dispatch)
        except BaseException:
            await conn.close()
            raise
        self._conn, self._raw = conn, raw
        self.connected.set()

    async def _watch(self) -> None:
        """Until the connection is lost or stops answering a probe."""
        while True:
            try:
                await asyncio.wait_for(self._lost.wait(), self.probe_seconds)
                log.warning("cluster: the notification listener's connection was closed")
                return
            except TimeoutError:
                pass
            try:
                await asyncio.wait_for(self._probe(), self.probe_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("cluster: the notification listener's connection does not answer (%s)", e)
                return

    async def _probe(self) -> None:
        """``SELECT 1`` in turn with a late LISTEN; the caller's bound covers the wait for the turn
        too, so a LISTEN stuck on a cut connection cannot hold the watch."""
        async with self._using:
            await self._raw.fetchval("SELECT 1")

    async def _disconnect(self) -> None:
        conn, self._conn, self._raw = self._conn, None, None
        if conn is None:
            return
        try:
            await asyncio.wait_for(conn.close(), self.probe_seconds)
        except Exception:  # a dead connection: its socket goes with the engine
            if conn.sync_connection is not None and not conn.closed:
                conn.sync_connection.invalidate()

    # -- notifications -----------------------------------------------------------------------------
    def _dispatch(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        for callback in self._subscribers.get(channel, ()):
            self._call(callback, payload)

    def _call(self, callback: Callable[..., Any], *args: Any) -> None:
        try:
            result = callback(*args)
        except Exception:
            log.exception("cluster: a notification subscriber failed")
            return
        if inspect.isawaitable(result):
            self._spawn(result)

    def _spawn(self, awaitable: Any) -> None:
        task = asyncio.ensure_future(awaitable)
        self._running.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("cluster: a notification subscriber failed", exc_info=task.exception())
