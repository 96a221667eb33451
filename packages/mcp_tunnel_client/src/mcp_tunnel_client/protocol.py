"""The client side of the tunnel protocol as a sans-IO machine: text in, frames and text out.

Theory of operation. One `TunnelProtocol` lives as long as one WebSocket connection. It
starts REGISTERING: the driver sends `hello()`, then feeds every text message the relay
sends to `receive()`, which returns the frames the driver must act on. `Registered` moves
the machine to CONNECTED; an `Offer` leaves it REGISTERING until the driver answers with
`accept_offer()`; `Refused` closes it. While CONNECTED the relay pushes `Request`s; the
driver answers each with `respond()` (a whole body), or, when streaming was negotiated,
with `start_stream()`, `chunk()` as long as there is credit, and `end_stream()`. The relay
grants credit as it passes bytes on; `chunk()` never produces more than is granted, which
is what bounds the memory a slow public client can pin in the relay. `Evicted` closes the
machine. Any frame that is invalid or out of place raises `RemoteProtocolError` and moves
the machine to ERROR, where it refuses more input.

Answers to a request that was cancelled (or already answered) produce nothing: a request
can be cancelled while the driver is still replaying it, and that is no one's error.

    state         frame from the relay      next state     returned to the driver
    REGISTERING   Registered                CONNECTED      the frame
    REGISTERING   Offer                     REGISTERING    the frame
    REGISTERING   Refused                   CLOSED         the frame
    CONNECTED     Request (new id)          CONNECTED      the frame
    CONNECTED     Credit / Cancel           CONNECTED      the frame, if its id is open
    CONNECTED     Evicted / Refused         CLOSED         the frame
    any other pair                          ERROR          RemoteProtocolError
"""

from __future__ import annotations

from enum import Enum
from typing import Final

