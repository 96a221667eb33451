"""A small WebSocket client over anyio and wsproto: text messages, pings, a clean close.

One task reads (`receive_text`), any number of tasks send (`send_text`, `ping`); sends go
through a lock, so the bytes wsproto produces leave in the order it produced them. Pings
from the relay are answered by the reading task. Messages larger than `max_message`
characters close the connection: the relay is trusted, but not with all of our memory.
"""

from __future__ import annotations

import ssl
from typing import Final

import anyio
import anyio.abc
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    TextMessage,
)
from wsproto.events import Request as WSRequest
from wsproto.utilities import LocalProtocolError as WSLocalError
from wsproto.utilities import RemoteProtocolError as WSRemoteError

from mcp_tunnel_client.endpoint import REGISTER_PATH, Endpoint, register_endpoint

__all__ = [
    "MAX_MESSAGE",
    "REGISTER_PATH",
    "Endpoint",
    "WebSocket",
    "WebSocketClosed",
    "WebSocketError",
    "connect_websocket",
    "register_endpoint",
]

#: Largest message accepted, in characters: a 10 MiB body, base64-encoded, with room to spare.
MAX_MESSAGE: Final = 16 * 1024 * 1024
_READ_SIZE: Final = 65536
_CLOSE_TIMEOUT: Final = 2.0


class WebSocketError(Exception):
    """The WebSocket could not be opened, or broke."""


