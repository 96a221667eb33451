"""The client protocol machine: registration, request bookkeeping, credit, and its errors."""

from __future__ import annotations

import json

import pytest

from mcp_tunnel_client.frames import (
    Cancel,
    Chunk,
    Credit,
    End,
    Evicted,
    Frame,
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
from mcp_tunnel_client.protocol import (
    MAX_CHUNK,
    LocalProtocolError,
    RemoteProtocolError,
    State,
    TunnelProtocol,
)


def connected(*, streaming: bool = True, window: int | None = 100) -> TunnelProtocol:
    """A machine registered with a relay that offers streaming (or not)."""
    proto = TunnelProtocol("tok", "demo", streaming=True)
    caps = ("stream",) if streaming else ()
    proto.receive(encode_frame(Registered("demo", "https://demo.example", caps, window)))
    return proto


def request(request_id: str = "1") -> str:
    """A request frame's text."""
    return encode_frame(Request(request_id, "POST", "/mcp", (), b"{}"))


def test_hello_carries_token_subdomain_and_capability() -> None:
    """The first message names the token, the subdomain asked for, and the stream capability."""
    assert parse_frame(TunnelProtocol("tok", "demo").hello()) == Hello("tok", "demo", ("stream",))
    assert parse_frame(TunnelProtocol("tok", streaming=False).hello()) == Hello("tok", None, ())


def test_registration_negotiates_streaming_only_when_both_sides_offer_it() -> None:
    """Streaming is on when the relay lists it too; a relay without it gets whole bodies."""
    proto = connected()
    assert (proto.state, proto.streaming, proto.window) == (State.CONNECTED, True, 100)
    assert proto.registered is not None
    assert proto.registered.url == "https://demo.example"
    assert connected(streaming=False).streaming is False
    plain = TunnelProtocol("tok", streaming=False)
    plain.receive(encode_frame(Registered("d", "u", ("stream",))))
    assert plain.streaming is False


def test_offer_is_answered_with_a_new_hello() -> None:
    """After an offer the machine still registers, and asks for the subdomain chosen."""
    proto = TunnelProtocol("tok", "taken")
    assert isinstance(proto.receive(encode_frame(Offer(("free",)))), Offer)
    assert proto.state is State.REGISTERING
    assert parse_frame(proto.accept_offer("free")) == Hello("tok", "free", ("stream",))


@pytest.mark.parametrize("frame", [Refused("invalid token", "bad_token"), Evicted("again")])
def test_refusal_and_eviction_close(frame: Frame) -> None:
    """A refusal (while registering) or an eviction (while connected) closes the machine."""
    proto = TunnelProtocol("tok") if isinstance(frame, Refused) else connected()
    assert proto.receive(encode_frame(frame)) == frame
    assert proto.state is State.CLOSED


@pytest.mark.parametrize(
    ("setup", "frame"),
    [
        ("registering", Request("1", "GET", "/", (), b"")),
        ("registering", Credit("1", 5)),
        ("connected", Registered("d", "u")),
        ("connected", Hello("tok")),
        ("connected", Response("1", 200, (), b"")),
        ("connected", Chunk("1", b"x")),
        ("connected", End("1")),
        ("connected", StreamHead("1", 200, ())),
        ("connected", Offer(("a",))),
    ],
)
def test_frames_out_of_place_are_remote_errors(setup: str, frame: Frame) -> None:
    """A valid frame at the wrong time is a RemoteProtocolError, and the machine stops."""
    proto = connected() if setup == "connected" else TunnelProtocol("tok")
    with pytest.raises(RemoteProtocolError, match="unexpected"):
        proto.receive(encode_frame(frame))
    assert proto.state is State.ERROR
    with pytest.raises(LocalProtocolError):
        proto.receive(request())


def test_invalid_text_is_a_remote_error() -> None:
    """Text that is not a frame is a RemoteProtocolError naming the problem."""
    with pytest.raises(RemoteProtocolError, match="not a JSON text"):
        connected().receive("nonsense")


def test_duplicate_request_id_is_a_remote_error() -> None:
    """Two open requests cannot share an id."""
    proto = connected()
    proto.receive(request("1"))
    with pytest.raises(RemoteProtocolError, match="already in use"):
        proto.receive(request("1"))


def test_whole_answer_closes_the_request_once() -> None:
    """respond() answers an open request once; a second answer produces nothing."""
    proto = connected()
    proto.receive(request("1"))
    text = proto.respond("1", 200, (("a", "b"),), b"ok")
    assert text is not None
    assert parse_frame(text) == Response("1", 200, (("a", "b"),), b"ok")
    assert not proto.is_open("1")
    assert proto.respond("1", 200, (), b"") is None


def test_cancelled_request_produces_nothing() -> None:
    """After a Cancel, answers and stream frames for that request are dropped."""
    proto = connected()
    proto.receive(request("1"))
    proto.receive(encode_frame(Cancel("1")))
    assert proto.respond("1", 200, (), b"") is None
    assert proto.start_stream("1", 200, ()) is None
    assert proto.chunk("1", b"abc") == (None, b"")
    assert proto.end_stream("1") is None


def test_chunks_never_exceed_credit() -> None:
    """chunk() sends what the credit allows, keeps the rest, and resumes after a Credit frame."""
    proto = connected(window=10)
    proto.receive(request("1"))
    head = proto.start_stream("1", 200, ())
    assert head is not None
    assert parse_frame(head) == StreamHead("1", 200, ())
    assert proto.is_streaming("1")
    assert proto.credit("1") == 10
    frame, rest = proto.chunk("1", b"0123456789abcdef")
    assert frame is not None
    assert parse_frame(frame) == Chunk("1", b"0123456789")
    assert rest == b"abcdef"
    assert proto.chunk("1", rest) == (None, b"abcdef")
    proto.receive(encode_frame(Credit("1", 4)))
    frame, rest = proto.chunk("1", rest)
    assert frame is not None
    assert parse_frame(frame) == Chunk("1", b"abcd")
    assert rest == b"ef"
    end = proto.end_stream("1", "cut")
    assert end is not None
    assert parse_frame(end) == End("1", "cut")
    assert not proto.is_open("1")
    assert not proto.is_streaming("1")


def test_chunks_are_at_most_max_chunk() -> None:
    """A large piece leaves in frames of at most MAX_CHUNK bytes."""
    proto = connected(window=10 * MAX_CHUNK)
    proto.receive(request("1"))
    proto.start_stream("1", 200, ())
    frame, rest = proto.chunk("1", bytes(MAX_CHUNK + 5))
    assert frame is not None
    assert len(rest) == 5
    assert len(parse_frame(frame).data) == MAX_CHUNK  # type: ignore[union-attr]


def test_credit_for_unknown_stream_is_ignored() -> None:
    """Credit for a stream that already ended is returned but changes nothing."""
    proto = connected()
    assert proto.receive(encode_frame(Credit("9", 5))) == Credit("9", 5)
    assert proto.credit("9") == 0


def test_start_stream_needs_streaming() -> None:
    """Starting a stream without the negotiated capability is the caller's bug."""
    proto = connected(streaming=False)
    proto.receive(request("1"))
    with pytest.raises(LocalProtocolError, match="not negotiated"):
        proto.start_stream("1", 200, ())


def test_hello_after_registration_is_a_local_error() -> None:
    """hello() belongs to the registration; afterwards it is the caller's bug."""
    with pytest.raises(LocalProtocolError):
        connected().hello()


def test_repr_shows_state() -> None:
    """The repr names the state, the subdomain and the open counts."""
    text = repr(connected())
    assert "connected" in text
    assert "demo" in text
    assert "tok" not in text
    assert json.loads(encode_frame(Cancel("x"))) == {"id": "x", "cancel": True}
