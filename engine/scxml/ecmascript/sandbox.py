"""A JavaScript context for one session, bounded: CPU time per evaluation, memory per context.

quickjs-ng gives each ``Context`` its own runtime, so the memory limit is the session's alone,
and its CPU limit applies to each call from Python. With a time limit set the context refuses
calls into Python, which is what we want: nothing of the host is reachable from a flow.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from typing import Any

import quickjs

from .prelude import PRELUDE


@dataclass(frozen=True)
class SandboxLimits:
    """``cpu_seconds``: CPU time one evaluation (a condition, an expression, a ``<script>``) may
    use; ``memory_bytes``: what one session's context may allocate; ``live_contexts``: contexts
    kept between events (least recently used dropped first); ``idle_seconds``: how long an idle
    session keeps its context before it is dropped (rebuilt from its saved data when needed)."""

    cpu_seconds: float = 0.2
    memory_bytes: int = 32 * 1024 * 1024
    stack_bytes: int = 512 * 1024
    live_contexts: int = 256
    idle_seconds: float = 2.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"ecmascript limit {f.name} must be a positive number, not {value!r}")


class ScriptError(Exception):
    """An evaluation failed; the message is the first line of the engine's error."""


def new_context(limits: SandboxLimits) -> Any:
    """A context with the prelude loaded and the limits set."""
    return new_session_context(limits)[0]


def new_session_context(limits: SandboxLimits) -> tuple[Any, Any]:
    """``(context, api)``: a context as ``new_context`` builds it, and the function that gives
    the prelude's functions by name (``api("load")``)."""
    ctx = quickjs.Context()
    ctx.set_memory_limit(limits.memory_bytes)
    ctx.set_max_stack_size(limits.stack_bytes)
    ctx.set_time_limit(max(limits.cpu_seconds, 0.5))  # the prelude itself, even on a busy machine
    api = ctx.eval(PRELUDE)
    ctx.set_time_limit(limits.cpu_seconds)
    return ctx, api


# Evaluations of one session cpu_seconds may stop within a second; one more fails the session.
INTERRUPTIONS_PER_SECOND = 3
_INTERRUPTED = "InternalError: interrupted"  # the first line of QuickJS's error when the time limit stops code


def interrupted(error: BaseException) -> bool:
    """Whether ``error`` is an evaluation stopped by the CPU time limit: QuickJS's own error, not
    a script's ``throw 'interrupted'`` or ``new Error('interrupted')``."""
    text = str(error).strip()
    return (text.splitlines()[0] if text else "") == _INTERRUPTED


def describe(error: BaseException, limits: SandboxLimits) -> str:
    """What went wrong, in one line, naming the limit when one stopped the script."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    if first == _INTERRUPTED:
        return f"stopped after {limits.cpu_seconds:g} s of CPU time (the ecmascript limit cpu_seconds)"
    if "out of memory" in first:
        return f"went over {limits.memory_bytes // (1024 * 1024)} MB (the ecmascript limit memory_bytes)"
    if "stack overflow" in first.lower() or isinstance(error, quickjs.StackOverflow):
        return "stack overflow (recursion too deep)"
    return first


def position(error: BaseException) -> tuple[int, int] | None:
    """``(line, column)`` of a syntax error in the text given to ``eval``."""
    for line in str(error).splitlines()[1:]:
        marker = line.rfind("<input>:")
        if marker >= 0:
            parts = line[marker + len("<input>:"):].rstrip(")").split(":")
            try:
                return int(parts[0]), int(parts[1])
            except (ValueError, IndexError):
                return None
    return None


class SyntaxChecker:
    """Compiles wrapped source without running it, one bare context per thread."""

    def __init__(self) -> None:
        self._local = threading.local()

    def check(self, source: str) -> BaseException | None:
        ctx = getattr(self._local, "ctx", None)
        if ctx is None:
            ctx = self._local.ctx = quickjs.Context()
            ctx.set_time_limit(1.0)
            ctx.set_memory_limit(16 * 1024 * 1024)
        try:
            ctx.eval(source)
        except Exception as e:  # quickjs.JSException, StackOverflow
            return e
        return None
