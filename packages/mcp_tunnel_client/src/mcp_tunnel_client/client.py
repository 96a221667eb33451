"""The tunnel client: keeps a WebSocket to the relay open and serves the requests it pushes.

`await task_group.start(client.run)` and the client connects, registers, and replays every
request the relay pushes against the local proxy, each in its own task, until cancelled.
When the connection drops it reconnects after a backoff (exponential, capped, with
jitter, so that a relay restart is not met by every client at the same instant) and asks
for the subdomain it had, so the public URL survives. Two outcomes end it for good:
the relay refuses the registration (a bad token: retrying cannot help), or it evicts this
client because another one registered the same subdomain (retrying would evict that one).

`status` is one of `TunnelStatus`; `url` is the public URL while connected; `error` says
what went wrong last. `on_change` is called on every change of status.
"""

from __future__ import annotations

import contextlib
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Final

import anyio
import anyio.abc
from anyio.abc import TaskStatus

from mcp_tunnel_client.frames import Cancel, Credit, Evicted, Offer, Refused, Registered, Request
from mcp_tunnel_client.local import LocalError, LocalTarget, forwardable
from mcp_tunnel_client.protocol import RemoteProtocolError, TunnelProtocol
from mcp_tunnel_client.websocket import (
    WebSocket,
    WebSocketError,
    connect_websocket,
    register_endpoint,
)

__all__ = ["MAX_BODY", "TunnelClient", "TunnelStatus"]

#: Largest response body sent whole (bigger ones are answered 502): the relay's limit.
MAX_BODY: Final = 10 * 1024 * 1024
_CLOSE_POLICY: Final = 1008


class TunnelStatus(Enum):
    """The tunnel's state, as `/ready`, `/metrics` and heartbeats report it."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    EVICTED = "evicted"


class TunnelClient:
    """A tunnel from `relay_url` to the local proxy at `local_url` (see the module docstring)."""

    def __init__(
        self,
        relay_url: str,
        token: str,
        local_url: str,
        *,
        subdomain: str | None = None,
        streaming: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        on_change: Callable[[TunnelClient], None] | None = None,
        backoff_min: float = 0.5,
        backoff_max: float = 30.0,
        ping_interval: float = 15.0,
        connect_timeout: float = 10.0,
        request_timeout: float = 300.0,
        rng: random.Random | None = None,
    ) -> None:
        self._endpoint = register_endpoint(relay_url)  # ValueError for a bad URL, at once
        self._token = token
        self._local = LocalTarget.from_url(local_url)
        self._subdomain = subdomain
        self._streaming = streaming
        self._ssl = ssl_context
        self._on_change = on_change
        self._backoff = (backoff_min, backoff_max)
        self._ping_interval = ping_interval
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._rng = rng if rng is not None else random.Random()
        self.status = TunnelStatus.CONNECTING
        #: The public URL while connected (the last one given, after a disconnection).
        self.url: str | None = None
        #: What went wrong last, in words (None while all is well).
        self.error: str | None = None
        #: True once the relay refused this client's registration.
        self.refused = False
        #: Registrations that succeeded so far (1 + reconnections).
        self.registrations = 0
        self._changed = anyio.Event()

    def __repr__(self) -> str:
        return f"<TunnelClient {self._endpoint.url} {self.status.value} url={self.url!r}>"

    @property
    def streaming(self) -> bool:
        """Whether this client offers streamed answers to the relay."""
        return self._streaming

    async def wait_for(self, *statuses: TunnelStatus) -> TunnelStatus:
        """Wait until the status is one of `statuses` (now, or after a change)."""
        while self.status not in statuses:
            await self._changed.wait()
        return self.status

    def _set(self, status: TunnelStatus, error: str | None = None) -> None:
        self.error = error
        if status is self.status and error is None:
            return
        self.status = status
        self._changed.set()
        self._changed = anyio.Event()
        if self._on_change is not None:
            self._on_change(self)

    def backoff(self, failures: int) -> float:
        """Seconds to wait before reconnect attempt `failures` (1 = first): 2^n growth, capped,
        then a random half of it dropped, so clients of a restarted relay spread out."""
        low, high = self._backoff
        ceiling = min(high, low * 2.0 ** min(failures - 1, 30))
        return ceiling * (0.5 + 0.5 * self._rng.random())

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect, serve, and reconnect until refused, evicted or cancelled."""
        task_status.started()
        failures = 0
        while True:
            self._set(TunnelStatus.CONNECTING, self.error)
            try:
                error = await self._connect_and_serve()
            except WebSocketError as exc:
                error = str(exc)
            if error is None:
                return  # refused or evicted
            if self.status is TunnelStatus.CONNECTED:
                failures = 0
            failures += 1
            self._set(TunnelStatus.DISCONNECTED, error)
            await anyio.sleep(self.backoff(failures))

    async def _connect_and_serve(self) -> str | None:
        """One connection's life; returns why it ended, or None when it must not be retried."""
        ws = await connect_websocket(
            self._endpoint, ssl_context=self._ssl, within=self._connect_timeout
        )
        try:
            protocol = TunnelProtocol(self._token, self._subdomain, streaming=self._streaming)
            async with anyio.create_task_group() as group:
                group.start_soon(self._keepalive, ws)
                try:
                    await ws.send_text(protocol.hello())
                    outcome = await self._serve(ws, protocol, group)
                except (WebSocketError, RemoteProtocolError) as exc:
                    outcome = str(exc)
                group.cancel_scope.cancel()
            return outcome
        finally:
            await ws.aclose()

    async def _keepalive(self, ws: WebSocket) -> None:
        """Ping every `ping_interval`; a relay silent for two intervals is taken for gone."""
        while True:
            await anyio.sleep(self._ping_interval)
            if anyio.current_time() - ws.last_received > 2 * self._ping_interval:
                await ws.aclose(1001, "no answer to pings")
                return
            try:
                await ws.ping()
            except WebSocketError:
                return  # the reading task sees the same and ends the connection

    async def _serve(
        self, ws: WebSocket, protocol: TunnelProtocol, group: anyio.abc.TaskGroup
    ) -> str | None:
        """Act on the relay's frames until it ends the tunnel for good (then return None)."""
        offers = 0
        exchanges: dict[str, _Exchange] = {}
        while True:
            frame = protocol.receive(await ws.receive_text())
            match frame:
                case Registered():
                    self.url = frame.url
                    self._subdomain = frame.subdomain
                    self.registrations += 1
                    self._set(TunnelStatus.CONNECTED)
                case Offer() if offers == 0 and frame.subdomains:
                    offers += 1
                    await ws.send_text(protocol.accept_offer(frame.subdomains[0]))
                case Offer():
                    self._stop(TunnelStatus.DISCONNECTED, _offer_error(frame))
                    await ws.aclose(_CLOSE_POLICY)
                    return None
                case Refused():
                    error = f"the relay refused the tunnel: {frame.error}"
                    self._stop(TunnelStatus.DISCONNECTED, error)
                    return None
                case Evicted():
                    self._stop(TunnelStatus.EVICTED, f"evicted by the relay: {frame.reason}")
                    return None
                case Request():
                    exchange = exchanges[frame.id] = _Exchange(frame, ws, protocol)
                    group.start_soon(self._answer, exchange, exchanges)
                case Credit() if frame.id in exchanges:
                    exchanges[frame.id].wake()
                case Cancel() if frame.id in exchanges:
                    exchanges.pop(frame.id).cancel()

    def _stop(self, status: TunnelStatus, error: str) -> None:
        self.refused = status is TunnelStatus.DISCONNECTED
        self._set(status, error)

    async def _answer(self, exchange: _Exchange, exchanges: dict[str, _Exchange]) -> None:
        try:
            with exchange.scope:
                await exchange.run(self._local, self._request_timeout)
        except WebSocketError:
            pass  # the tunnel broke: the reading task notices and reconnects
        except Exception:
            # Whatever else went wrong (a defect, an error nobody foresaw) ends this request
            # with a 502 or a cut stream, not the tunnel and the proxy that runs it.
            _log.exception("tunnelled request %s failed", exchange.request.id)
            with contextlib.suppress(WebSocketError):
                await exchange.abort("internal error in mcp-tunnel-client")
        finally:
            exchanges.pop(exchange.request.id, None)


