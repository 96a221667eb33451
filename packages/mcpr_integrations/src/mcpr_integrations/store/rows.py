"""The rows the query engine returns: frozen, with `to_dict()` keyed by column name."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "HISTOGRAM_BOUNDS_US",
    "ClientRow",
    "RequestRow",
    "SessionDetail",
    "SessionRow",
    "StatsReport",
    "ToolStats",
]

#: Upper bounds (exclusive, microseconds) of the latency histogram's buckets; one more bucket
#: holds everything slower. Roughly logarithmic: 1, 5, 10, 50, 100, 500 ms, 1 s, 5 s.
HISTOGRAM_BOUNDS_US = (1_000, 5_000, 10_000, 50_000, 100_000, 500_000, 1_000_000, 5_000_000)


class _Row:
    """Shared `to_dict()` of the row dataclasses."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """The row as a plain dict keyed by column name."""
        return asdict(self)  # type: ignore[call-overload, no-any-return]


@dataclass(frozen=True, slots=True)
class RequestRow(_Row):
    """One row of `requests`."""

    id: int
    request_id: str
    ts: int
    proxy: str
    session_id: str | None
    method: str
    tool: str | None
    latency_us: int
    status: str
    error_code: str | None
    error_msg: str | None
    bytes_in: int | None
    bytes_out: int | None
    resource_uri: str | None
    prompt_name: str | None
    client_name: str | None
    client_version: str | None
    client_platform: str | None
    protocol_version: str | None
    era: str | None
    header_mismatch: bool


@dataclass(frozen=True, slots=True)
class SessionRow(_Row):
    """One row of `sessions`."""

    session_id: str
    proxy: str
    started_at: int
    last_seen_at: int
    ended_at: int | None
    client_name: str | None
    client_version: str | None
    client_platform: str | None
    total_calls: int
    total_errors: int


@dataclass(frozen=True, slots=True)
class ToolStats(_Row):
    """Latency and error figures of one tool (or `<method>`), or of all calls (`total`)."""

    key: str
    calls: int
    avg_us: int
    p50_us: int
    p95_us: int
    p99_us: int
    max_us: int
    errors: int
    error_pct: float
    bytes_in: int
    bytes_out: int


@dataclass(frozen=True, slots=True)
class StatsReport:
    """Per-key figures (busiest first), the totals, and histograms of the busiest keys."""

    rows: tuple[ToolStats, ...]
    total: ToolStats | None
    histograms: dict[str, tuple[int, ...]]

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data; histogram counts align with `HISTOGRAM_BOUNDS_US`."""
        return {
            "rows": [row.to_dict() for row in self.rows],
            "total": self.total.to_dict() if self.total is not None else None,
            "histogram_bounds_us": list(HISTOGRAM_BOUNDS_US),
            "histograms": {key: list(counts) for key, counts in self.histograms.items()},
        }


@dataclass(frozen=True, slots=True)
class ClientRow(_Row):
    """Requests of one client (name, version, platform), from both eras."""

    client_name: str
    client_version: str | None
    client_platform: str | None
    requests: int
    sessions: int
    errors: int
    first_seen: int
    last_seen: int


@dataclass(frozen=True, slots=True)
class SessionDetail:
    """A session and its most recent requests (newest first)."""

    session: SessionRow
    requests: tuple[RequestRow, ...]

    def to_dict(self) -> dict[str, Any]:
        """The session's columns plus a `requests` list."""
        return {**self.session.to_dict(), "requests": [r.to_dict() for r in self.requests]}
