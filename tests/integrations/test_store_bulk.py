"""Tests of the store's bulk writing (store/bulk.py): a run of request and session events
in one statement gives the rows of one event at a time, and a run that fails falls back to it."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import apsw
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpr_core.events import Heartbeat, ProxyEvent, RequestEvent, SessionEnd, SessionStart
from mcpr_integrations.store import Store
from mcpr_integrations.store.writer import BATCH_SIZE
from tests.integrations.store_data import NOW
from tests.integrations.test_store_writer import request, rows

_REQUESTS = (
    "SELECT request_id, ts, proxy, session_id, method, tool, latency_us, status, error_code,"
    " error_msg, bytes_in, bytes_out, resource_uri, prompt_name, client_name, client_version,"
    " client_platform, protocol_version, era, header_mismatch FROM requests ORDER BY id"
)
_SESSIONS = "SELECT * FROM sessions ORDER BY session_id"

_sids = st.sampled_from([None, "s1", "s2", "s3"])
_open_sids = st.sampled_from(["s1", "s2", "s3"])
_names = st.sampled_from([None, None, "claude-ai", "cursor"])
_versions = st.sampled_from([None, None, "1.0", "2.0"])
_platforms = st.sampled_from([None, None, "claude", "vscode"])


@st.composite
def _request(draw: st.DrawFn) -> RequestEvent:
    """A request event (id and ts are set later), accepted or not, failed or not."""
    return request(
        "",
        proxy=draw(st.sampled_from(["p", "q"])),
        session_id=draw(_sids),
        status=draw(st.sampled_from([200, 202, 400, 404, 500, 504])),
        method=draw(st.sampled_from(["POST", "POST", "GET", "DELETE"])),
        mcp_method=draw(st.sampled_from([None, "tools/call", "initialize"])),
        tool=draw(st.sampled_from([None, "search"])),
        note=draw(st.sampled_from(["ok", "ok", "timeout", "rejected", "upstream_error"])),
        error_code=draw(st.sampled_from([None, None, -32602, 504])),
        error_msg=draw(st.none() | st.sampled_from(["Invalid params", "x" * 600]) | st.text()),
        client_name=draw(_names),
        client_version=draw(_versions),
        client_platform=draw(_platforms),
        era=draw(st.sampled_from([None, "legacy", "modern"])),
        header_mismatch=draw(st.booleans()),
    )


_start = st.builds(
    SessionStart,
    session_id=_open_sids,
    ts=st.just(0),
    proxy=st.just("p"),
    client_name=_names,
    client_version=_versions,
    client_platform=_platforms,
)
_end = st.builds(
    SessionEnd, session_id=_open_sids, ts=st.just(0), proxy=st.just("p"), reason=st.just("x")
)


@st.composite
def _batches(draw: st.DrawFn) -> list[ProxyEvent]:
    """Requests among session starts and ends, ts increasing or shuffled."""
    kinds = draw(st.lists(_request() | _request() | _request() | _start | _end, max_size=40))
    stamps = draw(st.lists(st.integers(0, 30), min_size=len(kinds), max_size=len(kinds)))
    if draw(st.booleans()):
        stamps.sort()
    events: list[ProxyEvent] = []
    for index, (event, stamp) in enumerate(zip(kinds, stamps, strict=True)):
        if isinstance(event, RequestEvent):
            events.append(replace(event, id=f"r{index}", ts=NOW + stamp))
        else:
            events.append(replace(event, ts=NOW + stamp))
    return events


class _CountingStore(Store):
    """A store that counts the requests written one at a time (the fallback)."""

    one_at_a_time = 0

    def _insert_request(self, event: RequestEvent) -> None:
        self.one_at_a_time += 1
        super()._insert_request(event)


def _tables(path: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The requests (without their row id) and sessions of the store at `path`."""
    return rows(path, _REQUESTS), rows(path, _SESSIONS)


def _one_by_one(path: Path, events: list[ProxyEvent]) -> None:
    """Write the events into a new store at `path`, one event per batch (runs of one)."""
    with Store(path, mcpr_version="t") as store:
        for event in events:
            store.put([event])
            store.flush()


@settings(max_examples=300)
@given(_batches())
def test_one_batch_stores_what_one_event_per_batch_stores(events: list[ProxyEvent]) -> None:
    """Written in one batch (bulk runs) or one event per batch, the tables are identical."""
    assert len(events) < BATCH_SIZE  # one put, one flush: one batch
    with tempfile.TemporaryDirectory() as tmp:
        bulk, single = Path(tmp) / "bulk.db", Path(tmp) / "single.db"
        store = _CountingStore(bulk, mcpr_version="t")
        with store:
            store.put(events)
            store.flush()
            assert store.one_at_a_time == 0  # every run was written in bulk
            assert store.statistics().stored == len(events)
        _one_by_one(single, events)
        assert _tables(bulk) == _tables(single)


@pytest.fixture
def reports() -> list[tuple[str, BaseException]]:
    """What a store reported through `on_error`."""
    return []


