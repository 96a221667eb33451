"""The relay and the tunnel client together: routing, whole and streamed answers, failures.

Each test runs a stub local server, `mcpr relay` in-process and a `TunnelClient`, on the
test's event loop; public requests go to the relay's port with `Host: <sub>.tunnel.test`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import anyio
import pytest

from mcp_tunnel_client import TunnelClient, TunnelStatus, register_endpoint
from mcp_tunnel_client.frames import (
    Cancel,
    Chunk,
    Hello,
    Registered,
    Request,
    StreamHead,
    encode_frame,
    parse_frame,
)
from mcp_tunnel_client.websocket import WebSocket, WebSocketClosed, connect_websocket
from mcpr_cli.relay.config import RelayConfig, TokenRule
from mcpr_cli.relay.server import RunningRelay, serve_relay
from mcpr_cli.relay.tunnels import WINDOW
from tests.cli.stub_upstream import (
    Handler,
    ReceivedRequest,
    Responder,
    reply_with,
    stub_upstream,
)
from tests.cli.wire import READ_TIMEOUT, RawClient

CONFIG = RelayConfig(
    domain="tunnel.test",
    tokens=(TokenRule("tok", ("demo", "demo-*")), TokenRule("other", ("*",))),
    port=0,
    scheme="http",
)
SSE = [(b"content-type", b"text/event-stream")]


@asynccontextmanager
async def tunnel(
    relay: RunningRelay, local: str, token: str = "tok", subdomain: str = "demo"
) -> AsyncIterator[TunnelClient]:
    """A tunnel client from `relay` to `local`, connected (or failed) when the block starts."""
    client = TunnelClient(relay.url, token, local, subdomain=subdomain, backoff_min=0.01)
    async with anyio.create_task_group() as group:
        await group.start(client.run)
        with anyio.fail_after(READ_TIMEOUT):
            await client.wait_for(
                TunnelStatus.CONNECTED, TunnelStatus.DISCONNECTED, TunnelStatus.EVICTED
            )
        yield client
        group.cancel_scope.cancel()


@asynccontextmanager
async def public(
    relay: RunningRelay, host: bytes = b"demo.tunnel.test"
) -> AsyncIterator[RawClient]:
    """A raw HTTP client on the relay's public side, sending `Host: host`."""
    client = RawClient(await anyio.connect_tcp("127.0.0.1", relay.port), host)
    try:
        yield client
    finally:
        await client.aclose()


@asynccontextmanager
async def setup(
    handler: Handler, config: RelayConfig = CONFIG
) -> AsyncIterator[tuple[RunningRelay, TunnelClient]]:
    """Stub local server, relay and a connected tunnel."""
    async with (
        stub_upstream(handler) as stub,
        serve_relay(config) as relay,
        tunnel(relay, stub.origin) as client,
    ):
        assert client.status is TunnelStatus.CONNECTED, client.error
        yield relay, client


async def test_whole_answer_through_the_tunnel() -> None:
    """A public request reaches the local server without Host or hop-by-hop headers."""
    seen: list[ReceivedRequest] = []

    async def handler(request: ReceivedRequest, respond: Responder) -> None:
        seen.append(request)
        await respond.reply(201, [(b"x-answer", b"yes"), (b"content-length", b"2")], [b"ok"])

    async with setup(handler) as (relay, client), public(relay) as http:
        assert client.url == f"http://demo.tunnel.test:{relay.port}"
        reply = await http.request(
            b"POST",
            b"/mcp?q=1",
            [(b"content-type", b"application/json"), (b"keep-alive", b"5"), (b"x-custom", b"1")],
            b'{"jsonrpc":"2.0"}',
        )
        assert (reply.status, reply.body, reply.header(b"x-answer")) == (201, b"ok", b"yes")
        again = await http.request(b"GET", b"/second")  # the public connection is kept alive
        assert again.status == 201
    [first, second] = seen
    assert (first.method, first.target, first.body) == (b"POST", b"/mcp?q=1", b'{"jsonrpc":"2.0"}')
    assert first.header(b"host") != b"demo.tunnel.test"
    assert first.header(b"keep-alive") is None
    assert first.header(b"x-custom") == b"1"
    assert second.target == b"/second"


