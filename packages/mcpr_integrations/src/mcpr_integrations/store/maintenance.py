"""`mcpr store stats` and `mcpr store vacuum`: what the file holds, and deleting old rows.

Vacuum deletes requests older than a cutoff (optionally of one proxy only) and the ended
sessions older than the cutoff that no remaining request points at, then runs `VACUUM` and
truncates the WAL. The dry run counts with the very conditions the real run deletes with,
so its numbers are the real run's numbers (while nothing else writes old rows meanwhile).
Rows go in chunks, one transaction each, so a running proxy's writer is never locked out for
long and progress can be shown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import apsw

from mcpr_integrations.store.schema import schema_version

__all__ = ["CHUNK_ROWS", "StoreStats", "VacuumCounts", "plan_vacuum", "store_stats", "vacuum"]

#: Requests deleted per transaction.
CHUNK_ROWS = 5_000

#: `progress(phase, done, total)`; phases are "requests", "sessions", "vacuum".
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Sizes, row counts and time range of a store file."""

    path: str
    file_bytes: int
    wal_bytes: int
    schema_version: int
    created_at: int | None
    mcpr_version: str | None
    requests: int
    sessions: int
    server_schema: int
    schema_changes: int
    oldest_ts: int | None
    newest_ts: int | None
    proxies: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """The figures as plain data."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class VacuumCounts:
    """Rows a vacuum deletes (dry run) or deleted."""

    requests: int
    sessions: int

    def to_dict(self) -> dict[str, Any]:
        """The counts as plain data."""
        return asdict(self)


def _one(conn: apsw.Connection, sql: str, params: dict[str, Any] | None = None) -> Any:
    """The single row of an aggregate query."""
    row = conn.execute(sql, params).fetchone()
    assert row is not None, "an aggregate query returns one row"
    return row


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def store_stats(conn: apsw.Connection, path: Path) -> StoreStats:
    """Describe the store behind `conn` (whose file is `path`)."""
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    counts = {
        table: int(_one(conn, f"SELECT COUNT(*) FROM {table}")[0])
        for table in ("requests", "sessions", "server_schema", "schema_changes")
    }
    oldest, newest = _one(conn, "SELECT MIN(ts), MAX(ts) FROM requests")
    proxies = dict(
        conn.execute("SELECT proxy, COUNT(*) FROM requests GROUP BY proxy ORDER BY proxy")
    )
    created = meta.get("created_at")
    return StoreStats(
        path=str(path),
        file_bytes=_size(path),
        wal_bytes=_size(path.with_name(path.name + "-wal")),
        schema_version=schema_version(conn),
        created_at=int(created) if created is not None else None,
        mcpr_version=meta.get("mcpr_version"),
        requests=counts["requests"],
        sessions=counts["sessions"],
        server_schema=counts["server_schema"],
        schema_changes=counts["schema_changes"],
        oldest_ts=oldest,
        newest_ts=newest,
        proxies=proxies,
    )


def _old_requests(proxy: str | None, alias: str = "requests") -> str:
    """The WHERE clause of the requests a vacuum deletes."""
    clause = f"{alias}.ts < :cutoff"
    return clause + (f" AND {alias}.proxy = :proxy" if proxy is not None else "")


def _conditions(proxy: str | None) -> tuple[str, str]:
    """The WHERE clauses for old requests and for ended orphan sessions."""
    # An orphan keeps no request once the old ones are gone: every request pointing at it is
    # itself old (of the chosen proxy). True before the delete (dry run) and after it alike.
    sessions = (
        "ended_at IS NOT NULL AND ended_at < :cutoff"
        + (" AND proxy = :proxy" if proxy is not None else "")
        + " AND NOT EXISTS (SELECT 1 FROM requests AS r WHERE r.session_id = sessions.session_id"
        + f" AND NOT ({_old_requests(proxy, 'r')}))"
    )
    return _old_requests(proxy), sessions


def plan_vacuum(conn: apsw.Connection, *, cutoff_ms: int, proxy: str | None) -> VacuumCounts:
    """Count what `vacuum` would delete, deleting nothing."""
    requests, sessions = _conditions(proxy)
    params = {"cutoff": cutoff_ms, "proxy": proxy}
    n_requests = _one(conn, f"SELECT COUNT(*) FROM requests WHERE {requests}", params)[0]
    n_sessions = _one(conn, f"SELECT COUNT(*) FROM sessions WHERE {sessions}", params)[0]
    return VacuumCounts(int(n_requests), int(n_sessions))


def vacuum(
    conn: apsw.Connection,
    *,
    cutoff_ms: int,
    proxy: str | None,
    progress: Progress | None = None,
) -> VacuumCounts:
    """Delete old requests and ended orphan sessions, then VACUUM and truncate the WAL."""
    report: Progress = progress or (lambda phase, done, total: None)
    planned = plan_vacuum(conn, cutoff_ms=cutoff_ms, proxy=proxy)
    requests, sessions = _conditions(proxy)
    params = {"cutoff": cutoff_ms, "proxy": proxy}
    deleted = 0
    report("requests", 0, planned.requests)
    while True:
        with conn:
            conn.execute(
                "DELETE FROM requests WHERE id IN"
                f" (SELECT id FROM requests WHERE {requests} LIMIT {CHUNK_ROWS})",
                params,
            )
            changed = conn.changes()
        if changed == 0:
            break
        deleted += changed
        report("requests", deleted, max(planned.requests, deleted))
    report("sessions", 0, planned.sessions)
    with conn:
        conn.execute(f"DELETE FROM sessions WHERE {sessions}", params)
        removed_sessions = conn.changes()
    report("sessions", removed_sessions, max(planned.sessions, removed_sessions))
    report("vacuum", 0, 1)
    conn.execute("VACUUM")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    report("vacuum", 1, 1)
    return VacuumCounts(deleted, removed_sessions)
