"""Item 3 of the reliability issue: every way an upstream can fail, and that the proxy recovers.

Each case sends one `tools/call` through the proxy to an upstream that fails in one way
(PRODUCT.md §2.4), checks what the client got and the one request event recorded, then
sends a healthy request on a new connection: it must succeed (the pool recovered), and no
client connection, exchange or busy upstream connection may be left.
"""

from __future__ import annotations

import json
import ssl
import tracemalloc
from collections.abc import AsyncIterator, Callable

import anyio
import anyio.abc
import pytest
import trustme
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSListener

from tests.cli.stub_upstream import ReceivedRequest, Responder, stub_upstream
from tests.cli.wire import JSON, RawClient, rpc, wait_until
from tests.reliability.faults import (
    CLOSE,
    HALF_CLOSE,
    HANG,
    OK_BODY,
    RESET,
    Action,
    drip,
    fault_upstream,
    reply,
    response,
    send_then,
)
from tests.reliability.support import Live, live_proxy, traced

_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)
_EVENT = b'data: {"jsonrpc":"2.0","method":"notifications/progress","params":{}}\n\n'
_SSE_PART = _SSE_HEAD + b"%x\r\n%s\r\n" % (len(_EVENT), _EVENT)
_CALL = rpc("tools/call", 7, name="work")

#: name: (the upstream's first answer, status the client sees, whole body?, event note)
CASES: dict[str, tuple[Action, int, bool, str]] = {
    "reset-before-head": (RESET, 502, True, "upstream_error"),
    "closed-before-head": (CLOSE, 502, True, "upstream_error"),
    "half-closed": (HALF_CLOSE, 502, True, "upstream_error"),
    "garbage-not-http": (
        send_then(b"SSH-2.0-OpenSSH_9.6\r\n\x00\xff" * 50),
        502,
        True,
        "upstream_error",
    ),
    "reset-mid-body": (send_then(response(length=200)[:-20], RESET), 200, False, "truncated"),
    "short-content-length": (send_then(response(length=100)), 200, False, "truncated"),
    "reset-mid-sse": (send_then(_SSE_PART, RESET), 200, False, "truncated"),
    "head-never-comes": (HANG, 504, True, "timeout"),
    "slow-drip": (drip(response(), every=0.002, size=3), 200, True, "ok"),
    "surplus-bytes": (send_then(response() + response(b"forged"), HANG), 200, True, "ok"),
}


async def _call(live: Live, body: bytes = _CALL) -> tuple[int, bytes, bool]:
    """One request on a new connection: status, body, and whether the body ended properly."""
    stream = await anyio.connect_tcp("127.0.0.1", live.port)
    client = RawClient(stream, f"127.0.0.1:{live.port}".encode())
    try:
        reply_ = await client.request(b"POST", b"/mcp", JSON, body)
    finally:
        await client.aclose()
    return reply_.status, reply_.body, reply_.complete


async def _recovered(live: Live, events_before: int) -> None:
    """A healthy request works, then nothing is left busy."""
    status, body, complete = await _call(live, rpc("ping", 1))
    assert (status, body, complete) == (200, OK_BODY, True)
    await _settled(live, events_before + 1)


async def _settled(live: Live, events: int) -> None:
    """Wait for `events` request events, then for no connection and no busy upstream."""

    def settled() -> bool:
        stats = live.running.statistics()
        busy = (stats.handler.connections_open, stats.handler.exchanges_in_flight)
        return live.events >= events and busy == (0, 0) and stats.pool.in_use == 0

    await wait_until(settled)


@pytest.mark.parametrize("case", list(CASES))
async def test_upstream_fault_has_its_documented_outcome_and_the_pool_recovers(case: str) -> None:
    """Each upstream fault gives its status, one event with its note, and a working pool."""
    first, status, whole, note = CASES[case]
    async with (
        fault_upstream(lambda n: first if n == 1 else reply()) as upstream,
        live_proxy(upstream.url, request_timeout=0.5) as live,
    ):
        got_status, body, complete = await _call(live)
        await _settled(live, 1)
        await _recovered(live, 1)
        [event, healthy] = list(live.recent)
    assert (got_status, complete) == (status, whole)
    assert (event.status, event.note, event.tool) == (status, note, "work")
    if status >= 500:
        answer = json.loads(body)
        assert (answer["id"], answer["error"]["code"]) == (7, -32603)
        assert event.error_code == status
    assert (healthy.status, healthy.note) == (200, "ok")
    if case == "surplus-bytes":
        assert upstream.connections_total == 2  # the poisoned connection was not reused


async def test_refused_upstream_gives_502_and_recovers_once_it_listens() -> None:
    """Nothing listening: 502 upstream_unreachable; the same port serving later works."""
    async with fault_upstream(lambda n: reply()) as upstream:
        port = upstream.port
    async with live_proxy(f"http://127.0.0.1:{port}/mcp") as live:
        status, body, _ = await _call(live)
        assert status == 502
        assert "unreachable" in json.loads(body)["error"]["message"]
        await _settled(live, 1)
        assert [e.note for e in live.recent] == ["upstream_unreachable"]
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)
        async with listener, anyio.create_task_group() as group:

            async def serve_one(stream: anyio.abc.SocketStream) -> None:
                async with stream:
                    await stream.receive()
                    await stream.send(response())

            group.start_soon(listener.serve, serve_one)
            assert (await _call(live))[:2] == (200, OK_BODY)
            group.cancel_scope.cancel()