async def test_streamed_answer_arrives_piece_by_piece() -> None:
    """Each SSE event reaches the public client before the local server sends the next."""
    delivered = [anyio.Event() for _ in range(3)]

    async def handler(request: ReceivedRequest, respond: Responder) -> None:
        await respond.head(200, SSE)
        for i, event in enumerate(delivered):
            await respond.send(b"data: %d\n\n" % i)
            await event.wait()
        await respond.end()

    async with setup(handler) as (relay, client), public(relay) as http:
        assert client.status is TunnelStatus.CONNECTED
        await http.send_request(b"GET", b"/mcp")
        head = await http.read_head()
        assert head.status_code == 200
        for i, event in enumerate(delivered):
            assert await http.read_until(b"\n\n") == b"data: %d\n\n" % i
            event.set()
        assert await http.read_chunk() is None


async def test_large_stream_is_paced_by_credit() -> None:
    """A stream many windows long arrives whole and in order."""
    piece = bytes(range(256)) * 256  # 64 KiB
    count = 4 * WINDOW // len(piece) + 3

    async def handler(request: ReceivedRequest, respond: Responder) -> None:
        await respond.reply(200, SSE, [piece] * count)

    async with setup(handler) as (relay, _), public(relay) as http:
        reply = await http.request(b"GET", b"/big")
        assert reply.complete
        assert reply.body == piece * count


async def test_relay_without_streaming_gets_whole_bodies() -> None:
    """A relay that offers no streaming receives the event stream as one whole answer."""
    handler = reply_with(200, SSE, [b"data: 1\n\n", b"data: 2\n\n"])
    config = replace(CONFIG, streaming=False)
    async with setup(handler, config) as (relay, _), public(relay) as http:
        reply = await http.request(b"GET", b"/mcp")
    assert (reply.status, reply.body) == (200, b"data: 1\n\ndata: 2\n\n")
    assert reply.header(b"content-length") == b"18"


async def test_public_hangup_cancels_the_local_request() -> None:
    """When the public client leaves during a stream, the local server's request ends too."""
    started = anyio.Event()
    seen: list[ReceivedRequest] = []

    async def handler(request: ReceivedRequest, respond: Responder) -> None:
        seen.append(request)
        await respond.head(200, SSE)
        await respond.send(b"data: first\n\n")
        started.set()
        await anyio.sleep_forever()

    async with setup(handler) as (relay, _):
        async with public(relay) as http:
            await http.send_request(b"GET", b"/mcp")
            await http.read_head()
            await http.read_until(b"\n\n")
        with anyio.fail_after(READ_TIMEOUT):
            await seen[0].disconnected.wait()


async def test_local_server_down_is_502() -> None:
    """When nothing listens locally, the public client gets the tunnel's 502 with a reason."""
    async with serve_relay(CONFIG) as relay, tunnel(relay, "http://127.0.0.1:1") as client:
        assert client.status is TunnelStatus.CONNECTED
        async with public(relay) as http:
            reply = await http.request(b"GET", b"/mcp")
    assert reply.status == 502
    assert b"cannot reach the local proxy" in reply.body


@pytest.mark.parametrize(
    ("host", "status", "text"),
    [
        (b"elsewhere.example", 404, b"no tunnels here"),
        (b"a.b.tunnel.test", 404, b"no tunnels here"),
        (b"nobody.tunnel.test", 502, b"no tunnel is connected for nobody.tunnel.test"),
    ],
)
async def test_relay_statuses(host: bytes, status: int, text: bytes) -> None:
    """Hosts outside the domain are 404; a subdomain without a tunnel is 502."""
    async with serve_relay(CONFIG) as relay, public(relay, host) as http:
        reply = await http.request(b"GET", b"/")
    assert reply.status == status
    assert text in reply.body


async def test_bad_token_is_refused_for_good() -> None:
    """A token the relay does not know ends the client with a clear error, without retries."""
    async with serve_relay(CONFIG) as relay, tunnel(relay, "http://127.0.0.1:1", "bad") as client:
        assert client.status is TunnelStatus.DISCONNECTED
        assert client.refused
        assert client.error == "the relay refused the tunnel: invalid token"
        assert client.registrations == 0


async def test_subdomain_not_allowed_takes_the_offer() -> None:
    """Asking for a subdomain outside the token's globs registers the one the relay offers."""
    async with (
        serve_relay(CONFIG) as relay,
        tunnel(relay, "http://127.0.0.1:1", subdomain="nope") as client,
    ):
        assert client.status is TunnelStatus.CONNECTED
        assert client.url == f"http://demo.tunnel.test:{relay.port}"


