"""The transport when an end fails: unreachable, silent or dying upstreams, vanishing clients.

What the client gets follows PRODUCT.md §2.4, and every case still yields exactly one
`RequestEvent` whose `note` says how the exchange ended. After each fault nothing may be
left behind: no client connection, no exchange in flight, no upstream connection.
"""

from __future__ import annotations

import json

import anyio
import pytest

from tests.cli.stub_upstream import ReceivedRequest, Responder, stub_upstream
from tests.cli.wire import JSON, SSE_ACCEPT, Reply, connect, rpc, run_proxy

_SSE_HEAD = [(b"content-type", b"text/event-stream")]
_EVENT_1 = b'id: 1\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{}}\n\n'
_MODERN = [
    *JSON,
    (b"mcp-protocol-version", b"2026-07-28"),
    (b"mcp-method", b"tools/call"),
    (b"mcp-name", b"slow"),
]


def _assert_jsonrpc_error(reply: Reply, request_id: object) -> str:
    """The reply is a JSON-RPC error for `request_id`; return its message."""
    assert reply.header(b"content-type") == b"application/json"
    body = reply.json()
    assert body["jsonrpc"] == "2.0"
    assert body["id"] == request_id
    assert body["error"]["code"] == -32603
    message = body["error"]["message"]
    assert isinstance(message, str)
    return message


async def test_unreachable_upstream_gives_502_with_a_jsonrpc_error(free_tcp_port: int) -> None:
    """Nothing listening upstream: 502 with a JSON-RPC error for a request, text otherwise."""
    async with run_proxy(f"http://127.0.0.1:{free_tcp_port}/mcp") as proxy:
        async with connect(proxy) as c:
            reply = await c.request(b"POST", b"/mcp", JSON, rpc("tools/list", 42))
            notified = await c.request(b"POST", b"/mcp", JSON, rpc("notifications/x", None))
        events = await proxy.wait_exchanges(2)
    assert reply.status == 502
    assert "unreachable" in _assert_jsonrpc_error(reply, 42)
    assert notified.status == 502
    assert notified.header(b"content-type") == b"text/plain; charset=utf-8"
    assert [(e.status, e.note) for e in events] == [(502, "upstream_unreachable")] * 2
    assert events[0].error_code == 502


async def test_silent_upstream_gives_504_after_request_timeout() -> None:
    """An upstream that never answers yields 504 once request_timeout has passed."""

    async def handler(request: ReceivedRequest, respond: Responder) -> None:
        await anyio.sleep_forever()

    async with stub_upstream(handler) as stub, run_proxy(stub.url, request_timeout=0.3) as proxy:
        async with connect(proxy) as c:
            reply = await c.request(b"POST", b"/mcp", JSON, rpc("tools/call", "call-1"))
        [event] = await proxy.wait_exchanges(1)
        # The upstream connection that never answered is closed, not pooled.
        await stub.wait_until(lambda: stub.connections_open == 0)
        assert stub.requests[0].disconnected.is_set()
    assert reply.status == 504
    assert "timed out" in _assert_jsonrpc_error(reply, "call-1")
    assert (event.status, event.note, event.error_code) == (504, "timeout", 504)


async def test_upstream_closing_before_the_head_gives_502() -> None:
    """An upstream that hangs up without answering yields 502 with a JSON-RPC error."""

    async def handler(request: ReceivedRequest, respond: Responder) -> None:
        await respond.abort()

    async with stub_upstream(handler) as stub, run_proxy(stub.url) as proxy:
        async with connect(proxy) as c:
            reply = await c.request(b"POST", b"/mcp", JSON, rpc("ping", 3))
        [event] = await proxy.wait_exchanges(1)
    assert reply.status == 502
    _assert_jsonrpc_error(reply, 3)
    assert (event.status, event.note) == (502, "upstream_error")


