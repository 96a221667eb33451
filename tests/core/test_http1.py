"""Tests of the sans-IO HTTP/1.1 request encoder, response parser and writer (mcpr_core.http1)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from itertools import combinations, pairwise
from typing import NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcpr_core import http1
from mcpr_core.errors import LocalProtocolError, RemoteProtocolError
from mcpr_core.http1 import (
    LAST_CHUNK,
    MAX_HEAD_SIZE,
    ParsedResponse,
    ResponseParser,
    ResponseWriter,
    Signal,
    chunk,
    encode_request_head,
    names_close,
)

# ---------------------------------------------------------------------------------------------
# Helpers: splitting the input and driving the parser.


def split(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """Cut `data` at the given offsets (any order, duplicates allowed) into non-empty pieces."""
    points = sorted({0, len(data), *(min(max(c, 0), len(data)) for c in cuts)})
    return [data[a:b] for a, b in pairwise(points) if a < b]


def every_split(data: bytes, *, pairs: bool = True) -> Iterator[list[bytes]]:
    """The bytes whole, byte by byte, cut at every offset, and (if `pairs`) every two offsets."""
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    for i in range(1, len(data)):
        yield split(data, [i])
    if pairs:
        for cuts in combinations(range(1, len(data)), 2):
            yield split(data, cuts)


class Parsed(NamedTuple):
    head: ParsedResponse
    body: bytes
    parser: ResponseParser


def parse(
    pieces: Iterable[bytes],
    *,
    method: bytes = b"GET",
    eof: bool = False,
    max_head_size: int = MAX_HEAD_SIZE,
) -> Parsed:
    """Feed the pieces one by one, pulling events after each (then EOF if `eof`); must end."""
    parser = ResponseParser(method=method, max_head_size=max_head_size)
    heads: list[ParsedResponse] = []
    body: list[bytes] = []

    def pull() -> None:
        while not parser.ended:
            event = parser.next_event()
            if event is Signal.NEED_DATA:
                return
            if isinstance(event, ParsedResponse):
                assert not heads
                heads.append(event)
            elif isinstance(event, bytes):
                assert event
                assert heads
                body.append(event)

    for piece in pieces:
        assert piece
        parser.receive_data(piece)
        pull()
    if eof:
        parser.receive_data(b"")
        pull()
    assert parser.ended
    assert parser.next_event() is Signal.END
    assert len(heads) == 1
    return Parsed(heads[0], b"".join(body), parser)


def refuse(
    pieces: Iterable[bytes],
    match: str,
    *,
    method: bytes = b"GET",
    eof: bool = True,
    max_head_size: int = MAX_HEAD_SIZE,
) -> None:
    """Parsing the pieces raises RemoteProtocolError matching `match`, with status_hint 502."""
    with pytest.raises(RemoteProtocolError, match=match) as info:
        parse(pieces, method=method, eof=eof, max_head_size=max_head_size)
    assert info.value.status_hint == 502


OK_HEAD = b"HTTP/1.1 200 OK\r\n"
CHUNKED_HEAD = OK_HEAD + b"transfer-encoding: chunked\r\n\r\n"

# ---------------------------------------------------------------------------------------------
# ResponseParser: heads and framing.


def test_content_length_body_is_the_same_whatever_the_split() -> None:
    """A Content-Length body comes out whole, head intact and connection reusable, however cut."""
    raw = OK_HEAD + b"Content-Type: text/plain\r\ncontent-length: 11\r\n\r\nhello world"
    for pieces in every_split(raw):
        head, body, parser = parse(pieces)
        assert (head.status, head.reason, head.minor) == (200, b"OK", 1)
        assert head.headers == [(b"content-type", b"text/plain"), (b"content-length", b"11")]
        assert body == b"hello world"
        assert parser.reusable


def test_reusable_is_false_until_the_end_and_after_the_upstream_closes() -> None:
    """`reusable` is false while the body is pending and once the upstream closed its side."""
    parser = ResponseParser(method=b"GET")
    parser.receive_data(OK_HEAD + b"content-length: 2\r\n\r\no")
    assert isinstance(parser.next_event(), ParsedResponse)
    assert (parser.next_event(), parser.next_event()) == (b"o", Signal.NEED_DATA)
    assert not parser.reusable
    assert not parser.ended
    parser.receive_data(b"k")
    assert (parser.next_event(), parser.next_event()) == (b"k", Signal.END)
    assert parser.reusable
    parser.receive_data(b"")
    assert not parser.reusable


def test_chunked_body_is_decoded_whatever_the_split() -> None:
    """Chunk extensions, trailers and LF-only line ends decode to the same body however cut."""
    raw = (
        CHUNKED_HEAD + b'5;name=value\r\nhello\r\n1 ; a="b"\nX\n10\r\n0123456789abcdef\r\n'
        b"A\r\n9876543210\r\n0;last\r\nx-trailer: 1\r\nother:two\n\r\n"
    )
    for pieces in every_split(raw):
        head, body, parser = parse(pieces)
        assert head.headers == [(b"transfer-encoding", b"chunked")]
        assert body == b"helloX0123456789abcdef9876543210"
        assert parser.reusable


def test_close_delimited_body_ends_at_eof_and_is_not_reusable() -> None:
    """Without Content-Length or chunked framing the body runs to EOF; the connection is spent."""
    raw = OK_HEAD + b"x: y\r\n\r\nall of this\r\n\r\nis body"
    for pieces in every_split(raw, pairs=False):
        _, body, parser = parse(pieces, eof=True)
        assert body == b"all of this\r\n\r\nis body"
        assert not parser.reusable


@pytest.mark.parametrize(
    "interim",
    [
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nlink: </s.css>; rel=preload\r\n\r\n",
        b"HTTP/1.1 100 Continue\n\nHTTP/1.1 103\r\nlink: </a.js>\r\n\r\n",
    ],
)
def test_interim_heads_are_skipped(interim: bytes) -> None:
    """1xx heads (100, 103, several) are skipped: the first head returned is the final one."""
    for pieces in every_split(interim + OK_HEAD + b"content-length: 2\r\n\r\nok", pairs=False):
        head, body, parser = parse(pieces)
        assert (head.status, head.headers, body) == (200, [(b"content-length", b"2")], b"ok")
        assert parser.reusable


@pytest.mark.parametrize(
    ("method", "raw"),
    [
        (b"HEAD", OK_HEAD + b"content-length: 10\r\n\r\n"),
        (b"HEAD", OK_HEAD + b"transfer-encoding: chunked\r\n\r\n"),
        (b"HEAD", OK_HEAD + b"\r\n"),
        (b"GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
        (b"POST", b"HTTP/1.1 304 Not Modified\r\ncontent-length: 10\r\n\r\n"),
        (b"GET", b"HTTP/1.1 304 Not Modified\r\ntransfer-encoding: chunked\r\n\r\n"),
    ],
)
def test_responses_without_a_body(method: bytes, raw: bytes) -> None:
    """HEAD answers, 204 and 304 end right after the head, keeping the connection reusable."""
    _, body, parser = parse([raw], method=method)
    assert body == b""
    assert parser.reusable


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok",
        OK_HEAD + b"connection: close\r\ncontent-length: 2\r\n\r\nok",
        OK_HEAD + b"Connection: keep-alive , Close\r\ncontent-length: 2\r\n\r\nok",
        OK_HEAD + b"content-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n",
        CHUNKED_HEAD + b"2\r\nok\r\n0\r\n\r\nX",
        b"HTTP/1.1 204 No Content\r\n\r\nX",
    ],
)
def test_not_reusable(raw: bytes) -> None:
    """HTTP/1.0, `Connection: close` and bytes beyond the response's end spend the connection."""
    _, body, parser = parse([raw])
    assert body in (b"ok", b"")
    assert not parser.reusable


