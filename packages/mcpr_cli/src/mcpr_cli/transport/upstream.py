"""Connections to the upstream MCP server, kept alive in a pool.

The pool is plain bookkeeping: `checkout` hands out an idle connection that still looks
alive, or a new one; `checkin` takes it back when its exchange finished cleanly, and
closes it otherwise. `max_concurrent_upstream` is a semaphore held for the whole exchange,
so excess requests wait instead of opening ever more sockets (PRODUCT.md §2.5).

An idle keep-alive connection may have been closed by the server at any time. Before a
pooled connection is reused its socket is polled: readable means EOF (or junk) is waiting,
and the connection is dropped. If writing the request head still fails, the exchange is
retried once on a new connection: the upstream cannot have seen a request that was never
written.
"""

from __future__ import annotations

import select
import ssl
from dataclasses import dataclass, field
from typing import Final

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

from mcpr_cli.transport.h11io import READ_SIZE
from mcpr_core.http1 import ParsedResponse, ResponseParser, Signal
from mcpr_core.routing import UpstreamURL

__all__ = ["ConnectFailed", "PoolStatistics", "UpstreamConnection", "UpstreamPool"]

#: Idle connections kept per pool; beyond that a returned connection is closed.
MAX_IDLE: Final = 32

_EOF_ERRORS: Final = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError)


class ConnectFailed(Exception):
    """The upstream could not be reached (refused, unresolvable, TLS failure, timeout)."""


class UpstreamConnection:
    """One TCP (or TLS) stream to the upstream, with the parser of its current response."""

    __slots__ = ("_socket", "parser", "reused", "stream")

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.parser = ResponseParser(method=b"GET")
        self.reused = False
        # Looked up once: `extra()` builds the stream's whole attribute table on each call.
        self._socket = stream.extra(SocketAttribute.raw_socket, None)

    async def send_request(self, method: bytes, data: bytes) -> None:
        """Write the start of a `method` request (head, maybe body) and expect its answer."""
        self.parser = ResponseParser(method=method)
        await self.stream.send(data)

    async def send(self, data: bytes) -> None:
        """Write more of the request (a streamed body)."""
        await self.stream.send(data)

    async def receive(self) -> ParsedResponse | bytes | Signal:
        """The response's next part (never `Signal.NEED_DATA`), reading as needed.

        Raises `RemoteProtocolError` for a malformed response or one cut off.
        """
        parser = self.parser
        while True:
            event = parser.next_event()
            if event is not Signal.NEED_DATA:
                return event
            try:
                data = await self.stream.receive(READ_SIZE)
            except _EOF_ERRORS:
                data = b""
            parser.receive_data(data)

    def reusable(self) -> bool:
        """Whether the exchange ended cleanly and the connection may serve another.

        Bytes the upstream sent past the end of its response (more than its Content-Length
        said) answer no request of ours: reused, they would be read as the response to
        the next client's request (a response desync), so such a connection is closed.
        """
        return self.parser.reusable

    def looks_alive(self) -> bool:
        """False when the idle socket has something to read: the peer closed it (EOF)."""
        sock = self._socket
        if sock is None:
            return True
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    async def aclose(self) -> None:
        """Close the stream, shielded from cancellation so nothing leaks."""
        with anyio.CancelScope(shield=True):
            await self.stream.aclose()


@dataclass(frozen=True, slots=True)
class PoolStatistics:
    """A snapshot of the pool (trio-style `statistics()` record)."""

    idle: int
    in_use: int
    opened_total: int
    waiting: int


@dataclass(slots=True)
class _Counters:
    opened: int = 0
    in_use: int = 0


@dataclass(slots=True)
class UpstreamPool:
    """Keep-alive connections to one upstream origin."""

    upstream: UpstreamURL
    connect_timeout: float
    max_concurrent: int
    ca_file: str | None = None
    _idle: list[UpstreamConnection] = field(default_factory=list)
    _counters: _Counters = field(default_factory=_Counters)
    _limit: anyio.Semaphore | None = None
    _ssl: ssl.SSLContext | None = None

    def __post_init__(self) -> None:
        if self.upstream.is_tls:
            self._ssl = ssl.create_default_context(cafile=self.ca_file)

    @property
    def limit(self) -> anyio.Semaphore:
        """The semaphore bounding concurrent upstream exchanges (created in the loop)."""
        if self._limit is None:
            self._limit = anyio.Semaphore(self.max_concurrent)
        return self._limit

    def statistics(self) -> PoolStatistics:
        """Counts of idle, busy and opened connections, and exchanges waiting for a slot."""
        waiting = self._limit.statistics().tasks_waiting if self._limit is not None else 0
        return PoolStatistics(
            idle=len(self._idle),
            in_use=self._counters.in_use,
            opened_total=self._counters.opened,
            waiting=waiting,
        )

    async def checkout(self, *, fresh: bool = False) -> UpstreamConnection:
        """An idle connection that still looks alive, else a new one."""
        while self._idle and not fresh:
            candidate = self._idle.pop()
            if candidate.looks_alive():
                candidate.reused = True
                self._counters.in_use += 1
                return candidate
            await candidate.aclose()
        stream = await self._connect()
        self._counters.opened += 1
        self._counters.in_use += 1
        return UpstreamConnection(stream)

    async def _connect(self) -> anyio.abc.ByteStream:
        up = self.upstream
        try:
            with anyio.fail_after(self.connect_timeout):
                if self._ssl is not None:
                    return await anyio.connect_tcp(
                        up.host,
                        up.port,
                        ssl_context=self._ssl,
                        tls_standard_compatible=False,
                    )
                return await anyio.connect_tcp(up.host, up.port)
        except TimeoutError as exc:
            raise ConnectFailed(f"connect to {up.origin} timed out") from exc
        except (OSError, ssl.SSLError, anyio.BrokenResourceError) as exc:
            raise ConnectFailed(f"connect to {up.origin} failed: {exc}") from exc

    async def checkin(self, connection: UpstreamConnection) -> None:
        """Take a connection back: pooled when reusable, closed otherwise."""
        self._counters.in_use -= 1
        if connection.reusable() and len(self._idle) < MAX_IDLE:
            self._idle.append(connection)
            return
        await connection.aclose()

    async def discard(self, connection: UpstreamConnection) -> None:
        """Close a connection whose exchange failed or was cancelled."""
        self._counters.in_use -= 1
        await connection.aclose()

    async def aclose(self) -> None:
        """Close every idle connection."""
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.aclose()
