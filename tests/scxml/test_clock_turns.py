"""The engine clock's timers and the loop's turns, as asyncio ran them when each was a TimerHandle:
a timer set during a loop turn never runs in that turn (not even when the clock's one asyncio
timer is already due in it), a KeyboardInterrupt out of one timer loses none of the others due
with it, and a failed arm leaves the clock working."""

from __future__ import annotations

import asyncio
import threading
import time

from engine.scxml.clock import Clock
from tests.platform.helpers import config, make


async def test_a_timer_set_by_a_callback_of_the_turn_the_clock_wakes_in_waits_for_the_next_turn() -> None:
    """asyncio takes the timers due at the start of a turn and runs them with what is ready: a
    timer set by one of those (here ``step``, a plain loop callback) runs on a later turn, after
    what that callback gave ``call_soon``. The clock's wake is due in the same turn as ``step``."""
    loop = asyncio.get_running_loop()
    clock, ran = Clock(), []

    def step() -> None:
        clock.call_later(0, ran.append, "zero-delay timer")
        loop.call_soon(ran.append, "call_soon")

    loop.call_later(0.005, step)
    clock.call_later(0.01, ran.append, "other timer")  # the clock's wake: due in the turn step runs in
    time.sleep(0.03)  # the loop is held: both are due on its next turn
    await asyncio.sleep(0.05)
    assert ran == ["other timer", "call_soon", "zero-delay timer"]


async def test_the_simulator_answers_a_step_s_requests_in_order_though_an_engine_timer_is_due() -> None:
    """A session step asks for an interaction, then a treatment of 0 s: ``vixn.created`` (held
    back to the next turn, as every answer is) must still come before ``treatment.done``."""
    loop = asyncio.get_running_loop()
    sim, rec, clock = make(config(), scale=1.0)

    def step() -> None:
        sim.handle("s1", "vixn.create", {"queue": "Q", "request_id": 1})
        sim.handle("s1", "treatment.play", {"seconds": 0, "request_id": 2})

    loop.call_later(0.005, step)
    clock.call_later(0.01, lambda: None)  # any other engine timer due in the same turn
    time.sleep(0.03)
    await rec.until(lambda: len(rec.events) >= 2, timeout=2)
    assert [name for _, _, name, _ in rec.events] == ["vixn.created", "treatment.done"]
    sim.close()


def test_a_keyboard_interrupt_out_of_a_timer_loses_none_of_the_others_due_with_it() -> None:
    """asyncio leaves the handles still ready where they were, to run when the loop runs again."""
    loop = asyncio.new_event_loop()
    ran: list[str] = []

    def interrupted() -> None:
        raise KeyboardInterrupt

    async def main() -> None:
        clock = Clock()
        clock.call_later(0.01, interrupted)
        clock.call_later(0.01, ran.append, "due with it")
        clock.call_later(0.02, ran.append, "due later")
        await asyncio.sleep(1)

    try:
        try:
            loop.run_until_complete(main())
        except KeyboardInterrupt:
            pass
        loop.run_until_complete(asyncio.sleep(0.05))
    finally:
        loop.close()
    assert ran == ["due with it", "due later"]


async def test_a_timer_that_could_not_be_armed_leaves_the_clock_working() -> None:
    """A call that fails (here from another thread, which a loop in debug mode refuses) must not
    leave the clock believing a wake is armed: the timers set afterwards would never run."""
    loop = asyncio.get_running_loop()
    clock, ran, failed = Clock(), [], []
    assert clock.loop is loop  # bound to this loop before the other thread uses it
    debug = loop.get_debug()

    def elsewhere() -> None:
        try:
            clock.call_later(0, ran.append, "from another thread")
        except RuntimeError as exc:
            failed.append(exc)

    loop.set_debug(True)
    try:
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
    finally:
        loop.set_debug(debug)
    assert failed, "a loop in debug mode refuses call_at from another thread"
    clock.call_later(0.01, ran.append, "set afterwards")
    await asyncio.sleep(0.05)
    assert ran == ["set afterwards"]
