"""Test-side helpers: the proxy under test, and a raw h11 client that controls every byte.

    async with stub_upstream(handler) as stub, run_proxy(stub.url) as proxy:
        async with connect(proxy) as client:
            reply = await client.request(b"POST", b"/mcp", JSON, body)

`run_proxy` starts mcpr in the current event loop (so on asyncio and on trio) with the
admin listener off, and collects the events it emits. Every read of the client is bounded
by `READ_TIMEOUT`, so a proxy bug fails a test instead of hanging it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

import anyio
import anyio.abc
import h11

from mcpr_cli.proxy import RunningProxy, serve
from mcpr_core.config import ProxyConfig
from mcpr_core.events import ProxyEvent, RequestEvent

__all__ = [
    "JSON",
    "READ_TIMEOUT",
    "SSE_ACCEPT",
    "Proxy",
    "RawClient",
    "Reply",
    "connect",
    "rpc",
    "run_proxy",
    "wait_until",
]

Headers = Sequence[tuple[bytes, bytes]]

#: Upper bound for any single wait in these tests; only a broken proxy ever reaches it.
READ_TIMEOUT: Final = 5.0

JSON: Final[tuple[tuple[bytes, bytes], ...]] = (
    (b"content-type", b"application/json"),
    (b"accept", b"application/json, text/event-stream"),
)
SSE_ACCEPT: Final[tuple[tuple[bytes, bytes], ...]] = ((b"accept", b"text/event-stream"),)

_EOF = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError)


def rpc(method: str, id_: int | str | None = 1, **params: Any) -> bytes:
    """A compact JSON-RPC request (a notification when `id_` is None)."""
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if id_ is not None:
        message["id"] = id_
    if params:
        message["params"] = params
    return json.dumps(message, separators=(",", ":")).encode()


async def wait_until(predicate: Callable[[], bool], within: float = READ_TIMEOUT) -> None:
    """Poll `predicate` until it holds (for state that has no change notification)."""
    with anyio.fail_after(within):
        # The proxy's counters have no change event to wait on, so this polls.
        while not predicate():  # noqa: ASYNC110
            await anyio.sleep(0.002)


@dataclass(slots=True)
class Proxy:
    """A running proxy and the events it emitted so far."""

    running: RunningProxy
    events: list[ProxyEvent]

    @property
    def host_header(self) -> bytes:
        """The Host value a client of the proxy sends."""
        return f"127.0.0.1:{self.running.port}".encode()

    def request_events(self) -> list[RequestEvent]:
        """The `RequestEvent`s emitted so far, in order."""
        return [e for e in self.events if isinstance(e, RequestEvent)]

    async def wait_exchanges(self, count: int) -> list[RequestEvent]:
        """Wait until `count` exchanges have finished; return the request events."""
        await wait_until(lambda: self.running.statistics().handler.exchanges_total >= count)
        return self.request_events()

    async def wait_quiet(self) -> None:
        """Wait until `is_quiet()` holds."""
        await wait_until(self.is_quiet)

    def is_quiet(self) -> bool:
        """No client connection, no exchange and no upstream connection is left."""
        stats = self.running.statistics()
        return (
            stats.handler.connections_open == 0
            and stats.handler.exchanges_in_flight == 0
            and stats.pool.in_use == 0
            and stats.pool.idle == 0
        )


@asynccontextmanager
async def run_proxy(upstream: str, **overrides: Any) -> AsyncIterator[Proxy]:
    """Run mcpr in front of `upstream` on a free loopback port; `overrides` set config fields."""
    settings: dict[str, Any] = {"port": 0, "admin": "none", "drain_timeout": 2.0, **overrides}
    config = ProxyConfig(mcp=upstream, **settings)
    events: list[ProxyEvent] = []
    async with serve(config, emit=events.append) as running:
        yield Proxy(running, events)


@dataclass(slots=True)
class Reply:
    """A response as the raw client received it."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    #: False when the connection ended before the end of the body (no chunked terminator).
    complete: bool

    def header(self, name: bytes) -> bytes | None:
        """The first value of header `name` (lower-case), or None."""
        return next((v for k, v in self.headers if k == name), None)

    def header_names(self) -> set[bytes]:
        """Every header name present."""
        return {k for k, _ in self.headers}

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class RawClient:
    """An h11 client on one TCP connection to the proxy."""

    def __init__(self, stream: anyio.abc.SocketStream, host: bytes) -> None:
        self.stream = stream
        self.host = host
        self.conn = h11.Connection(h11.CLIENT)

    async def send(self, event: h11.Event) -> None:
        """Serialise one h11 event and write it."""
        data = self.conn.send(event)
        if data:
            await self.stream.send(data)

    async def send_raw(self, data: bytes) -> None:
        """Write bytes as they are, bypassing h11."""
        await self.stream.send(data)

    async def send_request(
        self, method: bytes, target: bytes, headers: Headers = (), body: bytes | None = None
    ) -> None:
        """Send a whole request; Host and Content-Length are added unless given."""
        names = {k.lower() for k, _ in headers}
        full = list(headers)
        if b"host" not in names:
            full.insert(0, (b"host", self.host))
        if body is not None and b"content-length" not in names:
            full.append((b"content-length", str(len(body)).encode()))
        await self.send(h11.Request(method=method, target=target, headers=full))
        if body:
            await self.send(h11.Data(data=body))
        await self.send(h11.EndOfMessage())

    async def next_event(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        """The next h11 event from the proxy (h11 raises on a truncated message)."""
        with anyio.fail_after(READ_TIMEOUT):
            while True:
                event = self.conn.next_event()
                if event is not h11.NEED_DATA:
                    return event
                try:
                    data = await self.stream.receive()
                except _EOF:
                    data = b""
                self.conn.receive_data(data)

    async def read_head(self) -> h11.Response:
        """Read up to and including the final response head."""
        while True:
            event = await self.next_event()
            if isinstance(event, h11.Response):
                return event
            assert isinstance(event, h11.InformationalResponse), event

    async def read_chunk(self) -> bytes | None:
        """The next body chunk; None at the end of the body. Raises when it was cut short."""
        event = await self.next_event()
        if isinstance(event, h11.Data):
            return bytes(event.data)
        assert isinstance(event, h11.EndOfMessage), event
        return None

    async def read_until(self, marker: bytes) -> bytes:
        """Read body chunks until the body so far contains `marker`; return what was read."""
        body = b""
        while marker not in body:
            chunk = await self.read_chunk()
            assert chunk is not None, f"body ended without {marker!r}: {body!r}"
            body += chunk
        return body

    async def read_body(self) -> tuple[bytes, bool]:
        """The rest of the body, and whether it ended properly."""
        parts: list[bytes] = []
        try:
            while (chunk := await self.read_chunk()) is not None:
                parts.append(chunk)
        except h11.RemoteProtocolError:
            return b"".join(parts), False
        return b"".join(parts), True

    async def read_response(self) -> Reply:
        """Read a whole response."""
        head = await self.read_head()
        body, complete = await self.read_body()
        headers = [(bytes(k), bytes(v)) for k, v in head.headers]
        return Reply(head.status_code, headers, body, complete)

    async def request(
        self, method: bytes, target: bytes, headers: Headers = (), body: bytes | None = None
    ) -> Reply:
        """Send a request, read its response, and get ready for the next one when allowed."""
        await self.send_request(method, target, headers, body)
        reply = await self.read_response()
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        return reply

    async def closed_by_peer(self) -> bool:
        """Wait for the proxy to close the connection; False if it sends more bytes first."""
        with anyio.fail_after(READ_TIMEOUT):
            try:
                data = await self.stream.receive()
            except _EOF:
                return True
        return not data

    async def aclose(self) -> None:
        """Close the connection."""
        with anyio.CancelScope(shield=True):
            await self.stream.aclose()


@asynccontextmanager
async def connect(proxy: Proxy) -> AsyncIterator[RawClient]:
    """Open a raw client connection to the proxy; closed when the block exits."""
    stream = await anyio.connect_tcp("127.0.0.1", proxy.running.port)
    client = RawClient(stream, proxy.host_header)
    try:
        yield client
    finally:
        await client.aclose()
