"""A platform event handed over through its source (one the platform sent ``again``) and a later
event of the same session taken straight in reach the session in the order they came, even when
both come while the writer is busy handing over earlier sourced events.

The proof test lost a ``call.ended`` this way: after a node's SIGTERM the next holder got the
left ``route.done`` again (through its source) and the ``call.ended`` after it (taken straight
in). Both came while the writer awaited an earlier handoff; the batch built after that await
carried ``call.ended`` and released it after its commit, while ``route.done`` waited for the next
batch's handoff. The flow, still in ``route``, discarded ``call.ended``, then took ``route.done``
and waited in ``with_agent`` for ever."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from engine.ids import PARTITIONS
from engine.scxml import Event
from engine.sessions import rows
from tests.cluster.test_sessions_cluster import COUNTER, Node
from tests.support.eventually import eventually


@pytest.fixture
async def node(postgres, tmp_path: Path):
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "counter.scxml").write_text(COUNTER)
    alone = await Node("alone", postgres.new_database(), folder).start()
    await eventually(lambda: len(alone.membership.adopted), lambda n: n == PARTITIONS, timeout=15, interval=0.05,
                     expected="the one node holding every partition")
    yield alone
    await alone.stop()


async def test_a_sourced_event_is_not_overtaken_by_a_later_direct_one(node, monkeypatch) -> None:
    manager = node.manager
    session = manager.start_flow("counter")
    await manager.commit()

    real = rows.hand_over_sourced
    entered, gate = asyncio.Event(), asyncio.Event()

    async def held(*args, **kwargs) -> None:
        if not gate.is_set():  # the first handoff waits until the next two events have come
            entered.set()
            await gate.wait()
        await real(*args, **kwargs)

    monkeypatch.setattr(rows, "hand_over_sourced", held)
    manager.send_to(session.id, Event("go", {"k": 0}, type="external"), source="p-order:1")
    await asyncio.wait_for(entered.wait(), 5)  # the writer awaits the first handoff
    # Meanwhile: an event sent again (through its source: route.done), then a later one taken
    # straight in by the node running the session (call.ended, as the platform's sink gives it).
    manager.send_to(session.id, Event("go", {"k": 1}, type="external"), source="p-order:2")
    manager.route_event(None, session, Event("go", {"k": 2}, type="external"))
    gate.set()
    await eventually(lambda: len(session.variables["seen"]), lambda n: n == 3, timeout=5, interval=0.01,
                     expected="the three events processed")
    assert session.variables["seen"] == [0, 1, 2]


async def test_a_sourced_event_another_take_holds_is_not_overtaken(node, monkeypatch) -> None:
    """The writer's own take finds the sourced row already taken by another take (the heartbeat's,
    a notification's) whose delivery is still to come: the batch waits for that take, so the
    direct event it releases comes after."""
    manager = node.manager
    session = manager.start_flow("counter")
    await manager.commit()

    real_hand_over, real_take = rows.hand_over_sourced, rows.take_inbox
    slow: set[asyncio.Task] = set()

    async def take(*args, **kwargs):
        found = await real_take(*args, **kwargs)
        if asyncio.current_task() in slow:
            await asyncio.sleep(0.5)  # a take whose answer comes late (a busy loop, a slow connection)
        return found

    async def hand_over(*args, **kwargs) -> None:
        await real_hand_over(*args, **kwargs)
        # Another take gets in between the handoff and the writer's own take, and takes the row.
        other = asyncio.get_running_loop().create_task(manager._take())
        slow.add(other)
        await asyncio.sleep(0.1)
        manager.route_event(None, session, Event("go", {"k": 2}, type="external"))  # the direct one, after

    monkeypatch.setattr(rows, "take_inbox", take)
    monkeypatch.setattr(rows, "hand_over_sourced", hand_over)
    manager.send_to(session.id, Event("go", {"k": 1}, type="external"), source="p-order:3")
    await eventually(lambda: len(session.variables["seen"]), lambda n: n == 2, timeout=5, interval=0.01,
                     expected="the two events processed")
    assert session.variables["seen"] == [1, 2]