class WebSocketClosed(WebSocketError):
    """The connection is closed; `code` and `reason` are the peer's, when it said."""

    def __init__(self, message: str, code: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class WebSocket:
    """An open client WebSocket (see `connect_websocket`)."""

    def __init__(self, stream: anyio.abc.ByteStream, conn: WSConnection, max_message: int) -> None:
        self._stream = stream
        self._conn = conn
        self._max_message = max_message
        self._lock = anyio.Lock()
        self._parts: list[str] = []
        self._size = 0
        self._closed = False
        #: `anyio.current_time()` when bytes last arrived (for keepalive checks).
        self.last_received = anyio.current_time()

    async def send_text(self, text: str) -> None:
        """Send one text message."""
        await self._send(TextMessage(data=text))

    async def ping(self, payload: bytes = b"") -> None:
        """Send a ping; the pong shows up as fresh `last_received`."""
        await self._send(Ping(payload=payload))

    async def _send(self, event: TextMessage | Ping | CloseConnection) -> None:
        async with self._lock:
            if self._closed:
                raise WebSocketClosed("the WebSocket is closed")
            try:
                await self._stream.send(self._conn.send(event))
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                self._closed = True
                raise WebSocketClosed(f"connection lost: {exc or type(exc).__name__}") from None
            except WSLocalError as exc:
                raise WebSocketClosed(f"cannot send: {exc}") from None

    async def receive_text(self) -> str:
        """The next whole text message; raises `WebSocketClosed` once the connection ends."""
        while True:
            for event in self._conn.events():
                text = await self._handle(event)
                if text is not None:
                    return text
            try:
                data = await self._stream.receive(_READ_SIZE)
            except anyio.EndOfStream:
                data = b""
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                self._closed = True
                raise WebSocketClosed(f"connection lost: {exc or type(exc).__name__}") from None
            if not data:
                self._closed = True
                raise WebSocketClosed("the relay closed the connection")
            self.last_received = anyio.current_time()
            try:
                self._conn.receive_data(data)
            except WSRemoteError as exc:
                self._closed = True
                raise WebSocketClosed(f"invalid WebSocket data from the relay: {exc}") from None

    async def _handle(self, event: object) -> str | None:
        if isinstance(event, TextMessage | BytesMessage):
            part = (
                event.data if isinstance(event.data, str) else event.data.decode("utf-8", "replace")
            )
            self._size += len(part)
            if self._size > self._max_message:
                await self.aclose(1009, "message too big")
                raise WebSocketClosed(f"the relay sent a message over {self._max_message} bytes")
            self._parts.append(part)
            if not event.message_finished:
                return None
            text = "".join(self._parts)
            self._parts.clear()
            self._size = 0
            return text
        if isinstance(event, Ping):
            await self._send_quietly(event.response())
        elif isinstance(event, CloseConnection):
            await self._send_quietly(event.response())
            self._closed = True
            raise WebSocketClosed(
                f"the relay closed the tunnel ({event.code}"
                + (f": {event.reason})" if event.reason else ")"),
                event.code,
                event.reason,
            )
        return None

    async def _send_quietly(self, event: CloseConnection | Ping | object) -> None:
        async with self._lock:
            if self._closed:
                return
            try:
                await self._stream.send(self._conn.send(event))  # type: ignore[arg-type]
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, WSLocalError):
                self._closed = True

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None:
        """Say goodbye (when still possible) and close the connection."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_TIMEOUT):
            await self._send_quietly(CloseConnection(code=code, reason=reason))
        self._closed = True
        with anyio.CancelScope(shield=True):
            await self._stream.aclose()


async def connect_websocket(
    endpoint: Endpoint,
    *,
    ssl_context: ssl.SSLContext | None = None,
    within: float = 10.0,
    max_message: int = MAX_MESSAGE,
) -> WebSocket:
    """Open a WebSocket to `endpoint` within `within` seconds (TLS for wss).

    Raises `WebSocketError` with a readable message when the relay cannot be reached,
    the TLS handshake fails, or the upgrade is refused.
    """
    stream: anyio.abc.ByteStream
    try:
        with anyio.fail_after(within):
            if endpoint.tls:
                stream = await anyio.connect_tcp(
                    endpoint.host,
                    endpoint.port,
                    ssl_context=ssl_context or ssl.create_default_context(),
                    tls_standard_compatible=False,
                )
            else:
                stream = await anyio.connect_tcp(endpoint.host, endpoint.port)
    except TimeoutError:
        raise WebSocketError(f"{endpoint.url}: no connection within {within:g} s") from None
    except (OSError, ssl.SSLError, anyio.BrokenResourceError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise WebSocketError(f"cannot reach {endpoint.url}: {reason}") from None
    try:
        with anyio.fail_after(within):
            return await _handshake(stream, endpoint, max_message)
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await stream.aclose()
        if isinstance(exc, TimeoutError):
            raise WebSocketError(
                f"{endpoint.url}: no WebSocket handshake within {within:g} s"
            ) from None
        raise


async def _handshake(
    stream: anyio.abc.ByteStream, endpoint: Endpoint, max_message: int
) -> WebSocket:
    conn = WSConnection(ConnectionType.CLIENT)
    default_port = 443 if endpoint.tls else 80
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    if endpoint.port != default_port:
        host = f"{host}:{endpoint.port}"
    await stream.send(conn.send(WSRequest(host=host, target=endpoint.target)))
    rejected: RejectConnection | None = None
    body = b""
    while True:
        try:
            data = await stream.receive(_READ_SIZE)
        except (anyio.EndOfStream, OSError, anyio.BrokenResourceError) as exc:
            raise WebSocketError(f"{endpoint.url}: connection lost during the handshake") from exc
        try:
            conn.receive_data(data)
        except WSRemoteError as exc:
            raise WebSocketError(f"{endpoint.url}: not a WebSocket server ({exc})") from None
        for event in conn.events():
            if isinstance(event, AcceptConnection):
                return WebSocket(stream, conn, max_message)
            if isinstance(event, RejectConnection):
                rejected = event
                if not event.has_body:
                    raise WebSocketError(
                        f"{endpoint.url}: upgrade refused with {event.status_code}"
                    )
            elif isinstance(event, RejectData):
                body += event.data
                if event.body_finished and rejected is not None:
                    text = body.decode("utf-8", "replace").strip()[:200]
                    raise WebSocketError(
                        f"{endpoint.url}: upgrade refused with {rejected.status_code}: {text}"
                    )
