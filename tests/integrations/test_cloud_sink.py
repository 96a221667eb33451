"""Tests of CloudSink against a fake cloud over real HTTP on 127.0.0.1.

Retry timing runs on a fake clock (`FakeTime`): its `sleep` records the delay and moves the
clock, so backoff is checked exactly and no test waits for it.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest

from mcpr_core.events import Heartbeat, ProxyEvent, RequestEvent
from mcpr_integrations.cloud.config import CloudConfig
from mcpr_integrations.cloud.sink import CloudSink
from tests.integrations.fake_cloud import WAIT, FakeCloud, Reply, fake_cloud

TOKEN = "mcpr_tok_5ecret-Value"
HOUR_MS = 3_600_000


class FakeTime:
    """A clock that only moves when the sink sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        """The current fake time."""
        return self.now

    def sleep(self, seconds: float) -> None:
        """Record the delay and jump over it."""
        self.sleeps.append(seconds)
        self.now += seconds


class LogRecorder:
    """Collects what the sink logs, as (level, event, fields)."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, str, dict[str, object]]] = []

    def __call__(self, level: int, event: str, fields: Mapping[str, object]) -> None:
        self.entries.append((level, event, dict(fields)))

    def events(self, level: int = logging.INFO) -> list[str]:
        """Names of the entries at `level` or above."""
        return [event for lvl, event, _ in self.entries if lvl >= level]


def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll `predicate` (sink counters have no change notification) for up to WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.002)


def request(i: int) -> RequestEvent:
    """A small request event numbered `i`."""
    return RequestEvent(
        id=f"r{i}",
        ts=1_700_000_000_000 + i,
        proxy="p",
        method="POST",
        path="/mcp",
        status=200,
        latency_us=1000 + i,
        request_size=10,
        note="ok",
        mcp_method="tools/call",
        tool="get_weather",
    )


def requests_(n: int, start: int = 0) -> list[ProxyEvent]:
    """`n` request events."""
    return [request(i) for i in range(start, start + n)]


@pytest.fixture
def cloud() -> Iterator[FakeCloud]:
    """A fake cloud, shut down (threads joined) after the test."""
    with fake_cloud() as running:
        yield running


@contextmanager
def open_sink(cloud: FakeCloud, **options: Any) -> Iterator[CloudSink]:
    """A sink uploading to `cloud`; config keys and constructor options mixed in `options`."""
    keys = {"server", "batch_size", "flush_interval_ms", "max_buffer"}
    settings: dict[str, Any] = {"server": "weather", "flush_interval_ms": HOUR_MS}
    settings |= {k: v for k, v in options.items() if k in keys}
    config = CloudConfig(token=TOKEN, endpoint=options.pop("endpoint", cloud.url), **settings)
    sink = CloudSink(config, **{k: v for k, v in options.items() if k not in keys})
    try:
        yield sink
    finally:
        sink.close()


def test_full_batches_leave_at_batch_size(cloud: FakeCloud) -> None:
    """Events go out in POSTs of `batch_size`; the remainder leaves at close."""
    with open_sink(cloud, batch_size=100) as sink:
        sink.on_batch(requests_(250))
        cloud.wait_for(lambda: len(cloud.uploads()) == 2)
        assert [len(batch) for batch in cloud.ingested()] == [100, 100]
    assert [len(batch) for batch in cloud.ingested()] == [100, 100, 50]
    stats = sink.statistics()
    assert (stats.accepted, stats.delivered, stats.batches, stats.dropped) == (250, 250, 3, 0)


def test_upload_headers_and_payload(cloud: FakeCloud) -> None:
    """A batch is a JSON array of `to_dict()` plus the server slug, sent with the bearer token."""
    beat = Heartbeat(
        ts=5, proxy="p", upstream_status="up", uptime_s=1, requests_total=1, events_dropped=0
    )
    events: list[ProxyEvent] = [request(1), beat]
    with open_sink(cloud) as sink:
        sink.on_batch(events)
    [upload] = cloud.uploads()
    assert (upload.method, upload.path) == ("POST", "/api/ingest-events")
    assert upload.headers["authorization"] == f"Bearer {TOKEN}"
    assert upload.headers["content-type"] == "application/json"
    assert upload.headers["user-agent"].startswith("mcpr/")
    assert upload.json() == [{**e.to_dict(), "server": "weather"} for e in events]


def test_server_is_null_when_not_configured(cloud: FakeCloud) -> None:
    """Without a `server` slug every event still carries the key, as null."""
    with open_sink(cloud, server=None) as sink:
        sink.on_event(request(1))
    assert [item["server"] for item in cloud.ingested()[0]] == [None]


def test_partial_batch_leaves_after_flush_interval(cloud: FakeCloud) -> None:
    """A batch smaller than `batch_size` is sent once its oldest event waited the interval."""
    with open_sink(cloud, batch_size=100, flush_interval_ms=50) as sink:
        sink.on_batch(requests_(3))
        cloud.wait_for(lambda: len(cloud.uploads()) == 1)
        assert sink.wait_idle(WAIT)
        assert sink.statistics().delivered == 3


def test_flush_does_not_send_a_partial_batch(cloud: FakeCloud) -> None:
    """`flush()` returns at once and leaves batching to the interval (it never waits)."""
    with open_sink(cloud) as sink:
        sink.on_batch(requests_(3))
        sink.flush()
        assert sink.statistics().buffered == 3
        assert cloud.uploads() == []


def test_batches_reuse_one_connection(cloud: FakeCloud) -> None:
    """Successive batches travel over one kept-alive connection."""
    with open_sink(cloud, batch_size=10) as sink:
        for sent in range(1, 5):
            sink.on_batch(requests_(10, start=sent * 10))
            cloud.wait_for(lambda: len(cloud.uploads()) == sent)  # noqa: B023 - waited here
    assert len({upload.client_port for upload in cloud.uploads()}) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_retryable_statuses_back_off_exponentially(cloud: FakeCloud, status: int) -> None:
    """429 and 5xx are retried after base * 2**attempt (jitter at its top), then delivered."""
    cloud.script_ingest(Reply(status), Reply(status), Reply(status))
    fake = FakeTime()
    options = {"sleep": fake.sleep, "clock": fake.clock, "jitter": lambda: 1.0}
    with open_sink(cloud, batch_size=5, **options) as sink:
        sink.on_batch(requests_(5))
        assert sink.wait_idle(WAIT)
    assert fake.sleeps == [0.5, 1.0, 2.0]
    assert len({upload.body for upload in cloud.uploads()}) == 1  # the same batch each time
    stats = sink.statistics()
    assert (stats.delivered, stats.retried, stats.dropped) == (5, 3, 0)


def test_jitter_scales_the_backoff_and_the_cap_bounds_it(cloud: FakeCloud) -> None:
    """Full jitter: the delay is jitter() times min(cap, base * 2**attempt)."""
    cloud.script_ingest(*[Reply(503)] * 5)
    fake = FakeTime()
    options = {"sleep": fake.sleep, "clock": fake.clock, "jitter": lambda: 0.5}
    with open_sink(cloud, batch_size=1, retry_base=1.0, retry_cap=4.0, **options) as sink:
        sink.on_event(request(1))
        assert sink.wait_idle(WAIT)
    assert fake.sleeps == [0.5, 1.0, 2.0, 2.0, 2.0]


def test_retry_after_replaces_backoff(cloud: FakeCloud) -> None:
    """A Retry-After in seconds, or as an HTTP date, is the delay before the next attempt."""
    cloud.script_ingest(
        Reply(429, headers=(("Retry-After", "7"),)),
        Reply(503, headers=(("Retry-After", "Thu, 01 Jan 2099 00:00:00 GMT"),)),
    )
    fake = FakeTime()
    options = {"sleep": fake.sleep, "clock": fake.clock, "jitter": lambda: 0.0}
    with open_sink(cloud, batch_size=1, retry_budget=10**10, **options) as sink:
        sink.on_event(request(1))
        assert sink.wait_idle(WAIT)
    assert fake.sleeps[0] == 7.0
    assert fake.sleeps[1] > 2_000_000_000  # the date, decades ahead
    assert sink.statistics().delivered == 1


def test_batch_dropped_once_retry_budget_is_spent(cloud: FakeCloud) -> None:
    """A batch whose next attempt would start past the budget is dropped, counted and logged."""
    cloud.script_ingest(*[Reply(503)] * 4)
    fake, log = FakeTime(), LogRecorder()
    options = {"sleep": fake.sleep, "clock": fake.clock, "jitter": lambda: 1.0, "log": log}
    with open_sink(cloud, batch_size=2, retry_base=1.0, retry_budget=10.0, **options) as sink:
        sink.on_batch(requests_(2))
        assert sink.wait_idle(WAIT)
        assert fake.sleeps == [1.0, 2.0, 4.0]  # the next one (8) would end at 15 > 10
        stats = sink.statistics()
        assert (stats.dropped_failed, stats.retried, stats.delivered) == (2, 3, 0)
        sink.on_batch(requests_(2, start=2))  # the cloud is back
        assert sink.wait_idle(WAIT)
    assert sink.statistics().delivered == 2
    assert log.events(logging.INFO) == ["cloud_unreachable", "cloud_recovered"]
    assert log.entries[-1][2]["events_dropped"] == 2


def test_unreachable_cloud_costs_retries_and_counted_drops() -> None:
    """Connection refused is retried like a 503, then the batch is dropped and counted."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    fake, log = FakeTime(), LogRecorder()
    config = CloudConfig(token=TOKEN, endpoint=f"http://127.0.0.1:{port}", batch_size=3)
    sink = CloudSink(config, sleep=fake.sleep, clock=fake.clock, log=log, retry_budget=5.0)
    try:
        sink.on_batch(requests_(3))
        assert sink.wait_idle(WAIT)
    finally:
        sink.close()
    stats = sink.statistics()
    assert stats.dropped_failed == 3
    assert stats.retried == len(fake.sleeps) > 0
    [(_, event, fields)] = [e for e in log.entries if e[0] >= logging.WARNING]
    assert event == "cloud_unreachable"
    assert "ConnectionError" in str(fields["error"])


