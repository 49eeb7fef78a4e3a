"""engine/logs.py: the fields given as ``extra=`` reach both formats (JSON keys; ``key=value`` after
a text message), a field cannot forge a line, and the time is one shape in each format."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re

from engine import logs
from engine.logs import FLUSH_SECONDS, info_line, setup_logging

FORGED = "2026-01-01 00:00:00,000 ERROR engine.api forged line"


def _logged(fmt: str, emit) -> list[str]:
    out = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    setup_logging("INFO", fmt, out)
    try:
        emit(logging.getLogger("engine.test_logs"))
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return out.getvalue().splitlines()


def test_json_lines_carry_the_fields_as_keys() -> None:
    def emit(log: logging.Logger) -> None:
        log.info("callback %s", "created", extra={"callback_id": "c1", "session_id": None, "service": "svc",
                                                   "attempts": 2, "nested": {"a": 1}, "odd": {1, 2}})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed\nhere")

    first, second = (json.loads(line) for line in _logged("json", emit))
    assert first == {"time": first["time"], "level": "INFO", "logger": "engine.test_logs",
                     "message": "callback created", "callback_id": "c1", "session_id": None, "service": "svc",
                     "attempts": 2, "nested": {"a": 1}, "odd": "{1, 2}"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert second["message"] == "failed\nhere" and "ValueError: boom" in second["exception"]


def test_text_lines_show_the_fields_and_stay_on_one_line() -> None:
    def emit(log: logging.Logger) -> None:
        log.info("callback created", extra={"callback_id": "c1", "session_id": None, "service": "svc"})
        log.warning("session failed", extra={"error": "bad\n" + FORGED})

    lines = _logged("text", emit)
    assert len(lines) == 2
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO engine.test_logs callback created "
                        r"callback_id=c1 service=svc", lines[0])  # a field without a value is left out
    assert lines[1].endswith("WARNING engine.test_logs session failed error=bad\\n" + FORGED)
    assert not any(line.startswith(FORGED) for line in lines)


async def test_info_lines_are_flushed_together_and_warnings_at_once(tmp_path, monkeypatch) -> None:
    wait = 0.5  # longer than the real 0.1 s: a loaded machine's pause between two lines stays inside it
    monkeypatch.setattr(logs, "FLUSH_SECONDS", wait)
    path = tmp_path / "engine.log"
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    with open(path, "w") as stream:
        setup_logging("INFO", "text", stream)
        try:
            log = logging.getLogger("engine.test_logs")
            log.info("first")  # after a quiet stretch: out at once
            assert [line.split(" ", 4)[-1] for line in path.read_text().splitlines()] == ["first"]
            info_line(log, "second", {})
            log.info("more")
            await asyncio.sleep(0)
            assert len(path.read_text().splitlines()) == 1  # written, not yet flushed: a busy stretch
            await asyncio.sleep(wait * 1.5)
            assert [line.split(" ", 4)[-1] for line in path.read_text().splitlines()] == ["first", "second", "more"]
            log.info("third")
            log.warning("fourth")
            assert path.read_text().splitlines()[-1].endswith("WARNING engine.test_logs fourth")
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)


def test_a_flush_due_on_a_loop_that_stopped_does_not_hold_up_the_next_loops_lines(tmp_path) -> None:
    path = tmp_path / "engine.log"
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    async def log_and_leave(text: str) -> None:
        logging.getLogger("engine.test_logs").info(text)  # the first of a stretch: flushed at once
        logging.getLogger("engine.test_logs").info(text + " again")  # a flush due on this loop

    async def log_and_wait(text: str) -> None:
        logging.getLogger("engine.test_logs").info(text)
        await asyncio.sleep(FLUSH_SECONDS * 1.5)

    with open(path, "w") as stream:
        setup_logging("INFO", "text", stream)
        try:
            asyncio.run(log_and_leave("first"))  # its loop closes before the flush is due
            asyncio.run(log_and_wait("second"))
            assert [line.split(" ", 4)[-1] for line in path.read_text().splitlines()] == [
                "first", "first again", "second"]
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)


class _Unflushable(io.StringIO):
    """A log stream whose flush fails, as stderr does when its reader is gone or its disk is full."""

    broken = True

    def flush(self) -> None:
        if self.broken:
            raise OSError(28, "No space left on device")


async def test_a_stream_that_cannot_be_flushed_fails_no_caller(monkeypatch) -> None:
    """A failed flush is the handler's error (``handleError``, as ``StreamHandler.emit`` does), not
    the caller's: an INFO line (the first of a stretch is flushed at once), a warning, the flush
    due a moment later on the loop and ``flush_lines`` at start-up must not raise into a request
    handler, the engine's start or the event loop."""
    wait = 0.5  # as above: the three lines stay one stretch on a loaded machine
    monkeypatch.setattr(logs, "FLUSH_SECONDS", wait)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = _Unflushable()
    setup_logging("INFO", "text", stream)
    handler = root.handlers[0]
    reported: list[str] = []
    monkeypatch.setattr(handler, "handleError", lambda record: reported.append(record.getMessage()))
    loop_errors: list[dict] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: loop_errors.append(context))
    try:
        log = logging.getLogger("engine.test_logs")
        log.info("first")
        info_line(log, "second", {})
        log.info("third")  # a busy stretch: flushed by the loop, a moment later
        await asyncio.sleep(wait * 1.5)
        log.warning("fourth")
        logs.flush_lines()
    finally:
        stream.broken = False  # the handler lives on in logging's list, flushed at exit
        root.handlers[:] = handlers
        root.setLevel(level)
    assert loop_errors == []
    # the first line's flush, the loop's, the warning's and start-up's
    assert reported == ["the log stream could not be flushed"] * 4


