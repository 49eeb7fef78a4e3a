"""Requests that are not HTTP enough to reach a handler (a NUL byte in a header, a bad request
line, an oversized header) are the client's fault: aiohttp answers 400 and would log an ERROR
with a full traceback each time, so any client could fill the log with them.

A filter on aiohttp's server logger turns each of those records into one short WARNING line (no
traceback) and lets at most ``limit`` of them through per ``window`` seconds; the next line let
through says how many were left out meanwhile. Errors of the engine itself keep their traceback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiohttp.http_exceptions import HttpProcessingError

SERVER_LOGGER = "aiohttp.server"
REASON_CHARS = 120


class MalformedRequests(logging.Filter):
    def __init__(self, limit: int = 10, window: float = 60.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.limit, self.window, self.clock = limit, window, clock
        self.window_start = float("-inf")
        self.logged = 0
        self.left_out = 0

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        now = self.clock()
        if now - self.window_start >= self.window:
            self.window_start, self.logged = now, 0
        if self.logged >= self.limit:
            self.left_out += 1
            return False
        self.logged += 1
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg = "malformed request from %s answered %s: %s%s"
        left_out = f" ({self.left_out} more left out of the log before this one)" if self.left_out else ""
        record.args = (remote, error.code, _reason(error), left_out)
        record.exc_info = record.exc_text = record.stack_info = None
        self.left_out = 0
        return True


def _reason(error: HttpProcessingError) -> str:
    """The parser's message on one line, short, without the client's raw bytes' control characters."""
    text = " ".join(str(error.message).split())
    return "".join(c if c.isprintable() else "?" for c in text)[:REASON_CHARS]


def quiet_malformed_requests(logger: logging.Logger | None = None) -> None:
    """Install the filter once (the app may be created more than once in a process)."""
    logger = logger or logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, MalformedRequests) for f in logger.filters):
        logger.addFilter(MalformedRequests())
