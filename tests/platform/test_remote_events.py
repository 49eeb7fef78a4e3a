"""Events from the platform process are taken in once, across a node's crash; requests replayed
with the same key are performed once. In-process: the platform app on a test server and
``RemotePlatform``s playing one node before and after a crash, with the storage batch built by
hand (what the session manager does around a commit)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.platform.remote import STATE_KEY, RemotePlatform
from engine.platform.server import PLATFORM_SERVER, create_platform_app
from engine.storage import UnitOfWork
from tests.callbacks.conftest import write_config
from tests.platform.test_remote_cluster import KEY
from tests.support.eventually import eventually


class Node:
    """One run of a node: its adapter, what reached its sessions, its batch hooks."""

    def __init__(self, url: str, stored: str | None = None):
        self.platform = RemotePlatform(url, "node-a", key=KEY)
        self.platform.load_state(stored)
        self.got: list[tuple[str, str, dict[str, Any]]] = []
        self.platform.attach(lambda sid, name, data: self.got.append((sid, name, data)))
        self.contributors: list = []
        self.after_commit: list = []
        self.platform.join_storage(self.contributors, self.after_commit, lambda: None)

    async def start(self) -> None:
        assert await self.platform.connect(None, 200.0, timeout=5) is not None
        self.platform.started()

    def store(self) -> str:
        """The batch a commit would write (the event numbers taken in), without the commit's ack."""
        unit = UnitOfWork()
        for contribute in self.contributors:
            contribute(unit)
        return unit.values[STATE_KEY]

    def committed(self) -> None:
        for hook in self.after_commit:
            hook()


async def test_an_event_stored_before_a_crash_is_not_taken_again(aiohttp_server, tmp_path: Path) -> None:
    app = create_platform_app(write_config(tmp_path), KEY)
    server = await aiohttp_server(app)
    platform = app[PLATFORM_SERVER]
    url = str(server.make_url("/")).rstrip("/")

    first = Node(url)
    await first.start()
    await first.platform.handle("s1", "vixn.create", {"queue": "Callback_VQ", "request_id": "s1.1"})
    await eventually(lambda: first.got, timeout=5, expected="vixn.created")
    assert [name for _, name, _ in first.got] == ["vixn.created"]
    await first.platform.close()  # crashed before its batch was stored: nothing acked

    second = Node(url)  # a restart that stored nothing: the event is sent again and taken in
    await second.start()
    await eventually(lambda: second.got, timeout=8, expected="vixn.created sent again")
    assert [name for _, name, _ in second.got] == ["vixn.created"]
    stored = second.store()  # stored, but the node dies before the commit's ack goes out
    await second.platform.close()
    assert len(platform.pending) == 1

    third = Node(url, stored)  # the restart that stored it: recognised, acked, not delivered again
    await third.start()
    await eventually(lambda: not platform.pending, timeout=8, expected="the event acked")
    assert third.got == []

    # the request replayed from the outbox after the crash: acked, not performed again
    await third.platform.handle("s1", "vixn.create", {"queue": "Callback_VQ", "request_id": "s1.1"})
    stats = platform.stats["node-a"]
    assert (stats.requests, stats.duplicates) == (1, 1)
    assert platform.simulator is not None and platform.simulator.queue_stats("Callback_VQ").waiting == 1
    third.committed()
    await third.platform.close()
