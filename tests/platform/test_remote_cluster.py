"""A cluster node's side of the platform process (``RemotePlatform.join_cluster``), in-process:
the platform app on a test server, one adapter whose storage batches are built by hand and whose
membership is a stand-in holding a few partitions. An event for a session not running here is
handed over (``send_to`` with its number as the source) and acked only after the batch after the
one being built, which is the first certain to have written the handoff; an event taken here for a
partition the write found fenced is not acked; the sessions of claimed partitions are bound,
again after a reconnect, and no longer once given back."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

from engine.ids import random_id_in
from engine.platform.remote import RemotePlatform
from engine.platform.server import PLATFORM_SERVER, RESEND_SECONDS, PlatformServer, create_platform_app
from engine.storage import UnitOfWork
from tests.callbacks.conftest import write_config
from tests.support.eventually import eventually

KEY = secrets.token_urlsafe(24)  # the platform_key of this run's in-process platforms and nodes


class Membership:
    """What ``join_cluster`` reads of a ``Membership``: the partitions held, the participants."""

    def __init__(self, held: dict[int, int]):
        self.held = held
        self.participants: list[Any] = []
        self.acting = True  # registered, with a lease, not leaving

    def join(self, participant: Any) -> None:
        self.participants.append(participant)


class ClusterNode:
    """One node: which sessions run here, what it handed over, its batch hooks."""

    def __init__(self, url: str, held: dict[int, int], running: list[str]):
        self.platform = RemotePlatform(url, "node-a", key=KEY)
        self.running = running
        self.got: list[tuple[str, str]] = []
        self.handed: list[tuple[str, str, str]] = []
        self.platform.attach(self.deliver)
        self.contributors: list = []
        self.after_commit: list = []
        self.platform.join_storage(self.contributors, self.after_commit, lambda: None)
        self.membership = Membership(held)
        self.platform.join_cluster(self.membership, self.send_to, lambda: list(self.running))

    def deliver(self, sid: str, name: str, data: dict[str, Any]) -> bool:
        if sid not in self.running:
            return False
        self.got.append((sid, name))
        return True

    def send_to(self, sid: str, event: Any, *, source: str | None = None) -> None:
        self.handed.append((sid, event.name, str(source)))

    async def start(self) -> None:
        assert await self.platform.connect(None, 200.0, timeout=5) is not None
        self.platform.started()

    def batch(self) -> None:
        """A batch built and committed (the manager writes the handoffs made before it first)."""
        unit = UnitOfWork()
        for contribute in self.contributors:
            contribute(unit)
        for hook in self.after_commit:
            hook()


async def serve(aiohttp_server, tmp_path: Path) -> tuple[str, PlatformServer]:
    app = create_platform_app(write_config(tmp_path), KEY)
    server = await aiohttp_server(app)
    return str(server.make_url("/")).rstrip("/"), app[PLATFORM_SERVER]


async def test_an_event_for_a_session_not_run_here_is_handed_over_and_acked_once_written(
        aiohttp_server, tmp_path: Path) -> None:
    url, platform = await serve(aiohttp_server, tmp_path)
    elsewhere = random_id_in(5)
    node = ClusterNode(url, {1: 1}, [])
    await node.start()
    try:
        platform._event(elsewhere, "vixn.created", {"n": 1})
        await eventually(lambda: node.handed, timeout=5, expected="the event handed over")
        assert node.handed == [(elsewhere, "vixn.created", f"p{platform.incarnation}:1")]
        assert node.got == [] and node.platform.handoffs == 1
        node.batch()  # built while the handoff may still be being written: not acked yet
        await asyncio.sleep(0.2)
        assert set(platform.pending) == {1}
        node.batch()  # the next one: written before it
        await eventually(lambda: not platform.pending, timeout=5, expected="the event acked")
        node.batch()
        assert platform.stats["node-a"].events_acked == 1
    finally:
        await node.platform.close()


async def test_an_event_of_a_partition_lost_by_the_write_is_not_acked(aiohttp_server, tmp_path: Path) -> None:
    url, platform = await serve(aiohttp_server, tmp_path)
    kept, lost = random_id_in(1), random_id_in(2)
    node = ClusterNode(url, {1: 1, 2: 1}, [kept, lost])
    await node.start()
    try:
        platform._event(kept, "vixn.created", {})
        platform._event(lost, "vixn.created", {})
        await eventually(lambda: len(node.got), lambda n: n == 2, timeout=5, expected="both taken here")
        node.membership.held.pop(2)  # the batch's write found partition 2 fenced: its rows left out
        node.batch()
        await eventually(lambda: set(platform.pending), lambda left: left == {2}, timeout=5,
                         expected="only the stored one acked")
        assert 2 not in node.platform._seen  # sent again, it is taken again (and handed over)
    finally:
        await node.platform.close()


async def test_a_node_leaving_or_without_a_lease_takes_no_event_and_acks_none(aiohttp_server, tmp_path: Path) -> None:
    url, platform = await serve(aiohttp_server, tmp_path)
    here, elsewhere = random_id_in(1), random_id_in(5)
    node = ClusterNode(url, {1: 1}, [here])
    await node.start()
    try:
        node.membership.acting = False  # a stop began (or the lease was lost): the others take over
        platform._event(here, "vixn.created", {})
        platform._event(elsewhere, "vixn.created", {})
        await asyncio.sleep(0.3)
        node.batch()
        await asyncio.sleep(0.2)
        assert node.got == [] and node.handed == []  # neither run here nor handed over...
        assert set(platform.pending) == {1, 2}  # ...nor acked: the platform sends them again
        node.membership.acting = True
        platform._event(here, "target.found", {})
        # taken once acting again, after the earlier event of its session, which the platform sends
        # again within its resend time: a session's events are not taken out of their order (both,
        # sent again, go through their sources)
        await eventually(lambda: [(sid, name) for sid, name, _source in node.handed if sid == here],
                         lambda got: got == [(here, "vixn.created"), (here, "target.found")],
                         timeout=RESEND_SECONDS + 5, expected="both taken once acting again, in their order")
        assert node.got == []
    finally:
        await node.platform.close()


async def test_claimed_sessions_are_bound_again_after_a_reconnect_and_no_longer_once_given_back(
        aiohttp_server, tmp_path: Path) -> None:
    url, platform = await serve(aiohttp_server, tmp_path)
    mine, other, later, quiet = random_id_in(3), random_id_in(4), random_id_in(6), random_id_in(3)
    elsewhere = dict.fromkeys((mine, other, later), "node-z")  # their requests came from another node
    platform.bound.update(elsewhere)
    node = ClusterNode(url, {3: 1, 4: 1}, [mine, other, quiet])
    (binding,) = node.membership.participants
    await binding.adopt({3: 1})  # before the connection: bound by the welcome
    await node.start()
    await eventually(lambda: dict(platform.bound), lambda b: b == {**elsewhere, mine: "node-a"}, timeout=5,
                     expected="partition 3 bound")
    assert quiet not in platform.bound  # no request, no events: nothing to remember
    await binding.adopt({4: 1})
    await eventually(lambda: dict(platform.bound), lambda b: b == {**elsewhere, mine: "node-a", other: "node-a"},
                     timeout=5, expected="partition 4 bound")
    node.running.append(later)  # partition 6 is not held here
    await binding.release({4: 1})
    platform.bound.update(elsewhere)
    try:
        for link in list(platform.links.values()):  # the connection drops; the node comes back
            await link.ws.close()
        await eventually(lambda: platform.stats["node-a"].connects, lambda n: n == 2, timeout=5,
                         expected="reconnected")
        await eventually(lambda: dict(platform.bound), lambda b: b == {**elsewhere, mine: "node-a"}, timeout=5,
                         expected="partition 3 bound again, 4 not")
        assert platform.stats["node-a"].bound == 3
    finally:
        await node.platform.close()
