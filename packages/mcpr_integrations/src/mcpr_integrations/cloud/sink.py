"""CloudSink: upload every event to the mcpr cloud in batches, from one worker thread.

Theory of operation (PRODUCT.md §6):

* `on_batch` / `on_event` only append to a bounded buffer under a lock; their caller is the
  event bus's lane thread, and nothing here makes it wait for the network. When `max_buffer`
  events are waiting, new ones are dropped and counted.
* One worker thread owns a `requests.Session` (so connections are reused) and sends a batch
  as soon as `batch_size` events wait, or once the oldest waiting event has waited
  `flush_interval_ms`. A batch is one `POST <endpoint>/api/ingest-events` of a JSON array,
  each element an event's `to_dict()` plus `"server"` (the configured slug, or null), with
  `Authorization: Bearer <token>` and `Content-Type: application/json`.
* 2xx: delivered. 429, 5xx, network errors and timeouts: retried with exponential backoff
  and full jitter, `random(0, min(cap, base * 2**attempt))` (the AWS Architecture Blog's
  "Exponential Backoff And Jitter"); a `Retry-After` (RFC 9110 §10.2.3) replaces the
  jittered delay. A batch whose next attempt would begin more than `retry_budget` seconds
  after its first is dropped. Any other status drops the batch at once (redirects are not
  followed, so the token never goes anywhere but the endpoint); the first drop for each
  status is logged, later ones are only counted.
* During an outage the worker holds one batch while the buffer fills, then overflows: the
  newest events are lost (and counted), never the proxy's time. The first batch given up is
  logged; the next delivery logs the recovery with the count lost in between.
* `flush()` returns at once: the bus holds a sink's lane while `flush` runs, so waiting for
  the network there would let an outage stall the lane. Batching already bounds how long an
  event waits. `close()` sends what is left, retrying only within `close_timeout`; what is
  still unsent then is dropped and counted.
* The token is only ever placed in the Authorization header (`_http.BearerAuth`). It is not
  in any repr, and every logged value is passed through `redact`.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import requests

from mcpr_core.events import ProxyEvent
from mcpr_integrations.cloud._http import close_session, new_session, parse_retry_after, redact
from mcpr_integrations.cloud.config import CloudConfig, ingest_url

__all__ = [
    "CLOSE_TIMEOUT",
    "REQUEST_TIMEOUT",
    "RETRY_BASE",
    "RETRY_BUDGET",
    "RETRY_CAP",
    "CloudSink",
    "CloudStatistics",
    "LogFunction",
]

#: Seconds one POST may take (connect and each read), as requests counts them.
REQUEST_TIMEOUT = 10.0
#: First backoff ceiling, doubled per attempt up to `RETRY_CAP` (seconds).
RETRY_BASE = 0.5
RETRY_CAP = 30.0
#: Seconds after its first attempt when a batch is given up.
RETRY_BUDGET = 60.0
#: Seconds `close()` spends on the last flush.
CLOSE_TIMEOUT = 3.0

#: `log(level, event, fields)`: where the sink's operational messages go.
LogFunction = Callable[[int, str, Mapping[str, object]], None]

_stdlib_log = logging.getLogger("mcpr.cloud")

_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


def _log_to_stdlib(level: int, event: str, fields: Mapping[str, object]) -> None:
    details = " ".join(f"{key}={value}" for key, value in fields.items())
    _stdlib_log.log(level, "%s %s", event, details)


@dataclass(frozen=True, slots=True)
class CloudStatistics:
    """Counters since the sink opened: `accepted = delivered + dropped_* after + buffered`.

    `dropped_overflow` never entered the buffer; `dropped_rejected` were refused by the
    cloud (a 4xx other than 429); `dropped_failed` ran out of retries or of close time.
    `retried` counts POSTs after the first of a batch.
    """

    accepted: int
    delivered: int
    batches: int
    retried: int
    dropped_overflow: int
    dropped_rejected: int
    dropped_failed: int
    buffered: int

    @property
    def dropped(self) -> int:
        """Events lost for any reason."""
        return self.dropped_overflow + self.dropped_rejected + self.dropped_failed


@dataclass(frozen=True, slots=True)
class _Attempt:
    """What one POST came to."""

    outcome: Literal["delivered", "rejected", "retry"]
    status: int | None = None
    retry_after: float | None = None
    error: str | None = None


class CloudSink:
    """Batch events to `<endpoint>/api/ingest-events`; never blocks its caller.

    `sleep`, `clock` and `jitter` drive the retry timing and are replaced in tests: `clock`
    measures the retry budget, `jitter()` returns a float in [0, 1), `sleep(seconds)` waits
    between attempts (by default a wait that `close()` cuts short).
    """

    def __init__(
        self,
        config: CloudConfig,
        *,
        log: LogFunction | None = None,
        request_timeout: float = REQUEST_TIMEOUT,
        close_timeout: float = CLOSE_TIMEOUT,
        retry_base: float = RETRY_BASE,
        retry_cap: float = RETRY_CAP,
        retry_budget: float = RETRY_BUDGET,
        sleep: Callable[[float], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._token = config.token
        self._server = config.server
        self._endpoint = config.endpoint
        self._url = ingest_url(config.endpoint)
        self._batch_size = config.batch_size
        self._interval = config.flush_interval_ms / 1000
        self._max_buffer = config.max_buffer
        self._log = log or _log_to_stdlib
        self._request_timeout = request_timeout
        self._close_timeout = close_timeout
        self._retry_base = retry_base
        self._retry_cap = retry_cap
        self._retry_budget = retry_budget
        self._sleep = sleep or self._interruptible_sleep
        self._clock = clock
        self._jitter = jitter
        self._session = new_session(config.token)
        # `_cond` guards the buffer, the flags and the counters; the network is used without it.
        self._cond = threading.Condition()
        self._buffer: deque[ProxyEvent] = deque()
        self._oldest: float | None = None  # monotonic arrival of the oldest buffered event
        self._in_flight = 0
        self._closing = False
        self._close_deadline = 0.0
        self._stopped = False
        self._wake = threading.Event()  # set by close(): cuts a retry wait short
        self._accepted = 0
        self._delivered = 0
        self._batches = 0
        self._retried = 0
        self._dropped_overflow = 0
        self._dropped_rejected = 0
        self._dropped_failed = 0
        self._overflowing = False
        self._outage_dropped: int | None = None  # events given up since the outage began
        self._rejections_logged: set[int] = set()
        self._thread = threading.Thread(target=self._run, name="mcpr-cloud-sink", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        stats = self.statistics()
        return (
            f"<CloudSink {self._url} server={self._server!r} delivered={stats.delivered}"
            f" dropped={stats.dropped} buffered={stats.buffered}>"
        )

    @property
    def name(self) -> str:
        """The sink's name in logs and metrics."""
        return "cloud"

    def statistics(self) -> CloudStatistics:
        """A snapshot of the counters."""
        with self._cond:
            return CloudStatistics(
                accepted=self._accepted,
                delivered=self._delivered,
                batches=self._batches,
                retried=self._retried,
                dropped_overflow=self._dropped_overflow,
                dropped_rejected=self._dropped_rejected,
                dropped_failed=self._dropped_failed,
                buffered=len(self._buffer) + self._in_flight,
            )

    # -- the EventSink protocol (callers: the bus's lane thread) ----------------------------

    def on_event(self, event: ProxyEvent) -> None:
        """Buffer one event (or count it dropped when the buffer is full)."""
        self.on_batch((event,))

    def on_batch(self, events: Sequence[ProxyEvent]) -> None:
        """Buffer events in order; those that do not fit are dropped and counted."""
        with self._cond:
            room = 0 if self._closing else max(0, self._max_buffer - len(self._buffer))
            taken = events[:room]
            was_empty = not self._buffer
            if taken:
                self._buffer.extend(taken)
                if was_empty:
                    self._oldest = time.monotonic()
            lost = len(events) - len(taken)
            self._accepted += len(taken)
            self._dropped_overflow += lost
            first_overflow = lost > 0 and not self._overflowing and not self._closing
            self._overflowing = self._overflowing or lost > 0
            if taken and (was_empty or len(self._buffer) >= self._batch_size):
                self._cond.notify_all()
        if first_overflow:
            self._emit_log(logging.WARNING, "cloud_buffer_full", max_buffer=self._max_buffer)

    def flush(self) -> None:
        """Return at once: the worker sends on its own schedule (see the module docstring)."""

    def close(self) -> None:
        """Send what is buffered within `close_timeout`, drop the rest, stop the worker."""
        with self._cond:
            if not self._closing:
                self._closing = True
                self._close_deadline = time.monotonic() + self._close_timeout
                self._cond.notify_all()
        self._wake.set()
        # A POST that began before close() may run to its own timeout; the thread is a
        # daemon and closes its session when that ends, so the process need not wait.
        self._thread.join(self._close_timeout + 0.5)
        if self._thread.is_alive():
            stats = self.statistics()
            self._emit_log(logging.WARNING, "cloud_close_timeout", events_pending=stats.buffered)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until nothing is buffered or in flight; False if `timeout` passed first."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._stopped or (not self._buffer and not self._in_flight), timeout
            )

    # -- the worker -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                try:
                    self._send(batch)
                except Exception as exc:  # a bug here must not kill the worker
                    if self._in_flight:  # not counted yet
                        self._finish(batch, "failed")
                    self._emit_log(logging.ERROR, "cloud_sink_error", error=repr(exc))
        finally:
            close_session(self._session)
            with self._cond:
                self._dropped_failed += len(self._buffer)
                self._buffer.clear()
                self._stopped = True
                self._cond.notify_all()

    def _next_batch(self) -> list[ProxyEvent] | None:
        """Wait for a full or due batch and take it; None once closing and done."""
        with self._cond:
            while True:
                now = time.monotonic()
                if self._closing and now >= self._close_deadline:
                    return None  # `_run` counts what is left as dropped
                if self._buffer:
                    assert self._oldest is not None
                    due = self._oldest + self._interval
                    if self._closing or len(self._buffer) >= self._batch_size or now >= due:
                        count = min(self._batch_size, len(self._buffer))
                        batch = [self._buffer.popleft() for _ in range(count)]
                        # Events left behind arrived after the oldest: keeping its time
                        # sends them no later than their own interval would.
                        if not self._buffer:
                            self._oldest = None
                        self._in_flight = count
                        return batch
                    self._cond.wait(due - now)
                elif self._closing:
                    return None
                else:
                    self._cond.notify_all()  # idle: wake `wait_idle`
                    self._cond.wait()

    def _send(self, batch: list[ProxyEvent]) -> None:
        body = self._encode(batch)
        first = self._clock()
        attempt = 0
        while True:
            attempt_result = self._post(body)
            if attempt_result.outcome == "delivered":
                self._finish(batch, "delivered")
                return
            if attempt_result.outcome == "rejected":
                self._finish(batch, "rejected")
                self._log_rejection(attempt_result.status, len(batch))
                return
            delay = attempt_result.retry_after
            if delay is None:
                ceiling = min(self._retry_cap, self._retry_base * 2**attempt)
                delay = ceiling * self._jitter()
            out_of_budget = self._clock() - first + delay > self._retry_budget
            with self._cond:
                closing, deadline = self._closing, self._close_deadline
            if out_of_budget or (closing and time.monotonic() + delay >= deadline):
                self._finish(batch, "failed")
                self._log_outage(attempt_result, len(batch))
                return
            with self._cond:
                self._retried += 1
            self._emit_log(
                logging.DEBUG, "cloud_retry", error=attempt_result.error, delay_s=round(delay, 3)
            )
            attempt += 1
            self._sleep(delay)

    def _post(self, body: bytes) -> _Attempt:
        timeout = self._request_timeout
        with self._cond:
            if self._closing:
                timeout = max(0.05, min(timeout, self._close_deadline - time.monotonic()))
        try:
            response = self._session.post(
                self._url, data=body, headers=_HEADERS, timeout=timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            return _Attempt("retry", error=f"{type(exc).__name__}: {exc}")
        with response:
            response.content  # noqa: B018 - read to the end, so the connection is reused
            status = response.status_code
            retry_after = parse_retry_after(response.headers.get("Retry-After"), now=time.time())
        if 200 <= status < 300:
            return _Attempt("delivered", status)
        if status == 429 or status >= 500:
            return _Attempt("retry", status, retry_after, f"HTTP {status}")
        return _Attempt("rejected", status)

    def _encode(self, batch: list[ProxyEvent]) -> bytes:
        items = []
        for event in batch:
            item = event.to_dict()
            item["server"] = self._server
            items.append(item)
        return json.dumps(items, separators=(",", ":"), ensure_ascii=False).encode()

    def _finish(
        self, batch: list[ProxyEvent], outcome: Literal["delivered", "rejected", "failed"]
    ) -> None:
        """Count a batch's fate; log a recovery after an outage."""
        recovered: int | None = None
        with self._cond:
            self._in_flight = 0
            if outcome == "delivered":
                self._delivered += len(batch)
                self._batches += 1
                self._overflowing = False
                recovered, self._outage_dropped = self._outage_dropped, None
            elif outcome == "rejected":
                self._dropped_rejected += len(batch)
            else:
                self._dropped_failed += len(batch)
                if self._outage_dropped is not None:
                    self._outage_dropped += len(batch)
            self._cond.notify_all()
        if recovered is not None:
            self._emit_log(logging.INFO, "cloud_recovered", events_dropped=recovered)

    def _log_rejection(self, status: int | None, events: int) -> None:
        if status in self._rejections_logged:
            return
        self._rejections_logged.add(status or 0)
        hint = "check [cloud] token" if status in (401, 403) else "the cloud refused the batch"
        self._emit_log(
            logging.WARNING,
            "cloud_rejected",
            status=status,
            events_dropped=events,
            hint=f"{hint}; further batches refused with this status are counted, not logged",
        )

    def _log_outage(self, attempt: _Attempt, events: int) -> None:
        with self._cond:
            first = self._outage_dropped is None
            if first:
                self._outage_dropped = events
        if first:
            self._emit_log(
                logging.WARNING,
                "cloud_unreachable",
                error=attempt.error,
                events_dropped=events,
                hint="retrying with later batches; drops are counted until it recovers",
            )

    def _interruptible_sleep(self, seconds: float) -> None:
        if self._wake.wait(seconds):
            self._wake.clear()  # once: later waits at close are bounded by its deadline

    def _emit_log(self, level: int, event: str, **fields: object) -> None:
        secrets = (self._token,)
        clean = {
            key: value if isinstance(value, int | float | None) else redact(str(value), secrets)
            for key, value in fields.items()
        }
        self._log(level, event, {"endpoint": self._endpoint, **clean})
