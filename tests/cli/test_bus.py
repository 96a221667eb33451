"""Tests of the event bus: drops without waiting, isolation of sinks, flushes and shutdown."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import anyio
from structlog.testing import capture_logs

from mcpr_cli.bus import EventBus
from mcpr_core.events import EventSink, Heartbeat, ProxyEvent

#: How long a test may wait for the bus before it is a failure (never reached when passing).
DEADLINE = 10.0


def event(n: int) -> Heartbeat:
    """A small event numbered `n` (in `requests_total`)."""
    return Heartbeat(ts=n, proxy="p", upstream_status="up", uptime_s=0, requests_total=n,
                     events_dropped=0)  # fmt: skip


class Recorder:
    """A sink that records every call; optionally blocks in `on_batch` until released.

    `entered` is set once `on_batch` has been called (and is blocking, when stalled).
    """

    def __init__(self, name: str = "recorder", *, stall: bool = False) -> None:
        self._name = name
        self.events: list[ProxyEvent] = []
        self.batches: list[int] = []
        self.flushes = 0
        self.closed = False
        self.entered = threading.Event()
        self.release = threading.Event()
        if not stall:
            self.release.set()

    @property
    def name(self) -> str:
        """The sink's name."""
        return self._name

    def on_event(self, event: ProxyEvent) -> None:
        """Record one event."""
        self.on_batch([event])

    def on_batch(self, events: Sequence[ProxyEvent]) -> None:
        """Record a batch, after waiting for `release`."""
        self.batches.append(len(events))
        self.entered.set()
        self.release.wait()
        self.events.extend(events)

    def flush(self) -> None:
        """Count a flush."""
        self.flushes += 1

    def close(self) -> None:
        """Remember the close."""
        self.closed = True


class Failing(Recorder):
    """A sink whose every other batch raises."""

    def on_batch(self, events: Sequence[ProxyEvent]) -> None:
        """Raise on odd calls, record on even ones."""
        super().on_batch(events)
        if len(self.batches) % 2:
            raise RuntimeError("sink broke")


@asynccontextmanager
async def running(bus: EventBus) -> AsyncIterator[EventBus]:
    """Run the bus's dispatcher for the duration of the block, then close the bus."""
    async with anyio.create_task_group() as tasks:
        await tasks.start(bus.run)
        try:
            yield bus
        finally:
            with anyio.CancelScope(shield=True):
                await bus.aclose()