def test_header_lines_are_parsed() -> None:
    """Names come out lower-cased, values without surrounding OWS; empty values and reasons pass."""
    raw = b"HTTP/1.1 201\r\nX-A:\t a  b \t\r\nX-Empty:\r\nx-b:c\r\ncontent-length: 0\r\n\r\n"
    head, _, _ = parse([raw])
    assert (head.status, head.reason, head.minor) == (201, b"", 1)
    assert head.headers == [
        (b"x-a", b"a  b"),
        (b"x-empty", b""),
        (b"x-b", b"c"),
        (b"content-length", b"0"),
    ]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (b"content-length: 3, 3\r\n", [(b"content-length", b"3")]),
        (b"content-length: 3 ,3\r\nx: 1\r\n", [(b"content-length", b"3"), (b"x", b"1")]),
        (
            b"content-length: 3\r\nx: 1\r\nContent-Length: 3\r\ny: 2\r\n",
            [(b"content-length", b"3"), (b"x", b"1"), (b"y", b"2")],
        ),
    ],
)
def test_repeated_content_length_is_normalised(
    lines: bytes, expected: list[tuple[bytes, bytes]]
) -> None:
    """Agreeing Content-Length values, in one field or several, become one field b"3"."""
    head, body, _ = parse([OK_HEAD + lines + b"\r\nabc"])
    assert (head.headers, body) == (expected, b"abc")


