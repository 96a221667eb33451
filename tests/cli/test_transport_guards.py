"""What the proxy refuses before anything reaches the upstream: limits and foreign hosts.

Size and time limits (PRODUCT.md §2.4, §2.5) answer 413, 431, 400 or 408 and close the
connection; DNS-rebinding protection (§9) answers 403. Every refusal is checked from the
wire, with bytes written by hand where h11 would refuse to write them.
"""

from __future__ import annotations

import h11
import pytest

from tests.cli.stub_upstream import stub_upstream
from tests.cli.wire import JSON, connect, rpc, run_proxy, wait_until

_CAP = 1000


@pytest.mark.parametrize("body_sent", [False, True], ids=["head-only", "body-sent"])
async def test_declared_body_over_the_cap_gives_413_before_reading_it(body_sent: bool) -> None:
    """A Content-Length over max_request_body_size is answered 413 from the head alone."""
    body = rpc("ping", 1, pad="x" * 50_000)
    head = [(b"host", b"127.0.0.1"), *JSON, (b"content-length", str(len(body)).encode())]
    async with (
        stub_upstream() as stub,
        run_proxy(stub.url, max_request_body_size=_CAP) as proxy,
        connect(proxy) as c,
    ):
        await c.send(h11.Request(method=b"POST", target=b"/mcp", headers=head))
        if body_sent:
            await c.send(h11.Data(data=body))
        reply = await c.read_response()
        assert await c.closed_by_peer()
        [event] = await proxy.wait_exchanges(1)
    assert reply.status == 413
    assert reply.header(b"connection") == b"close"
    assert not stub.requests
    assert (event.status, event.note, event.error_code) == (413, "rejected", 413)


async def test_chunked_body_growing_over_the_cap_gives_413() -> None:
    """A chunked body is cut off with 413 as soon as it grows past max_request_body_size."""
    async with (
        stub_upstream() as stub,
        run_proxy(stub.url, max_request_body_size=_CAP) as proxy,
        connect(proxy) as c,
    ):
        head = [(b"host", c.host), *JSON, (b"transfer-encoding", b"chunked")]
        await c.send(h11.Request(method=b"POST", target=b"/mcp", headers=head))
        # No terminating chunk: the proxy must answer while the body is still open.
        await c.send(h11.Data(data=b"[" + b" " * 600))
        await c.send(h11.Data(data=b" " * 600))
        reply = await c.read_response()
        assert await c.closed_by_peer()
    assert reply.status == 413
    assert not stub.requests


async def test_body_at_the_cap_is_forwarded() -> None:
    """A body of exactly max_request_body_size bytes is not refused."""
    body = rpc("ping", 1, pad="x" * 100)
    async with (
        stub_upstream() as stub,
        run_proxy(stub.url, max_request_body_size=len(body)) as p,
        connect(p) as c,
    ):
        reply = await c.request(b"POST", b"/mcp", JSON, body)
    assert reply.status == 200
    assert [r.body for r in stub.requests] == [body]


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"GARBAGE\r\n\r\n", id="no-http-version"),
        pytest.param(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nbad header\r\n\r\n", id="header"),
        pytest.param(b"POST /mcp HTTP/1.1\r\nContent-Length: -1\r\n\r\n", id="length"),
    ],
)
async def test_malformed_request_gives_400_and_closes(garbage: bytes) -> None:
    """Bytes that are not HTTP/1.1 are answered 400, recorded, and the connection closed."""
    async with stub_upstream() as stub, run_proxy(stub.url) as proxy, connect(proxy) as c:
        await c.send_raw(garbage)
        reply = await c.read_response()
        assert await c.closed_by_peer()
        [event] = await proxy.wait_exchanges(1)
    assert reply.status == 400
    assert reply.header(b"connection") == b"close"
    assert not stub.requests
    assert (event.method, event.status, event.note) == ("-", 400, "rejected")


@pytest.mark.parametrize("complete", [True, False], ids=["complete-head", "incomplete-head"])
async def test_oversized_headers_give_431(complete: bool) -> None:
    """A request head over max_header_size is answered 431 and the connection closed."""
    head = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 8000 + b"\r\n"
    if complete:
        head += b"Content-Length: 0\r\n\r\n"
    async with (
        stub_upstream() as stub,
        run_proxy(stub.url, max_header_size=4096) as proxy,
        connect(proxy) as c,
    ):
        await c.send_raw(head)
        reply = await c.read_response()
        assert await c.closed_by_peer()
    assert reply.status == 431
    assert not stub.requests


