"""The platform process sends a session's events in order, even when one went to a node that left."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.platform.server import Link, PlatformServer


def _link(node: str) -> Link:
    return Link(node, ws=None)  # type: ignore[arg-type]  # frames are read from its queue, never written


def _events(link: Link) -> list[tuple[int, str]]:
    frames: list[dict[str, Any]] = []
    while not link.out.empty():
        text = link.out.get_nowait()
        assert text is not None
        frames.append(json.loads(text))
    return [(f["seq"], f["name"]) for f in frames if f["t"] == "ev"]


def test_an_event_unacked_on_a_closed_connection_goes_again_before_the_next_one(tmp_path: Path) -> None:
    server = PlatformServer(tmp_path)
    node1, node2 = _link("node1"), _link("node2")
    server.links.update({"node1": node1, "node2": node2})
    server.bound["s1"] = "node2"
    server._event("s1", "route.done", {})
    assert _events(node2) == [(1, "route.done")]
    del server.links["node2"]  # node2 died before it stored route.done
    server._event("s1", "call.ended", {})
    assert _events(node1) == [(1, "route.done"), (2, "call.ended")]


def test_events_on_the_same_connection_are_not_sent_twice(tmp_path: Path) -> None:
    server = PlatformServer(tmp_path)
    node1 = _link("node1")
    server.links["node1"] = node1
    server.bound["s1"] = "node1"
    server._event("s1", "route.done", {})
    server._event("s2", "target.found", {})
    server._event("s1", "call.ended", {})
    assert _events(node1) == [(1, "route.done"), (2, "target.found"), (3, "call.ended")]
