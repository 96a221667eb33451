"""A scriptable HTTP/1.1 upstream for transport tests: anyio + h11 on 127.0.0.1, port 0.

Each test gives the stub a handler, `async def handler(request, respond)`, called once per
request after the whole request body was read. The handler answers through `Responder`
(`reply`, or `head` / `send` / `end` step by step), may sleep or wait on events between
steps, may never answer (`anyio.sleep_forever()`), or may cut the connection (`abort`).

While a handler runs, a watcher reads the connection: when the peer (the proxy) hangs up,
the handler is cancelled and the connection counted as closed, exactly what a real server
would notice. The stub records every request it received and counts open connections;
`wait_until` waits for any condition on that state.

    async with stub_upstream(handler) as stub:
        ... stub.url, stub.requests, stub.connections_open ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.abc
import anyio.lowlevel
import h11
from anyio.abc import SocketAttribute

__all__ = [
    "Handler",
    "ReceivedRequest",
    "Responder",
    "StubUpstream",
    "reply_with",
    "stub_upstream",
]

Headers = Sequence[tuple[bytes, bytes]]

_EOF = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError)


@dataclass(slots=True)
class ReceivedRequest:
    """One request as the stub received it (header names lower-case, as h11 gives them)."""

    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    #: Set when the peer hung up while this request was being answered.
    disconnected: anyio.Event = field(default_factory=anyio.Event)

    def header(self, name: bytes) -> bytes | None:
        """The first value of header `name` (lower-case), or None."""
        return next((v for k, v in self.headers if k == name), None)

    def header_names(self) -> set[bytes]:
        """Every header name present."""
        return {k for k, _ in self.headers}


class Responder:
    """How a handler answers the request it was given."""

    def __init__(
        self, conn: h11.Connection, stream: anyio.abc.ByteStream, scope: anyio.CancelScope
    ) -> None:
        self._conn = conn
        self._stream = stream
        self._scope = scope
        self.aborted = False

    async def _send(self, event: h11.Event) -> None:
        try:
            data = self._conn.send(event)
            if data:
                await self._stream.send(data)
        except BaseException:
            self._conn.send_failed()
            raise

    async def head(self, status: int, headers: Headers = ()) -> None:
        """Send the response head (no Content-Length means chunked)."""
        await self._send(h11.Response(status_code=status, headers=list(headers)))

    async def send(self, data: bytes) -> None:
        """Send one body chunk (written to the socket at once)."""
        await self._send(h11.Data(data=data))

    async def end(self) -> None:
        """Finish the response body (the chunked terminator, when chunked)."""
        await self._send(h11.EndOfMessage())

    async def reply(self, status: int, headers: Headers = (), chunks: Iterable[bytes] = ()) -> None:
        """Send a whole response: head, each chunk, end."""
        await self.head(status, headers)
        for chunk in chunks:
            if chunk:
                await self.send(chunk)
        await self.end()

    async def abort(self) -> None:
        """Cut the connection now, without finishing the response (does not return)."""
        self.aborted = True
        self._scope.cancel()
        await anyio.lowlevel.checkpoint()


Handler = Callable[[ReceivedRequest, Responder], Awaitable[None]]


def reply_with(status: int = 200, headers: Headers = (), chunks: Iterable[bytes] = ()) -> Handler:
    """A handler that answers every request with the same response."""
    parts = tuple(chunks)

    async def handler(request: ReceivedRequest, respond: Responder) -> None:
        await respond.reply(status, headers, parts)

    return handler


_OK = reply_with(
    200,
    [(b"content-type", b"application/json")],
    [b'{"jsonrpc":"2.0","id":1,"result":{}}'],
)


class StubUpstream:
    """The stub's state: its address, what it received, its connections."""

    def __init__(self, port: int, handler: Handler) -> None:
        self.port = port
        self.handler = handler
        #: Close each connection right after a complete response, without announcing it
        #: (no `Connection: close`): a keep-alive peer that drops idle connections.
        self.close_after_response = False
        self.requests: list[ReceivedRequest] = []
        self.connections_open = 0
        self.connections_total = 0
        self._changed = anyio.Event()

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The MCP endpoint URL to configure a proxy with."""
        return f"{self.origin}/mcp"

    @property
    def host_header(self) -> bytes:
        """The Host value a client of this stub sends."""
        return f"127.0.0.1:{self.port}".encode()

    async def wait_until(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Wait until `predicate()` holds; re-checked whenever the stub's state changes."""
        with anyio.fail_after(within):
            while not predicate():
                changed = self._changed
                await changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        """Serve one connection (the listener callback)."""
        self.connections_open += 1
        self.connections_total += 1
        self._notify()
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request = await _read_request(conn, stream)
                if request is None:
                    return
                self.requests.append(request)
                self._notify()
                if not await self._answer(conn, stream, request):
                    return
                if self.close_after_response:
                    return
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (h11.RemoteProtocolError, *_EOF):
            return
        finally:
            with anyio.CancelScope(shield=True):
                await stream.aclose()
            self.connections_open -= 1
            self._notify()

    async def _answer(
        self, conn: h11.Connection, stream: anyio.abc.SocketStream, request: ReceivedRequest
    ) -> bool:
        """Run the handler while watching for the peer hanging up; True to keep going."""
        hung_up = False
        async with anyio.create_task_group() as group:
            respond = Responder(conn, stream, group.cancel_scope)

            async def watch() -> None:
                nonlocal hung_up
                while True:
                    try:
                        data = await stream.receive()
                    except _EOF:
                        hung_up = True
                        request.disconnected.set()
                        self._notify()
                        group.cancel_scope.cancel()
                        return
                    # Early bytes of the next request: h11 keeps them for the next cycle.
                    conn.receive_data(data)

            group.start_soon(watch)
            try:
                await self.handler(request, respond)
            except _EOF:
                # The peer was gone when the handler wrote to it.
                hung_up = True
                request.disconnected.set()
            group.cancel_scope.cancel()
        return not hung_up and not respond.aborted


async def _read_request(
    conn: h11.Connection, stream: anyio.abc.SocketStream
) -> ReceivedRequest | None:
    """Read one whole request; None when the peer closed the connection between requests."""
    head: h11.Request | None = None
    parts: list[bytes] = []
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            try:
                data = await stream.receive()
            except _EOF:
                data = b""
            conn.receive_data(data)
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            parts.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            return ReceivedRequest(
                method=bytes(head.method),
                target=bytes(head.target),
                headers=[(bytes(k), bytes(v)) for k, v in head.headers],
                body=b"".join(parts),
            )
        else:
            return None


@asynccontextmanager
async def stub_upstream(handler: Handler = _OK) -> AsyncIterator[StubUpstream]:
    """Listen on 127.0.0.1 (a free port) until the block exits; then close every connection."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    stub = StubUpstream(listener.extra(SocketAttribute.local_port), handler)
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, stub.handle)
        try:
            yield stub
        finally:
            group.cancel_scope.cancel()
