"""Tests of the incremental SSE decoder and encoder (mcpr_core.sse)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpr_core.errors import LocalProtocolError, McprError
from mcpr_core.sse import (
    END_OF_STREAM,
    NEED_DATA,
    DecoderStatistics,
    EndOfStream,
    NeedData,
    SSEDecoder,
    SSEEvent,
    encode_event,
    reencode,
)
from tests.fixtures import FIXTURES

BOM = b"\xef\xbb\xbf"

# ---------------------------------------------------------------------------------------------
# Helpers: feeding, splitting, and an independent reference parser.


def drain(decoder: SSEDecoder) -> tuple[list[SSEEvent], NeedData | EndOfStream]:
    """Pull events until the decoder answers with a sentinel."""
    events = []
    while True:
        ev = decoder.next_event()
        if isinstance(ev, SSEEvent):
            events.append(ev)
        else:
            return events, ev


def feed(chunks: Iterable[bytes], *, eof: bool = True) -> tuple[list[SSEEvent], SSEDecoder]:
    """Feed chunks one by one, pulling events after each, then end the stream if `eof`."""
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for chunk in chunks:
        if not chunk:
            continue  # b"" would mean the end of the stream
        decoder.receive_data(chunk)
        got, sentinel = drain(decoder)
        assert sentinel is NEED_DATA
        events += got
    if eof:
        decoder.receive_data(b"")
        got, sentinel = drain(decoder)
        assert sentinel is END_OF_STREAM
        assert decoder.next_event() is END_OF_STREAM
        events += got
    return events, decoder


def split(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """Cut `data` at the given offsets (any order, duplicates allowed) into non-empty chunks."""
    points = sorted({0, len(data), *(min(max(c, 0), len(data)) for c in cuts)})
    return [data[a:b] for a, b in pairwise(points) if a < b]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def three_ways(data: bytes) -> Iterator[tuple[str, list[bytes]]]:
    """The h11 toolkit: the same bytes whole, byte by byte, and in two unequal halves."""
    yield "whole", [data]
    yield "bytewise", bytewise(data)
    yield "halves", split(data, [len(data) // 3])


def reference(stream: bytes) -> tuple[list[SSEEvent], bytes]:
    """Parse a complete stream the WHATWG way, in one regex pass: the oracle for the decoder."""
    events: list[SSEEvent] = []
    start = 0
    fields: dict[str, Any] = {}
    data: list[str] = []
    comments: list[str] = []
    seen = False
    line_re = re.compile(rb"([^\r\n]*)(\r\n|\r|\n)")
    for m in line_re.finditer(stream, 3 if stream.startswith(BOM) else 0):
        line = m.group(1)
        if not line:
            if seen:
                events.append(
                    SSEEvent(
                        raw=stream[start : m.end()],
                        data="\n".join(data),
                        event=fields.get("event"),
                        id=fields.get("id"),
                        retry=fields.get("retry"),
                        comments=tuple(comments),
                        has_data=bool(data),
                    )
                )
                start, fields, data, comments, seen = m.end(), {}, [], [], False
            continue
        seen = True
        text = line.decode("utf-8", "replace")
        if text.startswith(":"):
            comments.append(text[1:])
            continue
        name, _, value = text.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            fields["event"] = value
        elif name == "id" and "\0" not in value:
            fields["id"] = value
        elif name == "retry" and re.fullmatch("[0-9]+", value):
            fields["retry"] = int(value)
    return events, stream[start:]


def check_invariant(events: Sequence[SSEEvent], decoder: SSEDecoder, stream: bytes) -> None:
    assert b"".join(ev.raw for ev in events) + decoder.trailing == stream


# ---------------------------------------------------------------------------------------------
# The captured traffic.


def dechunk(body: bytes) -> bytes:
    """Undo HTTP/1.1 chunked framing (the capture may stop before the last chunk)."""
    out = bytearray()
    pos = 0
    while pos < len(body):
        eol = body.index(b"\r\n", pos)
        size = int(body[pos:eol], 16)
        out += body[eol + 2 : eol + 2 + size]
        pos = eol + 2 + size + 2
    return bytes(out)


def sse_bodies() -> list[tuple[str, bytes]]:
    """Every text/event-stream response body of the captures, keyed by file and line."""
    bodies = []
    for path in sorted(FIXTURES.glob("*.jsonl")):
        for n, line in enumerate(path.read_text("utf-8").splitlines()):
            record = json.loads(line)
            response = record["response"]
            content_type = dict((k.lower(), v) for k, v in response["headers"]).get("content-type")
            if not response["body"] or not (content_type or "").startswith("text/event-stream"):
                continue
            body = response["body"].encode("utf-8")
            if "raw chunked" in record.get("name", ""):
                body = dechunk(body)
            bodies.append((f"{path.stem}:{n}", body))
    return bodies


SSE_BODIES = sse_bodies()

# Events per SSE response: (id shape, retry, event name) of each. "uuid" is the conformance
# server's `<stream uuid>::<ms>_<uuid>` form, and None means no `id:` line.
PRIMING = ("uuid", 5000, None)
MESSAGE = ("uuid", None, "message")
EXPECTED: dict[str, list[tuple[str | None, int | None, str | None]]] = {
    "conformance-everything:0": [PRIMING, MESSAGE],
    "conformance-everything:2": [PRIMING, MESSAGE],
    "conformance-everything:3": [PRIMING, MESSAGE, MESSAGE, MESSAGE, MESSAGE],
    "conformance-everything:4": [PRIMING, MESSAGE, MESSAGE, MESSAGE, MESSAGE],
    "conformance-everything:5": [PRIMING, MESSAGE],
    "conformance-everything:6": [PRIMING, MESSAGE],
    "conformance-everything:7": [PRIMING, MESSAGE],
    "conformance-everything:8": [PRIMING, MESSAGE],
    "conformance-everything:9": [PRIMING, MESSAGE],
    "mcp-apps-map:0": [(None, None, "message")],
    "mcp-apps-map:2": [(None, None, "message")],
    "mcp-apps-map:3": [(None, None, "message")],
    "mcp-apps-map:4": [(None, None, "message")],
    "mcp-apps-map:5": [(None, None, "message")],
    "modern-2026-07-28:3": [(None, None, "message")] * 4,
    "modern-2026-07-28:13": [(None, None, "message")],
}
CONFORMANCE_ID = re.compile(r"([0-9a-f-]{36})::\d+_[0-9a-f-]{36}")


def check_fixture(name: str, body: bytes, events: list[SSEEvent], decoder: SSEDecoder) -> None:
    assert [
        (
            "uuid" if ev.id is not None and CONFORMANCE_ID.fullmatch(ev.id) else ev.id,
            ev.retry,
            ev.event,
        )
        for ev in events
    ] == EXPECTED[name]
    assert decoder.trailing == b""
    check_invariant(events, decoder, body)
    ids = [ev.id for ev in events if ev.id is not None]
    assert len(set(ids)) == len(ids)
    assert len({CONFORMANCE_ID.fullmatch(i).group(1) for i in ids}) <= 1  # type: ignore[union-attr]
    for ev in events:
        assert ev.has_data
        assert ev.comments == ()
        if ev.data:
            assert json.loads(ev.data)["jsonrpc"] == "2.0"
        else:
            assert ev.retry == 5000  # only the priming event is empty


def test_fixtures_are_present() -> None:
    """The captures hold sixteen SSE response bodies, and the table expects each of them."""
    assert sorted(name for name, _ in SSE_BODIES) == sorted(EXPECTED)


@pytest.mark.parametrize(("name", "body"), SSE_BODIES, ids=[name for name, _ in SSE_BODIES])
@pytest.mark.parametrize("mode", ["whole", "bytewise", "4096", "7", "halves"])
def test_fixture_bodies_decode(name: str, body: bytes, mode: str) -> None:
    """Every captured SSE body decodes to its expected events, however it is chunked."""
    if mode == "whole":
        chunks = [body]
    elif mode == "bytewise":
        chunks = bytewise(body)
    elif mode == "halves":
        chunks = split(body, [len(body) // 2])
    else:
        chunks = chunked(body, int(mode))
    events, decoder = feed(chunks)
    check_fixture(name, body, events, decoder)
    assert (events, decoder.trailing) == reference(body)
    assert decoder.statistics() == DecoderStatistics(
        events=len(events), bytes_in=len(body), buffered=0, eof=True
    )


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_fixture_bodies_random_splits(data: st.DataObject) -> None:
    """Captured SSE bodies cut at random offsets decode to the same events as whole."""
    name, body = data.draw(st.sampled_from(SSE_BODIES))
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=40))
    events, decoder = feed(split(body, cuts))
    check_fixture(name, body, events, decoder)
    assert (events, decoder.trailing) == reference(body)


@pytest.mark.parametrize(("name", "body"), SSE_BODIES, ids=[name for name, _ in SSE_BODIES])
def test_fixture_events_reencode_to_their_raw(name: str, body: bytes) -> None:
    """Re-encoding a captured event with its own data gives back its exact bytes."""
    events, _ = feed([body])
    for ev in events:
        assert reencode(ev, data=ev.data) == ev.raw


def test_fixture_trailing_data_stays_trailing() -> None:
    """Bytes of an unfinished event after a captured body stay in `trailing`, however fed."""
    body = dict(SSE_BODIES)["modern-2026-07-28:3"]
    extra = b'event: message\r\ndata: {"partial": '
    for mode, chunks in three_ways(body + extra):
        events, decoder = feed(chunks, eof=False)
        assert len(events) == 4, mode
        assert b"".join(ev.raw for ev in events) == body
        assert decoder.trailing == extra
        decoder.receive_data(b"")
        assert decoder.next_event() is END_OF_STREAM
        assert decoder.trailing == extra


# ---------------------------------------------------------------------------------------------
# Line ends.


@pytest.mark.parametrize("nl", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_line_ends(nl: bytes) -> None:
    """LF, CRLF and CR all end lines, and a blank line of each dispatches the event."""
    stream = nl.join([b"event: a", b"data: 1", b"data: 2", b"", b"id: 7", b"data: x", b"", b""])
    for mode, chunks in three_ways(stream):
        events, decoder = feed(chunks)
        assert [(ev.event, ev.id, ev.data) for ev in events] == [
            ("a", None, "1\n2"),
            (None, "7", "x"),
        ], mode
        check_invariant(events, decoder, stream)
        assert decoder.trailing == b""


def test_mixed_line_ends() -> None:
    """One stream may mix LF, CRLF and CR from line to line."""
    stream = b"data: a\rdata: b\r\ndata: c\n\r\ndata: d\r\r"
    for _, chunks in three_ways(stream):
        events, _ = feed(chunks)
        assert [ev.data for ev in events] == ["a\nb\nc", "d"]


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    """A CR ending one chunk and an LF starting the next make one line end, not a blank line."""
    events, decoder = feed([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"])
    assert [(ev.data, ev.raw) for ev in events] == [("a\nb", b"data: a\r\ndata: b\r\n\r\n")]
    assert decoder.trailing == b""


def test_cr_blank_line_at_chunk_end_waits_for_the_next_byte() -> None:
    """An event ended by a CR received last waits for the next byte, which may be its LF."""
    decoder = SSEDecoder()
    decoder.receive_data(b"data: a\r\n\r")
    assert decoder.next_event() is NEED_DATA
    assert decoder.next_event() is NEED_DATA
    decoder.receive_data(b"\n")
    ev = decoder.next_event()
    assert isinstance(ev, SSEEvent)
    assert ev.raw == b"data: a\r\n\r\n"


def test_cr_blank_line_followed_by_other_byte() -> None:
    """A held CR blank line dispatches without the next byte when that byte is not an LF."""
    events, decoder = feed([b"data: a\r\r", b"data: b\r\r"], eof=False)
    assert [ev.raw for ev in events] == [b"data: a\r\r"]
    assert decoder.trailing == b"data: b\r\r"


def test_cr_blank_line_then_end_of_stream() -> None:
    """A held CR blank line dispatches when the stream ends."""
    events, decoder = feed([b"data: a\r\r"])
    assert [ev.raw for ev in events] == [b"data: a\r\r"]
    assert decoder.trailing == b""


def test_cr_at_chunk_end_then_non_lf() -> None:
    """A CR at the end of a chunk followed by another line keeps both lines."""
    events, _ = feed([b"data: a\r", b"data: b\r", b"\r"])
    assert [ev.data for ev in events] == ["a\nb"]


def test_cr_then_end_of_stream_in_an_event() -> None:
    """A CR-ended field line at the end of the stream leaves its unfinished event in `trailing`."""
    events, decoder = feed([b"data: a\r"])
    assert events == []
    assert decoder.trailing == b"data: a\r"


# ---------------------------------------------------------------------------------------------
# BOM, comments, fields.


def test_bom_is_skipped_and_kept_in_raw() -> None:
    """A UTF-8 BOM opening the stream is not part of the first field name, but stays in `raw`."""
    stream = BOM + b"data: x\n\n"
    for mode, chunks in three_ways(stream):
        events, _ = feed(chunks)
        assert [(ev.data, ev.raw) for ev in events] == [("x", stream)], mode


def test_bom_split_across_chunks() -> None:
    """A BOM arriving one byte at a time is still recognised."""
    events, _ = feed([BOM[:1], BOM[1:2], BOM[2:] + b"data: x\n\n"])
    assert [ev.data for ev in events] == ["x"]


def test_bom_only_at_the_start() -> None:
    """A BOM later in the stream is part of a field name, so that field is unknown."""
    events, _ = feed([BOM + b"data: a\n\n" + BOM + b"data: b\n\n"])
    assert [(ev.data, ev.has_data) for ev in events] == [("a", True), ("", False)]


def test_partial_bom_then_end_of_stream() -> None:
    """A stream of two BOM bytes ends with no event and both bytes in `trailing`."""
    events, decoder = feed([BOM[:2]])
    assert events == []
    assert decoder.trailing == BOM[:2]


def test_not_a_bom() -> None:
    """Bytes that only start like a BOM are an ordinary (unknown, invalid UTF-8) field."""
    events, _ = feed([b"\xef", b"data: x\n\n"])
    assert [(ev.data, ev.has_data, ev.raw) for ev in events] == [("", False, b"\xefdata: x\n\n")]


def test_comment_only_keep_alive() -> None:
    """A comment-only block is returned as an event with its comments and no data."""
    stream = b": ping\r\n\r\n:\r\n\r\ndata: x\r\n\r\n"
    events, _ = feed([stream])
    assert [(ev.comments, ev.has_data, ev.data) for ev in events] == [
        ((" ping",), False, ""),
        (("",), False, ""),
        ((), True, "x"),
    ]


def test_comments_in_order_within_an_event() -> None:
    """Comments between fields are collected in order, without their colon."""
    events, _ = feed([b":a\ndata: 1\n: b\n::c\n\n"])
    assert events[0].comments == ("a", " b", ":c")
    assert events[0].data == "1"


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (b"retry: 3000", 3000),
        (b"retry:0", 0),
        (b"retry: 007", 7),
        (b"retry: ", None),
        (b"retry", None),
        (b"retry: 12a", None),
        (b"retry: -1", None),
        (b"retry: 1.5", None),
        (b"retry: +5", None),
        (b"retry:  5", None),
        (b"retry: 5 ", None),
        ("retry: ١٢".encode(), None),
        (b"retry: 10\nretry: x", 10),
        (b"retry: 10\nretry: 20", 20),
    ],
)
def test_retry_values(lines: bytes, expected: int | None) -> None:
    """`retry` keeps the last value made only of ASCII digits and ignores the others."""
    events, _ = feed([lines + b"\n\n"])
    assert events[0].retry == expected
    assert events[0].has_data is False


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (b"id: 1", "1"),
        (b"id:", ""),
        (b"id", ""),
        (b"id: a\x00b", None),
        (b"id: a\nid: b\x00", "a"),
        (b"id: a\nid: b", "b"),
        (b"id:  a ", " a "),
    ],
)
def test_id_values(lines: bytes, expected: str | None) -> None:
    """`id` keeps the last value; an id holding NUL is ignored but stays in `raw`."""
    stream = lines + b"\ndata: x\n\n"
    events, _ = feed([stream])
    assert events[0].id == expected
    assert events[0].raw == stream


def test_field_without_colon() -> None:
    """A line without a colon is a field with an empty value."""
    events, _ = feed([b"data\nevent\n\ndata\ndata\n\n"])
    assert [(ev.data, ev.has_data, ev.event) for ev in events] == [
        ("", True, ""),
        ("\n", True, None),
    ]


def test_data_with_and_without_space() -> None:
    """One space after the colon is removed; no space or a second space is kept as is."""
    events, _ = feed([b"data:x\ndata: y\ndata:  z\ndata:\ndata: \n\n"])
    assert events[0].data == "x\ny\n z\n\n"


def test_multi_line_data_and_trailing_empty_line() -> None:
    """Data lines join with LF, and a last empty data line leaves one LF at the end."""
    events, _ = feed([b'data: {\ndata: "a": 1\ndata: }\n\ndata: a\ndata:\n\n'])
    assert [ev.data for ev in events] == ['{\n"a": 1\n}', "a\n"]


def test_value_keeps_later_colons() -> None:
    """Only the first colon separates name from value."""
    events, _ = feed([b"data: a: b:c\nevent:x:y\n\n"])
    assert (events[0].data, events[0].event) == ("a: b:c", "x:y")


def test_unknown_fields_only() -> None:
    """A block of unknown fields is still returned, with nothing decoded."""
    stream = b"foo: bar\nData: x\n data: y\n\n"
    events, _ = feed([stream])
    assert events == [
        SSEEvent(raw=stream, data="", event=None, id=None, retry=None, comments=(), has_data=False)
    ]


def test_empty_blocks_join_the_next_event() -> None:
    """Blank lines with no event before them are not events: their bytes lead the next raw."""
    stream = b"\n\r\n\rdata: a\n\n\n\ndata: b\n\n"
    for mode, chunks in three_ways(stream):
        events, decoder = feed(chunks)
        assert [(ev.raw, ev.data) for ev in events] == [
            (b"\n\r\n\rdata: a\n\n", "a"),
            (b"\n\ndata: b\n\n", "b"),
        ], mode
        check_invariant(events, decoder, stream)


def test_only_blank_lines() -> None:
    """A stream of blank lines has no event and ends with all of them in `trailing`."""
    events, decoder = feed([b"\n\n\r\n\r"])
    assert events == []
    assert decoder.trailing == b"\n\n\r\n\r"


def test_invalid_utf8_is_replaced() -> None:
    """Bytes that are not UTF-8 decode to U+FFFD and stay unchanged in `raw`."""
    stream = b"data: a\xffb\xe2\x82\n:\xc3\nevent: \xed\xa0\x80\nid: \xf0\x9f\n\n"
    events, _ = feed(bytewise(stream))
    ev = events[0]
    assert ev.data == "a\ufffdb\ufffd"
    assert ev.comments == ("\ufffd",)
    assert ev.event == "\ufffd\ufffd\ufffd"
    assert ev.id == "\ufffd"
    assert ev.raw == stream


def test_multibyte_utf8_split_across_chunks() -> None:
    """A multibyte character cut between chunks decodes whole."""
    stream = "data: héllo 😀 ok\n\n".encode()
    for mode, chunks in three_ways(stream):
        events, _ = feed(chunks)
        assert events[0].data == "héllo 😀 ok", mode


# ---------------------------------------------------------------------------------------------
# End of stream, misuse, introspection.


def test_end_of_stream_inside_an_event() -> None:
    """An event cut by the end of the stream is not returned; `trailing` holds its bytes."""
    stream = b'data: a\n\nevent: message\ndata: {"jsonrpc"'
    for mode, chunks in three_ways(stream):
        events, decoder = feed(chunks)
        assert [ev.data for ev in events] == ["a"], mode
        assert decoder.trailing == b'event: message\ndata: {"jsonrpc"'


def test_need_data_before_the_end() -> None:
    """Before the end of the stream, an unfinished event makes `next_event` ask for data."""
    decoder = SSEDecoder()
    assert decoder.next_event() is NEED_DATA
    decoder.receive_data(b"data: a\n")
    assert decoder.next_event() is NEED_DATA
    assert decoder.trailing == b"data: a\n"


def test_empty_stream() -> None:
    """A stream that ends before any byte yields END_OF_STREAM at once."""
    events, decoder = feed([])
    assert events == []
    assert decoder.trailing == b""


def test_receive_after_end_raises() -> None:
    """Data after the end of the stream is a driver bug; another end is harmless."""
    decoder = SSEDecoder()
    decoder.receive_data(b"data: a\n\n")
    decoder.receive_data(b"")
    decoder.receive_data(b"")
    with pytest.raises(LocalProtocolError, match="after the end"):
        decoder.receive_data(b"x")
    ev = decoder.next_event()
    assert isinstance(ev, SSEEvent)
    assert ev.data == "a"
    assert decoder.next_event() is END_OF_STREAM


def test_statistics_and_repr() -> None:
    """`statistics()` and the repr show events returned, bytes received, bytes held and the end."""
    decoder = SSEDecoder()
    assert repr(decoder) == "<SSEDecoder open events=0 bytes_in=0 buffered=0>"
    decoder.receive_data(b"data: a\n\ndata: b")
    assert isinstance(decoder.next_event(), SSEEvent)
    assert decoder.next_event() is NEED_DATA
    assert decoder.statistics() == DecoderStatistics(events=1, bytes_in=16, buffered=7, eof=False)
    assert repr(decoder) == "<SSEDecoder open events=1 bytes_in=16 buffered=7>"
    decoder.receive_data(b"")
    assert decoder.statistics().eof is True
    assert repr(decoder) == "<SSEDecoder closed events=1 bytes_in=16 buffered=7>"


def test_sentinels() -> None:
    """The sentinels are single values of their own types with short reprs."""
    assert isinstance(NEED_DATA, NeedData)
    assert isinstance(END_OF_STREAM, EndOfStream)
    assert repr(NEED_DATA) == "NEED_DATA"
    assert repr(END_OF_STREAM) == "END_OF_STREAM"
    assert list(NeedData) == [NEED_DATA]
    assert list(EndOfStream) == [END_OF_STREAM]


def test_events_are_frozen() -> None:
    """Events cannot be changed after they are built."""
    events, _ = feed([b"data: a\n\n"])
    with pytest.raises(AttributeError):
        events[0].data = "b"  # type: ignore[misc]


def test_long_line_in_small_chunks() -> None:
    """A 300 KB data line fed in 1 KB chunks decodes into one event of that data."""
    payload = "x" * 300_000
    stream = f"event: message\ndata: {payload}\n\n".encode()
    events, decoder = feed(chunked(stream, 1024))
    assert [ev.data for ev in events] == [payload]
    check_invariant(events, decoder, stream)


# ---------------------------------------------------------------------------------------------
# Encoding.


def test_encode_event_field_order() -> None:
    """`encode_event` writes comments, event, id, retry, then the data lines and a blank line."""
    out = encode_event(data="x", event="message", id="7", retry=10, comments=[" ping", ""])
    assert out == b": ping\n:\nevent: message\nid: 7\nretry: 10\ndata: x\n\n"


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_encode_event_newline(newline: str) -> None:
    """`encode_event` ends every line with the chosen line end."""
    out = encode_event(data="a", id="1", newline=newline)
    assert out == f"id: 1{newline}data: a{newline}{newline}".encode()


def test_encode_event_splits_data_lines() -> None:
    """Data holding CRLF, CR or LF becomes several data lines, which decode joined with LF."""
    out = encode_event(data="a\r\nb\rc\nd\n")
    assert out == b"data: a\ndata: b\ndata: c\ndata: d\ndata: \n\n"
    events, _ = feed([out])
    assert events[0].data == "a\nb\nc\nd\n"


def test_encode_event_data_none_and_empty() -> None:
    """No data writes no data line; empty data writes one empty data line."""
    assert encode_event(id="1") == b"id: 1\n\n"
    assert encode_event(id="1", data="") == b"id: 1\ndata: \n\n"
    assert encode_event() == b"\n"


def test_encode_event_values_round_trip() -> None:
    """Values with leading spaces, colons and non-ASCII decode back exactly."""
    fields: dict[str, Any] = {
        "data": '  spaced: {"é": 1}',
        "event": " ev:t",
        "id": "",
        "retry": 0,
        "comments": ("", " c", ":"),
    }
    events, _ = feed([encode_event(**fields)])
    ev = events[0]
    assert (ev.data, ev.event, ev.id, ev.retry, ev.comments) == tuple(fields.values())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"event": "a\nb"},
        {"id": "a\rb"},
        {"comments": ["ok", "a\nb"]},
        {"id": "a\x00b"},
        {"retry": -1},
        {"newline": "\n\n"},
        {"data": "\ud800"},
    ],
)
def test_encode_event_rejects_unframeable_values(kwargs: dict[str, Any]) -> None:
    """Values that cannot be written as one SSE event raise LocalProtocolError."""
    with pytest.raises(LocalProtocolError):
        encode_event(**kwargs)
    assert issubclass(LocalProtocolError, McprError)


def test_reencode_rewrites_data_and_keeps_the_rest() -> None:
    """`reencode` replaces the data and keeps comments, event, id and retry."""
    original = encode_event(data="old\nlines", event="message", id="9", retry=5, comments=["c"])
    events, _ = feed([original])
    assert reencode(events[0], data="new") == b":c\nevent: message\nid: 9\nretry: 5\ndata: new\n\n"


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_reencode_keeps_the_line_end_style(newline: str) -> None:
    """`reencode` writes the line end found in the original event."""
    original = encode_event(data="a", event="message", newline=newline)
    events, _ = feed(bytewise(original))
    assert reencode(events[0], data="a") == original
    assert reencode(events[0], data="b\nc") == encode_event(
        data="b\nc", event="message", newline=newline
    )


def test_reencode_keeps_leading_blank_lines_and_drops_unknown_fields() -> None:
    """Blank lines before the event stay in front; unknown fields and a BOM are dropped."""
    stream = BOM + b"\r\n\r\nfoo: 1\r\ndata: a\r\n\r\n"
    events, _ = feed([stream])
    assert reencode(events[0], data="b") == b"\r\n\r\ndata: b\r\n\r\n"


def test_reencode_without_data() -> None:
    """An event without data gets no data line back unless its new data is non-empty."""
    events, _ = feed([b": ping\n\n"])
    assert reencode(events[0], data="") == b": ping\n\n"
    assert reencode(events[0], data="x") == b": ping\ndata: x\n\n"


def test_reencode_event_built_by_hand() -> None:
    """An event whose `raw` has no line end is written with LF."""
    ev = SSEEvent(raw=b"", data="a", event=None, id=None, retry=None, comments=(), has_data=True)
    assert reencode(ev, data="b") == b"data: b\n\n"


# ---------------------------------------------------------------------------------------------
# Properties.

SSE_ISH = st.lists(
    st.sampled_from(
        [
            b"data",
            b"event",
            b"id",
            b"retry",
            b":",
            b": ",
            b" ",
            b"\r",
            b"\n",
            b"\r\n",
            b"7",
            b"x",
            b"\x00",
            BOM,
            b"\xff",
            b"\xe2\x82",
            b"\xac",
            b"data: {}\n\n",
        ]
    ),
    max_size=60,
).map(b"".join)
STREAMS = st.one_of(st.binary(max_size=300), SSE_ISH)


@settings(max_examples=300)
@given(stream=STREAMS, data=st.data())
def test_any_split_gives_the_same_events(stream: bytes, data: st.DataObject) -> None:
    """Arbitrary bytes never raise, and any chunking gives the events and trailing of the oracle."""
    expected = reference(stream)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20))
    for chunks in ([stream], split(stream, cuts), bytewise(stream)):
        events, decoder = feed(chunks)
        assert (events, decoder.trailing) == expected
        check_invariant(events, decoder, stream)


@settings(max_examples=200)
@given(stream=STREAMS, data=st.data())
def test_concatenation_invariant_at_every_step(stream: bytes, data: st.DataObject) -> None:
    """After every chunk, the raws returned so far plus `trailing` are the bytes received."""
    decoder = SSEDecoder()
    raws = b""
    received = b""
    for chunk in split(stream, data.draw(st.lists(st.integers(0, len(stream)), max_size=20))):
        decoder.receive_data(chunk)
        received += chunk
        events, _ = drain(decoder)
        raws += b"".join(ev.raw for ev in events)
        assert raws + decoder.trailing == received
        assert decoder.statistics().buffered == len(decoder.trailing)


LINE_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=12)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "data": st.text(st.characters(codec="utf-8"), max_size=20),
        "event": LINE_TEXT,
        "id": LINE_TEXT.filter(lambda s: "\0" not in s),
        "retry": st.integers(0, 10**12),
        "comments": st.lists(LINE_TEXT, max_size=3).map(tuple),
    },
).filter(lambda f: any(k != "comments" for k in f) or bool(f.get("comments")))


@settings(max_examples=300)
@given(
    events=st.lists(FIELDS, max_size=6),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    data=st.data(),
)
def test_encode_decode_round_trip(
    events: list[dict[str, Any]], newline: str, data: st.DataObject
) -> None:
    """Streams written by `encode_event` decode to their fields and re-encode to the same bytes."""
    encoded = [encode_event(**fields, newline=newline) for fields in events]
    stream = b"".join(encoded)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=10))
    decoded, decoder = feed(split(stream, cuts))
    assert [ev.raw for ev in decoded] == encoded
    assert decoder.trailing == b""
    for fields, ev in zip(events, decoded, strict=True):
        assert ev.data == re.sub("\r\n|\r", "\n", fields.get("data", ""))
        assert ev.has_data is ("data" in fields)
        assert (ev.event, ev.id, ev.retry) == (
            fields.get("event"),
            fields.get("id"),
            fields.get("retry"),
        )
        assert ev.comments == fields.get("comments", ())
        assert reencode(ev, data=ev.data) == ev.raw
        assert (
            encode_event(
                data=ev.data if ev.has_data else None,
                event=ev.event,
                id=ev.id,
                retry=ev.retry,
                comments=ev.comments,
                newline=newline,
            )
            == ev.raw
        )
