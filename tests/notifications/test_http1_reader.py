"""The webhook client's reader of HTTP/1.1 answers: framing it must get right, and what it refuses."""

from __future__ import annotations

import pytest

from engine.notifications import http1
from engine.notifications.http1 import ProtocolFault, ResponseReader, encode_request


def read(*parts: bytes, max_body: int = 1000) -> ResponseReader:
    reader = ResponseReader(max_body)
    for i, part in enumerate(parts):
        done = reader.feed(part)
        assert done == (i == len(parts) - 1), f"complete after part {i}: {done}"
    return reader


def test_a_length_framed_answer_split_anywhere() -> None:
    raw = b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\nRetry-After: 3\r\n\r\nhello"
    for cut in range(1, len(raw)):
        reader = read(raw[:cut], raw[cut:])
        assert (reader.status, reader.headers["retry-after"], reader.keep_alive, reader.buffer) == (201, "3", True, b"")


def test_chunked_with_extensions_and_trailers() -> None:
    reader = read(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n", b"A\r\n0123456789\r\n0\r\n",
                  b"X-Trailer: 1\r\n\r\n")
    assert reader.status == 200 and reader.keep_alive and reader.buffer == b""


def test_interim_answers_are_skipped() -> None:
    reader = read(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
    assert reader.status == 204


def test_keep_alive_rules() -> None:
    assert not read(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").keep_alive
    assert not read(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive
    assert read(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n").keep_alive


def test_a_body_ending_with_the_connection() -> None:
    reader = ResponseReader(1000)
    assert not reader.feed(b"HTTP/1.1 200 OK\r\n\r\nsome text")
    assert reader.closed() and not reader.keep_alive and reader.status == 200
    cut = ResponseReader(1000)
    assert not cut.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    assert not cut.closed()  # cut short: a failure, not an answer


def test_oversized_bodies_stop_the_read() -> None:
    declared = ResponseReader(10)
    assert declared.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n")
    assert declared.oversized and not declared.keep_alive
    chunked = ResponseReader(10)
    assert not chunked.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n")
    assert chunked.feed(b"8\r\n1234")
    assert chunked.oversized and not chunked.keep_alive


@pytest.mark.parametrize("raw", [
    b"HTTP/2 200 OK\r\n\r\n",
    b"ICY 200 OK\r\n\r\n",
    b"HTTP/1.1 2x0 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nBad Header: 1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX: 1\r\n folded\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
])
def test_what_cannot_be_framed_is_refused(raw: bytes) -> None:
    with pytest.raises(ProtocolFault):
        ResponseReader(1000).feed(raw)


def test_the_request_bytes_and_forged_headers() -> None:
    raw = encode_request("/a?b", "h:8080", {"webhook-id": "msg_1"}, b"{}")
    assert raw == (b"POST /a?b HTTP/1.1\r\nHost: h:8080\r\nUser-Agent: callback-engine\r\nContent-Length: 2\r\n"
                   b"webhook-id: msg_1\r\n\r\n{}")
    for headers in ({"x": "a\nb"}, {"x": "a\rb"}, {"x\r\ny": "1"}, {"x:y": "1"}):
        with pytest.raises(ValueError):
            encode_request("/", "h", headers, b"")


def test_header_names_checked_once_are_still_checked_for_their_colon() -> None:
    """Names are kept once checked (``_NAMES``): a line that is only a known name, without its
    colon, is still refused, and a known name in other letter cases reads the same."""
    assert read(b"HTTP/1.1 200 OK\r\nX-Seen: 1\r\nContent-Length: 0\r\n\r\n").headers["x-seen"] == "1"
    with pytest.raises(ProtocolFault):
        ResponseReader(1000).feed(b"HTTP/1.1 200 OK\r\nX-Seen\r\nContent-Length: 0\r\n\r\n")
    assert read(b"HTTP/1.1 200 OK\r\nx-SEEN: 2\r\ncontent-length: 0\r\n\r\n").headers["x-seen"] == "2"


def test_the_kept_header_names_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http1, "_NAMES", {})
    monkeypatch.setattr(http1, "MAX_NAMES", 3)
    for i in range(10):
        assert read(f"HTTP/1.1 200 OK\r\nX-{i}: v\r\nContent-Length: 0\r\n\r\n".encode()).headers[f"x-{i}"] == "v"
        assert len(http1._NAMES) <= 3


def test_an_answer_head_read_before_is_read_the_same() -> None:
    """Heads are kept once read (``_HEADS``): the same bytes give the same status, headers and
    keep-alive, each reader its own copy of the headers, and each works out its own body framing
    (here the body limit differs)."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\nX-Kept: 1\r\n\r\n"
    first = read(head + b"hello")
    first.headers["x-kept"] = "changed by a reader"
    again = read(head + b"hello")
    assert (again.status, again.headers, again.keep_alive, again.oversized) == (
        200, {"content-length": "5", "connection": "close", "x-kept": "1"}, False, False)
    small = ResponseReader(3)
    assert small.feed(head) and small.oversized and not small.keep_alive
    # an interim answer is never kept as the answer: the final one after it is read each time
    for _ in range(2):
        assert read(b"HTTP/1.1 100 Continue\r\n\r\n" + head + b"hello").status == 200
    # a head refused by its framing is refused each time it comes
    for _ in range(2):
        with pytest.raises(ProtocolFault):
            ResponseReader(1000).feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")


def test_the_kept_heads_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http1, "_HEADS", {})
    monkeypatch.setattr(http1, "MAX_HEADS", 3)
    for i in range(10):
        assert read(f"HTTP/1.1 200 OK\r\nDate: {i}\r\nContent-Length: 0\r\n\r\n".encode()).headers["date"] == str(i)
        assert len(http1._HEADS) <= 3


def test_a_large_head_is_read_but_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http1, "_HEADS", {})
    big = "x" * (http1.MAX_KEPT_HEAD + 1)
    assert read(f"HTTP/1.1 200 OK\r\nX-Big: {big}\r\nContent-Length: 0\r\n\r\n".encode()).headers["x-big"] == big
    assert http1._HEADS == {}