def test_client_error_drops_the_batch_and_logs_once(cloud: FakeCloud) -> None:
    """A 400 drops its batch without retrying; a second 400 is counted but not logged."""
    cloud.script_ingest(Reply(400), Reply(400))
    log = LogRecorder()
    with open_sink(cloud, batch_size=2, log=log) as sink:
        sink.on_batch(requests_(4))
        cloud.wait_for(lambda: len(cloud.uploads()) == 2)
        assert sink.wait_idle(WAIT)
    stats = sink.statistics()
    assert (stats.dropped_rejected, stats.retried, stats.delivered) == (4, 0, 0)
    [(level, event, fields)] = log.entries
    assert (level, event, fields["status"], fields["events_dropped"]) == (
        logging.WARNING,
        "cloud_rejected",
        400,
        2,
    )


def test_unauthorized_hint_names_the_token_setting(cloud: FakeCloud) -> None:
    """A 401 tells the operator to check `[cloud] token`, without quoting it."""
    cloud.script_ingest(Reply(401))
    log = LogRecorder()
    with open_sink(cloud, log=log) as sink:
        sink.on_event(request(1))
    [(_, _, fields)] = log.entries
    assert "check [cloud] token" in str(fields["hint"])


def test_redirect_is_not_followed(cloud: FakeCloud) -> None:
    """A 3xx drops the batch: the token is never sent to another location."""
    cloud.script_ingest(Reply(307, headers=(("Location", cloud.url + "/elsewhere"),)))
    with open_sink(cloud) as sink:
        sink.on_event(request(1))
    assert [r.path for r in cloud.received] == ["/api/ingest-events"]
    assert sink.statistics().dropped_rejected == 1


