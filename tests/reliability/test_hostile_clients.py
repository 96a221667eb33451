"""Item 2 of the reliability issue: slow and hostile clients, each with its documented outcome.

Every test takes a census of the proxy (traced Python memory, event-loop tasks, client
connections, exchanges, upstream connections) once it is warm, runs the hostile scenario,
and checks that the census returns to that baseline once the clients are gone. The figures
(memory, counts, times) are recorded as test properties (`--junitxml` shows them).
"""

from __future__ import annotations

import time
import tracemalloc

import anyio
import anyio.abc
import pytest

from tests.cli.stub_upstream import ReceivedRequest, Responder, stub_upstream
from tests.cli.wire import JSON, READ_TIMEOUT, RawClient, rpc, wait_until
from tests.reliability import hostile
from tests.reliability.hostile import Record
from tests.reliability.support import live_proxy, raise_fd_limit, scaled, traced


async def test_slowloris_clients_get_408_while_others_are_served(record_property: Record) -> None:
    """Clients sending one header byte per second get 408 and are closed at header_timeout; a
    normal client is served meanwhile; nothing is left afterwards."""
    count = scaled(20, 200)
    with traced():
        async with stub_upstream() as stub, live_proxy(stub.url, header_timeout=1.5) as live:
            baseline = await hostile.baseline(live, stub)
            replies: list[bytes] = []
            started = time.monotonic()

            async def slowloris() -> None:
                client = await hostile.client(live)

                async def drip() -> None:
                    for byte in b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\n":
                        await client.send_raw(bytes([byte]))
                        await anyio.sleep(1.0)  # the attack is the pace itself

                try:
                    async with anyio.create_task_group() as sender:
                        sender.start_soon(drip)
                        with anyio.fail_after(READ_TIMEOUT):
                            replies.append(await client.stream.receive())
                        sender.cancel_scope.cancel()
                finally:
                    await client.aclose()

            async with anyio.create_task_group() as group:
                for _ in range(count):
                    group.start_soon(slowloris)
                await wait_until(
                    lambda: live.running.statistics().handler.connections_open >= count
                )
                await hostile.ping(live)  # served while the slow heads are pending
            elapsed = time.monotonic() - started
            # Tables grown to `count` connections keep their size (see the 1,000 below).
            slack = hostile.SLACK + count * 1024
            await hostile.back_to(live, stub, baseline, record_property, slack=slack)
    record_property("slowloris_connections", count)
    record_property("seconds_until_all_closed", round(elapsed, 2))
    assert len(replies) == count
    assert {reply[:13] for reply in replies} == {b"HTTP/1.1 408 "}
    assert live.outcomes[408, "rejected"] == count
    assert elapsed < 1.5 + 2.0


async def test_client_that_never_reads_back_pressures_the_upstream(
    record_property: Record,
) -> None:
    """An SSE answer to a client that stops reading fills socket buffers, then the upstream
    blocks: bytes sent stay bounded and the proxy's memory does not grow; when the client
    hangs up, the exchange and the upstream connection end."""
    event = b"data: " + b"x" * 16_000 + b"\n\n"
    sent = 0

    async def firehose(request: ReceivedRequest, respond: Responder) -> None:
        nonlocal sent
        if b"ping" in request.body:
            await respond.reply(200, JSON[:1], [b'{"jsonrpc":"2.0","id":1,"result":{}}'])
            return
        await respond.head(200, [(b"content-type", b"text/event-stream")])
        for _ in range(scaled(8_000, 32_000)):  # 128 MB (512 MB long) offered
            await respond.send(event)
            sent += len(event)

    with traced():
        async with stub_upstream(firehose) as stub, live_proxy(stub.url) as live:
            baseline = await hostile.baseline(live, stub)
            client = await hostile.client(live)
            await client.send_request(b"POST", b"/mcp", JSON, rpc("tools/call", 1, name="t"))
            assert (await client.read_head()).status_code == 200
            await hostile.stalled(lambda: sent)
            held = live.census()
            await client.aclose()
            await stub.wait_until(lambda: stub.connections_open == 0)
            await hostile.back_to(live, stub, baseline, record_property)
    record_property("bytes_sent_before_back_pressure", sent)
    record_property("memory_while_stalled_bytes", held.memory - baseline.memory)
    assert sent < 64 * 1024 * 1024
    assert held.memory - baseline.memory < 1024 * 1024
    assert live.outcomes[200, "client_closed"] == 1


async def test_a_thousand_idle_keepalive_connections(record_property: Record) -> None:
    """1,000 keep-alive connections idle after one request each are all held, cost bounded
    memory each, do not stop a new client from being served, and leave nothing behind."""
    count = scaled(1_000, 5_000)
    raise_fd_limit(2 * count + 256)
    clients: list[RawClient] = []
    with traced():
        # One upstream connection, so that the pool (and the stub's tasks) do not grow.
        async with (
            stub_upstream() as stub,
            live_proxy(stub.url, max_concurrent_upstream=1) as live,
        ):
            baseline = await hostile.baseline(live, stub)
            started = time.monotonic()
            limit = anyio.CapacityLimiter(64)

            async def open_one() -> None:
                async with limit:
                    client = await hostile.client(live)
                    clients.append(client)
                    assert (
                        await client.request(b"POST", b"/mcp", JSON, hostile.PING)
                    ).status == 200

            async with anyio.create_task_group() as group:
                for _ in range(count):
                    group.start_soon(open_one)
            opened = time.monotonic() - started
            await wait_until(lambda: live.running.statistics().handler.connections_open == count)
            held = live.census()
            await hostile.ping(live)
            for client in clients:
                await client.aclose()
            clients.clear()  # the test's own h11 connections are not the proxy's memory
            # Hash tables grown to hold `count` entries (the selector's map, the set of idle
            # scopes, weak sets) keep their size once emptied: about 650 bytes per connection.
            await hostile.back_to(live, stub, baseline, record_property, slack=count * 1024)
    per_connection = (held.memory - baseline.memory) // count
    record_property("connections_held", count)
    record_property("seconds_to_open", round(opened, 2))
    record_property("traced_bytes_per_idle_connection", per_connection)
    record_property("tasks_while_held", held.tasks - baseline.tasks)
    assert held.connections == count
    assert held.tasks - baseline.tasks <= count + 8  # one task per connection
    assert per_connection < 32 * 1024  # both ends of each connection live in this process


@pytest.mark.parametrize("shape", ["one-endless-header", "many-small-headers"])
async def test_headers_over_the_limit_get_431_with_bounded_memory(
    shape: str, record_property: Record
) -> None:
    """A head growing past max_header_size (64 KiB) toward 8 MiB is answered 431 and closed;
    the proxy reads no more than the limit, whatever the client keeps sending."""
    piece = b"x-a: " + b"v" * 4090 + b"\r\n" if shape == "many-small-headers" else b"v" * 4096
    start = b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\n"
    start += b"x-big: " if shape == "one-endless-header" else b""
    with traced():
        async with stub_upstream() as stub, live_proxy(stub.url) as live:
            baseline = await hostile.baseline(live, stub)
            tracemalloc.reset_peak()
            client = await hostile.client(live)
            answer = await hostile.flood(client, start, piece, 2048)
            await client.aclose()
            peak = tracemalloc.get_traced_memory()[1] - baseline.memory
            forwarded = len(stub.requests)
            await hostile.back_to(live, stub, baseline, record_property)
    record_property("peak_traced_bytes", peak)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert live.outcomes[431, "rejected"] == 1
    assert forwarded == 0
    assert peak < 1024 * 1024
