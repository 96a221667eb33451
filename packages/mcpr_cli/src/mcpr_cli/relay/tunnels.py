"""The relay's side of tunnels: registration, the table of live tunnels, request multiplexing.

A `Tunnel` owns one client WebSocket. Public requests become `Request` frames with ids the
relay numbers; answers come back on the same socket in any order, each routed to the
`Exchange` waiting for it. A streamed answer (`StreamHead`, `Chunk`s, `End`) is only
accepted from a client that negotiated streaming, and never beyond its credit: the relay
grants credit as it writes chunks to the public client, so a slow reader holds at most one
window of bytes per stream here. A client that breaks these rules loses its tunnel.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hmac
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import anyio
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from mcp_tunnel_client.frames import (
    STREAM,
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
from mcp_tunnel_client.websocket import WebSocket, WebSocketError
from mcpr_cli.relay.config import RelayConfig, TokenRule, valid_subdomain

__all__ = ["WINDOW", "Exchange", "Hub", "Tunnel", "TunnelGone"]

#: Credit each stream starts with (bytes in flight between client and public reader).
WINDOW: Final = 256 * 1024
#: Seconds a new tunnel has to send its registration.
HELLO_TIMEOUT: Final = 10.0
_MAX_OFFERS: Final = 3
_CLOSE_POLICY: Final = 1008
_CLOSE_PROTOCOL: Final = 1002

_log = structlog.get_logger("mcpr.relay")

#: What an exchange receives: the answer's frames, or None when the tunnel went away.
Answer = Response | StreamHead | Chunk | End | None


class TunnelGone(Exception):
    """The tunnel closed before the answer was complete."""


@dataclass(slots=True)
class Exchange:
    """One public request in flight through a tunnel."""

    id: str
    answers: MemoryObjectReceiveStream[Answer]
    _send: MemoryObjectSendStream[Answer]
    outstanding: int = 0  # chunk bytes received and not yet granted back


class Tunnel:
    """A registered tunnel client (see the module docstring)."""

    def __init__(self, ws: WebSocket, subdomain: str, rule: TokenRule, streaming: bool) -> None:
        self.ws = ws
        self.subdomain = subdomain
        self.rule = rule
        self.streaming = streaming
        self._next_id = 0
        self._exchanges: dict[str, Exchange] = {}
        self.closed = False

    def __repr__(self) -> str:
        return f"<Tunnel {self.subdomain} streaming={self.streaming} open={len(self._exchanges)}>"

    async def open_exchange(
        self, method: str, target: str, headers: tuple[tuple[str, str], ...], body: bytes
    ) -> Exchange:
        """Push a request to the client; read its answers from the returned exchange."""
        if self.closed:
            raise TunnelGone("the tunnel closed")
        self._next_id += 1
        request_id = str(self._next_id)
        send, receive = anyio.create_memory_object_stream[Answer](math.inf)
        exchange = Exchange(request_id, receive, send)
        self._exchanges[request_id] = exchange
        try:
            await self.ws.send_text(
                encode_frame(Request(request_id, method, target, headers, body))
            )
        except WebSocketError as exc:
            self.finish(exchange)
            raise TunnelGone(str(exc)) from None
        return exchange

    async def grant(self, exchange: Exchange, amount: int) -> None:
        """`amount` bytes of a stream reached the public client: the tunnel may send more."""
        exchange.outstanding -= amount
        if exchange.id in self._exchanges and not self.closed:
            # A failed send is the reading task's to notice: it ends the tunnel.
            with contextlib.suppress(WebSocketError):
                await self.ws.send_text(encode_frame(Credit(exchange.id, amount)))

    async def cancel(self, exchange: Exchange) -> None:
        """The public client went away: tell the tunnel client to stop."""
        if self.finish(exchange) and not self.closed:
            with contextlib.suppress(WebSocketError):
                await self.ws.send_text(encode_frame(Cancel(exchange.id)))

    def finish(self, exchange: Exchange) -> bool:
        """Forget an exchange (answered or abandoned); True if it was still open."""
        exchange._send.close()
        exchange.answers.close()
        return self._exchanges.pop(exchange.id, None) is not None

    def deliver(self, frame: Frame) -> None:
        """Route a frame from the client; raise `FrameError` when it breaks the rules."""
        match frame:
            case Response() | StreamHead() | Chunk() | End():
                pass
            case _:
                raise FrameError(f"a client does not send {type(frame).__name__} frames")
        exchange = self._exchanges.get(frame.id)
        if exchange is None:
            return  # cancelled or timed out here; the answer crossed the cancellation
        if isinstance(frame, StreamHead | Chunk | End) and not self.streaming:
            raise FrameError("streamed answer without the stream capability")
        if isinstance(frame, Chunk):
            exchange.outstanding += len(frame.data)
            if exchange.outstanding > WINDOW:
                raise FrameError(f"stream {frame.id} sent beyond its credit")
        exchange._send.send_nowait(frame)
        if isinstance(frame, Response | End):
            self._exchanges.pop(frame.id, None)
            exchange._send.close()

    def close(self) -> None:
        """The connection ended: every exchange still waiting learns it."""
        self.closed = True
        for exchange in self._exchanges.values():
            exchange._send.send_nowait(None)
            exchange._send.close()
        self._exchanges.clear()


def _pick(rule: TokenRule, taken: Callable[[str], bool]) -> str | None:
    """A free subdomain for `rule`: its first free literal, else one generated from a glob."""
    for glob in rule.subdomains:
        if not any(c in glob for c in "*?[") and not taken(glob):
            return glob
    for glob in rule.subdomains:
        if "*" in glob:
            for _ in range(5):
                name = glob.replace("*", secrets.token_hex(3), 1).replace("*", "").replace("?", "x")
                if valid_subdomain(name) and not taken(name):
                    return name
    return None


class Hub:
    """Live tunnels by subdomain, and the registration handshake."""

    def __init__(self, config: RelayConfig, listening_port: int) -> None:
        self.config = config
        self.port = listening_port
        self.tunnels: dict[str, Tunnel] = {}

    def __repr__(self) -> str:
        return f"<Hub {self.config.domain} tunnels={sorted(self.tunnels)}>"

    def _rule(self, token: str) -> TokenRule | None:
        found = None
        for rule in self.config.tokens:  # compare with every rule, in constant time each
            if hmac.compare_digest(rule.token.encode(), token.encode()):
                found = rule
        return found

    def _taken_by_other(self, rule: TokenRule) -> Callable[[str], bool]:
        return lambda name: name in self.tunnels and self.tunnels[name].rule is not rule

    async def register(self, ws: WebSocket) -> Tunnel | None:
        """Run the registration on a new WebSocket; the tunnel, or None when refused."""
        for _ in range(_MAX_OFFERS):
            with anyio.fail_after(HELLO_TIMEOUT):
                hello = parse_frame(await ws.receive_text())
            if not isinstance(hello, Hello):
                raise FrameError("the first frame must carry a token")
            rule = self._rule(hello.token)
            if rule is None:
                _log.warning("tunnel_refused", reason="invalid token")
                await ws.send_text(encode_frame(Refused("invalid token", "bad_token")))
                await ws.aclose(_CLOSE_POLICY, "invalid token")
                return None
            wanted = hello.subdomain.lower() if hello.subdomain else None
            streaming = self.config.streaming and STREAM in hello.capabilities
            taken = self._taken_by_other(rule)
            if wanted is not None and self._allowed(rule, wanted) and not taken(wanted):
                return await self._accept(ws, wanted, rule, streaming)
            if wanted is None:
                name = _pick(rule, taken)
                if name is not None:
                    return await self._accept(ws, name, rule, streaming)
            offer = _pick(rule, taken)
            if offer is None:
                break
            reason = f"{wanted} is taken" if wanted and taken(wanted) else f"{wanted} not allowed"
            await ws.send_text(encode_frame(Offer((offer,), reason)))
        message = "no subdomain available for this token"
        await ws.send_text(encode_frame(Refused(message, "no_subdomain")))
        await ws.aclose(_CLOSE_POLICY, message)
        return None

    @staticmethod
    def _allowed(rule: TokenRule, name: str) -> bool:
        return valid_subdomain(name) and any(fnmatch.fnmatchcase(name, g) for g in rule.subdomains)

    async def _accept(self, ws: WebSocket, name: str, rule: TokenRule, streaming: bool) -> Tunnel:
        previous = self.tunnels.get(name)
        tunnel = Tunnel(ws, name, rule, streaming)
        self.tunnels[name] = tunnel
        if previous is not None:
            previous.close()
            with anyio.move_on_after(1.0):
                with contextlib.suppress(WebSocketError):
                    await previous.ws.send_text(encode_frame(Evicted(f"{name} registered again")))
            await previous.ws.aclose(_CLOSE_POLICY, "evicted")
        url = self.config.public_url(name, self.port)
        capabilities = (STREAM,) if streaming else ()
        await ws.send_text(encode_frame(Registered(name, url, capabilities, WINDOW)))
        _log.info("tunnel_registered", subdomain=name, url=url, streaming=streaming)
        return tunnel

    async def serve(self, tunnel: Tunnel) -> None:
        """Route the client's frames until the connection ends; then forget the tunnel."""
        try:
            while True:
                tunnel.deliver(parse_frame(await tunnel.ws.receive_text()))
        except FrameError as exc:
            _log.warning("tunnel_protocol_error", subdomain=tunnel.subdomain, error=str(exc))
            await tunnel.ws.aclose(_CLOSE_PROTOCOL, str(exc)[:120])
        except WebSocketError as exc:
            _log.info("tunnel_closed", subdomain=tunnel.subdomain, reason=str(exc))
        finally:
            tunnel.close()
            if self.tunnels.get(tunnel.subdomain) is tunnel:
                del self.tunnels[tunnel.subdomain]
