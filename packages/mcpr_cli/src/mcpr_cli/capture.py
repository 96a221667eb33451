"""Schema capture off the hot path: listing results queue here and are hashed in a thread.

An exchange hands its listing result (`Exchange.captured`) and any `list_changed`
notifications to `CaptureWorker.submit`, which never waits: a full queue drops the item
and counts it, exactly as the event bus does. One task takes items in order and runs the
`SchemaCapture` machine in a worker thread (canonical JSON and SHA-256 of a large tool
list are not free), then emits the `SchemaVersionCreated` events it produced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from mcpr_core.events import ProxyEvent
from mcpr_core.pipeline import Captured
from mcpr_core.schema import SchemaCapture

__all__ = ["CaptureStatistics", "CaptureWorker"]

#: Listing results waiting for capture; listings are rare, so this only bounds a burst.
QUEUE_SIZE: Final = 256


@dataclass(frozen=True, slots=True)
class _Item:
    captured: Captured | None
    list_changed: tuple[str, ...]
    now_ms: int


@dataclass(frozen=True, slots=True)
class CaptureStatistics:
    """Items taken, dropped on a full queue, and schema versions produced."""

    submitted: int
    dropped: int
    versions: int


class CaptureWorker:
    """Feeds one `SchemaCapture` from the exchanges of a proxy, in order, off the loop."""

    def __init__(self, capture: SchemaCapture, emit: Callable[[ProxyEvent], None]) -> None:
        self.capture = capture
        self._emit = emit
        self._send: MemoryObjectSendStream[_Item]
        self._receive: MemoryObjectReceiveStream[_Item]
        self._send, self._receive = anyio.create_memory_object_stream[_Item](QUEUE_SIZE)
        self._submitted = 0
        self._dropped = 0
        self._versions = 0
        self._finished = anyio.Event()

    def statistics(self) -> CaptureStatistics:
        """Counters since start."""
        return CaptureStatistics(self._submitted, self._dropped, self._versions)

    def submit(self, captured: Captured | None, list_changed: tuple[str, ...], now_ms: int) -> None:
        """Queue one exchange's capture material; never waits (drops and counts when full)."""
        if captured is None and not list_changed:
            return
        try:
            self._send.send_nowait(_Item(captured, list_changed, now_ms))
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._dropped += 1
            return
        self._submitted += 1

    def close(self) -> None:
        """No more items: `run` finishes what is queued, then returns."""
        self._send.close()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Process items until `close()`; start it with `task_group.start`."""
        task_status.started()
        try:
            with self._receive:
                async for item in self._receive:
                    event = await anyio.to_thread.run_sync(self._observe, item)
                    if event is not None:
                        self._versions += 1
                        self._emit(event)
        finally:
            self._finished.set()

    async def wait_finished(self) -> None:
        """Wait until `run` has returned (after `close()`, once the queue is empty)."""
        await self._finished.wait()

    def _observe(self, item: _Item) -> ProxyEvent | None:
        for name in item.list_changed:
            self.capture.mark_stale(name)
        captured = item.captured
        if captured is None:
            return None
        params = captured.params if isinstance(captured.params, dict) else None
        return self.capture.observe(captured.method, params, captured.result, item.now_ms)
