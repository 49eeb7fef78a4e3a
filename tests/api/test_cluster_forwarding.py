"""Forwarding to the node holding a partition (engine/api/cluster.py), between two small aiohttp
apps standing for two nodes, each with the forwarder and a stand-in for the cluster's view of who
holds what: a request for a partition held elsewhere is answered by its holder, unchanged; a
forwarded request is never forwarded again; without a live holder the request waits, then gets a
503, unless the partition comes to this node meanwhile; without a cluster nothing is forwarded."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from engine.api.cluster import FORWARDED, FORWARDER, Forwarder, forward
from engine.storage import StorageUnavailable
from engine.storage.owners import Owner
from tests.support.ports import free_port

PARTITION = 5


class View:
    """Who holds what, as one node sees it: its own partitions and the holder it believes in."""

    def __init__(self, node: str, held: set[int], holder: Owner | None = None):
        self.node = node
        self.held = dict.fromkeys(held, 1)
        self.holder = holder
        self.restoring: set[int] = set()
        self.failing = False  # the database cannot be read
        self.asked = 0
        self.invalidated = 0

    @property
    def adopted(self) -> set[int]:
        """Restored (every part has taken them over): ``restoring`` are held but not yet."""
        return set(self.held) - self.restoring

    async def owner_of(self, partition: int) -> Owner | None:
        self.asked += 1
        if self.failing:
            raise StorageUnavailable("cannot read who holds the partitions: OperationalError")
        return self.holder

    def invalidate(self, _payload: str = "") -> None:
        self.invalidated += 1


class Node:
    def __init__(self, name: str, view: View, wait_for_holder: float = 5.0):
        self.name = name
        self.view = view
        self.forwarder = Forwarder(view, view, timeout=5, wait_for_holder=wait_for_holder,  # type: ignore[arg-type]
                                   connect_timeout=0.3)
        app = web.Application()
        app.router.add_route("*", "/things/{id}", self.handle)
        app[FORWARDER] = self.forwarder
        self.server = TestServer(app, port=free_port())
        self.handled = 0

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        answer = await forward(request, PARTITION)
        if answer is not None:
            return answer
        self.handled += 1
        return web.json_response({"node": self.name, "method": request.method, "query": dict(request.query),
                                  "body": await request.text(), "key": request.headers.get("x-api-key"),
                                  "forwarded_by": request.headers.get(FORWARDED)},
                                 status=201, headers={"Retry-After": "7"})


@pytest.fixture
async def nodes() -> AsyncIterator[list[Node]]:
    made: list[Node] = []

    async def cleanup() -> None:
        for node in made:
            await node.forwarder.close()
            await node.server.close()

    yield made
    await cleanup()


async def start(made: list[Node], *nodes: Node) -> None:
    for node in nodes:
        made.append(node)
        await node.server.start_server()


async def call(url: str, method: str = "PUT", **kw: Any) -> tuple[int, dict[str, str], Any]:
    async with ClientSession() as http, http.request(method, url, **kw) as r:
        return r.status, dict(r.headers), await r.json()


async def test_a_request_for_a_partition_held_elsewhere_is_answered_by_its_holder(nodes) -> None:
    b = Node("B", View("B", {PARTITION}))
    await start(nodes, b)
    a = Node("A", View("A", set(), Owner("B", b.url)))
    await start(nodes, a)
    status, headers, body = await call(f"{a.url}/things/x?when=now&n=2", json={"order": "A-18"},
                                       headers={"x-api-key": "k-1"})
    assert status == 201 and headers["Retry-After"] == "7"
    assert body == {"node": "B", "method": "PUT", "query": {"when": "now", "n": "2"}, "body": '{"order": "A-18"}',
                    "key": "k-1", "forwarded_by": "A"}
    assert (a.handled, b.handled, a.forwarder.forwarded, b.forwarder.forwarded) == (0, 1, 1, 0)
    status, _, body = await call(f"{b.url}/things/x", "DELETE")  # the holder handles its own at once
    assert status == 201 and body["node"] == "B" and b.view.asked == 0


async def test_a_forwarded_request_is_never_forwarded_again(nodes) -> None:
    """A believes B holds the partition, B believes A does (both out of date): the request goes
    from A to B once, and B answers 503 instead of sending it back."""
    a = Node("A", View("A", set()))
    b = Node("B", View("B", set()))
    await start(nodes, a, b)
    a.view.holder, b.view.holder = Owner("B", b.url), Owner("A", a.url)
    status, headers, body = await call(f"{a.url}/things/x", "DELETE", headers={"x-api-key": "k"})
    assert status == 503 and headers["Retry-After"] == "1", body
    assert "not forwarded again" in body["message"] and "forwarded by node A" in body["message"]
    assert (a.forwarder.forwarded, b.forwarder.forwarded, b.view.asked, a.handled, b.handled) == (1, 0, 0, 0, 0)


async def test_without_a_live_holder_the_request_waits_then_answers_503(nodes) -> None:
    a = Node("A", View("A", set()), wait_for_holder=0.6)
    await start(nodes, a)
    started = time.monotonic()
    status, headers, body = await call(f"{a.url}/things/x", "DELETE")
    waited = time.monotonic() - started
    assert status == 503 and headers["Retry-After"] == "1" and "no live node holds partition 5" in body["message"]
    assert 0.55 <= waited < 3, waited
    assert a.view.asked >= 3  # looked again every 250 ms
    assert a.handled == 0


async def test_a_partition_claimed_while_waiting_is_handled_here(nodes) -> None:
    a = Node("A", View("A", set()))
    await start(nodes, a)

    async def claim_soon() -> None:
        await asyncio.sleep(0.3)
        a.view.held[PARTITION] = 2

    claim = asyncio.create_task(claim_soon())
    status, _, body = await call(f"{a.url}/things/x", "PUT", data=b"k=v", headers={"x-api-key": "k"})
    await claim
    assert status == 201 and body["node"] == "A" and body["body"] == "k=v" and body["forwarded_by"] is None
    assert a.forwarder.forwarded == 0


async def test_an_unreachable_holder_is_looked_up_again(nodes) -> None:
    a = Node("A", View("A", set(), Owner("B", f"http://127.0.0.1:{free_port()}")), wait_for_holder=0.6)
    await start(nodes, a)
    status, _, body = await call(f"{a.url}/things/x", "DELETE")
    assert status == 503 and "no live node holds partition 5" in body["message"]
    assert a.view.invalidated >= 2 and a.forwarder.forwarded == 0


async def test_without_a_cluster_nothing_is_forwarded(nodes) -> None:
    app = web.Application()

    async def handle(request: web.Request) -> web.StreamResponse:
        return await forward(request, PARTITION) or web.json_response({"here": True})

    app.router.add_route("*", "/things/{id}", handle)
    server = TestServer(app, port=free_port())
    await server.start_server()
    try:
        status, _, body = await call(str(server.make_url("/things/x")), "DELETE")
    finally:
        await server.close()
    assert (status, body) == (200, {"here": True})


async def test_a_partition_held_but_not_restored_yet_is_waited_for(nodes) -> None:
    """Claimed, still being restored: neither forwarded nor handled until restored (even a
    forwarded request: this node is its holder now)."""
    a = Node("A", View("A", {PARTITION}, Owner("B", "http://127.0.0.1:9")))
    a.view.restoring.add(PARTITION)
    await start(nodes, a)

    async def restored_soon() -> None:
        await asyncio.sleep(0.4)
        a.view.restoring.clear()

    restore = asyncio.create_task(restored_soon())
    started = time.monotonic()
    status, _, body = await call(f"{a.url}/things/x", "DELETE", headers={FORWARDED: "B"})
    await restore
    assert status == 201 and body["node"] == "A" and time.monotonic() - started >= 0.35
    assert a.forwarder.forwarded == 0 and a.view.asked == 0


async def test_a_database_that_cannot_be_read_is_waited_for(nodes) -> None:
    b = Node("B", View("B", {PARTITION}))
    await start(nodes, b)
    a = Node("A", View("A", set(), Owner("B", b.url)), wait_for_holder=0.6)
    a.view.failing = True
    await start(nodes, a)
    status, _, body = await call(f"{a.url}/things/x", "DELETE")
    assert status == 503 and "cannot read who holds the partitions" in body["message"], body
    assert a.view.asked >= 3 and b.handled == 0

    async def readable_soon() -> None:
        await asyncio.sleep(0.3)
        a.view.failing = False

    back = asyncio.create_task(readable_soon())
    status, _, body = await call(f"{a.url}/things/x", "DELETE")
    await back
    assert status == 201 and body["node"] == "B"


async def test_a_holder_not_accepting_connections_is_looked_up_again(nodes) -> None:
    """A holder whose connections hang (its accept queue full, as a machine cut off would): given
    up after the connect timeout as one that is gone, since nothing was sent."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(0)
        fillers = []
        for _ in range(4):  # fill the accept queue: then the kernel drops new connection attempts
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(hung.getsockname())
            fillers.append(filler)
        await asyncio.sleep(0.1)
        try:
            a = Node("A", View("A", set(), Owner("B", f"http://127.0.0.1:{hung.getsockname()[1]}")),
                     wait_for_holder=1.0)
            await start(nodes, a)
            status, _, body = await call(f"{a.url}/things/x", "DELETE")
        finally:
            for filler in fillers:
                filler.close()
    assert status == 503 and "no live node holds partition 5" in body["message"], body
    assert a.view.invalidated >= 1 and a.forwarder.forwarded == 0
