"""A malformed request (not HTTP enough to reach a handler) is answered 400 and logged as one short
line, never an ERROR with a traceback, and at most a few such lines a minute: a client cannot fill
the log with them. Tried with a raw socket against a real engine process."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiohttp.http_exceptions import BadHttpMessage

from engine.api.malformed import MalformedRequests
from tests.conftest import REPO
from tests.support.engine_process import ADMIN_KEY, EngineProcess

MALFORMED = [
    b"GET /health HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n",  # a NUL byte in a header
    b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n",  # a space in a header name
    b"GET /health HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20000 + b"\r\n\r\n",  # an oversized header
    b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",  # two lengths
    b"GET / HTTP/1.1 x\r\nHost: x\r\n\r\n",  # a bad request line
]


async def raw(port: int, request: bytes) -> bytes:
    """Send bytes as they are; the answer's status line."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


async def test_malformed_requests_are_answered_400_and_logged_short(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path / "data", REPO / "scxml")
    await engine.start()
    try:
        for request in MALFORMED:
            assert status_of(await raw(engine.port, request)) == 400, request[:60]
        for _ in range(30):  # a flood
            assert status_of(await raw(engine.port, MALFORMED[0])) == 400
        # The engine still serves.
        status = await raw(engine.port, f"GET /admin/keys HTTP/1.1\r\nHost: x\r\nx-api-key: {ADMIN_KEY}\r\n"
                                        f"Connection: close\r\n\r\n".encode())
        assert status_of(status) == 200
    finally:
        engine.stop()
    log = engine.log_path.read_text()
    lines = [line for line in log.splitlines() if "malformed request" in line]
    assert "Traceback" not in log and "Error handling request" not in log, log[-3000:]
    assert len(lines) == 10, lines  # MalformedRequests' default: 10 a minute, the flood left out
    assert all("WARNING" in line and "answered 400" in line and len(line) < 400 for line in lines), lines
    assert any("Invalid header value char" in line for line in lines), lines
    assert "\x00" not in log


def test_the_filter_limits_lines_per_window_and_says_how_many_it_left_out() -> None:
    now = [0.0]
    quiet = MalformedRequests(limit=2, window=60, clock=lambda: now[0])
    logger = logging.getLogger("test.malformed")

    def record(error: BaseException | None) -> logging.LogRecord:
        exc_info = (type(error), error, None) if error is not None else None
        return logger.makeRecord(logger.name, logging.ERROR, __file__, 1, "Error handling request from %s",
                                 ("10.0.0.7",), exc_info)

    bad = BadHttpMessage("Invalid header value char:\n\n  b'X: a\\x00'\n  ^\x07")
    kept = [r for r in (record(bad) for _ in range(5)) if quiet.filter(r)]
    assert [r.getMessage() for r in kept] == [
        "malformed request from 10.0.0.7 answered 400: Invalid header value char: b'X: a\\x00' ^?"] * 2
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in kept)
    now[0] = 61.0
    later = record(bad)
    assert quiet.filter(later) and later.getMessage().endswith("(3 more left out of the log before this one)")
    engine_error = record(RuntimeError("a bug of ours"))  # anything else keeps its level and traceback
    assert quiet.filter(engine_error) and engine_error.levelno == logging.ERROR and engine_error.exc_info
