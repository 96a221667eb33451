"""Item 4 of the reliability issue: events are never silently lost, and losses are counted.

* SIGTERM under sustained load, upstream faults mixed in: every exchange a client got an
  answer for before the proxy exited has its row in the store, and no other (counted).
* The store's disk full (a file-size limit set on the running proxy) or its file unusable:
  the proxy keeps serving; the writer reports each lost batch and counts it on /metrics.
* A burst that overflows the event bus: the drops are counted, and visible on /metrics.

`mcpr proxy run` runs as its own process (its event loop is a parameter); the test drives
it from asyncio.
"""

from __future__ import annotations

import json
import resource
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import h11
import pytest

from mcpr_cli.admin import Health, serve_admin
from mcpr_cli.bus import EventBus
from mcpr_cli.metrics import Metrics
from mcpr_cli.proxy import serve
from mcpr_core.config import ProxyConfig
from mcpr_core.events import ProxyEvent
from tests.cli.stub_upstream import ReceivedRequest, Responder, stub_upstream
from tests.cli.wire import JSON, RawClient, rpc, wait_until
from tests.reliability.support import ProxyProcess, free_port, scaled, store_rows

Record = Callable[[str, object], None]
_OK = [b'{"jsonrpc":"2.0","id":1,"result":{}}']


async def _faulty(request: ReceivedRequest, respond: Responder) -> None:
    """Answer after a short wait; reset every seventh request before the head (a 502)."""
    await anyio.sleep(0.002)
    rid = json.loads(request.body or b"{}").get("id")  # the health probe's id is a string
    if isinstance(rid, int) and rid % 7 == 0:
        await respond.abort()
    await respond.reply(200, JSON[:1], _OK)


async def _load(port: int, answered: list[int], worker: int) -> None:
    """Send calls until the proxy refuses connections; count every complete answer.

    The drain ends each keep-alive connection (idle ones at once, busy ones with
    `Connection: close` on their answer); a call cut off that way has no answer and no row.
    """
    n = 0
    while True:
        try:
            stream = await anyio.connect_tcp("127.0.0.1", port)
        except OSError:
            return  # the listener is closed: the drain has begun
        client = RawClient(stream, f"127.0.0.1:{port}".encode())
        try:
            while client.conn.our_state is h11.IDLE:
                n += 1
                call = rpc("tools/call", worker * 1_000_000 + n, name="load")
                reply = await client.request(b"POST", b"/mcp", JSON, call)
                assert reply.complete
                answered.append(reply.status)
        except (anyio.EndOfStream, anyio.BrokenResourceError, h11.RemoteProtocolError, OSError):
            pass  # closed under the client by the drain
        finally:
            await client.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
async def test_sigterm_under_load_keeps_a_row_for_every_answer(
    backend: str, tmp_path: Path, record_property: Record
) -> None:
    """16 clients send calls (one in seven reset by the upstream: 502) until SIGTERM stops
    the proxy; every answer they read has exactly one row in the store."""
    before_sigterm = scaled(1_000, 20_000)
    answered: list[int] = []
    async with stub_upstream(_faulty) as stub:
        proxy = ProxyProcess(tmp_path, stub.url, events_format="off", backend=backend)
        try:
            await anyio.to_thread.run_sync(proxy.wait_listening)
            started = time.monotonic()
            async with anyio.create_task_group() as group:
                for worker in range(16):
                    group.start_soon(_load, proxy.port, answered, worker)
                await wait_until(lambda: len(answered) >= before_sigterm, within=120.0)
                at_sigterm = len(answered)
                proxy.terminate()
            code = await anyio.to_thread.run_sync(proxy.wait)
            elapsed = time.monotonic() - started
        finally:
            proxy.close()
    rows = store_rows(proxy.store)
    failed = store_rows(proxy.store, "SELECT COUNT(*) FROM requests WHERE error_code = '502'")
    record_property("answered_before_sigterm", at_sigterm)
    record_property("answered_in_all", len(answered))
    record_property("rows_in_store", rows)
    record_property("seconds", round(elapsed, 2))
    assert code == 0, proxy.stderr
    assert rows == len(answered)
    assert failed == answered.count(502) > 0


async def _scrape(admin_port: int) -> dict[str, float]:
    """The samples of /metrics, by name with labels."""
    stream = await anyio.connect_tcp("127.0.0.1", admin_port)
    client = RawClient(stream, f"127.0.0.1:{admin_port}".encode())
    try:
        reply = await client.request(b"GET", b"/metrics")
    finally:
        await client.aclose()
    samples = {}
    for line in reply.body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def _largest_store_file(folder: Path) -> int:
    """The size of the largest of the store's files (database, WAL, shared memory)."""
    return max(path.stat().st_size for path in folder.glob("store.db*"))


async def _wait_store(admin_port: int, outcome: str, at_least: int) -> None:
    """Poll /metrics (another process) until the store counted `at_least` `outcome` events."""
    name = f'mcpr_store_events_total{{outcome="{outcome}"}}'
    with anyio.fail_after(30.0):
        # Another process's counter: nothing here can be notified of its change.
        while (await _scrape(admin_port)).get(name, 0) < at_least:  # noqa: ASYNC110
            await anyio.sleep(0.05)


