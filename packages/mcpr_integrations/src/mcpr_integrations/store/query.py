"""The query engine behind `mcpr proxy logs / slow / stats / sessions / session / clients`.

Rules of this module:

* It only reads (and migrates an older file on open, as every opener does). The clock is a
  parameter (`now_ms`), so results are reproducible in tests.
* Results are frozen rows whose `to_dict()` keys are the store's column names, so the
  `--json` output of the commands and a `sqlite3` session speak the same language.
* Percentiles use the nearest-rank method: p is the smallest latency such that at least p %
  of the calls took no longer, i.e. the value at rank ceil(p * n / 100) in ascending order.
  They are computed in SQL with window functions, so no latency list crosses into Python.
* `--follow` reads by `id`, not by `ts`: a request is stamped with its arrival time but
  written when it ends, so a long call can land after shorter, later ones. Ids grow with
  every commit, so "id above the last one shown" never repeats and never skips a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import apsw

from mcpr_integrations.store.rows import (
    HISTOGRAM_BOUNDS_US,
    ClientRow,
    RequestRow,
    SessionDetail,
    SessionRow,
    StatsReport,
    ToolStats,
)
from mcpr_integrations.store.schema import open_reader

__all__ = ["RequestFilter", "SessionLookupError", "StoreReader"]

_REQUEST_COLUMNS = (
    "id, request_id, ts, proxy, session_id, method, tool, latency_us, status, error_code,"
    " error_msg, bytes_in, bytes_out, resource_uri, prompt_name, client_name, client_version,"
    " client_platform, protocol_version, era, header_mismatch"
)
_SESSION_COLUMNS = (
    "session_id, proxy, started_at, last_seen_at, ended_at, client_name, client_version,"
    " client_platform, total_calls, total_errors"
)
# stats groups by tool, or by `<method>` for calls that name no tool (STORE.md "Reading").
_STATS_KEY = "COALESCE(tool, '<' || method || '>')"
_PERCENTILES = (50, 95, 99)


class SessionLookupError(LookupError):
    """No session, or more than one, starts with the given prefix."""


@dataclass(frozen=True, slots=True)
class RequestFilter:
    """Which requests a query looks at; None means no restriction."""

    proxy: str | None = None
    tool: str | None = None
    method: str | None = None
    session_prefix: str | None = None
    status: str | None = None
    error_code: str | None = None
    client: str | None = None
    since_ms: int | None = None

    def where(self) -> tuple[str, dict[str, Any]]:
        """The SQL `WHERE` clause (possibly empty) and its named parameters."""
        clauses: list[str] = []
        params: dict[str, Any] = {}
        for column in ("proxy", "tool", "method", "status", "error_code"):
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"{column} = :{column}")
                params[column] = value
        if self.client is not None:
            clauses.append("client_name = :client")
            params["client"] = self.client
        if self.session_prefix is not None:
            clauses.append("substr(session_id, 1, :prefix_len) = :prefix")
            params["prefix"] = self.session_prefix
            params["prefix_len"] = len(self.session_prefix)
        if self.since_ms is not None:
            clauses.append("ts >= :since")
            params["since"] = self.since_ms
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _request(row: tuple[Any, ...]) -> RequestRow:
    values = list(row)
    values[-1] = bool(values[-1])  # header_mismatch is stored as 0/1
    return RequestRow(*values)


class StoreReader:
    """A read connection to the store. Use as a context manager, or call `close()`."""

    def __init__(self, path: Path, *, now_ms: int) -> None:
        """Open the file at `path`; `StoreMissingError` when it does not exist yet."""
        self.path = path
        self._conn: apsw.Connection = open_reader(path, now_ms=now_ms)

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    @property
    def connection(self) -> apsw.Connection:
        """The underlying connection (for maintenance commands)."""
        return self._conn

    # -- requests ---------------------------------------------------------------------------

    def logs(self, where: RequestFilter, *, limit: int) -> list[RequestRow]:
        """The newest matching requests, newest first."""
        sql, params = where.where()
        rows = self._conn.execute(
            f"SELECT {_REQUEST_COLUMNS} FROM requests{sql} ORDER BY ts DESC, id DESC LIMIT :limit",
            {**params, "limit": limit},
        )
        return [_request(row) for row in rows]

    def last_id(self, where: RequestFilter) -> int:
        """The highest matching row id (0 when none): where `--follow` starts."""
        sql, params = where.where()
        row = self._conn.execute(f"SELECT MAX(id) FROM requests{sql}", params).fetchone()
        return int(row[0]) if row is not None and row[0] is not None else 0

    def logs_after(self, where: RequestFilter, after_id: int) -> list[RequestRow]:
        """Matching requests written after row `after_id`, oldest first (for `--follow`)."""
        sql, params = where.where()
        sql = f"{sql} AND id > :after" if sql else " WHERE id > :after"
        rows = self._conn.execute(
            f"SELECT {_REQUEST_COLUMNS} FROM requests{sql} ORDER BY id",
            {**params, "after": after_id},
        )
        return [_request(row) for row in rows]

    def slow(self, where: RequestFilter, *, threshold_us: int, limit: int) -> list[RequestRow]:
        """Requests that took at least `threshold_us`, slowest first."""
        sql, params = where.where()
        sql = f"{sql} AND latency_us >= :threshold" if sql else " WHERE latency_us >= :threshold"
        rows = self._conn.execute(
            f"SELECT {_REQUEST_COLUMNS} FROM requests{sql}"
            " ORDER BY latency_us DESC, ts DESC, id DESC LIMIT :limit",
            {**params, "threshold": threshold_us, "limit": limit},
        )
        return [_request(row) for row in rows]

    # -- stats ------------------------------------------------------------------------------

    def stats(self, where: RequestFilter, *, histograms: int = 3) -> StatsReport:
        """Per tool (or `<method>`): calls, latency figures, errors, bytes; then the totals."""
        rows = self._aggregate(_STATS_KEY, where)
        totals = self._aggregate("'total'", where)
        busiest = [row.key for row in rows[:histograms]]
        return StatsReport(
            rows=tuple(rows),
            total=totals[0] if totals else None,
            histograms=self._histograms(where, busiest),
        )

    def _aggregate(self, key: str, where: RequestFilter) -> list[ToolStats]:
        sql, params = where.where()
        ranks = ", ".join(
            f"MAX(CASE WHEN rn = (n * {p} + 99) / 100 THEN latency_us END)" for p in _PERCENTILES
        )
        query = (
            f"WITH f AS (SELECT {key} AS key, latency_us, status, bytes_in, bytes_out"
            f" FROM requests{sql}),"
            " r AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY key ORDER BY latency_us) AS rn,"
            " COUNT(*) OVER (PARTITION BY key) AS n FROM f)"
            f" SELECT key, COUNT(*), AVG(latency_us), {ranks}, MAX(latency_us),"
            " SUM(status != 'ok'), COALESCE(SUM(bytes_in), 0), COALESCE(SUM(bytes_out), 0)"
            " FROM r GROUP BY key ORDER BY COUNT(*) DESC, key"
        )
        out = []
        for k, calls, avg, p50, p95, p99, high, errors, b_in, b_out in self._conn.execute(
            query, params
        ):
            out.append(
                ToolStats(
                    key=k,
                    calls=calls,
                    avg_us=round(avg),
                    p50_us=p50,
                    p95_us=p95,
                    p99_us=p99,
                    max_us=high,
                    errors=errors,
                    error_pct=errors * 100 / calls,
                    bytes_in=b_in,
                    bytes_out=b_out,
                )
            )
        return out

    def _histograms(self, where: RequestFilter, keys: list[str]) -> dict[str, tuple[int, ...]]:
        if not keys:
            return {}
        sql, params = where.where()
        bucket = (
            "CASE"
            + "".join(f" WHEN latency_us < {b} THEN {i}" for i, b in enumerate(HISTOGRAM_BOUNDS_US))
            + f" ELSE {len(HISTOGRAM_BOUNDS_US)} END"
        )
        marks = ", ".join(f":k{i}" for i in range(len(keys)))
        params = {**params, **{f"k{i}": key for i, key in enumerate(keys)}}
        counts = {key: [0] * (len(HISTOGRAM_BOUNDS_US) + 1) for key in keys}
        for key, index, count in self._conn.execute(
            f"SELECT key, bucket, COUNT(*) FROM (SELECT {_STATS_KEY} AS key, {bucket} AS bucket"
            f" FROM requests{sql}) WHERE key IN ({marks}) GROUP BY key, bucket",
            params,
        ):
            counts[key][index] = count
        return {key: tuple(counts[key]) for key in keys}

    # -- sessions and clients ---------------------------------------------------------------

    def sessions(
        self,
        *,
        proxy: str | None = None,
        active: bool = False,
        client: str | None = None,
        since_ms: int | None = None,
        limit: int,
    ) -> list[SessionRow]:
        """Legacy sessions, most recently started first; `since_ms` bounds `last_seen_at`."""
        clauses = ["1"]
        if proxy is not None:
            clauses.append("proxy = :proxy")
        if active:
            clauses.append("ended_at IS NULL")
        if client is not None:
            clauses.append("client_name = :client")
        if since_ms is not None:
            clauses.append("last_seen_at >= :since")
        rows = self._conn.execute(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE {' AND '.join(clauses)}"
            " ORDER BY started_at DESC, session_id LIMIT :limit",
            {"proxy": proxy, "client": client, "since": since_ms, "limit": limit},
        )
        return [SessionRow(*row) for row in rows]

    def session(self, prefix: str, *, limit: int = 20) -> SessionDetail:
        """The one session whose id starts with `prefix`, and its latest requests."""
        found = [
            SessionRow(*row)
            for row in self._conn.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE substr(session_id, 1, ?) = ?"
                " ORDER BY session_id LIMIT 2",
                (len(prefix), prefix),
            )
        ]
        if not found:
            raise SessionLookupError(f"no session starts with {prefix!r}")
        if len(found) > 1:
            raise SessionLookupError(
                f"more than one session starts with {prefix!r}; give more characters"
            )
        session = found[0]
        rows = self._conn.execute(
            f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE session_id = ?"
            " ORDER BY ts DESC, id DESC LIMIT ?",
            (session.session_id, limit),
        )
        return SessionDetail(session=session, requests=tuple(_request(row) for row in rows))

    def clients(self, *, proxy: str | None = None, since_ms: int | None = None) -> list[ClientRow]:
        """Identified clients (both eras), busiest first."""
        sql, params = RequestFilter(proxy=proxy, since_ms=since_ms).where()
        sql = f"{sql} AND client_name IS NOT NULL" if sql else " WHERE client_name IS NOT NULL"
        rows = self._conn.execute(
            "SELECT client_name, client_version, client_platform, COUNT(*),"
            " COUNT(DISTINCT session_id), SUM(status != 'ok'), MIN(ts), MAX(ts)"
            f" FROM requests{sql} GROUP BY client_name, client_version, client_platform"
            " ORDER BY COUNT(*) DESC, client_name, client_version, client_platform",
            params,
        )
        return [ClientRow(*row) for row in rows]