@pytest.fixture
async def untrusted_tls_upstream() -> AsyncIterator[int]:
    """An https upstream whose certificate comes from a CA nobody configured."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    listener = TLSListener(tcp, context, standard_compatible=False)

    async def refuse(stream: anyio.abc.ByteStream) -> None:
        await stream.aclose()

    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, refuse)
        yield tcp.extra(SocketAttribute.local_port)
        group.cancel_scope.cancel()
    await listener.aclose()


async def test_tls_upstream_with_a_bad_certificate_is_rejected(untrusted_tls_upstream: int) -> None:
    """Certificate verification fails: 502 upstream_unreachable naming the failure."""
    async with live_proxy(f"https://127.0.0.1:{untrusted_tls_upstream}/mcp") as live:
        status, body, _ = await _call(live)
        await _settled(live, 1)
        [event] = list(live.recent)
    assert status == 502
    assert "CERTIFICATE_VERIFY_FAILED" in json.loads(body)["error"]["message"]
    assert (event.status, event.note) == (502, "upstream_unreachable")


_CAP = 1 << 20  # max_response_body_size for the memory cases: 1 MiB


async def _big_answer(request: ReceivedRequest, respond: Responder) -> None:
    """10 MiB of JSON (a widget resource) in 64 KiB chunks, or a 10 MiB SSE data line."""
    sse = b"sse" in request.target
    ctype = b"text/event-stream" if sse else b"application/json"
    await respond.head(200, [(b"content-type", ctype)])
    await respond.send(b"data: " if sse else b'{"jsonrpc":"2.0","id":1,"result":{"pad":"')
    for _ in range(160):
        await respond.send(b"x" * 65536)
    await respond.send(b"\n\n" if sse else b'"}}')
    await respond.end()


@pytest.mark.parametrize("sse", [False, True], ids=["json-over-cap", "endless-sse-line"])
async def test_ten_megabytes_cost_bounded_memory(
    sse: bool, record_property: Callable[[str, object], None]
) -> None:
    """10 MiB over a 1 MiB cap: a buffered JSON body is 502, an SSE line passes through; either
    way the traced memory peak stays within a few caps."""
    target = b"/mcp?sse" if sse else b"/mcp"
    read = rpc("resources/read", 1, uri="ui://widget/big.html")
    with traced():
        async with (
            stub_upstream(_big_answer) as stub,
            live_proxy(
                stub.url, max_response_body_size=_CAP, public_url="https://p.example"
            ) as live,
        ):
            stream = await anyio.connect_tcp("127.0.0.1", live.port)
            client = RawClient(stream, f"127.0.0.1:{live.port}".encode())
            baseline = live.census().memory
            tracemalloc.reset_peak()
            await client.send_request(b"POST", target, JSON, read)
            status = (await client.read_head()).status_code
            size, last = 0, b""
            while (chunk := await client.read_chunk()) is not None:  # counted, not kept
                size, last = size + len(chunk), chunk
            peak = tracemalloc.get_traced_memory()[1] - baseline
            await client.aclose()
            await _settled(live, 1)
            [event] = list(live.recent)
    record_property("peak_traced_bytes", peak)
    if sse:
        assert (status, size) == (200, 160 * 65536 + 8)
        assert (event.status, event.note) == (200, "ok")
    else:
        assert status == 502
        assert b"too large" in last
        assert (event.status, event.note) == (502, "upstream_error")
    assert peak < 6 * _CAP


_NEVER_ENDS = {
    "sse": (b"text/event-stream", None),
    "sized": (b"application/json", b"100000"),
}


@pytest.mark.parametrize("kind", list(_NEVER_ENDS))
async def test_body_that_never_ends_is_held_until_the_client_leaves(kind: str) -> None:
    """An upstream that sends a head and a first part, then nothing: the client keeps what
    arrived (streams are not cut by request_timeout), and when it leaves, the exchange ends
    (client_closed) and the upstream connection is closed, whatever the framing."""
    ctype, length = _NEVER_ENDS[kind]
    first = b'data: {"jsonrpc":"2.0","method":"notifications/progress"}\n\n'

    async def stall(request: ReceivedRequest, respond: Responder) -> None:
        headers = [(b"content-type", ctype)]
        if length is not None:
            headers.append((b"content-length", length))
        await respond.head(200, headers)
        await respond.send(first)
        await anyio.sleep_forever()

    async with stub_upstream(stall) as stub, live_proxy(stub.url, request_timeout=0.2) as live:
        stream = await anyio.connect_tcp("127.0.0.1", live.port)
        client = RawClient(stream, f"127.0.0.1:{live.port}".encode())
        await client.send_request(b"POST", b"/mcp", JSON, _CALL)
        assert (await client.read_head()).status_code == 200
        assert await client.read_chunk() == first
        with anyio.move_on_after(0.5):  # past request_timeout: still open
            await client.read_chunk()
        assert live.running.statistics().handler.exchanges_in_flight == 1
        await client.aclose()
        await _settled(live, 1)
        await stub.wait_until(lambda: stub.connections_open == 0)
        [event] = list(live.recent)
    assert (event.status, event.note, event.tool) == (200, "client_closed", "work")
