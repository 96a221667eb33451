"""Request bodies that do not arrive whole, ambiguous framing, and sized answers that stall.

A body cut off by the client, malformed chunking, a body trickling in past
`request_timeout`, and a request framed both by Content-Length and Transfer-Encoding each
get a definite answer (none for a client that left) and one event, never a logged
traceback; a client leaving while a sized response stalls releases the exchange; a HEAD
the proxy refuses is answered without content.
"""

from __future__ import annotations

import anyio
import pytest
from structlog.testing import capture_logs

from tests.cli.stub_upstream import ReceivedRequest, Responder, stub_upstream
from tests.cli.wire import JSON, connect, rpc, run_proxy

_HEAD = b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: %s\r\n"


@pytest.mark.parametrize("ctype", [b"application/json", b"text/plain"], ids=["read", "streamed"])
async def test_client_leaving_inside_its_body_is_recorded_as_gone(ctype: bytes) -> None:
    """EOF inside a body: no answer, one client_closed event, nothing logged as an error."""
    with capture_logs() as logs:
        async with stub_upstream() as stub, run_proxy(stub.url) as proxy:
            async with connect(proxy) as c:
                await c.send_raw(_HEAD % ctype + b'content-length: 100\r\n\r\n{"jsonrpc"')
            [event] = await proxy.wait_exchanges(1)
            await proxy.wait_quiet()
    assert (event.status, event.note) == (0, "client_closed")
    assert not stub.requests
    assert [log for log in logs if log["log_level"] in ("error", "critical")] == []


@pytest.mark.parametrize("ctype", [b"application/json", b"text/plain"], ids=["read", "streamed"])
async def test_malformed_chunked_body_gives_400(ctype: bytes) -> None:
    """A chunk size that is not hex is answered 400 and the connection closed."""
    with capture_logs() as logs:
        async with stub_upstream() as stub, run_proxy(stub.url) as proxy:
            async with connect(proxy) as c:
                await c.send_raw(_HEAD % ctype + b"transfer-encoding: chunked\r\n\r\nzz\r\n")
                reply = await c.read_response()
                assert await c.closed_by_peer()
            [event] = await proxy.wait_exchanges(1)
            await stub.wait_until(lambda: stub.connections_open == 0)
    assert reply.status == 400
    assert (event.status, event.note, event.path) == (400, "rejected", "/mcp")
    assert not stub.requests
    assert [log for log in logs if log["log_level"] in ("error", "critical")] == []


@pytest.mark.parametrize("ctype", [b"application/json", b"text/plain"], ids=["read", "streamed"])
async def test_body_trickling_past_request_timeout_gives_408(ctype: bytes) -> None:
    """A body still incomplete after request_timeout is answered 408; the upstream gets none."""
    async with stub_upstream() as stub, run_proxy(stub.url, request_timeout=0.3) as proxy:
        async with connect(proxy) as c:
            await c.send_raw(_HEAD % ctype + b"content-length: 100\r\n\r\n{")
            reply = await c.read_response()
            assert await c.closed_by_peer()
        [event] = await proxy.wait_exchanges(1)
        await stub.wait_until(lambda: stub.connections_open == 0)
    assert reply.status == 408
    assert (event.status, event.note) == (408, "rejected")
    assert not stub.requests  # the stub sees only whole requests


@pytest.mark.parametrize("ctype", [b"application/json", b"text/plain"], ids=["read", "streamed"])
async def test_content_length_with_transfer_encoding_is_refused(ctype: bytes) -> None:
    """Both framings at once (request smuggling) are answered 400 and never forwarded."""
    framing = b"content-length: 3\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    async with stub_upstream() as stub, run_proxy(stub.url) as proxy:
        async with connect(proxy) as c:
            await c.send_raw(_HEAD % ctype + framing)
            reply = await c.read_response()
            assert await c.closed_by_peer()
        [event] = await proxy.wait_exchanges(1)
    assert reply.status == 400
    assert b"Transfer-Encoding" in reply.body
    assert (event.status, event.note) == (400, "rejected")
    assert not stub.requests
    assert stub.connections_total == 0


async def test_client_leaving_while_a_sized_answer_stalls_releases_everything() -> None:
    """The upstream stops inside a Content-Length body; the client leaves; all is released."""

    async def handler(request: ReceivedRequest, respond: Responder) -> None:
        await respond.head(200, [*JSON[:1], (b"content-length", b"1000")])
        await respond.send(b'{"jsonrpc":"2.0",')
        await anyio.sleep_forever()

    async with stub_upstream(handler) as stub, run_proxy(stub.url) as proxy:
        async with connect(proxy) as c:
            await c.send_request(b"POST", b"/mcp", JSON, rpc("tools/call", 1, name="t"))
            assert (await c.read_head()).status_code == 200
            assert await c.read_chunk() == b'{"jsonrpc":"2.0",'
        [event] = await proxy.wait_exchanges(1)
        await proxy.wait_quiet()
        await stub.wait_until(lambda: stub.connections_open == 0)
    assert (event.status, event.note, event.tool) == (200, "client_closed", "t")


async def test_a_refused_head_request_gets_its_status_without_a_body() -> None:
    """A HEAD refused by the proxy (a foreign Origin: 403) is answered without content."""
    with capture_logs() as logs:
        async with stub_upstream() as stub, run_proxy(stub.url) as proxy:
            async with connect(proxy) as c:
                origin = [(b"origin", b"http://evil.example")]
                reply = await c.request(b"HEAD", b"/mcp", origin)
            [event] = await proxy.wait_exchanges(1)
    assert (reply.status, reply.body, reply.complete) == (403, b"", True)
    assert (event.status, event.note) == (403, "rejected")
    assert not stub.requests
    assert [log for log in logs if log["log_level"] in ("error", "critical")] == []
