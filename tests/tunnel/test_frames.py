"""The frame codec: every kind round-trips, bad input is a FrameError, never another exception."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_tunnel_client.frames import (
    Cancel,
    Chunk,
    Credit,
    End,
    Evicted,
    Frame,
    FrameError,
    Hello,
    Offer,
    Refused,
    Registered,
    Request,
    Response,
    StreamHead,
    encode_frame,
    parse_frame,
)

EXAMPLES: list[Frame] = [
    Hello("tok", "demo", ("stream",)),
    Hello("tok"),
    Registered("demo", "https://demo.example.com", ("stream",), 1024),
    Registered("demo", "https://demo.example.com"),
    Offer(("demo-1", "demo-2"), "demo is taken"),
    Offer(()),
    Refused("invalid token", "bad_token"),
    Refused("nope"),
    Evicted("demo registered again"),
    Request("1", "POST", "/mcp?x=1", (("content-type", "application/json"),), b'{"a":1}'),
    Response("1", 200, (("content-type", "text/plain"),), b"\x00\xffbinary"),
    StreamHead("2", 200, (("content-type", "text/event-stream"),)),
    Chunk("2", b"data: 1\n\n"),
    End("2"),
    End("2", "local proxy went away"),
    Credit("2", 65536),
    Cancel("2"),
]


@pytest.mark.parametrize("frame", EXAMPLES, ids=lambda f: type(f).__name__)
def test_round_trip(frame: Frame) -> None:
    """Every kind of frame parses back to itself from its encoding, as text and as bytes."""
    text = encode_frame(frame)
    assert parse_frame(text) == frame
    assert parse_frame(text.encode()) == frame


def test_reference_shapes() -> None:
    """Requests and whole answers have the reference tool's keys, with base64 bodies."""
    request = json.loads(encode_frame(Request("7", "GET", "/", (("a", "b"),), b"hi")))
    assert request == {
        "id": "7",
        "method": "GET",
        "path": "/",
        "headers": {"a": "b"},
        "body": "aGk=",
    }
    response = json.loads(encode_frame(Response("7", 204, (), b"")))
    assert response == {"id": "7", "status": 204, "headers": {}, "body": ""}


def test_repeated_headers_are_folded_and_pairs_accepted() -> None:
    """A repeated header name is comma-joined on the way out; [[name, value]] pairs parse too."""
    frame = parse_frame(encode_frame(Response("1", 200, (("a", "1"), ("a", "2")), b"")))
    assert isinstance(frame, Response)
    assert frame.headers == (("a", "1, 2"),)
    pairs = '{"id":"1","status":200,"headers":[["a","1"],["a","2"]],"body":""}'
    assert parse_frame(pairs) == Response("1", 200, (("a", "1"), ("a", "2")), b"")


def test_hello_repr_hides_the_token() -> None:
    """The token of a Hello never shows in its repr."""
    assert "s3cret" not in repr(Hello("s3cret", "demo"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not a JSON text"),
        ("[1]", "a frame is a JSON object"),
        ("{}", "unknown frame"),
        ('{"id": 1, "cancel": true}', "'id' must be a string"),
        ('{"id": "1"}', "a frame with an 'id' needs"),
        ('{"id": "1", "status": 99, "headers": {}, "body": ""}', "'status' must be an integer"),
        ('{"id": "1", "status": 200, "body": "!!"}', "'body' must be base64"),
        ('{"id": "1", "status": 200, "body": "", "headers": {"a b": "c"}}', "invalid header name"),
        (
            '{"id": "1", "status": 200, "body": "", "headers": {"a": "c\\r\\nx: y"}}',
            "invalid value",
        ),
        ('{"id": "1", "method": "GET", "path": "no-slash", "body": ""}', "invalid path"),
        ('{"id": "1", "method": "G T", "path": "/", "body": ""}', "invalid method"),
        ('{"id": "1", "credit": 0}', "'credit' must be an integer"),
        ('{"id": "1", "end": false}', "'end' must be true"),
        ('{"token": 5}', "'token' must be a string"),
        ('{"subdomains": "a"}', "'subdomains' must be an array of strings"),
    ],
)
def test_invalid_frames(text: str, message: str) -> None:
    """Each malformed message is a FrameError that says what is wrong."""
    with pytest.raises(FrameError, match=message):
        parse_frame(text)


@given(st.binary(max_size=512))
def test_arbitrary_bytes_never_crash_the_parser(data: bytes) -> None:
    """Any bytes are either a frame or a FrameError."""
    with contextlib.suppress(FrameError):
        parse_frame(data)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_keys = st.sampled_from(
    ["id", "method", "path", "headers", "body", "status", "stream", "chunk", "end", "credit",
     "cancel", "token", "subdomain", "capabilities", "url", "window", "subdomains", "error",
     "code", "evicted"]
)  # fmt: skip


@given(st.dictionaries(_keys, _json, max_size=6))
def test_arbitrary_objects_with_frame_keys_never_crash_the_parser(obj: dict[str, object]) -> None:
    """JSON objects mixing the frames' keys with any values are a frame or a FrameError."""
    try:
        frame = parse_frame(json.dumps(obj))
    except FrameError:
        return
    assert parse_frame(encode_frame(frame)) == frame


_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-0123456789", min_size=1, max_size=12)
_headers = st.dictionaries(
    _token, st.text(st.characters(exclude_characters="\r\n\x00")), max_size=4
)


@given(_token, st.integers(100, 599), _headers, st.binary(max_size=256))
def test_responses_round_trip(
    request_id: str, status: int, headers: dict[str, str], body: bytes
) -> None:
    """Any valid whole response encodes and parses back unchanged."""
    frame = Response(request_id, status, tuple(headers.items()), body)
    assert parse_frame(encode_frame(frame)) == frame