LONG = b"x" * 5000
REFUSED = [
    # status lines
    (b"HTTP/2 200 OK\r\n\r\n", "status line"),
    (b"HTTP/1.1 20 OK\r\n\r\n", "status line"),
    (b"HTTP/1.1 200OK\r\n\r\n", "status line"),
    (b"http/1.1 200 OK\r\n\r\n", "status line"),
    (b"HTTP/1.1 200 O\x00K\r\n\r\n", "status line"),
    (b"\r\nHTTP/1.1 200 OK\r\n\r\n", "status line"),
    (b"HTTP/1.1 099 Odd\r\n\r\n", "status 99"),
    (b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n", "status 101"),
    # header lines, obs-fold included
    (OK_HEAD + b"no-colon\r\n\r\n", "header line"),
    (OK_HEAD + b"name : v\r\n\r\n", "header line"),
    (OK_HEAD + b": v\r\n\r\n", "header line"),
    (OK_HEAD + b"x: a\r\n folded\r\n\r\n", "header line"),
    (OK_HEAD + b"x: a\r\n\tfolded\r\n\r\n", "header line"),
    (OK_HEAD + b"x: a\x00b\r\n\r\n", "header line"),
    (OK_HEAD + b"x: a\rb\r\n\r\n", "header line"),
    # framing
    (OK_HEAD + b"content-length: 3, 4\r\n\r\nabcd", "conflicting"),
    (OK_HEAD + b"content-length: 3\r\ncontent-length: 4\r\n\r\nabcd", "conflicting"),
    (OK_HEAD + b"content-length: 3\r\ncontent-length: 3, 4\r\n\r\nabcd", "conflicting"),
    (OK_HEAD + b"content-length:\r\n\r\n", "malformed upstream Content-Length"),
    (OK_HEAD + b"content-length: -1\r\n\r\n", "malformed upstream Content-Length"),
    (OK_HEAD + b"content-length: +3\r\n\r\nabc", "malformed upstream Content-Length"),
    (OK_HEAD + b"content-length: 0x3\r\n\r\nabc", "malformed upstream Content-Length"),
    (OK_HEAD + b"content-length: " + b"1" * 20 + b"\r\n\r\n", "malformed upstream Content"),
    (OK_HEAD + b"content-length: 2\r\ntransfer-encoding: chunked\r\n\r\n", "both"),
    (OK_HEAD + b"transfer-encoding: chunked\r\ncontent-length: 2\r\n\r\n", "both"),
    (OK_HEAD + b"transfer-encoding: gzip\r\n\r\n", "Transfer-Encoding"),
    (OK_HEAD + b"transfer-encoding: gzip, chunked\r\n\r\n", "Transfer-Encoding"),
    (OK_HEAD + b"transfer-encoding: identity\r\n\r\n", "Transfer-Encoding"),
    (OK_HEAD + b"transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n", "Transfer"),
    # chunked bodies
    (CHUNKED_HEAD + b"xyz\r\n", "chunk size"),
    (CHUNKED_HEAD + b"\r\n", "chunk size"),
    (CHUNKED_HEAD + b"-5\r\nhello\r\n0\r\n\r\n", "chunk size"),
    (CHUNKED_HEAD + b"5 x\r\nhello\r\n0\r\n\r\n", "chunk size"),
    (CHUNKED_HEAD + b"1" * 17 + b"\r\n", "chunk size"),
    (CHUNKED_HEAD + b"5\r\nhelloX\r\n0\r\n\r\n", "longer than its size"),
    (CHUNKED_HEAD + b"5\r\nhello\r\r\n0\r\n\r\n", "longer than its size"),
    (CHUNKED_HEAD + b"0\r\nbad trailer\r\n\r\n", "trailer line"),
    (CHUNKED_HEAD + b"5;" + LONG + b"\r\nhello\r\n0\r\n\r\n", "line too long"),
    (CHUNKED_HEAD + b"0\r\nx: " + LONG + b"\r\n\r\n", "line too long"),
    # the upstream closes too early
    (b"", "before a response"),
    (OK_HEAD + b"content-length: 2\r\n", "before a response"),
    (OK_HEAD + b"content-length: 5\r\n\r\n", "inside a response body"),
    (OK_HEAD + b"content-length: 5\r\n\r\nhel", "inside a response body"),
    (CHUNKED_HEAD, "inside a chunked body"),
    (CHUNKED_HEAD + b"5\r\nhel", "inside a chunked body"),
    (CHUNKED_HEAD + b"5\r\nhello", "inside a chunked body"),
    (CHUNKED_HEAD + b"5\r\nhello\r\n0\r\n", "inside a chunked body"),
    (CHUNKED_HEAD + b"5\r\nhello\r\n0\r\nx: 1\r\n", "inside a chunked body"),
]


@pytest.mark.parametrize(("raw", "match"), REFUSED)
def test_malformed_responses_are_refused(raw: bytes, match: str) -> None:
    """Each malformed or truncated response is refused with 502, whole and byte by byte."""
    refuse([raw] if raw else [], match)
    refuse([raw[i : i + 1] for i in range(len(raw))], match)


def test_head_larger_than_max_head_size_is_refused_whatever_the_split() -> None:
    """A head over the limit is refused, even unfinished; one at the limit passes, however cut."""
    raw = OK_HEAD + b"x: " + b"a" * 100 + b"\r\ncontent-length: 0\r\n\r\n"
    size = len(raw) - 3  # up to the blank line's first LF
    for pieces in every_split(raw, pairs=False):
        assert parse(pieces, max_head_size=size).head.status == 200
        refuse(pieces, "too large", max_head_size=size - 1)
    refuse([raw[:-4], b"x" * 10], "too large", max_head_size=size - 1, eof=False)


def test_interim_heads_count_towards_max_head_size() -> None:
    """1xx heads and the final head together must fit the limit: endless 1xx heads are refused."""
    interim = b"HTTP/1.1 103 Early Hints\r\nlink: " + b"a" * 100 + b"\r\n\r\n"
    final = OK_HEAD + b"content-length: 0\r\n\r\n"
    assert parse([interim, final], max_head_size=2 * len(interim)).head.status == 200
    for pieces in ([interim + final], [interim, final]):
        refuse(pieces, "too large", max_head_size=len(interim))
    refuse([b"HTTP/1.1 100 Continue\r\n\r\n" * 20_000], "too large", eof=False)


def test_chunk_lines_up_to_the_limit_pass_whatever_the_split() -> None:
    """A chunk-size line and a trailer line of exactly the line limit are accepted, however cut."""
    ext = b"5;" + b"e" * (http1._MAX_LINE - 3) + b"\r\n"
    trailer = b"x: " + b"t" * (http1._MAX_LINE - 4) + b"\r\n"
    raw = CHUNKED_HEAD + ext + b"hello\r\n0\r\n" + trailer + b"\r\n"
    for pieces in ([raw], [raw[i : i + 1] for i in range(len(raw))]):
        assert parse(pieces).body == b"hello"


def test_long_header_lines_are_parsed_in_linear_time() -> None:
    """A 100 kB run of blanks in a header line is accepted or refused at once, not quadratically."""
    blanks = b" \t" * 50_000
    start = time.perf_counter()
    head = parse([OK_HEAD + b"x:" + blanks + b"\r\ncontent-length: 0\r\n\r\n"]).head
    assert head.headers[0] == (b"x", b"")
    refuse([OK_HEAD + b"x:" + blanks + b"\x01\r\n\r\n"], "header line")
    trailer = b"x:" + blanks[: http1._MAX_LINE - 4] + b"\x01"
    refuse([CHUNKED_HEAD + b"0\r\n" + trailer + b"\r\n\r\n"], "trailer line")
    assert time.perf_counter() - start < 2


# ---------------------------------------------------------------------------------------------
# ResponseParser: properties.

FRAGMENTS = [
    *(b"HTTP/1.%d %d X" % (m, s) for m in (0, 1) for s in (100, 101, 200, 204, 304, 500)),
    *(b"content-length: " + v for v in (b"0", b"3", b"3, 3", b"3, 4", b"x")),
    b"transfer-encoding: chunked",
    b"connection: close",
    b"x: y",
    *(b"\r\n", b"\n", b"\r", b" ", b"\t", b":", b";a=b", b"\x00", b"\xff"),
    *(b"0", b"5", b"ff", b"ffffffffffffffff", b"hello"),
]
raw_responses = st.binary(max_size=300) | st.lists(
    st.sampled_from(FRAGMENTS) | st.binary(max_size=3), max_size=40
).map(b"".join)


@given(
    raw=raw_responses,
    cuts=st.lists(st.integers(0, 600), max_size=8),
    method=st.sampled_from([b"GET", b"HEAD"]),
    max_head_size=st.sampled_from([MAX_HEAD_SIZE, 20]),
)
def test_arbitrary_input_ends_or_is_refused(
    raw: bytes, cuts: list[int], method: bytes, max_head_size: int
) -> None:
    """Any bytes in any pieces, then EOF, give END or RemoteProtocolError(502), in bounded steps."""
    parser = ResponseParser(method=method, max_head_size=max_head_size)
    pieces = [*split(raw, cuts), b""]
    budget = len(raw) + 2 * len(pieces) + 4  # every event but NEED_DATA and END takes bytes

    def settle() -> Signal:
        nonlocal budget
        while not isinstance(event := parser.next_event(), Signal):
            budget -= 1
            assert budget > 0, "next_event does not progress"
        return event

    outcome: Signal | int = Signal.NEED_DATA
    try:
        for piece in pieces:
            parser.receive_data(piece)
            if (outcome := settle()) is Signal.END:
                break
    except RemoteProtocolError as exc:
        outcome = exc.status_hint
    assert outcome in (Signal.END, 502)  # after EOF the parser never waits for more
    assert parser.ended is (outcome is Signal.END)


TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,10}"
VALUE = rb"(?:[\x21-\x7e\x80-\xff](?:[\t\x20-\x7e\x80-\xff]{0,8}[\x21-\x7e\x80-\xff])?)?"
names = st.from_regex(TOKEN, fullmatch=True).filter(
    lambda n: n.lower() not in (b"content-length", b"transfer-encoding", b"connection")
)
values = st.from_regex(VALUE, fullmatch=True)


