"""Item 1 of the reliability issue, live: generated HTTP requests against a running proxy.

Well-formed requests (any method token, path, header set of any size, a body of random
bytes, of near-valid JSON-RPC, a batch, a huge id or deep nesting, framed by Content-Length
or chunked) must each get a response, and malformed bytes must get a 4xx or a closed
connection; after every one of them a valid request works, nothing is logged as an error,
and no exchange is left in flight. One proxy serves all the examples of a test, so damage
from one example would show in the next.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import h11
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from tests.cli.stub_upstream import ReceivedRequest, Responder, StubUpstream, stub_upstream
from tests.cli.wire import JSON, READ_TIMEOUT, rpc, wait_until
from tests.reliability.strategies import bodies
from tests.reliability.support import Live, live_proxy, scaled

EXAMPLES: Final = scaled(500, 10_000)
LIVE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one proxy for all examples, on purpose
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
_MAX_HEADER = 16 * 1024  # the proxy's header limit here, so that some examples exceed it

_TOKEN = st.text("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
                 min_size=1, max_size=12)  # fmt: skip
_methods = st.sampled_from(["GET", "POST", "DELETE", "PUT", "OPTIONS", "HEAD", "PATCH"]) | _TOKEN
_paths = st.sampled_from(["/mcp", "/", "/.well-known/oauth-protected-resource", "/sse"]) | st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60
).map(lambda p: "/" + p)
_VALUE_CHARS = st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters="\x7f")
_values = st.text(_VALUE_CHARS, max_size=40) | st.sampled_from(
    ["application/json", "text/event-stream", "application/json, text/event-stream",
     "2026-07-28", "2025-06-18", "tools/call", "127.0.0.1", "http://127.0.0.1", "close"]
)  # fmt: skip
_names = st.sampled_from(
    ["content-type", "accept", "mcp-session-id", "mcp-protocol-version", "mcp-method",
     "mcp-name", "origin", "connection", "authorization", "cookie", "x-forwarded-for"]
) | _TOKEN  # fmt: skip
_FRAMING = {"host", "content-length", "transfer-encoding", "expect", "upgrade", "te"}


@dataclass(frozen=True, slots=True)
class Request:
    """One generated request."""

    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    chunked: bool

    def __repr__(self) -> str:
        """Short enough for hypothesis to print: long values are cut."""
        headers = [(k[:40], v[:40] + (b"..." if len(v) > 40 else b"")) for k, v in self.headers]
        return (
            f"Request({self.method!r}, {self.target[:80]!r}, {headers}, body={self.body[:80]!r}"
            f"+{max(0, len(self.body) - 80)} bytes, chunked={self.chunked})"
        )

    @property
    def head_size(self) -> int:
        """Bytes of header fields, roughly as they go on the wire."""
        return sum(len(k) + len(v) + 4 for k, v in self.headers)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    """A well-formed HTTP/1.1 request with generated contents."""
    headers = [
        (name.encode(), value.encode("latin-1"))
        for name, value in draw(st.lists(st.tuples(_names, _values), max_size=10))
        if name.lower() not in _FRAMING
    ]
    if draw(st.integers(0, 9)) == 0:  # sometimes a field as large as the whole limit
        headers.append((b"x-big", b"v" * draw(st.integers(1_000, 2 * _MAX_HEADER))))
    if draw(st.booleans()):
        headers.insert(0, JSON[0])
    return Request(
        method=draw(_methods).encode(),
        target=draw(_paths).encode(),
        headers=headers,
        body=draw(bodies()) if draw(st.integers(0, 4)) else b"",
        chunked=draw(st.booleans()),
    )


class Client:
    """A blocking h11 client on one connection to the proxy (the test thread's side)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT)
        self.host = f"127.0.0.1:{port}".encode()
        self.conn = h11.Connection(h11.CLIENT)

    def send(self, *events: h11.Event) -> None:
        """Serialise events with h11 and write them."""
        self.sock.sendall(b"".join(self.conn.send(event) or b"" for event in events))

    def response(self) -> int:
        """Read one whole response; its status (h11 raises on a cut one)."""
        status = 0
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(self.sock.recv(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage):
                if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
                    self.conn.start_next_cycle()
                return status
            elif isinstance(event, h11.ConnectionClosed):
                raise AssertionError("closed without a response")

    def request(self, request: Request) -> int:
        """Send `request` (chunked or with a Content-Length); the response's status."""
        framing = (
            [(b"transfer-encoding", b"chunked")]
            if request.chunked
            else [(b"content-length", str(len(request.body)).encode())]
        )
        head = [(b"host", self.host), *request.headers, *framing]
        body = [h11.Data(data=request.body)] if request.body else []
        self.send(
            h11.Request(method=request.method, target=request.target, headers=head),
            *body,
            h11.EndOfMessage(),
        )
        return self.response()

    def ping(self) -> int:
        """A valid request's status."""
        return self.request(Request(b"POST", b"/mcp", list(JSON), rpc("ping", 1), False))

    def close(self) -> None:
        """Close the connection."""
        self.sock.close()


@dataclass(slots=True, repr=False)
class Target:
    """The stub upstream and the proxy every example of a test talks to, in their own
    event loop on another thread (the examples themselves are plain blocking code)."""

    stub: StubUpstream
    live: Live
    portal: BlockingPortal

    def __repr__(self) -> str:
        return f"<Target proxy on port {self.live.port}>"

    def works(self, client: Client | None = None) -> None:
        """A valid request (on `client` when it is still usable) gets 200."""
        if client is None or client.conn.our_state is not h11.IDLE:
            client = Client(self.live.port)
        try:
            assert client.ping() == 200
        finally:
            client.close()

    def settle(self) -> None:
        """No exchange is left in flight; the stub's log is emptied (it is test memory)."""
        self.portal.call(wait_until, self._idle)
        self.stub.requests.clear()

    def _idle(self) -> bool:
        return not self.live.running.statistics().handler.exchanges_in_flight


@pytest.fixture(params=["asyncio", "trio"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """One stub upstream and one proxy (header limit 16 KiB) for all examples of a test."""
    with (
        start_blocking_portal(request.param) as portal,
        portal.wrap_async_context_manager(stub_upstream(_answer)) as stub,
        portal.wrap_async_context_manager(
            live_proxy(stub.url, max_header_size=_MAX_HEADER, max_request_body_size=1 << 20)
        ) as live,
    ):
        yield Target(stub, live, portal)


async def _answer(request: ReceivedRequest, respond: Responder) -> None:
    """A JSON-RPC result (its head only for HEAD, which has no body)."""
    body = b'{"jsonrpc":"2.0","id":1,"result":{}}'
    head = [JSON[0], (b"content-length", str(len(body)).encode())]
    await respond.reply(200, head, [] if request.method == b"HEAD" else [body])


@LIVE
@given(request=requests())
def test_every_well_formed_request_is_answered(target: Target, request: Request) -> None:
    """Each generated request gets a status (431 exactly when its head is over the limit),
    a valid request works right after it, and nothing is logged as an error."""
    with capture_logs() as logs:
        client = Client(target.live.port)
        try:
            status = client.request(request)
            target.works(client)
        finally:
            client.close()
        target.settle()
    assert 100 <= status <= 599
    if request.head_size > _MAX_HEADER + 256:  # the request line and framing: a little more
        assert status == 431
    elif request.head_size < _MAX_HEADER - 256:
        assert status != 431
    assert [log for log in logs if log["log_level"] in ("error", "critical")] == []


_near_http = st.sampled_from(
    [b"GET / HTTP/1.1\r\n", b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: ",
     b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked\r\n\r\n",
     b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"\r\n\r\n", b"GET /\n\n",
     b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"]
)  # fmt: skip


@LIVE
@given(start=_near_http | st.just(b""), rest=st.binary(max_size=300))
def test_malformed_bytes_get_an_error_or_a_close(target: Target, start: bytes, rest: bytes) -> None:
    """Bytes that are not a finished HTTP request, then the end of the stream: the proxy
    answers with a status line or just closes, and a valid request works afterwards."""
    with capture_logs() as logs:
        client = Client(target.live.port)
        answer = b""
        try:
            client.sock.sendall(start + rest)
            client.sock.shutdown(socket.SHUT_WR)
            while data := _receive(client.sock):
                answer += data
        finally:
            client.close()
        target.works()
        target.settle()
    assert answer == b"" or answer.startswith(b"HTTP/1.1 ")  # 2xx when the bytes made a request
    assert [log for log in logs if log["log_level"] in ("error", "critical")] == []


def _receive(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""
