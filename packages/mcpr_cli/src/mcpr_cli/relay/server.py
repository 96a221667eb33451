"""The relay's listener: tunnel clients and public HTTP clients on one port.

* `GET /_tunnel/register` with `Upgrade: websocket` opens a tunnel (wsproto takes over the
  connection after h11 read the upgrade request; see `mcpr_cli.relay.tunnels`).
* Any other request is public traffic, routed by `Host: <subdomain>.<domain>` to the tunnel
  that registered that subdomain. The request body is read whole (MCP requests are single
  JSON-RPC messages); the answer is written whole, or streamed as it arrives when the
  tunnel negotiated streaming, with chunked transfer coding. A public client that hangs up
  during a streamed answer is noticed at once (its connection is read while the answer is
  written) and the tunnel client is told to cancel the request.

Statuses of the relay's own: 404 for a host outside the domain, 502 when no tunnel serves
the subdomain or the tunnel broke, 504 when the answer's head takes `request_timeout`,
413 for a body over `MAX_BODY`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import anyio
import anyio.abc
import h11
from anyio.abc import SocketAttribute
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection
from wsproto.utilities import RemoteProtocolError as WSRemoteError

from mcp_tunnel_client.frames import Chunk, End, FrameError, Response, StreamHead
from mcp_tunnel_client.websocket import MAX_MESSAGE, REGISTER_PATH, WebSocket, WebSocketError
from mcpr_cli.relay.config import RelayConfig
from mcpr_cli.relay.tunnels import Exchange, Hub, Tunnel, TunnelGone
from mcpr_cli.transport.h11io import READ_SIZE, receive_event, send_event

__all__ = ["MAX_BODY", "RunningRelay", "serve_relay"]

#: Largest public request body (the proxy's own default limit is 5 MiB).
MAX_BODY: Final = 10 * 1024 * 1024
_MAX_HEAD: Final = 64 * 1024
_IDLE_TIMEOUT: Final = 75.0
_HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
    }
)
_CLOSED: Final = (
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    OSError,
    h11.ProtocolError,
)


def _header(request: h11.Request, name: bytes) -> bytes:
    for key, value in request.headers:
        if key == name:
            return bytes(value)
    return b""


class RunningRelay:
    """A relay listening on a socket; `url` is what tunnel clients connect to."""

    def __init__(self, config: RelayConfig, listener: anyio.abc.Listener[anyio.abc.SocketStream]):
        self.config = config
        self.port: int = listener.extra(SocketAttribute.local_port)
        host = config.bind if ":" not in config.bind else f"[{config.bind}]"
        self.url = f"http://{host}:{self.port}"
        self.hub = Hub(config, self.port)
        self._listener = listener

    def __repr__(self) -> str:
        return f"<RunningRelay {self.url} {self.hub!r}>"

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        """Serve one connection: requests until it closes, or a tunnel (the listener callback)."""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
        try:
            while True:
                event: h11.Event | type | None = None  # None: idle for too long
                with anyio.move_on_after(_IDLE_TIMEOUT):
                    event = await receive_event(conn, stream)
                if not isinstance(event, h11.Request):
                    return
                if _header(event, b"upgrade").lower() == b"websocket":
                    await self._tunnel(stream, conn, event)
                    return
                if not await self._public(stream, conn, event):
                    return
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            await self._plain(stream, conn, exc.error_status_hint, "bad request")
        except _CLOSED:
            pass
        finally:
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def _tunnel(
        self, stream: anyio.abc.SocketStream, conn: h11.Connection, request: h11.Request
    ) -> None:
        if request.target.split(b"?", 1)[0] != REGISTER_PATH.encode():
            await self._plain(stream, conn, 404, f"tunnels register at {REGISTER_PATH}")
            return
        ws_conn = WSConnection(ConnectionType.SERVER)
        try:
            ws_conn.initiate_upgrade_connection(list(request.headers), request.target)
            list(ws_conn.events())
            await stream.send(ws_conn.send(AcceptConnection()))
            trailing, _ = conn.trailing_data
            if trailing:
                ws_conn.receive_data(trailing)
        except WSRemoteError as exc:
            await self._plain(stream, conn, 400, f"bad WebSocket upgrade: {exc}")
            return
        ws = WebSocket(stream, ws_conn, MAX_MESSAGE)
        try:
            tunnel = await self.hub.register(ws)
        except (FrameError, TimeoutError, WebSocketError):
            await ws.aclose(1002, "expected a registration")
            return
        if tunnel is not None:
            await self.hub.serve(tunnel)

    async def _public(
        self, stream: anyio.abc.SocketStream, conn: h11.Connection, request: h11.Request
    ) -> bool:
        """Answer one public request; False when the connection must close."""
        body = bytearray()
        while True:
            event = await receive_event(conn, stream)
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    await self._plain(stream, conn, 413, f"request body over {MAX_BODY} bytes")
                    return False
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                return False
        host = _header(request, b"host").decode("latin-1").lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        suffix = "." + self.config.domain
        subdomain = name[: -len(suffix)] if name.endswith(suffix) else ""
        if not subdomain or "." in subdomain:
            await self._plain(stream, conn, 404, f"no tunnels here for host {host[:100]!r}")
            return True
        tunnel = self.hub.tunnels.get(subdomain)
        if tunnel is None:
            await self._plain(stream, conn, 502, f"no tunnel is connected for {name}")
            return True
        headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers)
        method, target = request.method.decode("ascii"), request.target.decode("latin-1")
        try:
            exchange = await tunnel.open_exchange(method, target, headers, bytes(body))
        except TunnelGone:
            await self._plain(stream, conn, 502, f"the tunnel for {name} went away")
            return True
        try:
            return await self._answer(stream, conn, tunnel, exchange, name)
        finally:
            with anyio.CancelScope(shield=True):
                await tunnel.cancel(exchange)

    async def _answer(
        self,
        stream: anyio.abc.SocketStream,
        conn: h11.Connection,
        tunnel: Tunnel,
        exchange: Exchange,
        name: str,
    ) -> bool:
        first = None
        with anyio.move_on_after(self.config.request_timeout):
            first = await exchange.answers.receive()
            if first is None:
                await self._plain(stream, conn, 502, f"the tunnel for {name} went away")
                return True
        match first:
            case None:
                limit = self.config.request_timeout
                await self._plain(stream, conn, 504, f"no answer through the tunnel in {limit:g} s")
                return True
            case Response():
                headers = [*_forward(first.headers), (b"content-length", b"%d" % len(first.body))]
                try:
                    response = h11.Response(status_code=first.status, headers=headers)
                except h11.LocalProtocolError:
                    await self._plain(stream, conn, 502, "the tunnel sent an invalid response head")
                    return True
                await send_event(
                    conn, stream, response, h11.Data(data=first.body), h11.EndOfMessage()
                )
                return True
            case StreamHead():
                return await self._stream(stream, conn, tunnel, exchange, first)
        return False  # a chunk or an end before any head: the tunnel dropped it

    async def _stream(
        self,
        stream: anyio.abc.SocketStream,
        conn: h11.Connection,
        tunnel: Tunnel,
        exchange: Exchange,
        head: StreamHead,
    ) -> bool:
        try:
            response = h11.Response(status_code=head.status, headers=_forward(head.headers))
        except h11.LocalProtocolError:
            await self._plain(stream, conn, 502, "the tunnel sent an invalid response head")
            return True
        await send_event(conn, stream, response)
        client_gone = anyio.Event()
        async with anyio.create_task_group() as group:
            group.start_soon(_watch_hangup, stream, conn, client_gone, group.cancel_scope)
            async for frame in exchange.answers:
                if isinstance(frame, Chunk):
                    await send_event(conn, stream, h11.Data(data=frame.data))
                    await tunnel.grant(exchange, len(frame.data))
                elif isinstance(frame, End) and frame.error is None:
                    await send_event(conn, stream, h11.EndOfMessage())
                    break
                else:  # cut short: end the connection without the final chunk
                    group.cancel_scope.cancel()
                    return False
            group.cancel_scope.cancel()
        return not client_gone.is_set()

    @staticmethod
    async def _plain(
        stream: anyio.abc.SocketStream, conn: h11.Connection, status: int, text: str
    ) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = f"mcpr relay: {text}\n".encode()
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"%d" % len(body)),
        ]
        try:
            response = h11.Response(status_code=status, headers=headers)
            await send_event(conn, stream, response, h11.Data(data=body), h11.EndOfMessage())
        except _CLOSED:
            pass


def _forward(headers: tuple[tuple[str, str], ...]) -> list[tuple[bytes, bytes]]:
    out = []
    for name, value in headers:
        key = name.lower().encode("latin-1", "replace")
        if key not in _HOP_BY_HOP:
            out.append((key, value.encode("latin-1", "replace")))
    return out


async def _watch_hangup(
    stream: anyio.abc.SocketStream,
    conn: h11.Connection,
    gone: anyio.Event,
    scope: anyio.CancelScope,
) -> None:
    """Read the public connection while an answer streams: EOF means the client hung up."""
    while True:
        try:
            data = await stream.receive(READ_SIZE)
        except _CLOSED:
            data = b""
        if not data:
            gone.set()
            scope.cancel()
            return
        conn.receive_data(data)  # a pipelined request: h11 keeps it for the next cycle


@asynccontextmanager
async def serve_relay(config: RelayConfig) -> AsyncIterator[RunningRelay]:
    """Listen on `config.bind`:`config.port` (0 picks a free port) until the block exits."""
    listener = await anyio.create_tcp_listener(local_host=config.bind, local_port=config.port)
    relay = RunningRelay(config, listener)
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, relay.handle, group)
        try:
            yield relay
        finally:
            group.cancel_scope.cancel()