async def _calls(port: int, count: int) -> list[int]:
    """`count` calls on one connection; their statuses."""
    client = RawClient(await anyio.connect_tcp("127.0.0.1", port), b"127.0.0.1")
    try:
        body = rpc("tools/call", 1, name="t")
        return [(await client.request(b"POST", b"/mcp", JSON, body)).status for _ in range(count)]
    finally:
        await client.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_full_disk_keeps_the_proxy_serving_and_counts_the_loss(
    tmp_path: Path, record_property: Record
) -> None:
    """With the store's files unable to grow (RLIMIT_FSIZE on the proxy), every request is
    still answered; each lost batch is reported on stderr and counted on /metrics
    (`mcpr_store_events_total{outcome="failed"}`); once the disk has room again, new events
    are stored; the proxy exits 0."""
    admin = free_port()
    lost = scaled(500, 5_000)
    async with stub_upstream() as stub:
        proxy = ProxyProcess(tmp_path, stub.url, events_format="off", admin=f"127.0.0.1:{admin}")
        try:
            await anyio.to_thread.run_sync(proxy.wait_listening)
            assert await _calls(proxy.port, 20) == [200] * 20
            await _wait_store(admin, "stored", 20)
            size = await anyio.to_thread.run_sync(_largest_store_file, tmp_path)
            _, hard = resource.prlimit(proxy.proc.pid, resource.RLIMIT_FSIZE)
            resource.prlimit(proxy.proc.pid, resource.RLIMIT_FSIZE, (size, hard))
            assert await _calls(proxy.port, lost) == [200] * lost
            await _wait_store(admin, "failed", lost)
            resource.prlimit(proxy.proc.pid, resource.RLIMIT_FSIZE, (hard, hard))
            assert await _calls(proxy.port, 20) == [200] * 20
            samples = await _scrape(admin)
            proxy.terminate()
            code = await anyio.to_thread.run_sync(proxy.wait)
        finally:
            proxy.close()
    failed = samples['mcpr_store_events_total{outcome="failed"}']
    record_property("events_lost_to_the_full_disk", failed)
    record_property("rows_stored", store_rows(proxy.store))
    assert code == 0
    assert lost <= failed <= lost + 5  # a heartbeat (one per 10 s) may be lost with them
    assert proxy.stderr.count("events was lost") >= 1
    assert store_rows(proxy.store) == 40  # before and after the full disk


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_store_that_cannot_be_opened_leaves_the_proxy_serving(tmp_path: Path) -> None:
    """MCPR_DB naming something that is no database file (a folder): the proxy warns once,
    runs without a store, answers every request, and exits 0."""
    async with stub_upstream() as stub:
        env = {"MCPR_DB": str(tmp_path)}
        proxy = ProxyProcess(tmp_path, stub.url, events_format="off", env=env)
        try:
            await anyio.to_thread.run_sync(proxy.wait_listening)
            assert await _calls(proxy.port, 50) == [200] * 50
            proxy.terminate()
            code = await anyio.to_thread.run_sync(proxy.wait)
        finally:
            proxy.close()
    assert code == 0
    assert proxy.stderr.count("store_unavailable") == 1


class _StalledSink:
    """A sink whose first delivery blocks until `release` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.received = 0

    @property
    def name(self) -> str:
        """The sink's label on /metrics."""
        return "stalled"

    def on_event(self, event: ProxyEvent) -> None:
        """Take one event (after the release)."""
        self.on_batch([event])

    def on_batch(self, events: Sequence[ProxyEvent]) -> None:
        """Take a batch, once released."""
        self.release.wait()
        self.received += len(events)

    def flush(self) -> None:
        """Nothing is buffered here."""

    def close(self) -> None:
        """Nothing to release."""


async def test_bus_overflow_under_a_burst_is_counted_on_metrics(record_property: Record) -> None:
    """A burst of 12,000 events (six JSON-RPC batches of 2,000 calls) into a stalled sink: the
    proxy answers at once, the lane keeps 10,000, and the rest show as
    mcpr_events_dropped_total on /metrics; everything kept is delivered at shutdown."""
    sink = _StalledSink()
    bus = EventBus([sink])
    metrics = Metrics()
    metrics.watch_bus(bus.statistics)
    batch = b"[" + b",".join(rpc("tools/call", n, name="t") for n in range(2_000)) + b"]"
    try:
        async with anyio.create_task_group() as tasks:
            await tasks.start(bus.run)
            async with stub_upstream() as stub:
                config = ProxyConfig(mcp=stub.url, port=0, admin="none", drain_timeout=2.0)
                async with (
                    serve(config, emit=metrics.observe_then(bus.emit)) as running,
                    serve_admin("127.0.0.1", 0, metrics=metrics, health=Health()) as admin,
                ):
                    assert await _batches(running.port, batch, 6) == [200] * 6
                    samples = await _scrape(admin.port)
            stats = bus.statistics().sinks[0]
            sink.release.set()
            await bus.aclose()
    finally:
        sink.release.set()
    dropped = samples['mcpr_events_dropped_total{sink="stalled"}']
    record_property("events_emitted", stats.accepted + stats.dropped)
    record_property("events_dropped", dropped)
    assert stats.accepted + stats.dropped == 12_000
    assert dropped == stats.dropped >= 12_000 - 10_000 - 256
    assert samples['mcpr_events_emitted_total{sink="stalled"}'] == stats.accepted
    assert sink.received == stats.accepted


async def _batches(port: int, body: bytes, count: int) -> list[int]:
    """POST the batch `body` `count` times on one connection; the statuses."""
    client = RawClient(await anyio.connect_tcp("127.0.0.1", port), b"127.0.0.1")
    try:
        return [(await client.request(b"POST", b"/mcp", JSON, body)).status for _ in range(count)]
    finally:
        await client.aclose()