class Response(NamedTuple):
    raw: bytes
    head: ParsedResponse
    body: bytes


@st.composite
def responses(draw: st.DrawFn) -> Response:
    """A valid response, with its head as parsed: random headers, body and framing."""
    eol = st.sampled_from([b"\r\n", b"\n"])
    status = draw(st.integers(200, 599).filter(lambda s: s not in (204, 304)))
    minor = draw(st.sampled_from([0, 1]))
    reason = draw(st.from_regex(rb"[\t\x20-\x7e\x80-\xff]{0,10}", fullmatch=True))
    headers = draw(st.lists(st.tuples(names, values), max_size=5))
    body = draw(st.binary(max_size=200))
    chunked = draw(st.booleans())
    framing = (
        (b"Transfer-Encoding", b"chunked") if chunked else (b"Content-Length", b"%d" % len(body))
    )
    headers.insert(draw(st.integers(0, len(headers))), framing)
    raw = draw(st.sampled_from([b"", b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103\n\n"]))
    raw += b"HTTP/1.%d %d %b" % (minor, status, reason) + draw(eol)
    for name, value in headers:
        ows = draw(st.sampled_from([(b"", b""), (b" ", b""), (b"\t ", b" \t")]))
        raw += name + b":" + ows[0] + value + ows[1] + draw(eol)
    raw += draw(eol)
    if not chunked:
        raw += body
    else:
        for piece in split(body, draw(st.lists(st.integers(0, len(body)), max_size=6))):
            size = draw(st.sampled_from([b"%x", b"%X"])) % len(piece)
            raw += size + draw(st.sampled_from([b"", b";a=b", b" ;x"])) + draw(eol)
            raw += piece + draw(eol)
        raw += b"0" + draw(eol)
        for name, value in draw(st.lists(st.tuples(names, values), max_size=2)):
            raw += name + b": " + value + draw(eol)
        raw += draw(eol)
    lowered = [(name.lower(), value) for name, value in headers]
    return Response(raw, ParsedResponse(status, reason, lowered, minor), body)


@given(response=responses(), cuts=st.lists(st.integers(0, 1000), max_size=10))
def test_valid_responses_round_trip(response: Response, cuts: list[int]) -> None:
    """A valid response in any pieces gives its head and exactly its body; reusable iff 1.1."""
    head, body, parser = parse(split(response.raw, cuts))
    assert head == response.head
    assert body == response.body
    assert parser.reusable is (response.head.minor == 1)


# ---------------------------------------------------------------------------------------------
# ResponseWriter and encode_request_head.


def test_length_framing_passes_bytes_through() -> None:
    """With a Content-Length the head is as given and body bytes pass unchanged; no close."""
    writer = ResponseWriter(method=b"GET", minor=1, keep_alive=True)
    head = writer.head(200, b"OK", [(b"content-length", b"5"), (b"x", b"y")])
    assert head == b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx: y\r\n\r\n"
    wire = [writer.data(b"he"), writer.data(b""), writer.data(b"llo"), writer.end()]
    assert wire == [b"he", b"", b"llo", b""]
    assert (writer.head_sent, writer.done, writer.close) == (True, True, False)


def test_chunked_framing_for_http11_without_content_length() -> None:
    """An HTTP/1.1 body of unknown length is chunked, exactly, and parses back to the body."""
    writer = ResponseWriter(method=b"POST", minor=1, keep_alive=True)
    wire = [writer.head(200, b"OK", [(b"content-type", b"text/event-stream")])]
    assert wire[0] == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    wire += [writer.data(b"hello"), writer.data(b""), writer.data(b"z" * 26), writer.end()]
    assert wire[1:] == [b"5\r\nhello\r\n", b"", b"1a\r\n" + b"z" * 26 + b"\r\n", b"0\r\n\r\n"]
    assert not writer.close
    _, body, parser = parse([b"".join(wire)], method=b"POST")
    assert body == b"hello" + b"z" * 26
    assert parser.reusable


def test_http10_client_gets_a_close_delimited_body() -> None:
    """An HTTP/1.0 client without Content-Length gets the raw body and `connection: close`."""
    writer = ResponseWriter(method=b"GET", minor=0, keep_alive=True)
    head = writer.head(200, b"OK", [(b"x", b"y")])
    assert head == b"HTTP/1.1 200 OK\r\nx: y\r\nconnection: close\r\n\r\n"
    wire = head + writer.data(b"abc") + writer.data(b"def") + writer.end()
    assert writer.close
    assert parse([wire], eof=True).body == b"abcdef"


@pytest.mark.parametrize(
    ("method", "minor", "status", "headers"),
    [
        (b"HEAD", 1, 200, [(b"content-length", b"10")]),
        (b"HEAD", 0, 200, []),
        (b"GET", 1, 204, []),
        (b"GET", 0, 304, [(b"content-length", b"10")]),
        (b"GET", 1, 304, []),
    ],
)
def test_responses_without_a_body_write_none(
    method: bytes, minor: int, status: int, headers: list[tuple[bytes, bytes]]
) -> None:
    """HEAD answers, 204 and 304 write no body, no chunked framing, and do not force a close."""
    writer = ResponseWriter(method=method, minor=minor, keep_alive=True)
    head = writer.head(status, b"X", headers)
    assert b"transfer-encoding" not in head
    assert b"connection" not in head
    assert (writer.data(b"abc"), writer.end(), writer.close) == (b"", b"", False)


@pytest.mark.parametrize(("keep_alive", "close"), [(False, False), (True, True), (False, True)])
def test_close_adds_connection_close(keep_alive: bool, close: bool) -> None:
    """`keep_alive=False` or `head(close=True)` writes `connection: close` and sets `close`."""
    writer = ResponseWriter(method=b"GET", minor=1, keep_alive=keep_alive)
    head = writer.head(200, b"OK", [(b"content-length", b"0")], close=close)
    assert head == b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    assert writer.end() == b""
    assert writer.close


def test_body_shorter_than_content_length_forces_close() -> None:
    """Ending a body before its Content-Length is reached makes the connection close."""
    writer = ResponseWriter(method=b"GET", minor=1, keep_alive=True)
    writer.head(200, b"OK", [(b"content-length", b"5")])
    assert writer.data(b"abc") == b"abc"
    assert not writer.close
    assert writer.end() == b""
    assert writer.close


def test_body_longer_than_content_length_raises() -> None:
    """Body bytes beyond the Content-Length, at once or over several calls, are a local error."""
    writer = ResponseWriter(method=b"GET", minor=1, keep_alive=True)
    writer.head(200, b"OK", [(b"content-length", b"5")])
    assert writer.data(b"abc") == b"abc"
    with pytest.raises(LocalProtocolError, match="Content-Length"):
        writer.data(b"def")
    other = ResponseWriter(method=b"GET", minor=0, keep_alive=True)
    other.head(200, b"OK", [(b"content-length", b"2")])
    with pytest.raises(LocalProtocolError, match="Content-Length"):
        other.data(b"abc")


def test_head_twice_raises() -> None:
    """A second head for the same response is a local error."""
    writer = ResponseWriter(method=b"GET", minor=1, keep_alive=True)
    writer.head(200, b"OK", [])
    with pytest.raises(LocalProtocolError, match="already"):
        writer.head(200, b"OK", [])


@pytest.mark.parametrize(
    "header",
    [(b"x\r\ny", b"v"), (b"x", b"a\r\nevil: 1"), (b"x", b"a\nb"), (b"x", b"a\rb"), (b"x\n", b"")],
)
def test_cr_or_lf_in_a_header_raises(header: tuple[bytes, bytes]) -> None:
    """A CR or LF in a header name or value is refused by both head writers."""
    with pytest.raises(LocalProtocolError, match="CR or LF"):
        encode_request_head(b"GET", b"/", [header])
    with pytest.raises(LocalProtocolError, match="CR or LF"):
        ResponseWriter(method=b"GET", minor=1, keep_alive=True).head(200, b"OK", [header])


def test_encode_request_head_exact_bytes() -> None:
    """The request head is the request line, each header as given, and a blank line."""
    headers = [(b"host", b"up:8000"), (b"content-length", b"2"), (b"X-Empty", b"")]
    assert encode_request_head(b"POST", b"/mcp?a=1", headers) == (
        b"POST /mcp?a=1 HTTP/1.1\r\nhost: up:8000\r\ncontent-length: 2\r\nX-Empty: \r\n\r\n"
    )
    assert encode_request_head(b"GET", b"/", []) == b"GET / HTTP/1.1\r\n\r\n"


@given(
    pieces=st.lists(st.binary(max_size=40), max_size=6),
    minor=st.sampled_from([0, 1]),
    with_length=st.booleans(),
    cuts=st.lists(st.integers(0, 400), max_size=6),
)
def test_written_responses_parse_back(
    pieces: list[bytes], minor: int, with_length: bool, cuts: list[int]
) -> None:
    """Whatever the framing chosen, ResponseParser reads back the body the writer was given."""
    body = b"".join(pieces)
    writer = ResponseWriter(method=b"GET", minor=minor, keep_alive=True)
    headers = [(b"content-length", b"%d" % len(body))] if with_length else []
    wire = writer.head(200, b"OK", headers) + b"".join(map(writer.data, pieces)) + writer.end()
    assert writer.close is (minor == 0 and not with_length)
    parsed = parse(split(wire, cuts), eof=writer.close)
    assert parsed.body == body
    assert parsed.parser.reusable is not writer.close


def test_writer_takes_content_length_in_any_case() -> None:
    """A `Content-Length` field written in mixed case still frames the body by its length."""
    writer = ResponseWriter(method=b"GET", minor=1, keep_alive=True)
    head = writer.head(200, b"OK", [(b"Content-Length", b"3")])
    assert b"transfer-encoding" not in head
    assert writer.data(b"abc") == b"abc"
    assert writer.end() == b""
    assert not writer.close


@pytest.mark.parametrize("value", [b"-1", b"+5", b"x", b""])
def test_writer_refuses_a_malformed_content_length(value: bytes) -> None:
    """A Content-Length that is not plain digits is a local error, not a framing guess."""
    writer = ResponseWriter(method=b"GET", minor=1, keep_alive=True)
    with pytest.raises(LocalProtocolError, match="Content-Length"):
        writer.head(200, b"OK", [(b"content-length", value)])


def test_a_refused_head_leaves_the_writer_unwritten() -> None:
    """A head refused for CR/LF in a value writes nothing, so a local answer can follow."""
    writer = ResponseWriter(method=b"GET", minor=1, keep_alive=True)
    with pytest.raises(LocalProtocolError):
        writer.head(200, b"OK", [(b"x-bad", b"a\r\nset-cookie: b")])
    assert not writer.head_sent
    head = writer.head(502, b"Bad Gateway", [(b"content-length", b"0")])
    assert head.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")


@pytest.mark.parametrize(
    ("value", "closes"),
    [
        (b"close", True),
        (b"Close", True),
        (b"keep-alive , CLOSE", True),
        (b"keep-alive", False),
        (b"closed", False),
        (b"", False),
    ],
)
def test_names_close_reads_the_tokens_of_a_connection_value(value: bytes, closes: bool) -> None:
    """`close` counts as one of the field's comma-separated tokens, in any case."""
    assert names_close(value) is closes


def test_chunks_parse_back_to_their_data() -> None:
    """`chunk` pieces followed by `LAST_CHUNK` are a chunked body the parser reads back."""
    parser = ResponseParser(method=b"GET")
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    parser.receive_data(head + chunk(b"a" * 17) + chunk(b"b") + LAST_CHUNK)
    assert isinstance(parser.next_event(), ParsedResponse)
    assert (parser.next_event(), parser.next_event()) == (b"a" * 17, b"b")
    assert parser.next_event() is Signal.END
