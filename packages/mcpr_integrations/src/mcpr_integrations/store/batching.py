"""A bounded hand-over between producers and one consumer that works in batches.

Why not `queue.Queue`: it wakes the consumer for every item, so a writer thread collecting a
200 ms batch would still wake (and take the GIL from the event loop) once per event. Here the
consumer sleeps until a whole batch is waiting, a marker arrives, or the oldest item has
waited `interval` seconds: one wake-up per batch.

Producers hand over lists of items and wait while `capacity` items are queued. Markers
(flush requests, the close request) keep their place in the order but never wait and never
count towards the capacity.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Generic, TypeVar

__all__ = ["BatchQueue"]

T = TypeVar("T")
M = TypeVar("M")


class BatchQueue(Generic[T, M]):
    """FIFO of items (bounded) and markers (unbounded) for one consumer thread."""

    def __init__(self, *, capacity: int, batch_size: int, interval: float) -> None:
        self._capacity = capacity
        self._batch_size = batch_size
        self._interval = interval
        # Entries: (items, None, enqueued_at) or ([], marker, enqueued_at).
        self._entries: deque[tuple[list[T], M | None, float]] = deque()
        self._count = 0
        self._markers = 0
        lock = threading.Lock()
        self._not_full = threading.Condition(lock)
        self._ready = threading.Condition(lock)

    def __len__(self) -> int:
        """Items waiting (markers not counted)."""
        with self._ready:
            return self._count

    def put(self, items: Sequence[T]) -> None:
        """Append items in order, waiting while the queue is at capacity."""
        if not items:
            return
        with self._not_full:
            while self._count >= self._capacity:
                self._not_full.wait()
            self._entries.append((list(items), None, time.monotonic()))
            self._count += len(items)
            if self._count >= self._batch_size or len(self._entries) == 1:
                self._ready.notify()

    def put_marker(self, marker: M) -> None:
        """Append a marker after everything put so far; the consumer wakes for it at once."""
        with self._ready:
            self._entries.append(([], marker, time.monotonic()))
            self._markers += 1
            self._ready.notify()

    def get(self) -> tuple[list[T], M | None]:
        """Wait for work; return up to `batch_size` items, or a marker (with no items).

        Items come back once a batch is full, a marker is queued behind them, or the oldest
        has waited `interval` seconds. A marker is returned on its own once everything
        before it has been returned.
        """
        with self._ready:
            while not self._entries:
                self._ready.wait()
            deadline = self._entries[0][2] + self._interval
            while self._count < self._batch_size and not self._markers:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._ready.wait(remaining)
            items, marker, _ = self._entries[0]
            if marker is not None:
                self._entries.popleft()
                self._markers -= 1
                return [], marker
            batch: list[T] = []
            while self._entries and self._entries[0][1] is None:
                items = self._entries[0][0]
                room = self._batch_size - len(batch)
                if len(items) > room:
                    batch.extend(items[:room])
                    del items[:room]
                    break
                batch.extend(items)
                self._entries.popleft()
            self._count -= len(batch)
            self._not_full.notify_all()
            return batch, None
