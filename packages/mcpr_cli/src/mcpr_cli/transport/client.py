"""One client connection as the server drives it: requests read with h11, answers framed by mcpr.

h11 only parses here. mcpr writes its responses itself through a `ResponseWriter`, made
for each request head (`Client.begin`): its HTTP version and `Connection: close` decide
whether the connection may carry another exchange. Each keep-alive cycle then starts a
fresh h11 connection holding whatever of the next request already arrived
(`Client.next_cycle`).

End of stream and a connection reset read alike, as b'' (`receive_or_eof`); a write that
fails because the client went away raises `ClientGone`. A request body read whole is
collected by `Body`, which stops at its limit with `BodyTooLarge`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import anyio
import anyio.abc
import h11
from anyio.abc import SocketAttribute

from mcpr_cli.transport.h11io import READ_SIZE
from mcpr_core.http1 import ResponseWriter, names_close
from mcpr_core.pipeline import RequestHead

__all__ = [
    "CLIENT_GONE",
    "Body",
    "BodyTooLarge",
    "Client",
    "ClientGone",
    "HeadError",
    "receive_or_eof",
    "watch_for_eof",
]

_EOF: Final = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError)
#: What a write raises when the peer went away.
CLIENT_GONE: Final = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class ClientGone(Exception):
    """The client went away while we were sending to it."""


class BodyTooLarge(Exception):
    """A streamed request body grew past `max_request_body_size`."""


@dataclass(frozen=True, slots=True)
class HeadError:
    """A request head that could not be read: answer `status`, record it, close."""

    status: int
    message: str


@dataclass(slots=True)
class Body:
    """A request body read whole, in parts."""

    limit: int
    parts: list[bytes] = field(default_factory=list)
    size: int = 0

    def add(self, event: h11.Event | type) -> bool:
        """Take the next h11 event of the body; True at its end.

        Raises `BodyTooLarge` past `limit`, `h11.RemoteProtocolError` when it is cut off.
        """
        if isinstance(event, h11.Data):
            self.size += len(event.data)
            if self.size > self.limit:
                raise BodyTooLarge
            self.parts.append(event.data)
            return False
        if isinstance(event, h11.EndOfMessage):
            return True
        raise h11.RemoteProtocolError("connection closed inside a request body")

    def joined(self) -> bytes:
        parts = self.parts
        return parts[0] if len(parts) == 1 else b"".join(parts)


class Client:
    """One client connection: h11 reads its requests, a `ResponseWriter` frames each answer.

    h11 only parses here; mcpr writes its responses itself, so each keep-alive cycle gets a
    fresh h11 connection holding whatever of the next request already arrived.
    """

    __slots__ = ("_max_head", "conn", "host", "request_read", "stream", "writer")

    def __init__(self, stream: anyio.abc.SocketStream, max_head: int) -> None:
        self.stream = stream
        self.host = _remote_host(stream)
        self._max_head = max_head
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head)
        self.writer = ResponseWriter(method=b"GET", minor=1, keep_alive=False)
        #: The current request's end was read. Not h11's `their_state is DONE`: h11 holds a
        #: request asking for `Upgrade` in MIGHT_SWITCH_PROTOCOL, waiting to hear whether the
        #: server switches, and mcpr never does (Upgrade is hop-by-hop, not forwarded).
        self.request_read = False

    def begin(self, head: RequestHead, http_version: bytes) -> None:
        """A request head arrived: its response will be framed for it."""
        # RFC 9112 §9.3: HTTP/1.1 persists unless a `Connection: close` says otherwise.
        close = any(name == b"connection" and names_close(value) for name, value in head.headers)
        self.writer = ResponseWriter(
            method=head.method,
            minor=1 if http_version == b"1.1" else 0,
            keep_alive=http_version == b"1.1" and not close,
        )
        self.request_read = False

    def can_continue(self) -> bool:
        """Whether a whole request was read and a whole response written, and both sides
        allow another on this connection."""
        writer = self.writer
        return writer.done and not writer.close and self.request_read

    def next_cycle(self) -> None:
        """Start reading the next request, from what already arrived of it."""
        data, closed = self.conn.trailing_data
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_head)
        if data:
            conn.receive_data(data)
        if closed:
            conn.receive_data(b"")
        self.conn = conn

    async def write(self, *parts: bytes) -> None:
        """Write `parts` in one write; `ClientGone` when the client went away."""
        try:
            await self.stream.send(parts[0] if len(parts) == 1 else b"".join(parts))
        except CLIENT_GONE as exc:
            raise ClientGone from exc


async def receive_or_eof(stream: anyio.abc.SocketStream) -> bytes:
    try:
        return await stream.receive(READ_SIZE)
    except _EOF:
        return b""


async def watch_for_eof(client: Client) -> bool:
    """Wait for the client to hang up (True). Early bytes of a next request are kept."""
    data = await receive_or_eof(client.stream)
    if not data:
        return True
    client.conn.receive_data(data)
    return False


def _remote_host(stream: anyio.abc.SocketStream) -> str | None:
    try:
        address = stream.extra(SocketAttribute.remote_address)
    except anyio.TypedAttributeLookupError:
        return None
    if isinstance(address, tuple):
        return str(address[0])
    return None
