"""Waiting in tests: poll a probe until it holds, or prove it stays false for a named window.

Asynchronous parts (sessions, writers, deliveries, real engine processes) settle at their own pace,
so a test either polls until what it expects is true (``eventually``), waits for a burst to be over
before comparing exactly (``settled``) or, to show something did NOT happen, watches an explicit
window (``stays_false``). Both say on failure what was expected and
the last value seen, so a red test reads without a debugger.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

_UNSEEN = object()


async def _call(probe: Callable[[], Any]) -> Any:
    value = probe()
    if inspect.isawaitable(value):
        value = await value
    return value


def _show(value: Any) -> str:
    if value is _UNSEEN:
        return "nothing (the probe never returned)"
    text = repr(value)
    return text if len(text) <= 2000 else text[:2000] + "…"


async def eventually(
    probe: Callable[[], Any],
    until: Callable[[Any], bool] = bool,
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    expected: str | None = None,
    ignoring: tuple[type[BaseException], ...] = (),
    seen: Callable[[Any], Any] | None = None,
) -> Any:
    """Call ``probe`` (sync or async) until ``until(value)`` holds; return that value.

    ``expected`` names the condition in the failure message; ``ignoring`` lists exceptions that mean
    "not yet" (a server still starting); ``seen`` turns the last value into the text the message shows.
    The probe is always called at least once, and once more at the deadline, so a slow probe cannot
    time out without a final look.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = _UNSEEN
    while True:
        try:
            last = await _call(probe)
        except ignoring as error:
            last = error
        else:
            if until(last):
                return last
        if loop.time() >= deadline:
            break
        await asyncio.sleep(min(interval, max(0.0, deadline - loop.time())))
    shown = str(seen(last)) if seen is not None and last is not _UNSEEN else _show(last)
    what = expected or getattr(until, "__name__", "the condition")
    raise AssertionError(f"after {timeout:g} s, still not {what}; last seen: {shown}")


async def stays_false(
    probe: Callable[[], Any],
    seconds: float,
    *,
    interval: float = 0.02,
    what: str = "the condition",
) -> None:
    """Watch ``probe`` for ``seconds``: fail as soon as it is truthy (something that must not happen did).

    The window is the claim: "nothing happened within ``seconds``" - it is checked throughout and at
    its end, never only slept through.
    """
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while True:
        value = await _call(probe)
        if value:
            raise AssertionError(f"{what} happened within the {seconds:g} s window: {_show(value)}")
        if loop.time() >= end:
            return
        await asyncio.sleep(min(interval, max(0.0, end - loop.time())))


async def settled(
    probe: Callable[[], Any],
    seconds: float,
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "the value",
) -> Any:
    """Return ``probe``'s value once it has not changed for ``seconds`` (stragglers have arrived).

    For counts that must be exact once a burst is over: wait for the burst to end, then compare.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = await _call(probe)
    since = loop.time()
    while True:
        await asyncio.sleep(interval)
        value = await _call(probe)
        if value != last:
            last, since = value, loop.time()
        elif loop.time() - since >= seconds:
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"{what} still changing after {timeout:g} s; last seen: {_show(last)}")
