"""Tests of the drain in the transport: what an exchange in flight sees when the proxy stops."""

from __future__ import annotations

import anyio

from tests.cli.stub_upstream import ReceivedRequest, Responder, stub_upstream
from tests.cli.wire import JSON, READ_TIMEOUT, SSE_ACCEPT, connect, rpc, run_proxy

_SSE = [(b"content-type", b"text/event-stream")]
_EVENT = b'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress"}\n\n'


async def _stream_forever(request: ReceivedRequest, respond: Responder) -> None:
    await respond.head(200, _SSE)
    await respond.send(_EVENT)
    await anyio.sleep_forever()


async def test_open_stream_ends_cleanly_at_the_drain_deadline() -> None:
    """An SSE response still open at the deadline gets its last chunk; the upstream is let go."""
    async with (
        stub_upstream(_stream_forever) as stub,
        run_proxy(stub.url, drain_timeout=0.2) as proxy,
        connect(proxy) as client,
    ):
        listen = rpc("subscriptions/listen", 1)
        await client.send_request(b"POST", b"/mcp", (*JSON, *SSE_ACCEPT), listen)
        head = await client.read_head()
        assert (head.status_code, await client.read_chunk()) == (200, _EVENT)
        proxy.running.stop()
        body, complete = await client.read_body()
        assert (body, complete) == (b"", True)
        assert await client.closed_by_peer()
        with anyio.fail_after(READ_TIMEOUT):
            await stub.requests[0].disconnected.wait()
        [event] = await proxy.wait_exchanges(1)
    assert (event.mcp_method, event.note) == ("subscriptions/listen", "cancelled")


async def test_stream_that_ends_within_the_deadline_is_whole() -> None:
    """A stream that finishes during the drain reaches the client whole, recorded as ok."""
    finish = anyio.Event()

    async def handler(request: ReceivedRequest, respond: Responder) -> None:
        await respond.head(200, _SSE)
        await respond.send(_EVENT)
        await finish.wait()
        await respond.send(b'data: {"jsonrpc":"2.0","id":1,"result":{}}\n\n')
        await respond.end()

    async with (
        stub_upstream(handler) as stub,
        run_proxy(stub.url, drain_timeout=5.0) as proxy,
        connect(proxy) as client,
    ):
        await client.send_request(b"POST", b"/mcp", JSON, rpc("tools/call", 1, name="slow"))
        await client.read_head()
        assert await client.read_chunk() == _EVENT
        proxy.running.stop()
        finish.set()
        body, complete = await client.read_body()
        assert complete
        assert b'"result"' in body
        [event] = await proxy.wait_exchanges(1)
    assert event.note == "ok"


async def test_sized_response_in_flight_at_the_deadline_is_cut() -> None:
    """A response with a Content-Length cannot end early: at the deadline it is cut."""

    async def handler(request: ReceivedRequest, respond: Responder) -> None:
        await respond.head(
            200, [(b"content-type", b"application/json"), (b"content-length", b"100")]
        )
        await respond.send(b'{"jsonrpc":')
        await anyio.sleep_forever()

    async with (
        stub_upstream(handler) as stub,
        run_proxy(stub.url, drain_timeout=0.2) as proxy,
        connect(proxy) as client,
    ):
        await client.send_request(b"POST", b"/mcp", JSON, rpc("tools/call", 1, name="slow"))
        await client.read_head()
        assert await client.read_chunk() == b'{"jsonrpc":'
        proxy.running.stop()
        body, complete = await client.read_body()
        assert (body, complete) == (b"", False)
        [event] = await proxy.wait_exchanges(1)
    assert event.note == "cancelled"