def has_received(sink: Recorder, count: int) -> Callable[[], bool]:
    """A predicate: `sink` holds `count` events."""
    return lambda: len(sink.events) == count


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Wait, yielding to the loop, until `predicate()` holds.

    Polling, because what it watches changes in the sinks' worker threads, which cannot set
    an anyio.Event.
    """
    with anyio.fail_after(DEADLINE):
        while not predicate():  # noqa: ASYNC110 - state changes in worker threads
            await anyio.sleep(0.001)


async def test_overflow_drops_and_counts_without_waiting() -> None:
    """20,000 events into a stalled sink: emit never waits, and drops are counted exactly."""
    stalled = Recorder("stalled", stall=True)
    fast = Recorder("fast")
    bus = EventBus([stalled, fast])
    try:
        async with running(bus):
            for round_start in range(0, 20_000, 1000):
                for n in range(round_start, round_start + 1000):
                    bus.emit(event(n))  # synchronous: cannot wait for anything
                await wait_until(has_received(fast, round_start + 1000))
            stats = {s.name: s for s in bus.statistics().sinks}
            # The stalled lane holds one batch in the sink and a full buffer; the rest dropped.
            held = stalled.batches[0]
            assert stats["stalled"].accepted == 10_000 + held
            assert stats["stalled"].dropped == 20_000 - 10_000 - held
            assert stats["stalled"].buffered == 10_000
            assert stats["fast"].dropped == 0
            assert fast.events == [event(n) for n in range(20_000)]
            assert bus.statistics().dropped == stats["stalled"].dropped
            assert bus.statistics().emitted == 20_000
            stalled.release.set()
    finally:
        stalled.release.set()
    # Shutdown delivered everything the stalled lane had accepted, in order.
    assert len(stalled.events) == 10_000 + held
    assert stalled.events == sorted(stalled.events, key=lambda e: e.ts)
    assert stalled.closed
    assert fast.closed


async def test_shutdown_flushes_everything_accepted() -> None:
    """aclose() delivers every queued event, then flushes and closes each sink once."""
    sinks = [Recorder("a"), Recorder("b")]
    bus = EventBus(sinks, batch_size=16)
    async with running(bus):
        for n in range(1000):
            bus.emit(event(n))
    for sink in sinks:
        assert sink.events == [event(n) for n in range(1000)]
        assert max(sink.batches) <= 16
        assert sink.flushes >= 1
        assert sink.closed
    assert [s.delivered for s in bus.statistics().sinks] == [1000, 1000]


async def test_events_after_shutdown_are_dropped() -> None:
    """Once closed, the bus counts what it is still given as dropped."""
    sink = Recorder()
    bus = EventBus([sink])
    async with running(bus):
        pass
    bus.emit(event(1))
    [stats] = bus.statistics().sinks
    assert (stats.accepted, stats.dropped) == (0, 1)


async def test_failing_sink_is_logged_and_kept() -> None:
    """A sink that raises is logged and counted; it still gets later batches."""
    sink = Failing("flaky")
    bus = EventBus([sink])
    with capture_logs() as logs:
        async with running(bus):
            bus.emit(event(1))
            await wait_until(lambda: bus.statistics().sinks[0].failed == 1)
            bus.emit(event(2))
    [stats] = bus.statistics().sinks
    assert (stats.delivered, stats.failed) == (1, 1)
    assert sink.events == [event(1), event(2)]
    failures = [entry for entry in logs if entry["event"] == "sink_failed"]
    assert failures == [
        {
            "event": "sink_failed",
            "log_level": "error",
            "sink": "flaky",
            "call": "on_event",
            "error": "RuntimeError('sink broke')",
            "note": "reported once: later failures are only counted (mcpr_sink_errors_total)",
        }
    ]


async def test_sinks_are_flushed_periodically() -> None:
    """Every flush_interval each sink is flushed, without waiting for shutdown."""
    sink = Recorder()
    bus = EventBus([sink], flush_interval=0.01)
    async with running(bus):
        await wait_until(lambda: sink.flushes >= 3)
        assert not sink.closed


async def test_hung_sink_is_abandoned_after_the_shutdown_timeout() -> None:
    """A sink that never returns cannot hold shutdown beyond shutdown_timeout."""
    hung = Recorder("hung", stall=True)
    other = Recorder("other")
    bus = EventBus([hung, other], shutdown_timeout=0.5)
    try:
        with capture_logs() as logs:
            async with running(bus):
                bus.emit(event(1))
                bus.emit(event(2))
                await wait_until(hung.entered.is_set)
        assert other.events == [event(1), event(2)]
        assert other.closed
        assert not hung.closed
        assert {"event": "sink_abandoned", "log_level": "warning", "sink": "hung",
                "events_lost": 2} in logs  # fmt: skip
    finally:
        hung.release.set()


async def test_bus_that_never_ran_closes_cleanly() -> None:
    """aclose() without run() returns at once and leaves no stream open."""
    bus = EventBus([Recorder()])
    bus.emit(event(1))
    await bus.aclose()
    assert bus.statistics().sinks[0].accepted == 1


def test_sinks_satisfy_the_protocol() -> None:
    """The test sinks are EventSinks, as the bus expects."""
    assert isinstance(Recorder(), EventSink)


async def test_repr_shows_sinks_and_state() -> None:
    """The repr names the sinks, the state and the count of emitted events."""
    bus = EventBus([Recorder("x")])
    assert repr(bus) == "<EventBus [x] open emitted=0>"
    await bus.aclose()
    assert repr(bus) == "<EventBus [x] closing emitted=0>"
