"""The dispatcher's parts for a cluster node (issue 14): deliveries taken over from the database
join their key's queue in id order (never ahead of the attempt in flight, never twice); a node
whose lease may not outlast an attempt starts none until it may; the deliveries of partitions that
left are forgotten, their attempts in flight finishing or cancelled."""

from __future__ import annotations

import asyncio

from engine.notifications.delivery import DEAD, Delivery, Dispatcher
from engine.scxml.clock import Clock

from .dispatcher_host import Host


class Sender:
    """A delivery type of our own: records what it is handed; ``gate`` holds every attempt."""

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.started = asyncio.Event()

    async def __call__(self, d: Delivery) -> None:
        self.started.set()
        await self.gate.wait()
        self.sent.append(d.id)


def delivery(delivery_id: int, key: str = "test|t|orders/1", status: str = "pending") -> Delivery:
    return Delivery(id=delivery_id, key=key, type="test", target="t", device_id="t", message={"n": delivery_id},
                    webhook_id=f"w{delivery_id}", max_attempts=3, created_at=0.0, status=status)


def dispatcher() -> tuple[Dispatcher, Sender]:
    d = Dispatcher(Clock(), Host(), None, None)  # type: ignore[arg-type]  # no HTTP delivery here
    sender = Sender()
    d.senders["test"] = sender
    return d, sender


async def until(check, timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not within the time"
        await asyncio.sleep(0.01)


async def test_taken_deliveries_join_their_key_in_id_order_once() -> None:
    d, sender = dispatcher()
    sender.gate.clear()
    d.submit(delivery(10))
    await sender.started.wait()  # 10 is being attempted
    d.submit(delivery(30))
    assert d.take(delivery(20)) and d.take(delivery(5))
    assert not d.take(delivery(20)) and not d.take(delivery(10))  # already here
    assert d.take(delivery(7, status=DEAD)) and not d.take(delivery(7, status=DEAD))
    assert [x.id for x in d.queues["test|t|orders/1"]] == [10, 5, 20, 30]  # none ahead of the one in flight
    sender.gate.set()
    await until(lambda: len(sender.sent) == 4)
    assert sender.sent == [10, 5, 20, 30] and list(d.dead) == [7]
    await d.close()


async def test_no_attempt_starts_while_the_lease_may_not_outlast_it() -> None:
    d, sender = dispatcher()
    lease_ok = False
    d.may_attempt = lambda: lease_ok
    d.submit(delivery(1))
    await asyncio.sleep(0.4)
    assert sender.sent == [] and "test|t|orders/1" not in d.busy
    lease_ok = True  # renewed: the key looks again by itself
    await until(lambda: sender.sent == [1])
    await d.close()


async def test_forgotten_keys_finish_or_cancel_their_attempt_in_flight() -> None:
    d, sender = dispatcher()
    sender.gate.clear()
    d.submit(delivery(1, key="test|t|a"))
    d.submit(delivery(2, key="test|t|a"))
    d.submit(delivery(3, key="test|t|b", status=DEAD))
    await sender.started.wait()
    busy = d.forget(lambda key: key.endswith("|a") or key.endswith("|b"), cancel=False)
    assert busy == {"test|t|a"} and "test|t|a" not in d.queues and not d.dead
    sender.gate.set()  # the attempt in flight finishes; the one queued behind it is gone
    await until(lambda: not d.busy)
    assert sender.sent == [1]

    sender.gate.clear()
    sender.started.clear()
    d.submit(delivery(4, key="test|t|c"))
    await sender.started.wait()
    assert d.forget(lambda key: key.endswith("|c"), cancel=True) == set()
    await until(lambda: not d.busy)
    sender.gate.set()
    await asyncio.sleep(0.05)
    assert sender.sent == [1]  # cancelled, never completed
    await d.close()


async def test_a_key_whose_attempt_was_cancelled_before_it_began_is_carried_out_when_taken_again() -> None:
    """A partition dropped in the very turn its delivery was submitted: the draining task was
    cancelled before its first step, so its body (and the ``finally`` that frees the key) never
    ran. The key stayed busy for good, and the delivery taken again once the partition was
    claimed anew was never attempted on this node."""
    d, sender = dispatcher()
    d.submit(delivery(1, key="test|t|a"))  # its task is created, not yet started
    assert d.forget(lambda key: key == "test|t|a", cancel=True) == set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert "test|t|a" not in d.busy
    assert d.take(delivery(1, key="test|t|a"))
    await until(lambda: sender.sent == [1])
    await d.close()


async def test_a_delivery_taken_while_the_cancelled_task_is_still_winding_down_goes_out() -> None:
    """The same drop, and the partition claimed anew before the cancelled task's end was seen:
    the delivery taken meanwhile waited behind a key that was still busy."""
    d, sender = dispatcher()
    d.submit(delivery(1, key="test|t|a"))
    d.forget(lambda key: key == "test|t|a", cancel=True)
    assert d.take(delivery(1, key="test|t|a"))  # the key is still busy here
    await until(lambda: sender.sent == [1])
    assert not d.busy
    await d.close()