def test_silent_cloud_never_blocks_on_batch(cloud: FakeCloud) -> None:
    """While an upload waits for a cloud that never answers, `on_batch` keeps returning."""
    cloud.hang()
    with open_sink(cloud, batch_size=10, request_timeout=0.2, close_timeout=0.2) as sink:
        sink.on_batch(requests_(10))
        cloud.wait_for(lambda: len(cloud.uploads()) == 1)
        for i in range(1, 51):  # the upload is unanswered all along
            sink.on_batch(requests_(10, start=i * 10))
        assert sink.statistics().accepted == 510
        assert len(cloud.uploads()) == 1


def test_full_buffer_drops_new_events(cloud: FakeCloud) -> None:
    """Past `max_buffer` new events are dropped and counted; the first overflow is logged."""
    cloud.hang()
    log = LogRecorder()
    options = {"request_timeout": 0.2, "close_timeout": 0.2, "log": log}
    with open_sink(cloud, batch_size=5, max_buffer=10, **options) as sink:
        sink.on_batch(requests_(5))
        cloud.wait_for(lambda: len(cloud.uploads()) == 1)  # five in flight, buffer empty
        sink.on_batch(requests_(12, start=5))
        sink.on_batch(requests_(3, start=17))
        stats = sink.statistics()
        assert (stats.accepted, stats.dropped_overflow) == (15, 5)
    assert log.events(logging.WARNING).count("cloud_buffer_full") == 1
    final = sink.statistics()
    assert final.accepted == final.delivered + final.dropped_rejected + final.dropped_failed


def test_close_sends_what_is_buffered(cloud: FakeCloud) -> None:
    """`close()` uploads the partial batch that the interval had not released yet."""
    with open_sink(cloud) as sink:
        sink.on_batch(requests_(7))
    assert [len(batch) for batch in cloud.ingested()] == [7]
    assert sink.statistics().delivered == 7


def test_close_is_bounded_when_the_cloud_hangs(cloud: FakeCloud) -> None:
    """At close a silent cloud gets `close_timeout`; what is unsent is dropped and counted."""
    cloud.hang()
    with open_sink(cloud, close_timeout=0.3) as sink:
        sink.on_batch(requests_(4))
    stats = sink.statistics()
    assert (stats.delivered, stats.dropped_failed, stats.buffered) == (0, 4, 0)


def test_close_cuts_a_retry_wait_short(cloud: FakeCloud) -> None:
    """A worker waiting out a long Retry-After retries at once when the sink closes."""
    cloud.script_ingest(Reply(503, headers=(("Retry-After", "3600"),)))
    with open_sink(cloud, retry_budget=7200.0, flush_interval_ms=10) as sink:
        sink.on_event(request(1))
        cloud.wait_for(lambda: len(cloud.uploads()) == 1)
        wait_until(lambda: sink.statistics().retried == 1)  # it is waiting out the hour
    assert len(cloud.uploads()) == 2
    assert sink.statistics().delivered == 1


def test_events_after_close_are_counted_as_dropped(cloud: FakeCloud) -> None:
    """A closed sink takes nothing more and says so in its counters."""
    with open_sink(cloud) as sink:
        pass
    sink.on_event(request(1))
    assert sink.statistics().dropped_overflow == 1
