"""Long and abandoned 2026-07-28 exchanges against a scripted upstream.

- A client that hangs up before the upstream's response head: mcpr drops the upstream
  connection at once (the upstream must see it within 100 ms), as it does once the
  response streams; for a 2026-07-28 request that is the cancellation (PROTOCOL.md §1.5).
- A `subscriptions/listen` stream: not cut by `request_timeout` or `idle_timeout`, its
  keep-alive comments pass byte for byte, and each `list_changed` on it is counted as it
  passes, not when the stream ends.
"""

from __future__ import annotations

import json
import time

import anyio
import pytest

from tests.cli.stub_upstream import ReceivedRequest, Responder, stub_upstream
from tests.cli.wire import JSON, connect, rpc, run_proxy

MODERN = [(b"mcp-protocol-version", b"2026-07-28"), (b"mcp-method", b"tools/call")]
LEGACY = [(b"mcp-protocol-version", b"2025-11-25"), (b"mcp-session-id", b"s-1")]
SSE_HEAD = [(b"content-type", b"text/event-stream")]
#: How soon the upstream must see a client's hang-up (the issue's bound).
HANG_UP_BOUND = 0.1
#: `request_timeout` and `idle_timeout` of the listen test: the stream outlives both.
SHORT_TIMEOUT = 0.2


def frame(message: dict[str, object]) -> bytes:
    """One SSE event carrying a JSON-RPC message."""
    return b"data: " + json.dumps(message, separators=(",", ":")).encode() + b"\n\n"


@pytest.mark.parametrize(
    ("era_headers", "note"),
    [(MODERN, "cancelled"), (LEGACY, "client_closed")],
    ids=["modern", "legacy"],
)
async def test_hang_up_before_the_head_closes_the_upstream_at_once(
    era_headers: list[tuple[bytes, bytes]], note: str
) -> None:
    """Nobody waits for the answer any more: the upstream connection goes within 100 ms."""

    async def never_answers(request: ReceivedRequest, respond: Responder) -> None:
        await anyio.sleep_forever()

    body = rpc("tools/call", 7, name="slow", arguments={})
    async with stub_upstream(never_answers) as stub, run_proxy(stub.url) as proxy:
        async with connect(proxy) as client:
            await client.send_request(
                b"POST", b"/mcp", [*JSON, *era_headers, (b"mcp-name", b"slow")], body
            )
            await stub.wait_until(lambda: len(stub.requests) == 1)
            hung_up = time.monotonic()
        [request] = stub.requests
        with anyio.fail_after(1):
            await request.disconnected.wait()
        seen = time.monotonic() - hung_up
        [event] = await proxy.wait_exchanges(1)
        await proxy.wait_quiet()
    assert seen < HANG_UP_BOUND
    assert (event.tool, event.status, event.note) == ("slow", 0, note)


async def test_listen_stream_outlives_timeouts_and_counts_list_changed() -> None:
    """Keep-alives pass unchanged, timeouts do not apply, list_changed is counted on arrival."""
    ack = frame({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged"})
    keepalive = b": keep-alive\n\n"
    changed = frame({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
    result = frame({"jsonrpc": "2.0", "id": 1, "result": {"resultType": "complete"}})
    finish = anyio.Event()

    async def listen(request: ReceivedRequest, respond: Responder) -> None:
        await respond.head(200, SSE_HEAD)
        await respond.send(ack)
        # What is under test is time passing with nothing on the stream.
        await anyio.sleep(3 * SHORT_TIMEOUT)
        await respond.send(keepalive)
        await respond.send(changed)
        await finish.wait()
        await respond.send(result)
        await respond.end()

    body = rpc("subscriptions/listen", 1, notifications={"toolsListChanged": True})
    headers = [*JSON, (b"mcp-protocol-version", b"2026-07-28")]
    headers.append((b"mcp-method", b"subscriptions/listen"))
    async with (
        stub_upstream(listen) as stub,
        run_proxy(stub.url, request_timeout=SHORT_TIMEOUT, idle_timeout=SHORT_TIMEOUT) as proxy,
        connect(proxy) as client,
    ):
        await client.send_request(b"POST", b"/mcp", headers, body)
        head = await client.read_head()
        assert head.status_code == 200
        received = await client.read_until(changed)
        handler = proxy.running.statistics().handler
        assert (handler.subscriptions_open, handler.list_changed_total) == (1, 1)
        finish.set()
        rest, complete = await client.read_body()
        [event] = await proxy.wait_exchanges(1)
        handler = proxy.running.statistics().handler
    assert received + rest == ack + keepalive + changed + result
    assert complete
    assert (handler.subscriptions_open, handler.list_changed_total) == (0, 1)
    assert (event.mcp_method, event.era, event.note) == ("subscriptions/listen", "modern", "ok")
    assert event.latency_us > 3 * SHORT_TIMEOUT * 1_000_000
