"""Logging setup: readable text by default, one JSON object per line with ``log_format=json``.

Lines carry structured fields given as ``extra=`` (``callback_id``, ``session_id``, ``service``,
``state``...): top-level keys of the JSON object, ``key=value`` pairs after the text message. The
engine logs a few lines per callback at INFO, so a line must be cheap: no caller lookup, no
thread or process names, the time of day formatted once per second, JSON by orjson, one flush per
``FLUSH_SECONDS``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from itertools import islice
from typing import IO, Any

import orjson

_BORN_WITH = len(vars(logging.LogRecord("", 0, "", 0, "", None, None)))
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime",
                                                                                "taskName"}


_START = time.time()


class LineRecord(logging.LogRecord):
    """A record made by ``info_line`` without ``LogRecord.__init__``: its ``__dict__`` is a copy
    of a blank record's (level INFO, no file, no thread, no exception) with its name, message,
    times and fields set. Format strings read a record's ``__dict__``, not its class, so another
    handler's ``%(levelname)s %(filename)s`` finds every standard attribute there."""


_LINE_BLANK = {**vars(logging.LogRecord("", logging.INFO, "(unknown file)", 0, "", None, None)),
               "thread": None, "threadName": None, "process": None, "processName": None}


def fields_of(record: logging.LogRecord) -> Iterator[tuple[str, Any]]:
    """The ``extra=`` fields of a record, in the order they were given. A full record's own
    attributes come first in its ``__dict__`` (set by its constructor): only what follows is read."""
    start = _BORN_WITH
    for key, value in islice(record.__dict__.items(), start, None):
        if key not in _STANDARD:
            yield key, value


def info_line(logger: logging.Logger, message: str, fields: dict[str, Any]) -> None:
    """``logger.info(message, extra=fields)`` for a constant message, at a fraction of the cost
    (the lifecycle and access lines come several per callback). When the line's only destination
    is the engine's own handler (``setup_logging``: no filters, nothing else attached along the
    way), it is formatted and written there without a record, the same text a record would give;
    otherwise a ``LineRecord`` goes through logging's own ``Logger.handle`` (levels, filters,
    propagation, other handlers: pytest's, an operator's). The caller's file and line are not
    recorded."""
    if not logger.isEnabledFor(logging.INFO):
        return
    now = time.time()
    handler = _sole_handler(logger)
    if handler is not None:  # the engine's own set-up: the line goes straight to its one handler
        handler.write_info(logger.name, message, fields, now)
        return
    record = LineRecord.__new__(LineRecord)
    record.__dict__ = {**_LINE_BLANK, "name": logger.name, "msg": message, "created": now,
                       "msecs": int((now - int(now)) * 1000) + 0.0, "relativeCreated": (now - _START) * 1000,
                       **fields}
    logger.handle(record)


def _sole_handler(logger: logging.Logger) -> BatchFlushingHandler | None:
    """The handler every line of ``logger`` goes to when it is the only one and one of ours,
    with no filter on the way; None otherwise."""
    found = None
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if (found is not None or handler.__class__ is not BatchFlushingHandler or handler.filters
                    or handler.level > logging.INFO or not hasattr(handler.formatter, "info_text")):
                return None
            found = handler
        if not current.propagate:
            break
        current = current.parent
    return found