async def test_subdomain_of_another_token_is_not_taken() -> None:
    """A subdomain held by another token is offered around, never stolen."""
    async with (
        serve_relay(CONFIG) as relay,
        tunnel(relay, "http://127.0.0.1:1", "other", subdomain="demo") as first,
        tunnel(relay, "http://127.0.0.1:1", subdomain="demo") as second,
    ):
        assert first.status is TunnelStatus.CONNECTED
        assert second.status is TunnelStatus.CONNECTED
        assert second.url is not None
        assert second.url.startswith("http://demo-")


async def test_second_registration_evicts_the_first() -> None:
    """The same token registering the same subdomain again evicts the older tunnel for good."""
    async with (
        serve_relay(CONFIG) as relay,
        tunnel(relay, "http://127.0.0.1:1") as first,
        tunnel(relay, "http://127.0.0.1:1") as second,
    ):
        with anyio.fail_after(READ_TIMEOUT):
            await first.wait_for(TunnelStatus.EVICTED)
        assert first.error == "evicted by the relay: demo registered again"
        assert second.status is TunnelStatus.CONNECTED


async def test_relay_restart_is_survived() -> None:
    """After the relay restarts on the same port, the client registers again, same URL."""
    async with stub_upstream() as stub, anyio.create_task_group() as group:
        async with serve_relay(CONFIG) as relay:
            port = relay.port
            client = TunnelClient(
                relay.url, "tok", stub.origin, subdomain="demo", backoff_min=0.01, backoff_max=0.05
            )
            await group.start(client.run)
            with anyio.fail_after(READ_TIMEOUT):
                await client.wait_for(TunnelStatus.CONNECTED)
            url = client.url
        with anyio.fail_after(READ_TIMEOUT):
            await client.wait_for(TunnelStatus.DISCONNECTED, TunnelStatus.CONNECTING)
        async with serve_relay(replace(CONFIG, port=port)) as again:
            with anyio.fail_after(READ_TIMEOUT):
                await client.wait_for(TunnelStatus.CONNECTED)
            assert (client.url, client.registrations) == (url, 2)
            async with public(again) as http:
                reply = await http.request(b"GET", b"/mcp")
            assert reply.status == 200
        group.cancel_scope.cancel()


def test_backoff_grows_and_is_jittered() -> None:
    """Waits double per failure up to the cap, each somewhere in its upper half."""
    client = TunnelClient("http://relay", "t", "http://127.0.0.1:1", backoff_min=1, backoff_max=8)
    for failures, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (10, 8)]:
        waits = {client.backoff(failures) for _ in range(50)}
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(waits) > 1


def test_public_url_forms() -> None:
    """http URLs carry the listening port unless told otherwise; https ones the public port."""
    assert CONFIG.public_url("a", 8080) == "http://a.tunnel.test:8080"
    https = replace(CONFIG, scheme="https")
    assert https.public_url("a", 8080) == "https://a.tunnel.test"
    assert replace(https, public_port=8443).public_url("a", 1) == "https://a.tunnel.test:8443"


async def closed_by_relay(ws: WebSocket) -> WebSocketClosed:
    """Read (and drop) frames until the relay closes the WebSocket; return how it closed."""
    with anyio.fail_after(READ_TIMEOUT):
        while True:
            try:
                await ws.receive_text()
            except WebSocketClosed as exc:
                return exc


async def test_a_client_ignoring_credit_loses_its_tunnel() -> None:
    """A client that streams past its credit is cut off, and its public client with it."""
    async with serve_relay(CONFIG) as relay:
        ws = await connect_websocket(register_endpoint(relay.url))
        await ws.send_text(encode_frame(Hello("tok", "demo", ("stream",))))
        assert isinstance(parse_frame(await ws.receive_text()), Registered)
        async with public(relay) as http, anyio.create_task_group() as group:
            group.start_soon(http.send_request, b"GET", b"/mcp")
            request = parse_frame(await ws.receive_text())
            assert isinstance(request, Request)
            await ws.send_text(encode_frame(StreamHead(request.id, 200, ())))
            await ws.send_text(encode_frame(Chunk(request.id, bytes(WINDOW + 1))))
            assert (await closed_by_relay(ws)).code == 1002
            head = await http.read_head()
            assert head.status_code == 200
            body, complete = await http.read_body()
            assert (body, complete) == (b"", False)
        await ws.aclose()
        assert relay.hub.tunnels == {}


async def test_a_first_frame_without_token_is_refused() -> None:
    """A tunnel that does not start with its registration is closed as a protocol error."""
    async with serve_relay(CONFIG) as relay:
        ws = await connect_websocket(register_endpoint(relay.url))
        await ws.send_text(encode_frame(Cancel("1")))
        assert (await closed_by_relay(ws)).code == 1002
        await ws.aclose()
