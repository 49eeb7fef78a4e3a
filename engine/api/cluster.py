"""Requests that need the memory of the node holding a partition, forwarded to it (issue 14).

In a cluster a callback, its session and its deliveries live in one partition, held by one node
at a time; only that node may change them (its timers and its running session are there). A
request that changes one (cancel or reschedule a callback, its call-in, terminate a session,
replay a dead letter) may arrive at any node behind the load balancer; a node that does not hold
the partition sends it on to the one that does, with the same method, path, query, body and key,
marked ``x-cbe-forwarded: <this node>``, and passes the answer back. Reads need no forwarding:
they read the database.

A forwarded request is never forwarded again: a node that receives one for a partition it does
not hold (it moved meanwhile) answers 503 with ``Retry-After: 1``, so two nodes with different
views of the holders cannot bounce it between them. With no live holder (a node died and its
lease has not run out yet), the request waits, looking every 250 ms, for up to the lease plus
2 s; then 503. So does one for a partition this node is restoring or giving back (rebalance).
Without a cluster (SQLite, or PostgreSQL with ``cluster = false``) nothing here runs:
``forward`` answers None at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import ClientConnectorError, ClientError, ClientSession, ClientTimeout, ConnectionTimeoutError, web

from ..storage import StorageUnavailable
from ..storage.membership import CHANNEL as PARTITIONS_CHANNEL
from ..storage.membership import Membership
from ..storage.owners import Owner, Owners
from .appkeys import RUNTIME, SETTINGS
from .errors import error_response

log = logging.getLogger("engine.api")

FORWARDED = "x-cbe-forwarded"
POLL_SECONDS = 0.25  # how often a request without a live holder looks again
CONNECT_SECONDS = 2.0  # a holder not accepting a connection this long is taken as gone (nothing was sent)
# What the holder needs to answer as this node would have: the body's type, the key (in any of
# its forms: header, bearer token, the console's cookie with its CSRF token and origin), and a
# Basic HTTP event's origin (``_event.origin``).
PASSED_ON = ("Content-Type", "Accept", "x-api-key", "Authorization", "Cookie", "X-CSRF-Token", "Origin",
             "X-SCXML-Origin")
ANSWER_HEADERS = ("Content-Type", "Retry-After", "Allow")


class Forwarder:
    """This node's way to the holders of the partitions it does not hold."""

    def __init__(self, membership: Membership, owners: Owners, *, timeout: float, wait_for_holder: float,
                 connect_timeout: float = CONNECT_SECONDS):
        self.membership = membership
        self.owners = owners
        self.wait_for_holder = wait_for_holder
        self.forwarded = 0  # requests sent on so far (for the tests)
        self.http = ClientSession(timeout=ClientTimeout(total=timeout, sock_connect=min(timeout, connect_timeout)),
                                  auto_decompress=False)

    @property
    def node(self) -> str:
        return self.membership.node

    async def close(self) -> None:
        await self.http.close()

    async def forward(self, request: web.Request, partition: int) -> web.StreamResponse | None:
        """The holder's answer to ``request``, or None when this node holds ``partition`` (the
        caller handles it here). A partition this node is still restoring, or already giving
        back, is waited for: handled here once restored, sent to its next holder once given."""
        membership = self.membership
        if partition in membership.adopted:
            return None
        body = await request.read()
        deadline = asyncio.get_running_loop().time() + self.wait_for_holder
        trouble = ""
        while True:
            if partition in membership.adopted:  # restored here (meanwhile)
                return None
            if partition not in membership.held:
                if FORWARDED in request.headers:
                    return _retry_soon(f"partition {partition} is not held by node {self.node} (it is moving); "
                                       f"forwarded by node {request.headers[FORWARDED]}, not forwarded again")
                try:
                    owner = await self.owners.owner_of(partition)
                except StorageUnavailable as e:  # the database may be back before the deadline
                    owner, trouble = None, str(e)
                if owner is not None and owner.node != self.node and owner.url:
                    try:
                        return await self._send(request, body, owner)
                    except (ClientConnectorError, ConnectionTimeoutError) as e:  # nothing sent: the holder is gone
                        log.info("cluster: node %s (holding partition %d) cannot be reached: %s", owner.node,
                                 partition, e)
                        self.owners.invalidate()
                    except (ClientError, TimeoutError) as e:  # sent: it may or may not have been done
                        return _retry_soon(f"node {owner.node}, which holds partition {partition}, did not answer "
                                           f"({type(e).__name__}); the request may have been performed: check "
                                           f"before retrying")
            if asyncio.get_running_loop().time() >= deadline:
                return _retry_soon(f"no live node holds partition {partition} yet ({trouble}); retry" if trouble
                                   else f"no live node holds partition {partition} yet; retry")
            await asyncio.sleep(POLL_SECONDS)

    async def _send(self, request: web.Request, body: bytes, owner: Owner) -> web.Response:
        headers = {name: request.headers[name] for name in PASSED_ON if name in request.headers}
        headers[FORWARDED] = self.node
        url = owner.url.rstrip("/") + str(request.rel_url)
        async with self.http.request(request.method, url, data=body or None, headers=headers,
                                     allow_redirects=False) as r:
            answer = await r.read()
            kept = {name: r.headers[name] for name in ANSWER_HEADERS if name in r.headers}
        self.forwarded += 1
        log.debug("cluster: %s %s forwarded to node %s: %d", request.method, request.path, owner.node, r.status)
        return web.Response(status=r.status, body=answer, headers=kept)


def _retry_soon(message: str) -> web.Response:
    answer = error_response(503, message)
    answer.headers["Retry-After"] = "1"
    return answer


FORWARDER: web.AppKey[Forwarder] = web.AppKey("forwarder")


async def forward(request: web.Request, partition: int) -> web.StreamResponse | None:
    """The answer of the node holding ``partition``, or None when the request is this node's to
    handle: it holds the partition, or there is no cluster."""
    forwarder = request.app.get(FORWARDER)
    if forwarder is None:
        return None
    return await forwarder.forward(request, partition)


def install(app: web.Application) -> None:
    """Forward requests once the runtime runs, if it is a cluster node (a cleanup context after
    the runtime's: built once the runtime is, closed before it stops)."""
    app.cleanup_ctx.append(_forwarding)


async def _forwarding(app: web.Application) -> AsyncIterator[None]:
    runtime = app.get(RUNTIME)
    membership = runtime.membership if runtime is not None else None
    if membership is None or runtime is None or runtime.store is None:
        yield
        return
    settings = app[SETTINGS]
    owners = Owners(runtime.store)
    if runtime.listener is not None:
        runtime.listener.subscribe(PARTITIONS_CHANNEL, owners.invalidate)
    forwarder = Forwarder(membership, owners, timeout=settings.cluster_forward_timeout,
                          wait_for_holder=settings.cluster_lease_seconds + 2)
    app[FORWARDER] = forwarder
    try:
        yield
    finally:
        await forwarder.close()
