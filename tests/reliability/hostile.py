"""Clients for the hostile-client tests, and the census before and after each scenario.

`baseline` warms a proxy up and takes its census; `back_to` waits until the client side
has settled and checks the census is back (the memory within `SLACK`); `flood` writes an
endless request while reading what the proxy answers; `stalled` waits for another party to
stop making progress.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from tests.cli.stub_upstream import StubUpstream
from tests.cli.wire import JSON, READ_TIMEOUT, RawClient, rpc, wait_until
from tests.reliability.support import Census, Live, task_count

__all__ = [
    "PING",
    "SLACK",
    "Record",
    "back_to",
    "baseline",
    "client",
    "flood",
    "ping",
    "stalled",
    "wait_events",
]

Record = Callable[[str, object], None]
#: Memory a scenario may leave behind (interned strings, caches warmed by the first use).
SLACK = 256 * 1024
PING = rpc("ping", 1)


async def client(live: Live) -> RawClient:
    """A raw client on a new connection to the proxy."""
    stream = await anyio.connect_tcp("127.0.0.1", live.port)
    return RawClient(stream, f"127.0.0.1:{live.port}".encode())


async def ping(live: Live) -> None:
    """One healthy exchange on a new connection."""
    raw = await client(live)
    try:
        assert (await raw.request(b"POST", b"/mcp", JSON, PING)).status == 200
    finally:
        await raw.aclose()


async def baseline(live: Live, stub: StubUpstream) -> Census:
    """Warm the proxy up (first-use caches), wait until idle, and take the census."""
    for _ in range(3):
        await ping(live)
    await wait_until(lambda: live.running.statistics().handler.connections_open == 0)
    stub.requests.clear()  # the stub's log of requests is the test's memory, not the proxy's
    return live.census()


async def back_to(
    live: Live, stub: StubUpstream, baseline: Census, record: Record, *, slack: int = SLACK
) -> None:
    """Wait until the census is back to `baseline`; record the memory left over."""
    stub.requests.clear()

    def counts_settled() -> bool:
        stats = live.running.statistics()
        busy = stats.handler.connections_open + stats.handler.exchanges_in_flight
        return busy <= baseline.connections + baseline.in_flight and task_count() <= baseline.tasks

    await wait_until(counts_settled, within=30.0)
    after = live.census()
    record("memory_left_bytes", after.memory - baseline.memory)
    assert after.settled(baseline, memory_slack=slack), (baseline, after)


async def flood(client: RawClient, first: bytes, piece: bytes, pieces: int) -> bytes:
    """Send `first`, then `piece` `pieces` times, while reading: what the proxy answered
    before closing. Sending stops quietly when the proxy has closed the connection."""
    answer = bytearray()

    async def send() -> None:
        try:
            await client.send_raw(first)
            for _ in range(pieces):
                await client.send_raw(piece)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return  # the proxy answered and closed: the point of the test

    async with anyio.create_task_group() as group:
        group.start_soon(send)
        with anyio.fail_after(READ_TIMEOUT):
            try:
                while data := await client.stream.receive():
                    answer += data
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass
        group.cancel_scope.cancel()
    return bytes(answer)


async def stalled(progress: Callable[[], int], quiet: float = 0.5) -> None:
    """Wait until `progress()` has not moved for `quiet` seconds (at most READ_TIMEOUT)."""
    with anyio.fail_after(READ_TIMEOUT):
        last = -1
        while (now := progress()) != last:
            last = now
            await anyio.sleep(quiet)  # progress of another party: nothing to wait on


async def wait_events(live: Live, count: int) -> None:
    """Wait until the proxy emitted `count` request events."""
    await wait_until(lambda: live.events >= count)
