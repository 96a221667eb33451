"""The tunnel client's driver against a scripted relay and a scripted local server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import h11
import pytest
from anyio.abc import SocketAttribute

from mcp_tunnel_client import TunnelClient, TunnelStatus
from mcp_tunnel_client.frames import (
    Cancel,
    Chunk,
    Credit,
    End,
    Evicted,
    Hello,
    Offer,
    Registered,
    Request,
    Response,
    StreamHead,
)
from mcp_tunnel_client.local import LocalResponse, LocalTarget
from tests.tunnel.fake_relay import WITHIN, FakeRelay, RelaySide, fake_relay

#: A local server's handler: the request head it got, and a function that sends bytes.
Send = Callable[[h11.Event], Awaitable[None]]
Local = Callable[[h11.Request, Send], Coroutine[Any, Any, None]]
SSE = [(b"content-type", b"text/event-stream")]


@asynccontextmanager
async def local_server(handler: Local) -> AsyncIterator[tuple[str, anyio.Event]]:
    """An h11 server on a free port; yields its URL and an event set when a client hangs up."""
    hung_up = anyio.Event()

    async def serve(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await exchange(stream)

    async def exchange(stream: anyio.abc.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        while (event := conn.next_event()) is h11.NEED_DATA:
            conn.receive_data(await stream.receive())
        assert isinstance(event, h11.Request)

        async def send(out: h11.Event) -> None:
            await stream.send(conn.send(out) or b"")

        async with anyio.create_task_group() as group:
            group.start_soon(handler, event, send)
            try:
                while await stream.receive():
                    pass
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass
            hung_up.set()
            group.cancel_scope.cancel()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, serve, group)
        yield f"http://127.0.0.1:{port}", hung_up
        group.cancel_scope.cancel()


@asynccontextmanager
async def running(relay: FakeRelay, local: str) -> AsyncIterator[TunnelClient]:
    """A tunnel client to the fake relay, running for the block."""
    client = TunnelClient(relay.url, "tok", local, subdomain="demo", backoff_min=0.01)
    async with anyio.create_task_group() as group:
        await group.start(client.run)
        yield client
        group.cancel_scope.cancel()


async def registered(relay: FakeRelay, streaming: bool = True, window: int = 1024) -> RelaySide:
    """Take the next session, check its hello, and register it as demo."""
    side = await relay.next_session()
    assert await side.receive() == Hello("tok", "demo", ("stream",))
    capabilities = ("stream",) if streaming else ()
    await side.send(Registered("demo", "https://demo.example", capabilities, window))
    return side


async def wait_status(client: TunnelClient, *statuses: TunnelStatus) -> None:
    """Wait (bounded) until the client's status is one of `statuses`."""
    with anyio.fail_after(WITHIN):
        await client.wait_for(*statuses)


async def sse_then_end(request: h11.Request, send: Send) -> None:
    """Answer with an event stream of two events."""
    await send(h11.Response(status_code=200, headers=SSE))
    await send(h11.Data(data=b"data: 1\n\n"))
    await send(h11.Data(data=b"data: 2\n\n"))
    await send(h11.EndOfMessage())


async def test_relay_without_streaming_gets_a_whole_answer() -> None:
    """Registered without the stream capability, the client buffers and sends one Response."""
    async with (
        local_server(sse_then_end) as (local, _),
        fake_relay() as relay,
        running(relay, local) as client,
    ):
        side = await registered(relay, streaming=False)
        await wait_status(client, TunnelStatus.CONNECTED)
        assert client.url == "https://demo.example"
        await side.send(Request("1", "GET", "/mcp", (("Host", "demo.example"),), b""))
        answer = await side.receive()
        assert isinstance(answer, Response)
        assert (answer.status, answer.body) == (200, b"data: 1\n\ndata: 2\n\n")
        assert ("content-type", "text/event-stream") in answer.headers
        await side.close()


async def test_credit_splits_and_paces_a_stream() -> None:
    """With a 4-byte window the client sends 4 bytes, then waits for credit before the rest."""

    async def eight_bytes(request: h11.Request, send: Send) -> None:
        await send(h11.Response(status_code=200, headers=SSE))
        await send(h11.Data(data=b"abcdefgh"))
        await send(h11.EndOfMessage())

    async with (
        local_server(eight_bytes) as (local, _),
        fake_relay() as relay,
        running(relay, local),
    ):
        side = await registered(relay, window=4)
        await side.send(Request("1", "GET", "/", (), b""))
        assert await side.receive() == StreamHead(
            "1", 200, (("content-type", "text/event-stream"),)
        )
        assert await side.receive() == Chunk("1", b"abcd")
        await side.send(Credit("1", 4))
        assert await side.receive() == Chunk("1", b"efgh")
        await side.send(Credit("1", 4))
        assert await side.receive() == End("1")
        await side.close()