@pytest.fixture
def store(tmp_path: Path, reports: list[tuple[str, BaseException]]) -> Iterator[_CountingStore]:
    """An open store at tmp_path/bulk.db that records its reports, closed after the test."""
    s = _CountingStore(
        tmp_path / "bulk.db", mcpr_version="t", on_error=lambda m, e: reports.append((m, e))
    )
    try:
        yield s
    finally:
        s.close()


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (request("a", ts=NOW + 2, session_id="s"), apsw.ConstraintError),
        (request("bad", ts=NOW + 2, session_id="s", error_msg="\ud800"), UnicodeEncodeError),
    ],
    ids=["duplicate-id", "lone-surrogate"],
)
def test_failing_run_is_written_one_at_a_time(
    store: _CountingStore,
    reports: list[tuple[str, BaseException]],
    tmp_path: Path,
    bad: RequestEvent,
    error: type[Exception],
) -> None:
    """A run with a bad event keeps the others, reports and counts exactly the bad one."""
    events: list[ProxyEvent] = [
        SessionStart("s", NOW, "p", client_name="c"),
        request("a", ts=NOW + 1, session_id="s"),
        bad,
        request("b", ts=NOW + 3, session_id="s", error_msg="tool error"),
        SessionEnd("s", NOW + 10, "p", "deleted"),
        request("c", ts=NOW + 20, session_id="s"),
    ]
    store.put(events)
    store.flush()
    path = tmp_path / "bulk.db"
    assert [r[0] for r in rows(path, _REQUESTS)] == ["a", "b", "c"]
    assert rows(path, _SESSIONS) == [("s", "p", NOW, NOW + 20, None, "c", None, None, 3, 1)]
    assert [(m, type(e)) for m, e in reports] == [("store: request event skipped", error)]
    assert store.one_at_a_time == 4  # the failing run, which is the whole batch here
    stats = store.statistics()
    assert (stats.accepted, stats.stored, stats.failed) == (6, 5, 1)
    _one_by_one(tmp_path / "single.db", [e for e in events if e is not bad])
    assert _tables(path) == _tables(tmp_path / "single.db")


def test_surrogate_past_the_kept_message_is_cut_off(store: _CountingStore, tmp_path: Path) -> None:
    """A lone surrogate beyond the 512 characters kept of error_msg does not fail the run."""
    store.put([request("a"), request("b", error_msg="x" * 512 + "\ud800")])
    store.flush()
    assert rows(tmp_path / "bulk.db", "SELECT request_id, length(error_msg) FROM requests") == [
        ("a", None),
        ("b", 512),
    ]
    assert store.one_at_a_time == 0


@pytest.mark.parametrize(
    ("after", "ended_at"),
    [
        ([request("c", ts=NOW + 3, session_id="s")], NOW + 5),  # accepted before the end
        ([request("c", ts=NOW + 8, session_id="s", status=404)], NOW + 5),  # not accepted
        ([request("c", ts=NOW + 8, session_id="s", method="DELETE")], NOW + 5),
        (
            [
                request("c", ts=NOW + 8, session_id="s", status=404),
                request("d", ts=NOW + 9, session_id="s", client_name="late"),
            ],
            None,
        ),
    ],
    ids=["before-end", "rejected", "delete", "reopened"],
)
def test_session_end_between_runs_of_its_requests(
    store: _CountingStore, tmp_path: Path, after: list[RequestEvent], ended_at: int | None
) -> None:
    """A session ended inside a batch is reopened only by a later accepted request."""
    events: list[ProxyEvent] = [
        request("a", ts=NOW + 1, session_id="s"),
        request("b", ts=NOW + 2, session_id="s", status=500),
        SessionEnd("s", NOW + 5, "p", "expired"),
        *after,
    ]
    store.put(events)
    store.flush()
    path = tmp_path / "bulk.db"
    assert [r[4] for r in rows(path, _SESSIONS)] == [ended_at]
    _one_by_one(tmp_path / "single.db", events)
    assert _tables(path) == _tables(tmp_path / "single.db")
    assert store.one_at_a_time == 0


def test_a_stale_request_before_its_session_is_stored_as_on_its_own(
    store: _CountingStore, tmp_path: Path
) -> None:
    """A rejected request of a session not yet stored does not count in its totals."""
    events: list[ProxyEvent] = [
        request("stale", ts=NOW + 5, proxy="q", session_id="s", status=404, client_name="x"),
        request("ok", ts=NOW + 1, session_id="s"),
    ]
    store.put(events)
    store.flush()
    _one_by_one(tmp_path / "single.db", events)
    assert _tables(tmp_path / "bulk.db") == _tables(tmp_path / "single.db")
    assert rows(tmp_path / "bulk.db", _SESSIONS) == [
        ("s", "p", NOW + 1, NOW + 1, None, None, None, None, 1, 0)
    ]
    assert store.one_at_a_time == 0


def test_stored_counts_every_request_of_a_bulk_run(store: _CountingStore, tmp_path: Path) -> None:
    """statistics().stored counts each request of a run written in bulk, not the run."""
    events: list[ProxyEvent] = [
        request(f"r{i}", ts=NOW + i, session_id=f"s{i % 3}") for i in range(300)
    ]
    store.put([*events, Heartbeat(NOW, "p", "up", 10, 5, 0), request("last")])
    store.flush()
    stats = store.statistics()
    assert (stats.accepted, stats.stored, stats.skipped, stats.failed) == (302, 301, 1, 0)
    assert store.one_at_a_time == 0
    assert rows(tmp_path / "bulk.db", "SELECT SUM(total_calls) FROM sessions") == [(300,)]
