"""The store's writer: one thread, one apsw connection, one transaction per batch.

Rules of this module (STORE.md "Writing"):

* Callers hand events to `Store.put`, which only appends to a bounded queue. When the queue
  is full `put` waits: the caller is the event bus's SQLite lane, already off the event loop,
  and the bus counts what its own lane cannot take.
* The writer thread commits a batch every 200 ms or every 500 events, whichever comes first,
  so a burst costs one fsync-free WAL append per batch rather than per request.
* A statement that fails (a duplicate request id, a constraint) is reported through
  `on_error` and skipped; the rest of the batch is kept and the writer goes on.
* `flush()` returns once everything put before it is committed; `close()` drains everything
  already accepted, then closes the connection.
* Sessions are bumped by their requests. A session the upstream accepted (a 2xx answer
  carrying `Mcp-Session-Id`) is also created from its first request when no `session_start`
  was seen, e.g. for sessions opened before the proxy restarted; legacy requests without their
  own client identity take it from their session (schema version 6).
* A session that ended (expired, or closed at a shutdown) and is then started again, or
  accepted on a request that arrived after its end, is open again: `ended_at` is cleared.
  An accepted DELETE ends its session rather than opening it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, assert_never

import apsw

from mcpr_core.events import (
    Heartbeat,
    ProxyEvent,
    RequestEvent,
    SchemaVersionCreated,
    SessionEnd,
    SessionStart,
)
from mcpr_integrations.store import bulk
from mcpr_integrations.store.batching import BatchQueue
from mcpr_integrations.store.schema import StoreError, open_writer

__all__ = ["BATCH_INTERVAL", "BATCH_SIZE", "Store", "StoreStatistics", "request_status"]

#: Commit at least this often (seconds) while events arrive.
BATCH_INTERVAL = 0.2
#: Commit as soon as this many events are waiting.
BATCH_SIZE = 500
#: Events the writer's queue holds before `put` waits.
QUEUE_SIZE = 10_000

#: Attempts to take the write lock, each waiting `busy_timeout` (5 s): half a minute in all.
_BUSY_RETRIES = 6

#: Notes of exchanges that the proxy itself failed or refused (PRODUCT.md §2.4).
_PROXY_ERRORS = frozenset({"rejected", "upstream_unreachable", "upstream_error", "truncated"})

_log = logging.getLogger("mcpr.store")

RequestStatus = Literal["ok", "error", "timeout"]


def request_status(event: RequestEvent) -> RequestStatus:
    """The stored `status`: `timeout` for 504s, `error` for any failure, else `ok`."""
    if event.status == 504 or event.note == "timeout":
        return "timeout"
    if (
        event.error_code is not None
        or event.error_msg
        or event.status >= 500
        or event.note in _PROXY_ERRORS
    ):
        return "error"
    return "ok"


@dataclass(frozen=True, slots=True)
class StoreStatistics:
    """Counters of a store writer since it was opened."""

    accepted: int
    stored: int
    skipped: int
    failed: int
    queued: int


class _Close:
    """Queue marker: write what is pending, then stop."""


_CLOSE = _Close()


def _report(message: str, exc: BaseException) -> None:
    _log.warning("%s: %s", message, exc)


class Store:
    """The writer side of the local store (STORE.md). Thread-safe; `put` may wait when full.

    Use it as a context manager, or call `close()`.
    """

    def __init__(
        self,
        path: Path,
        *,
        mcpr_version: str,
        on_error: Callable[[str, BaseException], None] | None = None,
        batch_size: int = BATCH_SIZE,
        batch_interval: float = BATCH_INTERVAL,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        """Open (creating and migrating) the file at `path`; raise `StoreError` if impossible.

        `on_error(message, exc)` hears about skipped events; by default they are logged through
        the standard `logging` module (logger `mcpr.store`).
        """
        self.path = path
        self._conn = open_writer(path, now_ms=int(time.time() * 1000), mcpr_version=mcpr_version)
        bulk.install(self._conn)
        self._on_error = on_error or _report
        self._queue: BatchQueue[ProxyEvent, threading.Event | _Close] = BatchQueue(
            capacity=queue_size, batch_size=batch_size, interval=batch_interval
        )
        # `_intake` orders put/flush/close, so nothing is queued behind the close marker (the
        # writer keeps draining, so holding it across a blocking put cannot deadlock);
        # `_lock` guards the counters.
        self._intake = threading.Lock()
        self._lock = threading.Lock()
        self._closed = False
        self._accepted = 0
        self._stored = 0
        self._skipped = 0
        self._failed = 0
        self._thread = threading.Thread(target=self._run, name="mcpr-store-writer", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Store {str(self.path)!r} {state} queued={len(self._queue)}>"

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def put(self, events: Iterable[ProxyEvent]) -> None:
        """Queue events for writing, in order (waits while the queue is full)."""
        with self._intake:
            if self._closed:
                raise StoreError("the store is closed")
            batch = list(events)
            self._queue.put(batch)
            with self._lock:
                self._accepted += len(batch)

    def flush(self) -> None:
        """Return once everything put so far is committed."""
        done = threading.Event()
        with self._intake:
            if self._closed:
                return
            self._queue.put_marker(done)
        done.wait()

    def close(self) -> None:
        """Write everything already accepted, stop the writer and close the file."""
        with self._intake:
            if self._closed:
                return
            self._closed = True
            self._queue.put_marker(_CLOSE)
        self._thread.join()

    def statistics(self) -> StoreStatistics:
        """A snapshot of the writer's counters."""
        with self._lock:
            return StoreStatistics(
                accepted=self._accepted,
                stored=self._stored,
                skipped=self._skipped,
                failed=self._failed,
                queued=len(self._queue),
            )

    # -- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                batch, marker = self._queue.get()
                if batch:
                    self._write(batch)
                if isinstance(marker, _Close):
                    return
                if marker is not None:
                    marker.set()
        finally:
            self._conn.close()

    def _write(self, batch: list[ProxyEvent]) -> None:
        stored = skipped = failed = 0
        try:
            self._begin()
            run: list[bulk.Event] = []
            for event in batch:
                if isinstance(event, RequestEvent | SessionStart | SessionEnd):
                    run.append(event)
                    continue
                if run:
                    stored, failed = self._write_run(run, stored, failed)
                    run = []
                try:
                    if self._apply(event):
                        stored += 1
                    else:
                        skipped += 1
                except Exception as exc:  # one bad event must never stop the writer
                    failed += 1
                    self._on_error(f"store: {event.type} event skipped", exc)
            if run:
                stored, failed = self._write_run(run, stored, failed)
            self._conn.execute("COMMIT")
        except Exception as exc:
            self._on_error(f"store: a batch of {len(batch)} events was lost", exc)
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            stored = skipped = 0
            failed = len(batch)
        with self._lock:
            self._stored += stored
            self._skipped += skipped
            self._failed += failed

    def _write_run(self, run: list[bulk.Event], stored: int, failed: int) -> tuple[int, int]:
        """Write consecutive request and session events in one statement (`bulk`).

        If that fails, the run is undone and written one event at a time, so that only the
        events that fail are lost. Returns the updated counters.
        """
        conn = self._conn
        conn.execute("SAVEPOINT run")
        try:
            bulk.write_events(
                conn,
                [
                    (event, request_status(event) if isinstance(event, RequestEvent) else None)
                    for event in run
                ],
            )
        except Exception:
            conn.execute("ROLLBACK TO run")
            conn.execute("RELEASE run")
        else:
            conn.execute("RELEASE run")
            return stored + len(run), failed
        for event in run:
            try:
                if isinstance(event, RequestEvent):
                    self._insert_request(event)
                else:
                    self._apply(event)
                stored += 1
            except Exception as exc:  # one bad event must never stop the writer
                failed += 1
                self._on_error(f"store: {event.type} event skipped", exc)
        return stored, failed

    def _begin(self) -> None:
        """Start the batch's transaction, outwaiting a long lock (a `store vacuum` in progress)."""
        for _ in range(_BUSY_RETRIES - 1):
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except apsw.BusyError:
                continue
            return
        self._conn.execute("BEGIN IMMEDIATE")

    def _apply(self, event: SessionStart | SessionEnd | SchemaVersionCreated | Heartbeat) -> bool:
        """Run the statements of one event; False when the event is not stored."""
        match event:
            case SessionStart():
                self._start_session(event)
            case SessionEnd():
                self._conn.execute(bulk.END_SESSION, (event.ts, event.session_id))
            case SchemaVersionCreated():
                self._record_schema(event)
            case Heartbeat():
                return False
            case _:
                assert_never(event)
        return True

    def _start_session(self, event: SessionStart) -> None:
        self._conn.execute(
            bulk.START_SESSION,
            (
                event.session_id,
                event.proxy,
                event.ts,
                event.ts,
                event.client_name,
                event.client_version,
                event.client_platform,
            ),
        )

    def _insert_request(self, event: RequestEvent) -> None:
        """One request event on its own (the statements `bulk`'s trigger runs per row)."""
        status = request_status(event)
        sid = event.session_id
        if sid is not None and bulk.accepted(event):
            self._start_session(
                SessionStart(
                    session_id=sid,
                    ts=event.ts,
                    proxy=event.proxy,
                    client_name=event.client_name,
                    client_version=event.client_version,
                    client_platform=event.client_platform,
                )
            )
        self._conn.execute(bulk.INSERT_REQUEST, bulk.request_row(event, status))
        if sid is not None:
            self._conn.execute(bulk.BUMP_SESSION, (event.ts, int(status != "ok"), sid))

    def _record_schema(self, event: SchemaVersionCreated) -> None:
        self._conn.execute(
            "INSERT INTO server_schema (proxy, upstream_url, method, payload, captured_at,"
            " schema_hash) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (proxy, upstream_url, method) DO UPDATE SET"
            " payload = excluded.payload, captured_at = excluded.captured_at,"
            " schema_hash = excluded.schema_hash",
            (
                event.proxy,
                event.upstream_url,
                event.method,
                event.payload,
                event.ts,
                event.schema_hash,
            ),
        )
        self._conn.executemany(
            "INSERT INTO schema_changes (proxy, upstream_url, method, change_type, item_name,"
            " old_hash, new_hash, detected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    event.proxy,
                    event.upstream_url,
                    event.method,
                    change.change_type,
                    change.item_name,
                    change.old_hash,
                    change.new_hash,
                    event.ts,
                )
                for change in event.changes
            ],
        )
