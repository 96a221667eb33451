"""`sse_keepalive`: an idle event stream gets `: keepalive` comments, only between events.

The stub upstream goes quiet at chosen points of a stream; the raw client reads the exact
bytes the proxy sends. The keep-alive period is short (50 ms) so that idleness is cheap.
"""

from __future__ import annotations

import anyio
import pytest

from mcpr_cli.transport.server import KEEPALIVE
from tests.cli.stub_upstream import ReceivedRequest, Responder, stub_upstream
from tests.cli.wire import JSON, connect, rpc, run_proxy

PERIOD = 0.05
SSE_HEAD = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
FIRST = b'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress"}\n\n'
LAST = b'event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\n\n'


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every test of this module on both event loops."""
    backend: str = request.param
    return backend


async def test_idle_stream_gets_keepalives_between_events() -> None:
    """While the upstream is silent after a whole event, the client receives comments."""
    seen = anyio.Event()

    async def handler(request: ReceivedRequest, respond: Responder) -> None:
        await respond.head(200, SSE_HEAD)
        await respond.send(FIRST)
        await seen.wait()
        await respond.send(LAST)
        await respond.end()

    async with stub_upstream(handler) as stub, run_proxy(stub.url, sse_keepalive=PERIOD) as proxy:
        async with connect(proxy) as client:
            await client.send_request(b"POST", b"/mcp", JSON, rpc("tools/call", name="slow"))
            head = await client.read_head()
            assert head.status_code == 200
            body = await client.read_until(FIRST + KEEPALIVE)
            seen.set()
            rest, complete = await client.read_body()
        (event,) = await proxy.wait_exchanges(1)
    body += rest
    assert complete
    assert body.startswith(FIRST + KEEPALIVE)
    assert body.endswith(LAST)
    middle = body[len(FIRST) : -len(LAST)]
    assert middle == KEEPALIVE * (len(middle) // len(KEEPALIVE))
    assert (event.status, event.note, event.error_code) == (200, "ok", None)


async def test_no_keepalive_inside_a_partial_event() -> None:
    """An event cut in two by a silence reaches the client whole, comments only after it."""
    half = len(LAST) // 2
    seen = anyio.Event()

    async def handler(request: ReceivedRequest, respond: Responder) -> None:
        await respond.head(200, SSE_HEAD)
        await respond.send(LAST[:half])
        await anyio.sleep(PERIOD * 4)  # the silence under test: several periods mid-event
        await respond.send(LAST[half:])
        await seen.wait()
        await respond.end()

    async with (
        stub_upstream(handler) as stub,
        run_proxy(stub.url, sse_keepalive=PERIOD) as proxy,
        connect(proxy) as client,
    ):
        await client.send_request(b"POST", b"/mcp", JSON, rpc("tools/call", name="slow"))
        await client.read_head()
        body = await client.read_until(LAST + KEEPALIVE)
        seen.set()
        rest, complete = await client.read_body()
    assert complete
    assert body.startswith(LAST)
    after = (body + rest)[len(LAST) :]
    assert after == KEEPALIVE * (len(after) // len(KEEPALIVE))


async def test_off_by_default_and_never_in_json() -> None:
    """Without `sse_keepalive` an idle stream stays silent; a chunked JSON body never gets one."""
    json_head = [(b"content-type", b"application/json")]

    async def handler(request: ReceivedRequest, respond: Responder) -> None:
        sse = request.body.find(b'"sse"') >= 0
        await respond.head(200, SSE_HEAD if sse else json_head)
        await respond.send(FIRST if sse else b'{"jsonrpc":"2.0",')
        await anyio.sleep(PERIOD * 4)  # the silence under test
        await respond.send(LAST if sse else b'"id":1,"result":{}}')
        await respond.end()

    async with stub_upstream(handler) as stub:
        async with run_proxy(stub.url) as proxy, connect(proxy) as client:
            reply = await client.request(b"POST", b"/mcp", JSON, rpc("tools/call", name="sse"))
            assert reply.body == FIRST + LAST
        async with run_proxy(stub.url, sse_keepalive=PERIOD) as proxy, connect(proxy) as client:
            reply = await client.request(b"POST", b"/mcp", JSON, rpc("tools/call", name="json"))
            assert reply.body == b'{"jsonrpc":"2.0","id":1,"result":{}}'
