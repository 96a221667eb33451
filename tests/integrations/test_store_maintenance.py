"""Tests of `store stats` and `store vacuum` over the known rows of `store_data`."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcpr_integrations.store import (
    StoreReader,
    VacuumCounts,
    maintenance,
    plan_vacuum,
    store_stats,
    vacuum,
)
from tests.integrations.store_data import DAY, HOUR, MINUTE, NOW, fill


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """A fresh store holding the dataset."""
    target = tmp_path / "store.db"
    fill(target)
    return target


def counts(reader: StoreReader) -> tuple[int, int]:
    """How many requests and sessions are left."""
    conn = reader.connection
    n_requests = conn.execute("SELECT COUNT(*) FROM requests").fetchone()
    n_sessions = conn.execute("SELECT COUNT(*) FROM sessions").fetchone()
    assert n_requests is not None
    assert n_sessions is not None
    return n_requests[0], n_sessions[0]


def test_store_stats(path: Path) -> None:
    """Row counts, time range, per-proxy counts, version and sizes describe the file."""
    with StoreReader(path, now_ms=NOW) as reader:
        stats = store_stats(reader.connection, path)
    assert stats.path == str(path)
    assert (stats.requests, stats.sessions, stats.server_schema, stats.schema_changes) == (
        25,
        2,
        0,
        0,
    )
    assert (stats.oldest_ts, stats.newest_ts) == (NOW - 2 * DAY, NOW - MINUTE)
    assert stats.proxies == {"alpha": 24, "beta": 1}
    assert (stats.schema_version, stats.mcpr_version) == (6, "test")
    assert stats.created_at is not None
    assert stats.file_bytes > 0
    assert stats.to_dict()["proxies"] == {"alpha": 24, "beta": 1}


@pytest.mark.parametrize(
    ("cutoff", "proxy", "expected"),
    [
        # Older than 1 h: initialize, three fetches, the stream; no session ended that long ago.
        (NOW - HOUR, None, VacuumCounts(5, 0)),
        # Older than 5 min: also searches 1..15; s-aaab0000 ended 10 min ago and loses its
        # only request (search 7), so it goes too; s-aaaa1111 has not ended.
        (NOW - 5 * MINUTE, None, VacuumCounts(20, 1)),
        (NOW - 5 * MINUTE, "alpha", VacuumCounts(19, 1)),
        (NOW - 5 * MINUTE, "beta", VacuumCounts(1, 0)),
        (NOW - 3 * DAY, None, VacuumCounts(0, 0)),
    ],
)
def test_vacuum_dry_run_counts_what_the_real_run_deletes(
    path: Path, cutoff: int, proxy: str | None, expected: VacuumCounts
) -> None:
    """The dry run's counts equal the real run's, and the rows are really gone."""
    with StoreReader(path, now_ms=NOW) as reader:
        before = counts(reader)
        planned = plan_vacuum(reader.connection, cutoff_ms=cutoff, proxy=proxy)
        assert counts(reader) == before
        done = vacuum(reader.connection, cutoff_ms=cutoff, proxy=proxy)
        assert planned == done == expected
        assert counts(reader) == (before[0] - done.requests, before[1] - done.sessions)


def test_session_with_a_recent_request_is_not_an_orphan(path: Path) -> None:
    """An ended session keeps its row while any of its requests survives."""
    with StoreReader(path, now_ms=NOW) as reader:
        # Cut at 15 min: search 7 (14 min ago) of s-aaab0000 stays, so the session stays.
        assert plan_vacuum(reader.connection, cutoff_ms=NOW - 15 * MINUTE, proxy=None) == (
            VacuumCounts(10, 0)
        )


def test_vacuum_reports_progress_in_chunks(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests go in chunks, each reported; then sessions; then the VACUUM itself."""
    monkeypatch.setattr(maintenance, "CHUNK_ROWS", 8)
    seen: list[tuple[str, int, int]] = []
    with StoreReader(path, now_ms=NOW) as reader:
        done = vacuum(
            reader.connection,
            cutoff_ms=NOW - 5 * MINUTE,
            proxy=None,
            progress=lambda phase, n, total: seen.append((phase, n, total)),
        )
    assert done == VacuumCounts(20, 1)
    assert seen == [
        ("requests", 0, 20),
        ("requests", 8, 20),
        ("requests", 16, 20),
        ("requests", 20, 20),
        ("sessions", 0, 1),
        ("sessions", 1, 1),
        ("vacuum", 0, 1),
        ("vacuum", 1, 1),
    ]