class _SecondStamp:
    """``time.strftime`` of the current second, remembered until the second changes."""

    __slots__ = ("_format", "_gmt", "_second", "_text")

    def __init__(self, fmt: str, gmt: bool) -> None:
        self._format, self._gmt, self._second, self._text = fmt, gmt, -1, ""

    def __call__(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second = second
            self._text = time.strftime(self._format, time.gmtime(second) if self._gmt else time.localtime(second))
        return self._text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, milliseconds), level, logger, message, the fields (a
    value JSON has no type for as its ``repr``)."""

    def __init__(self) -> None:
        super().__init__()
        self._stamp = _SecondStamp("%Y-%m-%dT%H:%M:%S", gmt=True)

    def format(self, record: logging.LogRecord) -> str:
        out = self._object(record.created, record.msecs, record.levelname, record.name, record.getMessage())
        out.update(fields_of(record))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        return orjson.dumps(out, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()  # repr: what JSON lacks

    def info_text(self, name: str, message: str, fields: dict[str, Any], now: float) -> str:
        """What ``format`` gives for an INFO record of ``info_line`` made at ``now``."""
        out = self._object(now, (now - int(now)) * 1000, "INFO", name, message)
        out.update(fields)
        return orjson.dumps(out, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()

    def _object(self, created: float, msecs: float, level: str, name: str, message: str) -> dict[str, Any]:
        return {"time": f"{self._stamp(created)}.{int(msecs):03d}Z", "level": level, "logger": name,
                "message": message}


# Line breaks and other control characters (C0, DEL, C1, Unicode line separators) in a message
# could forge log lines or terminal sequences: clients control many logged values.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def escape_controls(text: str) -> str:
    """``text`` on one line: control characters shown as escapes (``\\n``, ``\\x1b``...)."""
    if text.isprintable() or not _CONTROL.search(text):  # the first is a fast yes for most lines
        return text
    return _CONTROL.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                                             else f"\\u{ord(m.group()):04x}"), text)


class TextFormatter(logging.Formatter):
    """One line per message, whatever the message or its fields hold (``key=value`` after the
    message); a traceback still follows on its own lines."""

    default_msec_format = "%s,%03d"

    def __init__(self, fmt: str | None = None, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)
        self._stamp = _SecondStamp(datefmt or self.default_time_format, gmt=False)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return self.default_msec_format % (self._stamp(record.created), record.msecs)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = escape_controls(record.message)
        line = super().formatMessage(record)
        extra = [f" {key}={value}" for key, value in fields_of(record)]
        return line + escape_controls("".join(extra)) if extra else line


class EngineTextFormatter(TextFormatter):
    """The engine's own text line, ``time LEVEL logger message key=value...`` (fields without a
    value left out), built in one go: the general formatter's machinery costs more than the rest."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        start = _BORN_WITH
        extra = [f" {key}={value}" for key, value in islice(record.__dict__.items(), start, None)
                 if value is not None and key not in _STANDARD]  # fields_of, without a generator's cost
        line = self._line(record.created, record.msecs, record.levelname, record.name, record.getMessage(),
                          "".join(extra))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line = f"{line}\n{record.exc_text}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return line

    def info_text(self, name: str, message: str, fields: dict[str, Any], now: float) -> str:
        """What ``format`` gives for an INFO record of ``info_line`` made at ``now``. The fields are
        appended in a loop: a comprehension's frame and the join cost more than the few fields."""
        extra = ""
        for key, value in fields.items():
            if value is not None:
                extra += f" {key}={value}"
        return self._line(now, (now - int(now)) * 1000, "INFO", name, message, extra)

    def _line(self, created: float, msecs: float, level: str, name: str, message: str, extra: str) -> str:
        millis = int(msecs)
        # ",SSS " from a table: formatting the number was a tenth of the line's cost
        after_stamp = _MILLIS[millis] if 0 <= millis < 1000 else f",{millis:03d} "
        line = f"{self._stamp(created)}{after_stamp}{level} {name} {message}{extra}"
        return line if line.isprintable() else escape_controls(line)


_MILLIS = tuple(f",{millis:03d} " for millis in range(1000))  # what follows a text line's second


FLUSH_SECONDS = 0.1  # how long an INFO line may wait in the buffer for the lines after it
# What ``handleError`` names when a flush fails (no one line is to blame).
_FLUSH_FAILED = logging.LogRecord("engine.logs", logging.ERROR, "(unknown file)", 0,
                                  "the log stream could not be flushed", None, None)


