"""HTTP/1.1 on the wire for webhook POSTs: the request bytes, and a strict incremental reader of
the answer.

Only what a webhook sender needs: one request at a time on a connection, the status and headers
kept, the body counted and thrown away (a receiver's answer text is never used, so a huge body
costs no memory: past ``max_body`` the reader stops and the connection is not reused).
Anything this reader cannot frame with certainty is a ``ProtocolFault``, and the connection is
dropped: a misread length would let the next answer be taken for this one's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

MAX_HEAD = 65536  # status line and headers together
MAX_CHUNK_LINE = 1024
NO_BODY = frozenset((204, 304))
USER_AGENT = "callback-engine"  # some receivers' firewalls refuse requests without one
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Header names of answers seen, each checked to be a token once -> its lower case. A receiver
#: answers with the same few names every time; the regex per header line was a third of the cost
#: of reading an answer. Bounded: cleared when full.
_NAMES: dict[str, str] = {}
MAX_NAMES = 1024
#: Final answer heads read (their bytes, up to the blank line) -> status, headers, keep-alive. A
#: receiver answers every POST with the same head but for its ``Date`` (whole seconds), so nearly
#: every answer is one read before; parsing it again was most of the cost of reading an answer.
#: What the head says about the body (``_frame``) is worked out for each answer. Bounded, in count
#: and in the size of a head kept (a receiver's usual head is a few hundred bytes).
_HEADS: dict[bytes, tuple[int, dict[str, str], bool]] = {}
MAX_HEADS = 64
MAX_KEPT_HEAD = 2048


class ProtocolFault(ConnectionError):
    """The peer's bytes are not an HTTP/1.1 answer this client can frame, or it closed too soon."""


def encode_request(path: str, host: str, headers: Mapping[str, str], body: bytes) -> bytes:
    """``POST path`` with ``Host``, ``User-Agent``, ``Content-Length`` and ``headers``; a name or value holding a
    line break is refused (it would forge headers)."""
    lines = [f"POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\nContent-Length: {len(body)}\r\n"]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise ValueError(f"header {name!r} holds a line break or a colon")
        lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1") + body


