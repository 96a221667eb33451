"""Item 2 of the reliability issue, continued: hostile bodies and clients that vanish.

A chunked body growing past `max_request_body_size`, and clients disconnecting inside
their request or inside a streamed answer. As in `test_hostile_clients`, the census of the
proxy (memory, tasks, connections, exchanges) must return to its baseline afterwards.
"""

from __future__ import annotations

import tracemalloc

import anyio
import pytest

from tests.cli.stub_upstream import ReceivedRequest, Responder, stub_upstream
from tests.cli.wire import JSON, rpc
from tests.reliability import hostile
from tests.reliability.hostile import Record
from tests.reliability.support import live_proxy, traced

_CAP = 64 * 1024
_CHUNK = b"1000\r\n" + b"x" * 4096 + b"\r\n"  # one 4 KiB chunk, framed


@pytest.mark.parametrize("ctype", [b"application/json", b"text/plain"], ids=["read", "streamed"])
async def test_chunked_body_over_the_cap_gets_413_with_bounded_memory(
    ctype: bytes, record_property: Record
) -> None:
    """An endless chunked body (up to 8 MiB offered) gets 413 once past the 64 KiB cap and is
    closed; a JSON body never reaches the upstream, a streamed upload is cut off upstream."""
    head = b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: %s\r\n" % ctype
    head += b"transfer-encoding: chunked\r\n\r\n"
    with traced():
        async with (
            stub_upstream() as stub,
            live_proxy(stub.url, max_request_body_size=_CAP) as live,
        ):
            baseline = await hostile.baseline(live, stub)
            tracemalloc.reset_peak()
            client = await hostile.client(live)
            answer = await hostile.flood(client, head, _CHUNK, 2048)
            await client.aclose()
            peak = tracemalloc.get_traced_memory()[1] - baseline.memory
            forwarded = len(stub.requests)
            await hostile.back_to(live, stub, baseline, record_property)
    record_property("peak_traced_bytes", peak)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert live.outcomes[413, "rejected"] == 1
    assert forwarded == 0  # the stub records only requests it received whole
    assert peak < 2 * _CAP + 512 * 1024


_PARTS = {
    "inside-the-head": b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-ty",
    "inside-a-json-body": b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: "
    b'application/json\r\ncontent-length: 500\r\n\r\n{"jsonrpc":"2.0","id":1,',
    "inside-an-upload": b"POST /upload HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: "
    b"text/plain\r\ntransfer-encoding: chunked\r\n\r\n10\r\nabcdefgh",
}


@pytest.mark.parametrize("where", list(_PARTS))
async def test_disconnect_mid_request_leaves_nothing(where: str, record_property: Record) -> None:
    """A client hanging up inside its request: nothing reaches the upstream whole, each gives
    one event (inside the head: 400 rejected, as h11 calls half a head malformed; inside a
    body: client_closed, no answer), and the census returns to baseline."""
    with traced():
        async with stub_upstream() as stub, live_proxy(stub.url) as live:
            baseline = await hostile.baseline(live, stub)
            for _ in range(50):
                client = await hostile.client(live)
                await client.send_raw(_PARTS[where])
                await client.aclose()
            forwarded = len(stub.requests)
            await hostile.back_to(live, stub, baseline, record_property)
            await hostile.wait_events(live, 3 + 50)
    assert forwarded == 0
    if where == "inside-the-head":  # h11 calls half a head malformed; method and path "-"
        assert live.outcomes[400, "rejected"] == 50
    else:
        assert live.outcomes[0, "client_closed"] == 50


async def test_disconnect_mid_stream_closes_the_upstream_side(record_property: Record) -> None:
    """A client leaving an SSE answer after its first event ends the exchange (one event,
    client_closed) and closes the upstream connection; the census returns to baseline."""

    async def endless(request: ReceivedRequest, respond: Responder) -> None:
        if b"ping" in request.body:
            await respond.reply(200, JSON[:1], [b'{"jsonrpc":"2.0","id":1,"result":{}}'])
            return
        await respond.head(200, [(b"content-type", b"text/event-stream")])
        while True:
            await respond.send(b'data: {"jsonrpc":"2.0","method":"notifications/progress"}\n\n')
            await anyio.sleep(0.01)  # an upstream pacing its progress notifications

    with traced():
        async with stub_upstream(endless) as stub, live_proxy(stub.url) as live:
            baseline = await hostile.baseline(live, stub)
            for _ in range(20):
                client = await hostile.client(live)
                await client.send_request(b"POST", b"/mcp", JSON, rpc("tools/call", 2, name="t"))
                await client.read_head()
                assert (await client.read_chunk() or b"").startswith(b"data: ")
                await client.aclose()
            await stub.wait_until(lambda: stub.connections_open <= baseline.upstream)
            await hostile.back_to(live, stub, baseline, record_property)
            await hostile.wait_events(live, 3 + 20)
    assert live.outcomes[200, "client_closed"] == 20


async def test_deeply_nested_json_is_answered_400_with_bounded_memory(
    record_property: Record,
) -> None:
    """A 4 MB request body nested 2,000,000 deep is answered 400 with a -32700 error (never
    forwarded, no stack overflow), costing a few times its size in memory at most."""
    depth = 2_000_000
    body = b"[" * depth + b"]" * depth
    with traced():
        async with stub_upstream() as stub, live_proxy(stub.url) as live:
            baseline = await hostile.baseline(live, stub)
            tracemalloc.reset_peak()
            client = await hostile.client(live)
            reply = await client.request(b"POST", b"/mcp", JSON, body)
            await client.aclose()
            peak = tracemalloc.get_traced_memory()[1] - baseline.memory
            forwarded = len(stub.requests)
            await hostile.back_to(live, stub, baseline, record_property)
    record_property("peak_traced_bytes", peak)
    assert reply.status == 400
    assert reply.json()["error"]["code"] == -32700
    assert live.outcomes[400, "rejected"] == 1
    assert forwarded == 0
    assert peak < 6 * len(body)
