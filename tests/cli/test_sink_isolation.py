"""Sink isolation: errors counted and reported once, disabling, requests a bad sink cannot slow."""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import Any

import anyio
from structlog.testing import capture_logs

from mcpr_cli.bus import EventBus, SinkSpec
from mcpr_cli.proxy import serve
from mcpr_core.config import ProxyConfig
from mcpr_core.events import ProxyEvent, RequestEvent
from tests.cli.stub_upstream import reply_with, stub_upstream
from tests.cli.test_bus import Recorder, event, running, wait_until
from tests.cli.wire import JSON, Proxy, connect, rpc


class Raising(Recorder):
    """A sink whose deliveries raise until `healthy` is set; flushes always work."""

    def __init__(self, name: str = "raising") -> None:
        super().__init__(name)
        self.healthy = False
        self.flushes_after_disable = 0

    def on_batch(self, events: Sequence[ProxyEvent]) -> None:
        """Raise while unhealthy, record otherwise."""
        self.batches.append(len(events))
        if not self.healthy:
            raise OSError("disk full")
        self.events.extend(events)


def _logged(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


async def test_failures_are_counted_reported_once_then_the_sink_is_disabled() -> None:
    """Three failed calls in a row disable the sink: one report, one message, then drops."""
    bad = Raising()
    good = Recorder("good")
    bus = EventBus([SinkSpec(bad, name="audit", max_failures=3), good], linger=0)
    with capture_logs() as logs:
        async with running(bus):
            for n in range(3):
                bus.emit(event(n))
                await wait_until(lambda n=n: len(bad.batches) == n + 1)  # type: ignore[misc]
            await wait_until(lambda: bus.statistics().sinks[0].disabled)
            bus.emit(event(3))
            await wait_until(lambda: len(good.events) == 4)
    audit, other = bus.statistics().sinks
    assert (audit.name, audit.errors, audit.failed, audit.disabled) == ("audit", 3, 3, True)
    assert (audit.accepted, audit.dropped, audit.delivered) == (3, 1, 0)
    assert (other.errors, other.delivered, other.disabled) == (0, 4, False)
    assert len(_logged(logs, "sink_failed")) == 1
    [disabled] = _logged(logs, "sink_disabled")
    assert disabled["sink"] == "audit"
    assert disabled["consecutive_failures"] == 3
    assert bad.closed
    assert bad.flushes == 0
    assert good.closed


async def test_a_success_resets_the_count() -> None:
    """Only consecutive failures count toward disabling."""
    flaky = Raising()
    bus = EventBus([SinkSpec(flaky, max_failures=2)], linger=0)
    async with running(bus):
        bus.emit(event(0))
        await wait_until(lambda: bus.statistics().sinks[0].errors == 1)
        flaky.healthy = True
        bus.emit(event(1))
        await wait_until(lambda: len(flaky.events) == 1)
        flaky.healthy = False
        bus.emit(event(2))
        await wait_until(lambda: bus.statistics().sinks[0].errors == 2)
    [stats] = bus.statistics().sinks
    assert (stats.errors, stats.disabled, stats.delivered) == (2, False, 1)
    assert flaky.flushes >= 1


async def test_zero_max_failures_never_disables() -> None:
    """`max_failures = 0` keeps a failing sink forever, counting every failure."""
    bad = Raising()
    bus = EventBus([SinkSpec(bad, max_failures=0)], linger=0)
    with capture_logs() as logs:
        async with running(bus):
            for n in range(20):
                bus.emit(event(n))
                await wait_until(lambda n=n: len(bad.batches) == n + 1)  # type: ignore[misc]
    [stats] = bus.statistics().sinks
    assert (stats.errors, stats.failed, stats.disabled) == (20, 20, False)
    assert len(_logged(logs, "sink_failed")) == 1


async def test_stalled_and_raising_sinks_slow_neither_requests_nor_other_sinks() -> None:
    """With one sink stalled and one raising, 200 requests are answered and fully recorded."""
    stalled = Recorder("stalled", stall=True)
    raising = Raising()
    good = Recorder("good")
    specs = [SinkSpec(stalled), SinkSpec(raising, max_failures=3), SinkSpec(good)]
    bus = EventBus(specs, shutdown_timeout=1.0)
    answer = reply_with(
        200, [(b"content-type", b"application/json")], [b'{"jsonrpc":"2.0","id":1}']
    )
    try:
        with capture_logs():
            async with stub_upstream(answer) as stub, running(bus):
                config = ProxyConfig(mcp=stub.url, port=0, admin="none", drain_timeout=2.0)
                async with serve(config, emit=bus.emit) as proxy_running:
                    proxy = Proxy(proxy_running, [])
                    with anyio.fail_after(30):
                        async with connect(proxy) as client:
                            await client.request(b"POST", b"/mcp", JSON, rpc("ping", 0))
                            await wait_until(stalled.entered.is_set)
                            for n in range(1, 200):
                                reply = await client.request(b"POST", b"/mcp", JSON, rpc("ping", n))
                                assert reply.status == 200
                    await wait_until(lambda: len(good.events) == 200)
                    stats = {s.name: s for s in bus.statistics().sinks}
                    assert stats["raising"].disabled
                    assert not stalled.release.is_set()  # stalled the whole time
                    stalled.release.set()
    finally:
        stalled.release.set()
    ids = [e.jsonrpc_id for e in good.events if isinstance(e, RequestEvent)]
    assert ids == list(range(200))
