"""Bounded stop steps: a process asked to stop must stop, and say what held it up.

A part whose close waits on something that never comes (a cancel lost inside a driver call, a
peer that never answers) would otherwise keep the whole process up until it is killed, with
nothing in the log to tell which part it was. Each step gets a time limit; one that overruns is
logged with the stack of every pending task and left behind, and the next step runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

log = logging.getLogger(__name__)

#: Stack frames shown per pending task when a step overruns: enough to see where it waits.
FRAMES_SHOWN = 12
#: Pending tasks listed at most (the engine may run thousands of sessions' tasks).
TASKS_SHOWN = 40


async def bounded_step(name: str, step: Awaitable[Any], seconds: float) -> bool:
    """Run ``step`` for at most ``seconds``; True when it finished in time. Its own failure is
    logged and counts as finished (stopping goes on either way)."""
    task = asyncio.ensure_future(step)
    try:
        done, _ = await asyncio.wait([task], timeout=seconds)
    except asyncio.CancelledError:  # the stop itself was cancelled: so is the step (wait leaves it running)
        task.cancel()
        raise
    if not done:
        log.error("stopping: %s did not finish within %g s; going on without it. Pending tasks:\n%s",
                  name, seconds, pending_stacks(exclude=asyncio.current_task()))
        task.cancel()
        return False
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("stopping: %s failed: %s", name, error, exc_info=error)
    return True


def pending_stacks(exclude: asyncio.Task[Any] | None = None) -> str:
    """Where each pending task of the running loop waits: its chain of awaits, outermost first,
    down to what it waits on. (``Task.get_stack`` shows a suspended task's outermost frame only.)"""
    tasks = [t for t in asyncio.all_tasks() if t is not exclude and not t.done()]
    lines = [f"{task.get_name()}: {' > '.join(await_chain(task.get_coro()))}" for task in tasks[:TASKS_SHOWN]]
    if len(tasks) > TASKS_SHOWN:
        lines.append(f"... and {len(tasks) - TASKS_SHOWN} more tasks")
    return "\n".join(lines) or "(none)"


def await_chain(awaitable: object) -> list[str]:
    """``file:line function`` of each coroutine or generator awaited in turn, then the object the
    innermost one waits on (a future, a lock's waiter...)."""
    chain: list[str] = []
    while awaitable is not None and len(chain) < FRAMES_SHOWN:
        frame = (getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
                 or getattr(awaitable, "ag_frame", None))
        if frame is None:
            if type(awaitable).__name__ != "FutureIter":  # a bare future's iterator tells nothing more
                chain.append(_short(repr(awaitable)))
            break
        code = frame.f_code
        chain.append(f"{code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno} {code.co_qualname}")
        awaitable = (getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
                     or getattr(awaitable, "ag_await", None))
    return chain


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