async def test_slow_request_head_gives_408_and_closes() -> None:
    """A head not complete within header_timeout is answered 408 and the connection closed."""
    async with stub_upstream() as stub, run_proxy(stub.url, header_timeout=0.2) as proxy:
        async with connect(proxy) as c:
            await c.send_raw(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            reply = await c.read_response()
            assert await c.closed_by_peer()
        await proxy.wait_quiet()
    assert reply.status == 408
    assert not stub.requests


async def test_idle_connection_is_closed_after_idle_timeout() -> None:
    """A keep-alive connection that sends nothing is closed after idle_timeout, silently."""
    async with stub_upstream() as stub, run_proxy(stub.url, idle_timeout=0.2) as proxy:
        async with connect(proxy) as c:
            reply = await c.request(b"POST", b"/mcp", JSON, rpc("ping"))
            assert await c.closed_by_peer()
        await wait_until(lambda: proxy.running.statistics().handler.connections_open == 0)
    assert reply.status == 200


# -- DNS rebinding ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([(b"host", b"evil.example")], id="host"),
        pytest.param([(b"host", b"evil.example:3000")], id="host-port"),
        pytest.param([(b"origin", b"https://evil.example")], id="origin"),
        pytest.param([(b"origin", b"null")], id="origin-null"),
    ],
)
async def test_foreign_host_or_origin_gives_403_on_loopback(
    headers: list[tuple[bytes, bytes]],
) -> None:
    """Bound to 127.0.0.1, a foreign Host or Origin is refused with 403 (DNS rebinding)."""
    async with stub_upstream() as stub, run_proxy(stub.url) as proxy:
        async with connect(proxy) as c:
            reply = await c.request(b"POST", b"/mcp", [*JSON, *headers], rpc("ping"))
        [event] = await proxy.wait_exchanges(1)
    assert reply.status == 403
    assert not stub.requests
    assert (event.status, event.note) == (403, "rejected")


async def test_loopback_host_and_origin_pass() -> None:
    """Loopback names in Host and Origin are always allowed on a loopback bind."""
    headers = [(b"host", b"localhost:3000"), (b"origin", b"http://127.0.0.1:5173")]
    async with stub_upstream() as stub, run_proxy(stub.url) as proxy, connect(proxy) as c:
        reply = await c.request(b"POST", b"/mcp", [*JSON, *headers], rpc("ping"))
    assert reply.status == 200
    assert len(stub.requests) == 1


@pytest.mark.parametrize(
    ("settings", "headers"),
    [
        pytest.param({"allowed_hosts": ("evil.example",)}, [(b"host", b"evil.example")], id="host"),
        pytest.param(
            {"allowed_hosts": ("*.example:443",)}, [(b"host", b"mcp.example:443")], id="host-glob"
        ),
        pytest.param(
            {"allowed_origins": ("https://evil.example",)},
            [(b"origin", b"https://evil.example")],
            id="origin",
        ),
    ],
)
async def test_allowed_hosts_and_origins_open_the_check(
    settings: dict[str, tuple[str, ...]], headers: list[tuple[bytes, bytes]]
) -> None:
    """Hosts and origins named in allowed_hosts / allowed_origins reach the upstream."""
    async with (
        stub_upstream() as stub,
        run_proxy(stub.url, **settings) as proxy,
        connect(proxy) as c,
    ):
        reply = await c.request(b"POST", b"/mcp", [*JSON, *headers], rpc("ping"))
    assert reply.status == 200
    [received] = stub.requests
    assert received.header(b"host") == stub.host_header


async def test_refused_request_with_an_unread_body_closes_the_connection() -> None:
    """A 403 sent before the body was read says Connection: close and then closes."""
    async with stub_upstream() as stub, run_proxy(stub.url) as proxy, connect(proxy) as c:
        foreign = [*JSON, (b"host", b"evil.example")]
        reply = await c.request(b"POST", b"/mcp", foreign, rpc("ping", 1, pad="x" * 50_000))
        assert await c.closed_by_peer()
    assert reply.status == 403
    assert reply.header(b"connection") == b"close"
    assert not stub.requests


async def test_streamed_upload_over_the_cap_gives_413() -> None:
    """A non-JSON chunked upload is cut off with 413 past the cap; the upstream sees no end."""
    async with (
        stub_upstream() as stub,
        run_proxy(stub.url, max_request_body_size=_CAP) as proxy,
        connect(proxy) as c,
    ):
        head = [
            (b"host", c.host),
            (b"content-type", b"application/octet-stream"),
            (b"transfer-encoding", b"chunked"),
        ]
        await c.send(h11.Request(method=b"POST", target=b"/upload", headers=head))
        await c.send(h11.Data(data=b"x" * 600))
        await c.send(h11.Data(data=b"x" * 600))
        reply = await c.read_response()
        assert await c.closed_by_peer()
        [event] = await proxy.wait_exchanges(1)
    assert reply.status == 413
    assert not stub.requests
    assert (event.status, event.note) == (413, "rejected")
