"""How a cluster node names the platform events it takes in (``event_sources.py``): the platform
marks an event it sends again; a node writes the source of an event taken here with the batch that
stores it (with the session's partition, for the fence) and takes an event sent again through its
source, even for a session running here; the platform state another node stored is not trusted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.ids import partition_of, random_id_in
from engine.platform.event_sources import SOURCES, source_of
from engine.platform.remote import STATE_KEY, RemotePlatform
from engine.platform.server import Link, PlatformServer
from engine.storage import UnitOfWork
from tests.platform.test_remote_cluster import ClusterNode, Membership, serve
from tests.support.eventually import eventually


def _frames(link: Link) -> list[dict[str, Any]]:
    found = []
    while not link.out.empty():
        text = link.out.get_nowait()
        assert text is not None
        found.append(json.loads(text))
    return [f for f in found if f["t"] == "ev"]


def test_the_platform_marks_an_event_it_sends_again(tmp_path: Path) -> None:
    server = PlatformServer(tmp_path)
    link = Link("node1", ws=None)  # type: ignore[arg-type]  # frames are read from its queue
    server.links["node1"] = link
    server._event("s1", "route.done", {})
    (first,) = _frames(link)
    assert "again" not in first
    server._send_event(server.pending[1])  # not acked in time: out again
    (again,) = _frames(link)
    assert again["seq"] == 1 and again["again"] == 1


def written(node: ClusterNode) -> UnitOfWork:
    """One batch built and committed; returned for a look at its rows."""
    unit = UnitOfWork()
    for contribute in node.contributors:
        contribute(unit)
    for hook in node.after_commit:
        hook()
    return unit


async def test_an_event_taken_here_is_stored_with_its_source_one_sent_again_goes_through_it(
        aiohttp_server, tmp_path: Path) -> None:
    url, platform = await serve(aiohttp_server, tmp_path)
    here, elsewhere = random_id_in(1), random_id_in(5)
    node = ClusterNode(url, {1: 1}, [here])
    await node.start()
    try:
        platform._event(here, "vixn.created", {})
        platform._event(elsewhere, "vixn.created", {})
        await eventually(lambda: (node.got, node.handed), lambda got: got[0] and got[1], timeout=5,
                         expected="one taken here, one handed over")
        unit = written(node)
        # the handed-over one's source is written by the handoff's own statement, not here
        assert [(r["source"], r["part"]) for r in unit.upserts[SOURCES]] == \
            [(source_of(platform.incarnation, 1), partition_of(here))]
        assert node.handed == [(elsewhere, "vixn.created", source_of(platform.incarnation, 2))]
        # the platform's incarnation is stored once (a new one); no event numbers, batch after batch
        state = json.loads(unit.values[STATE_KEY])
        assert state["incarnation"] == platform.incarnation and state["seen"] == []
        assert not written(node).values
        await eventually(lambda: not platform.pending, timeout=5, expected="both acked")
        # sent again (the ack lost, or another node took it first): through its source, not the sink
        frame = {"t": "ev", "seq": 7, "sid": here, "name": "vixn.created", "data": {}, "again": 1}
        node.platform._frame(frame)
        assert node.got == [(here, "vixn.created")]
        assert node.handed[-1] == (here, "vixn.created", source_of(platform.incarnation, 7))
        assert node.platform.taken_again == 1 and node.platform.handoffs == 1
        assert SOURCES not in written(node).upserts  # its source is the handoff's
        assert 7 not in node.platform._seen  # a copy sent again goes the same way
        # the first copy taken here and sent again on the same connection: known here, acked again
        node.platform._frame({**frame, "seq": 1, "floor": 1})
        assert node.platform.taken_again == 1 and len(node.handed) == 2
    finally:
        await node.platform.close()


def test_a_cluster_node_does_not_trust_the_event_numbers_another_node_stored() -> None:
    # the last writer's state: number 1 was in a batch whose fence refused it (never stored)
    stored = json.dumps({"incarnation": "p1", "floor": 0, "seen": [1]})
    alone = RemotePlatform("http://platform.invalid", "node-a")
    alone.load_state(stored)
    assert alone._seen == {1}  # one engine on its own database: its own numbers, acked when sent again
    member = RemotePlatform("http://platform.invalid", "node-a")
    member.load_state(stored)
    member.join_cluster(Membership({1: 1}), lambda *_a, **_k: None, list)  # type: ignore[arg-type]
    assert member._seen == set() and member.platform_incarnation == "p1"