from mcp_tunnel_client.frames import (
    STREAM,
    Cancel,
    Chunk,
    Credit,
    End,
    Evicted,
    Frame,
    FrameError,
    Headers,
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

__all__ = [
    "DEFAULT_WINDOW",
    "MAX_CHUNK",
    "LocalProtocolError",
    "RemoteProtocolError",
    "State",
    "TunnelProtocol",
]

#: Credit per stream when the relay names none: 256 KiB, a few SSE events of any size.
DEFAULT_WINDOW: Final = 256 * 1024
#: Largest chunk frame body (64 KiB): the relay writes one chunk at a time to its client.
MAX_CHUNK: Final = 64 * 1024


class State(Enum):
    """Where the connection is in its life."""

    REGISTERING = "registering"
    CONNECTED = "connected"
    CLOSED = "closed"
    ERROR = "error"


class RemoteProtocolError(Exception):
    """The relay sent something invalid, or something valid at the wrong time."""


class LocalProtocolError(Exception):
    """The driver used the machine wrongly (a bug in the caller, not the relay's fault)."""


class TunnelProtocol:
    """One tunnel connection's protocol state; see the module docstring for the life cycle."""

    def __init__(self, token: str, subdomain: str | None = None, *, streaming: bool = True) -> None:
        self._token = token
        self._subdomain = subdomain
        self._capabilities = (STREAM,) if streaming else ()
        self.state = State.REGISTERING
        #: Whether chunked answers were negotiated (both sides listed "stream").
        self.streaming = False
        #: Credit a new stream starts with.
        self.window = DEFAULT_WINDOW
        #: The registration, once the relay accepted.
        self.registered: Registered | None = None
        self._open: set[str] = set()  # requests received and not yet answered or cancelled
        self._credit: dict[str, int] = {}  # streams started, with their remaining credit

    def __repr__(self) -> str:
        return (
            f"<TunnelProtocol {self.state.value} subdomain={self._subdomain!r}"
            f" streaming={self.streaming} open={len(self._open)} streams={len(self._credit)}>"
        )

    # -- registration --------------------------------------------------------------------------

    def hello(self) -> str:
        """The first message to send: token, wished-for subdomain, capabilities."""
        self._expect(State.REGISTERING)
        return encode_frame(Hello(self._token, self._subdomain, self._capabilities))

    def accept_offer(self, subdomain: str) -> str:
        """Answer an `Offer` by asking for one of the offered subdomains."""
        self._subdomain = subdomain
        return self.hello()

    # -- input ---------------------------------------------------------------------------------

    def receive(self, text: str | bytes) -> Frame:
        """Take one message from the relay; return its frame, for the driver to act on.

        `Credit` and `Cancel` frames for requests that are no longer open (an answer and a
        cancellation crossed) come back too; `is_open()` tells the driver to ignore them.
        """
        if self.state is State.ERROR:
            raise LocalProtocolError("the connection already failed")
        try:
            frame = parse_frame(text)
        except FrameError as exc:
            self.state = State.ERROR
            raise RemoteProtocolError(f"invalid frame from the relay: {exc}") from None
        try:
            self._transition(frame)
        except RemoteProtocolError:
            self.state = State.ERROR
            raise
        return frame

    def _transition(self, frame: Frame) -> None:
        match self.state, frame:
            case State.REGISTERING, Registered():
                self.state = State.CONNECTED
                self.registered = frame
                self._subdomain = frame.subdomain
                self.streaming = STREAM in self._capabilities and STREAM in frame.capabilities
                if frame.window is not None:
                    self.window = frame.window
            case State.REGISTERING, Offer():
                pass
            case State.REGISTERING | State.CONNECTED, Refused() | Evicted():
                self.state = State.CLOSED
                self._open.clear()
                self._credit.clear()
            case State.CONNECTED, Request():
                if frame.id in self._open:
                    raise RemoteProtocolError(f"request id {frame.id!r} is already in use")
                self._open.add(frame.id)
            case State.CONNECTED, Credit():
                if frame.id in self._credit:
                    self._credit[frame.id] += frame.amount
            case State.CONNECTED, Cancel():
                self._open.discard(frame.id)
                self._credit.pop(frame.id, None)
            case _:
                kind = type(frame).__name__
                raise RemoteProtocolError(f"unexpected {kind} frame while {self.state.value}")

    # -- answers -------------------------------------------------------------------------------

    def is_open(self, request_id: str) -> bool:
        """True while request `request_id` waits for (the rest of) its answer."""
        return request_id in self._open

    def respond(self, request_id: str, status: int, headers: Headers, body: bytes) -> str | None:
        """A whole answer to a request; None when the request is no longer open."""
        if not self._close(request_id):
            return None
        return encode_frame(Response(request_id, status, headers, body))

    def start_stream(self, request_id: str, status: int, headers: Headers) -> str | None:
        """The head of a streamed answer (needs streaming); None when no longer open."""
        if not self.streaming:
            raise LocalProtocolError("streaming was not negotiated: use respond()")
        if request_id not in self._open or request_id in self._credit:
            return None
        self._credit[request_id] = self.window
        return encode_frame(StreamHead(request_id, status, headers))

    def is_streaming(self, request_id: str) -> bool:
        """True between `start_stream` and `end_stream` (or a cancellation)."""
        return request_id in self._credit

    def credit(self, request_id: str) -> int:
        """Bytes stream `request_id` may still send (0 when it has none, or is closed)."""
        return self._credit.get(request_id, 0)

    def chunk(self, request_id: str, data: bytes) -> tuple[str | None, bytes]:
        """As much of `data` as the credit allows, as a frame, and the rest to send later.

        The frame is None when there is no credit now (wait for a `Credit` frame) or the
        stream is closed (then the rest is empty: there is nothing more to send).
        """
        if request_id not in self._credit:
            return None, b""
        size = min(len(data), self._credit[request_id], MAX_CHUNK)
        if size == 0:
            return None, data
        self._credit[request_id] -= size
        return encode_frame(Chunk(request_id, data[:size])), data[size:]

    def end_stream(self, request_id: str, error: str | None = None) -> str | None:
        """The end of a streamed answer; None when the stream is no longer open."""
        if request_id not in self._credit:
            return None
        del self._credit[request_id]
        self._open.discard(request_id)
        return encode_frame(End(request_id, error))

    def _close(self, request_id: str) -> bool:
        if request_id not in self._open or request_id in self._credit:
            return False
        self._open.discard(request_id)
        return True

    def _expect(self, state: State) -> None:
        if self.state is not state:
            raise LocalProtocolError(f"not possible while {self.state.value}")