@pytest.mark.parametrize(
    ("headers", "sent"),
    [
        pytest.param(_SSE_HEAD, _EVENT_1, id="sse"),
        pytest.param(
            [(b"content-type", b"application/json"), (b"content-length", b"100")],
            b'{"jsonrpc":"2.0",',
            id="json-with-length",
        ),
    ],
)
async def test_upstream_dying_mid_body_truncates_the_client_stream(
    headers: list[tuple[bytes, bytes]], sent: bytes
) -> None:
    """The client's response ends without a clean end when the upstream dies mid-body."""

    async def handler(request: ReceivedRequest, respond: Responder) -> None:
        await respond.head(200, headers)
        await respond.send(sent)
        await respond.abort()

    async with stub_upstream(handler) as stub, run_proxy(stub.url) as proxy:
        async with connect(proxy) as c:
            reply = await c.request(b"POST", b"/mcp", JSON, rpc("tools/call", 1, name="t"))
        [event] = await proxy.wait_exchanges(1)
        await proxy.wait_quiet()
    assert reply.status == 200
    assert not reply.complete
    assert reply.body == sent
    assert (event.status, event.note, event.tool) == (200, "truncated", "t")


async def test_client_disconnect_mid_stream_closes_the_upstream_connection() -> None:
    """A client leaving a GET stream closes its upstream connection; nothing is left open."""
    streaming = anyio.Event()

    async def handler(request: ReceivedRequest, respond: Responder) -> None:
        await respond.head(200, _SSE_HEAD)
        await respond.send(_EVENT_1)
        streaming.set()
        await anyio.sleep_forever()

    async with stub_upstream(handler) as stub, run_proxy(stub.url) as proxy:
        async with connect(proxy) as c:
            await c.send_request(b"GET", b"/mcp", SSE_ACCEPT)
            assert (await c.read_head()).status_code == 200
            assert await c.read_until(b"\n\n") == _EVENT_1
            await streaming.wait()  # the stub may resume after the proxy delivered the event
            stats = proxy.running.statistics()
            assert (stats.handler.exchanges_in_flight, stats.pool.in_use) == (1, 1)
        await stub.wait_until(lambda: stub.connections_open == 0)
        assert stub.requests[0].disconnected.is_set()
        await proxy.wait_quiet()
        [event] = proxy.request_events()
    assert (event.method, event.note) == ("GET", "client_closed")


async def test_client_closing_after_its_result_completes_the_exchange() -> None:
    """A modern client closing its SSE response once the result arrived is a normal end."""
    result = b'data: {"jsonrpc":"2.0","id":9,"result":{"content":[]}}\n\n'

    async def handler(request: ReceivedRequest, respond: Responder) -> None:
        await respond.head(200, _SSE_HEAD)
        await respond.send(_EVENT_1)
        await respond.send(result)
        await anyio.sleep_forever()  # a server that keeps the stream open after the result

    body = rpc("tools/call", 9, name="slow", arguments={})
    async with stub_upstream(handler) as stub, run_proxy(stub.url) as proxy:
        async with connect(proxy) as c:
            await c.send_request(b"POST", b"/mcp", _MODERN, body)
            assert (await c.read_head()).status_code == 200
            assert await c.read_until(b"result") == _EVENT_1 + result
        await stub.wait_until(lambda: stub.connections_open == 0)
        await proxy.wait_quiet()
        [event] = proxy.request_events()
    assert (event.note, event.tool, event.error_code) == ("ok", "slow", None)


async def test_sse_error_is_recorded_on_the_event() -> None:
    """A JSON-RPC error inside an SSE response sets the event's error code and message."""
    error = {"jsonrpc": "2.0", "id": 4, "error": {"code": -32602, "message": "Unknown tool"}}
    frame = b"event: message\ndata: " + json.dumps(error).encode() + b"\n\n"

    async def handler(request: ReceivedRequest, respond: Responder) -> None:
        await respond.reply(200, _SSE_HEAD, [_EVENT_1, frame[:20], frame[20:]])

    async with stub_upstream(handler) as stub, run_proxy(stub.url) as proxy:
        async with connect(proxy) as c:
            reply = await c.request(b"POST", b"/mcp", JSON, rpc("tools/call", 4, name="nope"))
        [event] = await proxy.wait_exchanges(1)
    assert reply.body == _EVENT_1 + frame
    assert (event.status, event.note) == (200, "ok")
    assert (event.error_code, event.error_msg) == (-32602, "Unknown tool")
