"""The webhook dispatcher's HTTP client: a pool of kept-alive HTTP/1.1 connections, one POST at a
time on each, through the outbound URL policy.

Why not aiohttp's ``ClientSession``: each POST there built a ``ClientRequest``, went through the
connector's acquire and release, tracing and cookie hooks and a response object, about a quarter of
the engine's CPU per delivered notification. A webhook needs far less: write one request, read a
status and a few headers, drop the body.

What it keeps of the engine's outbound rules (``engine.urlpolicy``):

- every URL passes ``UrlPolicy.check`` (scheme, host, no userinfo, the allow list of origins, an
  IP-literal host's address);
- a host name is resolved by the policy's ``GuardedResolver`` and the socket connects to one of
  the addresses it allowed, never to the name again (no DNS rebinding between check and connect);
- TLS is verified against the system's trust store with the host name checked;
- one timeout bounds the whole exchange (waiting for a connection, connecting, the answer);
- redirects are never followed (a 3xx is returned like any status);
- an answer's body is counted, not kept: past ``max_body`` the connection is dropped;
- connections are reused while the peer keeps them alive, dropped on ``Connection: close``, on
  anything this client cannot frame, and after ``keepalive`` seconds idle; at most ``limit`` are
  open at once; when the policy's rules change (``reset``), none made before is used again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections import deque
from typing import NamedTuple

from aiohttp.abc import AbstractResolver
from yarl import URL

from ..urlpolicy import DEFAULT_PORTS, UrlPolicy
from .deadlines import Deadlines
from .http1 import ProtocolFault, ResponseReader, encode_request

Key = tuple[str, str, int]
TARGETS_KEPT = 4096


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]  # names in lower case


class _Connection(asyncio.Protocol):
    """One socket to one origin; carries one exchange at a time."""

    def __init__(self, client: WebhookClient, key: Key):
        self.client = client
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.reader: ResponseReader | None = None  # None: idle
        self.waiter: asyncio.Future[ResponseReader] | None = None
        self.closed = False  # the transport is gone
        self.dropped = False  # no longer counted by the pool
        self.idle_since = 0.0
        self.generation = client.generation  # the policy rules it was opened under

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def exchange(self, request: bytes, max_body: int) -> asyncio.Future[ResponseReader]:
        assert self.transport is not None
        self.reader = ResponseReader(max_body)
        self.waiter = asyncio.get_running_loop().create_future()
        if self.closed:  # the peer closed it after it was taken: nothing was sent
            self.waiter.set_exception(ProtocolFault("the peer had closed the connection"))
        else:
            self.transport.write(request)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        reader, waiter = self.reader, self.waiter
        if reader is None or waiter is None or waiter.done():
            self.abort()  # bytes nobody asked for: the framing of what follows cannot be trusted
            return
        try:
            complete = reader.feed(data)
        except ProtocolFault as e:
            waiter.set_exception(e)
            self.abort()
            return
        if complete:
            waiter.set_result(reader)

    def eof_received(self) -> bool:
        return False  # the transport closes; connection_lost settles the answer

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter, reader = self.waiter, self.reader
        if waiter is not None and not waiter.done() and reader is not None:
            if reader.closed():  # a body that ends with the connection
                waiter.set_result(reader)
            else:
                cause = f": {exc}" if exc else ""
                waiter.set_exception(ProtocolFault(f"the peer closed the connection before a complete answer{cause}"))
        elif reader is None:
            self.client._forget_idle(self)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class WebhookClient:
    """POSTs to webhook targets; ``post`` answers the status and headers, or raises ``UrlRefused``,
    ``AddressRefused``, ``TimeoutError`` or another ``OSError`` (``ProtocolFault`` among them)."""

    def __init__(self, policy: UrlPolicy, timeout: float, *, limit: int = 100, keepalive: float = 15.0,
                 max_body: int = 1 << 20, ssl_context: ssl.SSLContext | None = None):
        self.policy = policy
        self.timeout = timeout
        self.limit = limit
        self.keepalive = keepalive
        self.max_body = max_body
        self._ssl = ssl_context
        self._resolver: AbstractResolver | None = None  # made in the loop: aiohttp's binds to it
        self._idle: dict[Key, list[_Connection]] = {}
        self._live: set[_Connection] = set()
        self._open = 0  # connections counted against ``limit`` (connecting, busy or idle)
        self._waiters: deque[tuple[Key, asyncio.Future[_Connection | None]]] = deque()
        self._targets: dict[str, tuple[Key, str, str]] = {}  # target -> key, path, Host (``_target``)
        self._sweep: asyncio.TimerHandle | None = None
        self._deadlines = Deadlines()  # one timer for every post's timeout
        self._closed = False
        self.generation = 0  # bumped by ``reset``: connections of an older one are not reused
        policy.add_client(self)  # ``reset`` when the policy adopts new rules

    @property
    def open_connections(self) -> int:
        return self._open

    async def post(self, target: str, body: bytes, headers: dict[str, str]) -> Answer:
        url = self.policy.check(target)  # at every post: the rules may have changed since the last
        found = self._targets.get(target)
        key, path, host = found if found is not None else self._target(target, url)
        request = encode_request(path, host, headers, body)
        task = asyncio.current_task()
        assert task is not None
        cancelling = self._deadlines.start(task, self.timeout)
        try:
            return await self._exchange(key, request)
        except asyncio.CancelledError:
            if self._deadlines.expired(task, cancelling):
                raise TimeoutError(f"no complete answer within {self.timeout:g} s") from None
            raise
        finally:
            self._deadlines.finish(task)

    def reset(self) -> None:
        """The policy's rules changed: connections opened under the old ones (their addresses were
        checked by those rules) are not used again; those in flight finish and are then closed."""
        self.generation += 1
        for idle in self._idle.values():
            for conn in idle:
                self._drop(conn)
        self._idle.clear()

    async def close(self) -> None:
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
        for conn in list(self._live):
            conn.abort()
        self._idle.clear()
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None
        while self._waiters:
            _, waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectionAbortedError("the webhook client is closed"))

    # -- one exchange ----------------------------------------------------------------------
    async def _exchange(self, key: Key, request: bytes) -> Answer:
        fresh = False
        while True:
            # An idle connection without a detour through the pool's coroutine (the common case).
            conn = None if fresh else self._idle_connection(key)
            if conn is not None:
                reused = True
            else:
                conn, reused = await self._acquire(key, fresh)
            try:
                reader = await conn.exchange(request, self.max_body)
            except ProtocolFault:
                untouched = conn.reader is not None and not conn.reader.received
                self._drop(conn, abort=True)
                if reused and untouched:  # the peer closed it while idle: once more, on a new connection
                    fresh = True
                    continue
                raise
            except BaseException:
                self._drop(conn, abort=True)
                raise
            self._release(conn, reader.keep_alive and not reader.buffer and not conn.closed)
            return Answer(reader.status, reader.headers)

    def _target(self, target: str, url: URL) -> tuple[Key, str, str]:
        """The pool key, request path and ``Host`` header of a target URL the policy allowed, kept
        per target: they depend on its text alone, and reading them from the URL object again
        (several properties) at every post was a fifth of ``post``'s own time. Bounded."""
        key: Key = (url.scheme, url.raw_host or "", url.port or DEFAULT_PORTS[url.scheme])
        scheme, host, port = key
        shown = f"[{host}]" if ":" in host else host
        found = key, url.raw_path_qs or "/", shown if port == DEFAULT_PORTS[scheme] else f"{shown}:{port}"
        if len(self._targets) >= TARGETS_KEPT:
            self._targets.clear()
        self._targets[target] = found
        return found

    # -- the pool --------------------------------------------------------------------------
    async def _acquire(self, key: Key, fresh: bool) -> tuple[_Connection, bool]:
        """A connection to ``key`` and whether it carried an exchange before. At the limit, callers
        queue in order and each freed connection (or its slot) is handed to the first in line, so
        a key that keeps posting cannot starve the others."""
        if self._closed:
            raise ConnectionAbortedError("the webhook client is closed")
        if not fresh:
            conn = self._idle_connection(key)
            if conn is not None:
                return conn, True
        if not self._waiters:
            if self._open >= self.limit:
                self._evict_one_idle()
            if self._open < self.limit:
                self._open += 1
                return await self._connect_counted(key), False
        handed = await self._wait_turn(key)
        if handed is not None:
            if not fresh and not handed.closed:
                return handed, True
            self._retire(handed)  # its slot is ours
        return await self._connect_counted(key), False

    def _idle_connection(self, key: Key) -> _Connection | None:
        """The most recently used idle connection to ``key`` (likeliest still open at the peer)
        that is neither closed nor past ``keepalive``; those found unfit on the way are dropped."""
        idle = self._idle.get(key)
        if not idle:
            return None
        now = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self.keepalive:
                return conn
            self._drop(conn)
        return None

    async def _wait_turn(self, key: Key) -> _Connection | None:
        """Queue until a connection to ``key`` is handed over, or a slot (None) is."""
        waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
        entry = (key, waiter)
        self._waiters.append(entry)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                handed = waiter.result()  # given, but leaving: it goes to the next in line
                if handed is None:
                    self._slot_freed()
                else:
                    self._release(handed, True)
            else:
                try:
                    self._waiters.remove(entry)
                except ValueError:
                    pass
            raise

    async def _connect_counted(self, key: Key) -> _Connection:
        """A new connection on a slot already counted."""
        try:
            return await self._connect(key)
        except BaseException:
            self._slot_freed()
            raise

    async def _connect(self, key: Key) -> _Connection:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        context = self._context() if scheme == "https" else None
        try:
            ipaddress.ip_address(host)
            addresses = [(host, 0)]  # an IP literal: ``UrlPolicy.check`` already judged it
        except ValueError:
            if self._resolver is None:
                self._resolver = self.policy.resolver()
            found = await self._resolver.resolve(host, port, socket.AF_UNSPEC)  # only allowed addresses
            addresses = [(r["host"], r["family"]) for r in found]
        error: OSError | None = None
        for address, family in addresses:
            conn = _Connection(self, key)
            try:
                await loop.create_connection(lambda c=conn: c, address, port, ssl=context, family=family,
                                             server_hostname=host.rstrip(".") if context else None)
            except OSError as e:
                error = e
                continue
            self._live.add(conn)
            return conn
        assert error is not None
        raise error

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()  # verifies the chain and the host name
        return self._ssl

    def _release(self, conn: _Connection, keep: bool) -> None:
        conn.reader = conn.waiter = None
        if not keep or self._closed or conn.generation != self.generation or conn.closed:
            self._drop(conn)
            return
        first = self._first_waiter()
        if first is not None:
            if first[0] == conn.key:
                self._waiters.popleft()
                first[1].set_result(conn)
            else:
                self._drop(conn)  # its slot goes to the first in line, for another origin
            return
        conn.idle_since = asyncio.get_running_loop().time()
        self._idle.setdefault(conn.key, []).append(conn)
        if self._sweep is None:
            self._sweep = asyncio.get_running_loop().call_later(self.keepalive, self._expire_idle)

    def _drop(self, conn: _Connection, abort: bool = False) -> None:
        """Close ``conn`` and free its slot (once)."""
        if conn.dropped:
            return
        self._retire(conn, abort)
        self._slot_freed()

    def _retire(self, conn: _Connection, abort: bool = False) -> None:
        """Close ``conn``; its slot stays counted (the caller reuses it)."""
        conn.dropped = True
        self._live.discard(conn)
        conn.abort() if abort else conn.close()

    def _first_waiter(self) -> tuple[Key, asyncio.Future[_Connection | None]] | None:
        while self._waiters and self._waiters[0][1].done():
            self._waiters.popleft()
        return self._waiters[0] if self._waiters else None

    def _slot_freed(self) -> None:
        """A slot is free: the first in line takes it, else it is no longer counted."""
        first = self._first_waiter()
        if first is None:
            self._open -= 1
        else:
            self._waiters.popleft()
            first[1].set_result(None)

    def _forget_idle(self, conn: _Connection) -> None:
        """An idle connection the peer closed."""
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)
        self._drop(conn)

    def _evict_one_idle(self) -> None:
        """At the limit: close the longest-idle connection to any origin, to open one elsewhere."""
        oldest: list[_Connection] | None = None
        for idle in self._idle.values():
            if idle and (oldest is None or idle[0].idle_since < oldest[0].idle_since):
                oldest = idle
        if oldest:
            self._drop(oldest.pop(0))

    def _expire_idle(self) -> None:
        self._sweep = None
        now = asyncio.get_running_loop().time()
        for key in list(self._idle):
            idle = self._idle[key]
            while idle and now - idle[0].idle_since >= self.keepalive:
                self._drop(idle.pop(0))
            if not idle:
                del self._idle[key]
        if any(self._idle.values()):
            self._sweep = asyncio.get_running_loop().call_later(self.keepalive, self._expire_idle)
