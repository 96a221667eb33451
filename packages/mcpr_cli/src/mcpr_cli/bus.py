"""The event bus: the proxy emits, sinks consume, and nothing in between ever waits.

Theory of operation (PRODUCT.md §5, STYLE.md §5.1):

* Every sink has its own lane: a bounded memory object stream (10,000 events) and a consumer
  task. `emit()` offers the event to each lane with `send_nowait`; a full lane drops it and
  counts the drop. So a stalled sink fills only its own lane and delays nobody else.
* A lane's consumer waits for one event, takes whatever else is already buffered (up to 256
  in all), and hands the batch to the sink in a worker thread (`anyio.to_thread.run_sync`):
  sinks are synchronous and may block, the event loop never does. After a partial batch it
  lingers 50 ms, so that under load each thread hop carries many events, not one.
* Every 5 s each lane flushes its sink. Calls into one sink never overlap: the consumer and
  the flusher of a lane share a lock, and the flusher is stopped by an event, not cancelled,
  so a flush in progress is never abandoned.
* `aclose()` closes every lane to new events; each consumer delivers what its lane still
  holds, then flushes and closes its sink. A lane that has not finished within
  `shutdown_timeout` is abandoned (its sink's pending call runs on in its thread; the events
  left are logged as lost) so that a hung sink cannot keep the process alive.
* A sink that raises is contained: its failed calls are counted (`errors`, and the events
  of a failed delivery in `failed`), the first failure is logged once, later ones only
  counted. After `max_failures` consecutive failed calls (a `SinkSpec` setting; 0 means
  never) the sink is disabled with a logged message: its lane closes, what it still held is
  counted as failed, later events as dropped, and the sink is closed without a flush.

`emit()` must be called from the event loop's thread (memory streams are not thread-safe).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio
import structlog
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from mcpr_core.events import EventSink, ProxyEvent

__all__ = [
    "BATCH_SIZE",
    "CAPACITY",
    "FLUSH_INTERVAL",
    "LINGER",
    "BusStatistics",
    "EventBus",
    "SinkSpec",
    "SinkStatistics",
]

#: Events a lane holds before it drops (PRODUCT.md §5).
CAPACITY = 10_000
#: Events handed to a sink in one call.
BATCH_SIZE = 256
#: Seconds a lane waits after a partial batch, so a steady trickle of events costs one
#: worker-thread hop per batch rather than one per event.
LINGER = 0.05
#: Seconds between two flushes of every sink.
FLUSH_INTERVAL = 5.0
#: Seconds `aclose()` waits for the lanes to drain.
SHUTDOWN_TIMEOUT = 30.0

_log = structlog.get_logger("mcpr.bus")


@dataclass(frozen=True, slots=True)
class SinkSpec:
    """A sink with how the bus treats it: its label, and when to give up on it.

    `name` (default: the sink's own) labels it in logs and metrics. After `max_failures`
    consecutive failed calls the sink is disabled; 0 never disables it.
    """

    sink: EventSink
    name: str | None = None
    max_failures: int = 0


@dataclass(frozen=True, slots=True)
class SinkStatistics:
    """Counters of one sink's lane: `accepted + dropped` is every event offered to it.

    `errors` counts the sink's calls that raised; `disabled` is set once it failed
    `max_failures` times in a row.
    """

    name: str
    accepted: int
    dropped: int
    delivered: int
    failed: int
    buffered: int
    errors: int = 0
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class BusStatistics:
    """A snapshot of the bus: events emitted, and what became of them per sink."""

    emitted: int
    sinks: tuple[SinkStatistics, ...]

    @property
    def dropped(self) -> int:
        """Events dropped, summed over the sinks."""
        return sum(sink.dropped for sink in self.sinks)


class _Lane:
    """One sink, its bounded stream and its counters."""

    def __init__(self, spec: SinkSpec, capacity: int) -> None:
        self.sink = spec.sink
        self.name = spec.name if spec.name is not None else spec.sink.name
        self.max_failures = spec.max_failures
        self.send: MemoryObjectSendStream[ProxyEvent]
        self.receive: MemoryObjectReceiveStream[ProxyEvent]
        self.send, self.receive = anyio.create_memory_object_stream[ProxyEvent](capacity)
        self.lock = anyio.Lock()
        self.accepted = 0
        self.dropped = 0
        self.delivered = 0
        self.failed = 0
        self.errors = 0  # calls that raised
        self.consecutive = 0  # calls that raised since the last one that did not
        self.disabled = False
        self.in_flight = 0  # events handed to the sink by the call in progress
        self.drained = anyio.Event()  # the stream is closed and empty
        self.done = False  # drained, flushed and closed

    def statistics(self) -> SinkStatistics:
        return SinkStatistics(
            name=self.name,
            accepted=self.accepted,
            dropped=self.dropped,
            delivered=self.delivered,
            failed=self.failed,
            buffered=self.receive.statistics().current_buffer_used,
            errors=self.errors,
            disabled=self.disabled,
        )


class EventBus:
    """Fan events out to sinks without ever blocking the emitter.

    Run `await bus.run()` in a task group, pass `bus.emit` to the proxy, and `await
    bus.aclose()` once the proxy has drained: every event accepted by a lane reaches its sink.
    """

    def __init__(
        self,
        sinks: Sequence[EventSink | SinkSpec],
        *,
        capacity: int = CAPACITY,
        batch_size: int = BATCH_SIZE,
        flush_interval: float = FLUSH_INTERVAL,
        linger: float = LINGER,
        shutdown_timeout: float = SHUTDOWN_TIMEOUT,
    ) -> None:
        specs = [s if isinstance(s, SinkSpec) else SinkSpec(s) for s in sinks]
        self._lanes = [_Lane(spec, capacity) for spec in specs]
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._linger = linger
        self._shutdown_timeout = shutdown_timeout
        # One worker thread per sink at most: a blocked sink holds only its own token.
        self._limiter = anyio.CapacityLimiter(max(1, len(self._lanes)))
        self._emitted = 0
        self._closing = False
        self._finished = anyio.Event()
        self._scope: anyio.CancelScope | None = None

    def __repr__(self) -> str:
        names = ", ".join(lane.name for lane in self._lanes)
        state = "closing" if self._closing else "open"
        return f"<EventBus [{names}] {state} emitted={self._emitted}>"

    def emit(self, event: ProxyEvent) -> None:
        """Offer `event` to every sink; never waits (a full or closed lane counts a drop)."""
        self._emitted += 1
        for lane in self._lanes:
            try:
                lane.send.send_nowait(event)
            except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
                lane.dropped += 1
            else:
                lane.accepted += 1

    def statistics(self) -> BusStatistics:
        """Counters per sink; `dropped` is what the lanes could not take."""
        return BusStatistics(
            emitted=self._emitted, sinks=tuple(lane.statistics() for lane in self._lanes)
        )

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Deliver events until `aclose()` has drained every lane (or given up on it).

        Start it with `await task_group.start(bus.run)`, so that `aclose()` finds it running.
        """
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                task_status.started()
                async with anyio.create_task_group() as lanes:
                    for lane in self._lanes:
                        lanes.start_soon(self._run_lane, lane)
        finally:
            for lane in self._lanes:
                lane.send.close()
                lane.receive.close()
            self._finished.set()

    async def aclose(self) -> None:
        """Stop accepting events, then wait for every lane to deliver, flush and close."""
        self._closing = True
        for lane in self._lanes:
            lane.send.close()
        if self._scope is None:  # never started: nothing will consume what is buffered
            for lane in self._lanes:
                lane.receive.close()
            return
        with anyio.move_on_after(self._shutdown_timeout):
            await self._finished.wait()
            return
        for lane in self._lanes:
            if not lane.done:
                left = lane.receive.statistics().current_buffer_used + lane.in_flight
                _log.warning("sink_abandoned", sink=lane.name, events_lost=left)
        self._scope.cancel()
        await self._finished.wait()

    # -- lanes ------------------------------------------------------------------------------

    async def _run_lane(self, lane: _Lane) -> None:
        async with anyio.create_task_group() as flusher:
            flusher.start_soon(self._flush_periodically, lane)
            async with lane.receive:
                async for first in lane.receive:
                    batch = [first]
                    while len(batch) < self._batch_size:
                        try:
                            batch.append(lane.receive.receive_nowait())
                        except (anyio.WouldBlock, anyio.EndOfStream):
                            break
                    if lane.disabled:  # what it still held when it was given up on
                        lane.failed += len(batch)
                        continue
                    await self._deliver(lane, batch)
                    if len(batch) < self._batch_size:
                        # Not backed up: let a few more events gather before the next hop.
                        await anyio.sleep(self._linger)
            # Not a cancellation: a flush in progress finishes before the final one starts.
            lane.drained.set()
        if not lane.disabled:
            await self._call(lane, "flush", lane.sink.flush)
        await self._call(lane, "close", lane.sink.close)
        lane.done = True

    async def _flush_periodically(self, lane: _Lane) -> None:
        while True:
            with anyio.move_on_after(self._flush_interval):
                await lane.drained.wait()
                return
            if not lane.disabled:
                await self._call(lane, "flush", lane.sink.flush)

    async def _deliver(self, lane: _Lane, batch: list[ProxyEvent]) -> None:
        lane.in_flight = len(batch)
        if len(batch) == 1:
            event = batch[0]
            ok = await self._call(lane, "on_event", lambda: lane.sink.on_event(event))
        else:
            ok = await self._call(lane, "on_batch", lambda: lane.sink.on_batch(batch))
        lane.in_flight = 0
        if ok:
            lane.delivered += len(batch)
        else:
            lane.failed += len(batch)

    async def _call(self, lane: _Lane, what: str, call: Callable[[], None]) -> bool:
        """Run one sink method in a worker thread; count what it raises, and log it once."""
        async with lane.lock:
            try:
                await anyio.to_thread.run_sync(call, limiter=self._limiter, abandon_on_cancel=True)
            except Exception as exc:  # a sink's failure is contained, never propagated
                self._failed(lane, what, exc)
                return False
        lane.consecutive = 0
        return True

    def _failed(self, lane: _Lane, what: str, exc: Exception) -> None:
        lane.errors += 1
        lane.consecutive += 1
        if lane.errors == 1:
            _log.error(
                "sink_failed",
                sink=lane.name,
                call=what,
                error=repr(exc),
                note="reported once: later failures are only counted (mcpr_sink_errors_total)",
            )
        if lane.max_failures and lane.consecutive >= lane.max_failures and not lane.disabled:
            lane.disabled = True
            lane.send.close()  # from now on `emit` counts this sink's events as dropped
            _log.error(
                "sink_disabled",
                sink=lane.name,
                consecutive_failures=lane.consecutive,
                last_error=repr(exc),
                hint="fix the sink and restart mcpr; the other sinks go on",
            )