class ResponseReader:
    """Feeds on the bytes of one answer; ``feed`` returns True once it is complete (or, for a body
    over ``max_body``, once its head is: ``oversized`` is then set and the rest is not read)."""

    __slots__ = ("_left", "_mode", "_seen", "buffer", "headers", "keep_alive", "max_body", "oversized", "received",
                 "status")

    def __init__(self, max_body: int):
        self.max_body = max_body
        self.buffer = b""
        self.status = 0
        self.headers: dict[str, str] = {}
        self.keep_alive = True
        self.oversized = False
        self.received = False  # any byte of the answer (a reused connection closed before may be retried)
        self._mode = "head"  # head, length, chunk-size, chunk-data, chunk-end, trailer, close, done
        self._left = 0
        self._seen = 0

    def feed(self, data: bytes) -> bool:
        self.received = True
        self.buffer = self.buffer + data if self.buffer else data
        while True:
            if self.oversized or self._mode == "done":
                return True
            mode = self._mode
            if mode == "head":
                progressed = self._head()
            elif mode in ("length", "chunk-data"):
                progressed = self._skip(mode)
            elif mode == "close":
                self._count(len(self.buffer))
                self.buffer, progressed = b"", False
            else:
                progressed = self._chunk_line(mode)
            if not progressed:
                return self.oversized

    def closed(self) -> bool:
        """The peer closed the connection: True when that ended the answer (a body read to the end
        of the connection), False when the answer was cut short."""
        return self._mode == "close" or self._mode == "done"

    # -- the parts ---------------------------------------------------------------------------
    def _head(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD:
                raise ProtocolFault(f"answer head over {MAX_HEAD} bytes")
            return False
        if end > MAX_HEAD:
            raise ProtocolFault(f"answer head over {MAX_HEAD} bytes")
        raw_head, self.buffer = self.buffer[:end], self.buffer[end + 4:]
        seen = _HEADS.get(raw_head)
        if seen is not None:  # the same bytes read before: the same answer head
            self.status, self.keep_alive = seen[0], seen[2]
            self.headers = dict(seen[1])
            self._frame(seen[0], self.headers)
            return True
        head = raw_head.decode("latin-1")
        lines = head.split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if (version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not (code.isascii() and code.isdigit())
                or rest[3:4] not in ("", " ")):
            raise ProtocolFault(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        status = int(code)
        headers: dict[str, str] = {}
        names = _NAMES
        for line in lines[1:]:
            raw, colon, value = line.partition(":")
            name = names.get(raw) if colon else None
            if name is None:
                name = _checked_name(raw, colon, line)
            value = value.strip(" \t")
            if name in headers:
                if name == "content-length" and headers[name] != value:
                    raise ProtocolFault("conflicting Content-Length headers")
                value = f"{headers[name]}, {value}"
            headers[name] = value if name != "content-length" else value.partition(",")[0].strip()
        if 100 <= status < 200:
            if status == 101:
                raise ProtocolFault("the peer switched protocols")
            return True  # an interim answer: the real one follows
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        if len(raw_head) <= MAX_KEPT_HEAD:
            if len(_HEADS) >= MAX_HEADS:
                _HEADS.clear()
            _HEADS[raw_head] = (status, dict(headers), keep_alive)
        self.status, self.headers, self.keep_alive = status, headers, keep_alive
        self._frame(status, headers)
        return True

    def _frame(self, status: int, headers: dict[str, str]) -> None:
        """How the body ends: no body, a length, chunks, or the end of the connection."""
        coding = headers.get("transfer-encoding")
        if status in NO_BODY:
            self._mode = "done"
        elif coding is not None:
            if "content-length" in headers:
                raise ProtocolFault("both Transfer-Encoding and Content-Length")
            if coding.lower().rsplit(",", 1)[-1].strip() == "chunked":
                self._mode = "chunk-size"
            else:
                self.keep_alive, self._mode = False, "close"
        elif "content-length" in headers:
            length = headers["content-length"]
            if not length.isdigit() or not length.isascii():
                raise ProtocolFault(f"invalid Content-Length {length[:40]!r}")
            self._left = int(length)
            self._mode = "length" if self._left else "done"
            if self._left > self.max_body:
                self.oversized, self.keep_alive = True, False
        else:
            self.keep_alive, self._mode = False, "close"

    def _skip(self, mode: str) -> bool:
        """Throw away the next ``_left`` body bytes; True once they are all in."""
        taken = min(self._left, len(self.buffer))
        self._left -= taken
        self._count(taken)
        self.buffer = self.buffer[taken:]
        if self._left:
            return False
        self._mode = "done" if mode == "length" else "chunk-end"
        return True

    def _chunk_line(self, mode: str) -> bool:
        end = self.buffer.find(b"\r\n")
        if end < 0:
            if len(self.buffer) > MAX_CHUNK_LINE:
                raise ProtocolFault("chunk framing line too long")
            return False
        line, self.buffer = self.buffer[:end], self.buffer[end + 2:]
        if mode == "chunk-end":
            if line:
                raise ProtocolFault("chunk not followed by CRLF")
            self._mode = "chunk-size"
        elif mode == "trailer":
            if not line:
                self._mode = "done"
        else:
            size = line.split(b";", 1)[0].strip()
            try:
                self._left = int(size, 16)
            except ValueError:
                raise ProtocolFault(f"invalid chunk size {size[:20]!r}") from None
            if not size.isalnum() or self._left < 0:
                raise ProtocolFault(f"invalid chunk size {size[:20]!r}")
            self._mode = "chunk-data" if self._left else "trailer"
        return True

    def _count(self, n: int) -> None:
        self._seen += n
        if self._seen > self.max_body:
            self.oversized, self.keep_alive = True, False


def _checked_name(raw: str, colon: str, line: str) -> str:
    """The lower-case name of a header line not seen before; ``ProtocolFault`` if the line has
    no colon or its name is not a token."""
    if not colon or not TOKEN.fullmatch(raw):
        raise ProtocolFault(f"malformed header line: {line[:80]!r}")
    if len(_NAMES) >= MAX_NAMES:
        _NAMES.clear()
    name = _NAMES[raw] = raw.lower()
    return name