async def test_cancel_ends_the_local_request() -> None:
    """A Cancel from the relay closes the connection to the local server."""

    async def forever(request: h11.Request, send: Send) -> None:
        await send(h11.Response(status_code=200, headers=SSE))
        await send(h11.Data(data=b"data: 1\n\n"))
        await anyio.sleep_forever()

    async with (
        local_server(forever) as (local, hung_up),
        fake_relay() as relay,
        running(relay, local),
    ):
        side = await registered(relay)
        await side.send(Request("1", "GET", "/", (), b""))
        assert isinstance(await side.receive(), StreamHead)
        assert await side.receive() == Chunk("1", b"data: 1\n\n")
        await side.send(Cancel("1"))
        with anyio.fail_after(WITHIN):
            await hung_up.wait()
        await side.close()


async def test_unreachable_local_server_is_502() -> None:
    """When nothing listens locally, the answer is a 502 naming the problem."""
    async with fake_relay() as relay, running(relay, "http://127.0.0.1:1"):
        side = await registered(relay)
        await side.send(Request("1", "GET", "/", (), b""))
        answer = await side.receive()
        assert isinstance(answer, Response)
        assert answer.status == 502
        assert b"cannot reach the local proxy at 127.0.0.1:1" in answer.body
        await side.close()


async def test_an_unexpected_error_is_a_502_and_the_tunnel_stays_up(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A defect inside one tunnelled request answers it 502 and leaves the tunnel serving."""
    opened = LocalTarget.open
    calls = 0

    async def flaky(self: LocalTarget, request: Request, *, within: float) -> LocalResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a defect")
        return await opened(self, request, within=within)

    async def hello(request: h11.Request, send: Send) -> None:
        await send(h11.Response(status_code=200, headers=[(b"content-length", b"2")]))
        await send(h11.Data(data=b"hi"))
        await send(h11.EndOfMessage())

    monkeypatch.setattr(LocalTarget, "open", flaky)
    async with local_server(hello) as (url, _), fake_relay() as relay, running(relay, url):
        side = await registered(relay, streaming=False)
        await side.send(Request("1", "GET", "/", (), b""))
        first = await side.receive()
        await side.send(Request("2", "GET", "/", (), b""))
        second = await side.receive()
        await side.close()
    assert isinstance(first, Response)
    assert first.status == 502
    assert first.body == b"mcp-tunnel-client: internal error in mcp-tunnel-client\n"
    assert isinstance(second, Response)
    assert (second.status, second.body) == (200, b"hi")
    assert "tunnelled request 1 failed" in caplog.text


async def test_invalid_frame_drops_the_connection_and_reconnects() -> None:
    """A frame that is not JSON ends the connection; the client comes back for its subdomain."""
    async with fake_relay() as relay, running(relay, "http://127.0.0.1:1") as client:
        side = await registered(relay)
        await wait_status(client, TunnelStatus.CONNECTED)
        await side.send("not json")
        again = await relay.next_session()
        assert await again.receive() == Hello("tok", "demo", ("stream",))
        assert client.error == "invalid frame from the relay: not a JSON text"
        await side.close()
        await again.close()


async def test_offer_is_taken_and_empty_offer_stops() -> None:
    """The first offered subdomain is asked for; an offer of nothing stops the client."""
    async with fake_relay() as relay, running(relay, "http://127.0.0.1:1") as client:
        side = await relay.next_session()
        await side.receive()
        await side.send(Offer(("demo-2",), "demo is taken"))
        assert await side.receive() == Hello("tok", "demo-2", ("stream",))
        await side.send(Offer((), "nothing left"))
        await wait_status(client, TunnelStatus.DISCONNECTED)
        assert client.refused
        assert client.error == "nothing left"
        await side.close()


async def test_eviction_is_final() -> None:
    """An evicted client stops with status evicted and does not reconnect."""
    async with fake_relay() as relay, running(relay, "http://127.0.0.1:1") as client:
        side = await registered(relay)
        await side.send(Evicted("demo registered again"))
        await wait_status(client, TunnelStatus.EVICTED)
        assert client.error == "evicted by the relay: demo registered again"
        assert not client.refused
        await side.close()


async def test_unreachable_relay_is_retried() -> None:
    """With no relay listening, the client reports disconnected with the reason, and retries."""
    seen: list[str | None] = []
    client = TunnelClient(
        "http://127.0.0.1:1",
        "tok",
        "http://127.0.0.1:2",
        backoff_min=0.01,
        on_change=lambda c: seen.append(c.error),
    )
    async with anyio.create_task_group() as group:
        await group.start(client.run)
        with anyio.fail_after(WITHIN):
            while len([e for e in seen if e]) < 2:
                await client.wait_for(TunnelStatus.CONNECTING)
                await client.wait_for(TunnelStatus.DISCONNECTED)
        group.cancel_scope.cancel()
    assert seen[-1] is not None
    assert seen[-1].startswith("cannot reach ws://127.0.0.1:1/_tunnel/register")