def test_info_line_writes_what_logger_info_writes_with_or_without_other_handlers() -> None:
    """``info_line`` skips the record when the engine's handler is the only destination; the text
    is the same as ``Logger.info(..., extra=...)`` gives, and with another handler attached (the
    record path) both handlers get the line."""
    fields = {"callback_id": "c1", "session_id": None, "service": "svc", "state": "QUEUED", "ms": 1.5}
    for fmt in ("text", "json"):
        def emit(log: logging.Logger) -> None:
            log.info("callback state changed", extra=fields)
            info_line(log, "callback state changed", fields)

        by_info, by_line = _logged(fmt, emit)
        if fmt == "json":
            by_info, by_line = json.loads(by_info), json.loads(by_line)
            by_info.pop("time"), by_line.pop("time")
        else:
            by_info, by_line = by_info.split(" ", 2)[2], by_line.split(" ", 2)[2]  # the time apart
        assert by_info == by_line

        other = io.StringIO()
        extra_handler = logging.StreamHandler(other)
        logging.getLogger("engine.test_logs").addHandler(extra_handler)
        try:
            lines = _logged(fmt, lambda log: info_line(log, "callback state changed", fields))
        finally:
            logging.getLogger("engine.test_logs").removeHandler(extra_handler)
        assert len(lines) == 1 and "QUEUED" in lines[0]
        assert other.getvalue() == "callback state changed\n"


def test_a_line_reaches_another_handler_with_every_standard_attribute() -> None:
    """An operator's handler formats ``info_line``'s record with the usual attributes (format
    strings read the record's ``__dict__``): before, ``%(levelname)s`` was a KeyError there and
    logging printed 'Logging error' instead of the line."""
    other = io.StringIO()
    extra_handler = logging.StreamHandler(other)
    extra_handler.setFormatter(logging.Formatter(
        "%(levelname)s %(name)s %(filename)s:%(lineno)d %(module)s %(funcName)s %(threadName)s %(message)s"))
    logging.getLogger("engine.test_logs").addHandler(extra_handler)
    fields = {"callback_id": "c1", "service": "svc"}
    try:
        lines = _logged("text", lambda log: info_line(log, "callback created", fields))
    finally:
        logging.getLogger("engine.test_logs").removeHandler(extra_handler)
    assert len(lines) == 1
    assert lines[0].endswith("INFO engine.test_logs callback created callback_id=c1 service=svc")
    assert other.getvalue() == "INFO engine.test_logs (unknown file):0 (unknown file) None None callback created\n"
