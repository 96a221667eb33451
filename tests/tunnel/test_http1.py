"""The HTTP/1.1 response reader: framings, interim responses, errors, and any split of the bytes."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_tunnel_client.http1 import (
    NEED_DATA,
    EndOfBody,
    Head,
    HTTPError,
    ResponseReader,
    encode_request,
)


def read_all(
    pieces: list[bytes], *, head_request: bool = False, eof: bool = True
) -> tuple[Head, bytes]:
    """Feed `pieces` one by one (then EOF); return the head and the whole body."""
    reader = ResponseReader(head_request=head_request)
    head: Head | None = None
    body = b""
    feed = [*pieces, b""] if eof else list(pieces)
    while True:
        event = reader.next_event()
        if event is NEED_DATA:
            if not feed:
                raise AssertionError("ran out of input")
            reader.receive_data(feed.pop(0))
        elif isinstance(event, Head):
            head = event
        elif isinstance(event, EndOfBody):
            assert head is not None
            assert reader.next_event() is NEED_DATA
            return head, body
        else:
            assert isinstance(event, bytes)
            body += event


CASES = [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, b"hello"),
    (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;x=y\r\nhello\r\n1\r\n!\r\n0\r\nT: 1\r\n\r\n",
        200,
        b"hello!",
    ),
    (b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close", 200, b"until close"),
    (b"HTTP/1.1 204 No Content\r\n\r\n", 204, b""),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n", 202, b""),
]


@pytest.mark.parametrize(("raw", "status", "body"), CASES)
def test_whole_byte_by_byte_and_with_trailing_data(raw: bytes, status: int, body: bytes) -> None:
    """Each framing gives the same head and body whole and byte by byte."""
    assert read_all([raw]) == (read_all([raw])[0], body)
    head, got = read_all([raw[i : i + 1] for i in range(len(raw))])
    assert (head.status, got) == (status, body)


def test_content_length_ignores_trailing_bytes() -> None:
    """Bytes after a Content-Length body are not part of it."""
    _head, body = read_all([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"], eof=False)
    assert body == b"ok"


def test_head_request_has_no_body() -> None:
    """The answer to HEAD has no body, whatever its Content-Length says."""
    head, body = read_all(
        [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"], head_request=True, eof=False
    )
    assert (head.headers, body) == ((("Content-Length", "10"),), b"")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "without a response"),
        (b"SMTP ready\r\n\r\n", "invalid status line"),
        (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "invalid header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", "before the body's end"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "invalid chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", "longer than"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "inside a chunked body"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 2000, "too long"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000, "larger than"),
    ],
)
def test_malformed_responses(raw: bytes, message: str) -> None:
    """Malformed or truncated responses raise HTTPError with a reason."""
    with pytest.raises(HTTPError, match=message):
        read_all([raw])


@given(st.binary(max_size=300), st.integers(1, 50))
def test_arbitrary_bytes_never_crash_the_reader(data: bytes, step: int) -> None:
    """Any bytes, in any piece size, give events or an HTTPError, never another exception."""
    with contextlib.suppress(HTTPError):
        read_all([data[i : i + step] for i in range(0, len(data), step)])


@given(st.lists(st.binary(min_size=1, max_size=40), max_size=6), st.integers(1, 30))
def test_any_split_of_a_chunked_body_gives_the_same_body(chunks: list[bytes], step: int) -> None:
    """A chunked body comes out the same however its bytes are split."""
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    raw += b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    _, body = read_all([raw[i : i + step] for i in range(0, len(raw), step)], eof=False)
    assert body == b"".join(chunks)


def test_encode_request() -> None:
    """A request carries the local Host, a Content-Length for bodies, and Connection: close."""
    raw = encode_request("POST", "/mcp", "127.0.0.1:3000", (("Accept", "text/plain"),), b"{}")
    assert raw == (
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:3000\r\nAccept: text/plain\r\n"
        b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
    )
    assert b"Content-Length" not in encode_request("GET", "/", "h", (), b"")
    assert "é".encode("latin-1") in encode_request("GET", "/", "h", (("x", "é"),), b"")
    assert "€".encode() in encode_request("GET", "/", "h", (("x", "€"),), b"")