class _Exchange:
    """One request being replayed; `scope` is cancelled when the relay cancels it."""

    def __init__(self, request: Request, ws: WebSocket, protocol: TunnelProtocol) -> None:
        self.request = request
        self.scope = anyio.CancelScope()
        self._ws = ws
        self._protocol = protocol
        self._credit = anyio.Event()
        self._answered = False  # a whole response went out

    def wake(self) -> None:
        """More credit arrived."""
        self._credit.set()
        self._credit = anyio.Event()

    def cancel(self) -> None:
        """The public client went away."""
        self.scope.cancel()

    async def abort(self, reason: str) -> None:
        """End the request after an unexpected error: its stream if one started, else a 502.

        Nothing is sent when the whole response already went out.
        """
        request_id = self.request.id
        if self._protocol.is_streaming(request_id):
            await self._send(self._protocol.end_stream(request_id, reason))
        elif not self._answered:
            await self._send(_bad_gateway(self._protocol, request_id, reason))

    async def _send(self, text: str | None) -> None:
        if text is not None:
            await self._ws.send_text(text)

    async def run(self, local: LocalTarget, within: float) -> None:
        request_id = self.request.id
        protocol = self._protocol
        try:
            response = await local.open(self.request, within=within)
        except LocalError as exc:
            await self._send(_bad_gateway(protocol, request_id, str(exc)))
            return
        try:
            headers = forwardable(response.head.headers)
            if protocol.streaming and response.streams:
                await self._send(protocol.start_stream(request_id, response.head.status, headers))
                await self._stream(response.receive)
                return
            body = bytearray()
            while (piece := await response.receive()) is not None:
                body += piece
                if len(body) > MAX_BODY:
                    raise LocalError(f"the response body exceeds {MAX_BODY} bytes")
            self._answered = True
            await self._send(
                protocol.respond(request_id, response.head.status, headers, bytes(body))
            )
        except LocalError as exc:
            if protocol.is_streaming(request_id):
                await self._send(protocol.end_stream(request_id, str(exc)))
            else:
                await self._send(_bad_gateway(protocol, request_id, str(exc)))
        finally:
            await response.aclose()

    async def _stream(self, receive: Callable[[], Awaitable[bytes | None]]) -> None:
        request_id = self.request.id
        protocol = self._protocol
        while (rest := await receive()) is not None:
            while rest:
                frame, rest = protocol.chunk(request_id, rest)
                if frame is not None:
                    await self._ws.send_text(frame)
                elif rest:
                    await self._credit.wait()  # the relay has not passed enough on yet
                else:
                    return  # the stream was cancelled
        await self._send(protocol.end_stream(request_id))


_log = logging.getLogger("mcp_tunnel_client")


def _bad_gateway(protocol: TunnelProtocol, request_id: str, reason: str) -> str | None:
    body = f"mcp-tunnel-client: {reason}\n".encode()
    headers = (("content-type", "text/plain; charset=utf-8"),)
    return protocol.respond(request_id, 502, headers, body)


def _offer_error(offer: Offer) -> str:
    reason = offer.error or "the subdomain asked for is not available"
    if offer.subdomains:
        return f"{reason}; the relay offers: {', '.join(offer.subdomains)}"
    return reason