class BatchFlushingHandler(logging.StreamHandler):
    """Writes each line as it comes into a buffered stream and flushes at most once every
    ``FLUSH_SECONDS``: the lines of a busy stretch (a few per callback, one per request) go out in
    one system call instead of one per line or per event-loop turn (the flush of every turn was ~2 %
    of the event loop under load). The first line after a quiet stretch goes out at once, so only
    a busy stretch waits. WARNING and above, and lines logged outside an event loop's thread, are
    flushed at once; a process killed outright (``kill -9``) loses at most its last
    ``FLUSH_SECONDS`` of INFO lines (a normal exit flushes them; so does start-up once the engine
    is ready, ``flush_lines``)."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(stream)
        self._flush_on: asyncio.AbstractEventLoop | None = None  # the loop a flush is due on
        self._flush_thread = 0  # the thread that loop ran when the flush was set
        self._flushed_at = -FLUSH_SECONDS  # time.monotonic() of the last flush
        _HANDLERS.add(self)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
            return
        if record.levelno < logging.WARNING:
            self._flush_soon()
        else:
            self.flush()

    def write_info(self, name: str, message: str, fields: dict[str, Any], now: float) -> None:
        """An INFO line of ``info_line``, formatted by this handler's formatter without a record."""
        try:
            text = self.formatter.info_text(name, message, fields, now)  # type: ignore[union-attr]
            with self.lock:  # type: ignore[union-attr]
                self.stream.write(text + self.terminator)
        except RecursionError:
            raise
        except Exception:
            self.handleError(LineRecord(name, logging.INFO, "(unknown file)", 0, message, None, None))
            return
        self._flush_soon()

    def flush(self) -> None:
        """A stream that cannot take the lines (stderr's reader gone, a full disk) is this
        handler's error (``handleError``, as ``StreamHandler.emit`` has it), never its caller's:
        an INFO line flushed at once runs in a request handler, ``flush_lines`` in start-up and
        ``_flush_due`` on the event loop, which a raising callback's ERROR line would stop."""
        try:
            super().flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(_FLUSH_FAILED)
        self._flushed_at = time.monotonic()  # a failing stream is tried again a stretch later

    def _flush_soon(self) -> None:
        """Unless a flush is due on the running loop already: at once when the last one is
        ``FLUSH_SECONDS`` old, else when it will be. At once without a loop. A flush due on a loop
        that stopped before it ran does not hold up the lines logged on the next one.

        A flush is due on the running loop when it is due on a loop that is still running and was
        running this thread when it was set: told without asking for the running loop, which on
        Python 3.11 is a system call (``getpid``, to notice a fork), ~1 % of the engine's
        main thread with a few lines per callback."""
        due_on = self._flush_on
        if due_on is not None and self._flush_thread == threading.get_ident() and due_on.is_running():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop here (start-up, another thread): now
            self.flush()
            return
        wait = self._flushed_at + FLUSH_SECONDS - time.monotonic()
        if wait <= 0:  # the first line of a stretch
            self.flush()
        else:
            self._flush_on, self._flush_thread = loop, threading.get_ident()
            loop.call_later(wait, self._flush_due)

    def _flush_due(self) -> None:
        self._flush_on = None
        self.flush()


_HANDLERS: weakref.WeakSet[BatchFlushingHandler] = weakref.WeakSet()


def _forget_due_flushes() -> None:
    """A forked child runs none of its parent's loops, though one looks running in the same
    thread (``_flush_soon``): its lines are flushed at once, as lines outside a loop are."""
    for handler in list(_HANDLERS):
        handler._flush_on = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_due_flushes)


def flush_lines() -> None:
    """Write out at once what the engine's handlers hold (start-up: so the lines of a restore are
    on disk by the time the engine answers, even if it is then killed outright)."""
    for handler in logging.getLogger().handlers:
        handler.flush()


def setup_logging(level: str = "INFO", fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Every line to ``stream`` (stderr): text, or JSON (``fmt="json"``) from the first line on."""
    # What no line of ours shows, and what costs most per line when taken (logging's own advice).
    logging._srcfile = None  # no caller lookup (file, line, function)
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    if stream is None:  # stderr, but buffered: sys.stderr writes out every line by itself
        stream = open(sys.stderr.fileno(), "w", buffering=1 << 16, encoding="utf-8",  # noqa: SIM115
                      errors="backslashreplace", closefd=False)
    handler = BatchFlushingHandler(stream)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(EngineTextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.captureWarnings(True)  # Python's warnings as log lines too (JSON ones in JSON mode)
