"""Coarse deadlines for many waits at once, fired by one task.

A cancel scope with a deadline costs about 12 us of CPU per wait on asyncio (anyio tracks
the scope and arms a loop timer), and every exchange used to wait twice under one: for the
client's next request (the idle timeout) and for the upstream's answer (the grace before
the client is watched, and the request timeout). Here a wait arms a `Timer` instead: a set
insertion into a bucket of `TICK` seconds, and a removal when the wait ends. One task
(`Watchdog.run`) sleeps in a cancel scope whose deadline is the earliest bucket that still
holds timers; arming a sooner timer, or cancelling the last timer of that bucket, moves
the deadline without waking the task. So the task runs only when timers are due, and
runs their actions. An action ends the wait from outside, typically by closing the stream
that the wait reads; the waiter then sees a closed stream and reads `timer.fired` to
learn why.

Deadlines fire up to one tick (plus event-loop latency) late, never early.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

import anyio
import anyio.abc
import structlog

__all__ = ["TICK", "Timer", "Watchdog"]

#: Seconds per bucket: how late a deadline may fire.
TICK: Final = 0.01
#: The longest delay armed, in seconds (a year).
_LONGEST: Final = 365 * 24 * 3600.0

_log = structlog.get_logger("mcpr.transport")

Action = Callable[[], Awaitable[None]]


class Timer:
    """One armed deadline; `cancel()` it when the wait ends first."""

    __slots__ = ("_armed", "_bucket", "_watchdog", "action", "fired")

    def __init__(self, watchdog: Watchdog, bucket: int, action: Action) -> None:
        self._watchdog = watchdog
        self._bucket = bucket
        self._armed = True
        self.action = action
        #: True once the deadline passed and the action was started.
        self.fired = False

    def cancel(self) -> None:
        """Disarm for good (a no-op once fired)."""
        if self._armed:
            self._armed = False
            self._watchdog._disarm(self)

    def expire(self) -> None:
        """Fire at the next tick, whatever the deadline (draining ends idle waits now).

        A no-op once fired or cancelled.
        """
        if not self._armed:
            return
        watchdog = self._watchdog
        watchdog._disarm(self)
        self._bucket = 0
        watchdog._insert(self)


class Watchdog:
    """Fires `Timer` actions when their deadlines pass; `run()` must be running."""

    def __init__(self, tick: float = TICK) -> None:
        self._tick = tick
        self._buckets: dict[int, set[Timer]] = {}
        self._order: list[int] = []  # bucket numbers, a heap; stale entries are skipped
        self._queued: set[int] = set()  # the numbers in `_order`, each pushed only once
        # While the loop sleeps: its scope, whose deadline is the earliest live bucket's.
        self._sleep: anyio.CancelScope | None = None
        self._next: int | None = None  # that bucket (None: no timers, no deadline)
        self._group: anyio.abc.TaskGroup | None = None

    def arm(self, delay: float, action: Action) -> Timer:
        """Run `action` (in the watchdog's task) once `delay` seconds have passed."""
        # Capped at a year: a deadline that far is never reached, and an infinite or huge
        # one (a config may say so) would overflow the bucket number.
        delay = min(delay, _LONGEST)
        timer = Timer(self, math.ceil((anyio.current_time() + delay) / self._tick), action)
        self._insert(timer)
        return timer

    def spawn(self, func: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Start `func` as a task beside the watchdog (it must not raise)."""
        assert self._group is not None, "Watchdog.run is not running"
        self._group.start_soon(func)

    def _insert(self, timer: Timer) -> None:
        bucket = timer._bucket
        timers = self._buckets.get(bucket)
        if timers is None:
            timers = self._buckets[bucket] = set()
            if bucket not in self._queued:
                # A bucket emptied and filled again (the idle bucket of each keep-alive
                # cycle) keeps its one entry: the heap grows with buckets, not with timers.
                self._queued.add(bucket)
                heapq.heappush(self._order, bucket)
            if self._next is None or bucket < self._next:
                self._retarget(bucket)  # due before the loop would wake: it must sleep less
        timers.add(timer)

    def _disarm(self, timer: Timer) -> None:
        bucket = timer._bucket
        timers = self._buckets.get(bucket)
        if timers is not None:
            timers.discard(timer)
            if not timers:
                del self._buckets[bucket]
                if bucket == self._next:  # nothing left to wake for then: sleep on
                    self._retarget(self._earliest())

    def _earliest(self) -> int | None:
        """The earliest bucket that still holds timers (stale heap entries are dropped)."""
        order = self._order
        buckets = self._buckets
        while order and order[0] not in buckets:
            self._queued.discard(heapq.heappop(order))
        return order[0] if order else None

    def _retarget(self, bucket: int | None) -> None:
        """Make the sleeping loop wake at `bucket` (never, for None): no wake-up before."""
        self._next = bucket
        if self._sleep is not None:
            self._sleep.deadline = math.inf if bucket is None else bucket * self._tick

    async def run(self) -> None:
        """Fire due timers until cancelled."""
        async with anyio.create_task_group() as group:
            self._group = group
            try:
                await self._loop()
            finally:
                self._group = None

    async def _loop(self) -> None:
        # The loop sleeps in a cancel scope whose deadline is the earliest bucket that
        # still holds timers; arming and cancelling move that deadline (no wake-up), so
        # the loop runs only when timers are due.
        while True:
            bucket = self._earliest()
            if bucket is not None and bucket * self._tick <= anyio.current_time():
                await self._fire(bucket)
                continue
            with anyio.CancelScope() as sleep:
                self._sleep = sleep
                self._retarget(bucket)
                try:
                    await anyio.sleep_forever()
                finally:
                    self._sleep = None

    async def _fire(self, bucket: int) -> None:
        """Run the actions of a due bucket's timers."""
        timers = self._buckets[bucket]
        while timers:
            # One timer at a time, left armed until taken: while an action runs, other
            # tasks (or the action) may still cancel or expire the rest of its bucket.
            timer = timers.pop()
            if not timers and self._buckets.get(bucket) is timers:
                del self._buckets[bucket]
            timer._armed = False
            timer.fired = True
            try:
                await timer.action()
            except Exception:
                _log.exception("deadline action failed")
