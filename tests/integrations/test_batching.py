"""Tests of the store's batch hand-over between the bus's thread and the writer thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from mcpr_integrations.store.batching import BatchQueue

#: Long enough that a test passing through it would visibly hang; never reached when passing.
FOREVER = 3600.0
JOIN = 10.0


def in_thread(target: Callable[[], Any]) -> threading.Thread:
    """Start `target` in a daemon thread."""
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_full_batches_come_back_in_order_without_waiting() -> None:
    """A full batch is returned at once; lists are split at the batch size, order kept."""
    q: BatchQueue[int, str] = BatchQueue(capacity=100, batch_size=4, interval=FOREVER)
    q.put([1, 2, 3])
    q.put([4, 5, 6, 7, 8, 9])
    assert q.get() == ([1, 2, 3, 4], None)
    assert q.get() == ([5, 6, 7, 8], None)
    assert len(q) == 1


def test_marker_flushes_what_is_before_it_then_comes_alone() -> None:
    """A marker releases the partial batch ahead of it, then is returned on its own."""
    q: BatchQueue[int, str] = BatchQueue(capacity=100, batch_size=50, interval=FOREVER)
    q.put([1, 2])
    q.put_marker("flush")
    q.put([3])
    assert q.get() == ([1, 2], None)
    assert q.get() == ([], "flush")
    q.put_marker("close")
    assert q.get() == ([3], None)
    assert q.get() == ([], "close")


def test_partial_batch_comes_back_after_the_interval() -> None:
    """Without a full batch or a marker, items wait at most `interval`."""
    q: BatchQueue[int, str] = BatchQueue(capacity=100, batch_size=50, interval=0.01)
    q.put([1])
    assert q.get() == ([1], None)


def test_consumer_sleeps_until_work_arrives() -> None:
    """get() waits for the first item, then returns it with its batch."""
    q: BatchQueue[int, str] = BatchQueue(capacity=100, batch_size=2, interval=FOREVER)
    got: list[tuple[list[int], str | None]] = []
    consumer = in_thread(lambda: got.append(q.get()))
    q.put([1, 2])
    consumer.join(JOIN)
    assert got == [([1, 2], None)]


def test_producer_waits_at_capacity() -> None:
    """put() blocks while the queue is full and resumes once the consumer takes a batch."""
    q: BatchQueue[int, str] = BatchQueue(capacity=3, batch_size=3, interval=FOREVER)
    q.put([1, 2, 3])
    producer = in_thread(lambda: q.put([4]))
    producer.join(0.05)
    assert producer.is_alive()
    assert q.get() == ([1, 2, 3], None)
    producer.join(JOIN)
    assert not producer.is_alive()
    assert len(q) == 1


def test_empty_put_is_a_no_op() -> None:
    """Putting nothing queues nothing."""
    q: BatchQueue[int, str] = BatchQueue(capacity=1, batch_size=1, interval=FOREVER)
    q.put([])
    assert len(q) == 0
