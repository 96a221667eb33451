"""Human output of the store commands: rich tables and a latency histogram.

Units follow the stderr lines: latencies in us / ms / s, sizes in B / KB / MB, times local.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from mcpr_integrations.stderr import format_latency, format_size
from mcpr_integrations.store import (
    HISTOGRAM_BOUNDS_US,
    ClientRow,
    RequestRow,
    SessionDetail,
    SessionRow,
    StatsReport,
    StoreStats,
    ToolStats,
)

__all__ = [
    "clients_table",
    "format_time",
    "histogram",
    "request_line",
    "requests_table",
    "session_table",
    "sessions_table",
    "stats_table",
    "store_table",
]

_STATUS_STYLE = {"ok": "green", "error": "red", "timeout": "yellow"}
#: Width of the longest histogram bar, in cells.
_BAR_WIDTH = 40


def format_time(ts_ms: int | None, *, year: bool = True) -> str:
    """Unix milliseconds as local `YYYY-MM-DD HH:MM:SS` (or `MM-DD HH:MM:SS`); `-` if unknown."""
    if ts_ms is None:
        return "-"
    return time.strftime(
        "%Y-%m-%d %H:%M:%S" if year else "%m-%d %H:%M:%S", time.localtime(ts_ms / 1000)
    )


def _bound(us: int) -> str:
    """A histogram bucket edge, in the largest unit that divides it (`5ms`, `1s`)."""
    if us % 1_000_000 == 0:
        return f"{us // 1_000_000}s"
    if us % 1000 == 0:
        return f"{us // 1000}ms"
    return f"{us}us"


def _target(row: RequestRow) -> str:
    return row.tool or row.resource_uri or row.prompt_name or ""


def _error(row: RequestRow) -> str:
    return " ".join(part for part in (row.error_code, row.error_msg) if part)


def _status(status: str) -> Text:
    return Text(status, style=_STATUS_STYLE.get(status, ""))


def _short(session_id: str | None) -> str:
    return session_id[:8] if session_id else ""


def requests_table(rows: Sequence[RequestRow], *, title: str) -> Table:
    """Requests: time, proxy, session, era, client, method, target, status, latency, bytes, error.

    Every row names its era and its client (for a legacy one, the client of its session).
    """
    table = Table(title=title, title_justify="left")
    for name in ("time", "proxy", "session", "era", "client", "method", "target", "status"):
        table.add_column(name)
    for name in ("latency", "in", "out"):
        table.add_column(name, justify="right")
    table.add_column("error", style="red")
    for row in rows:
        table.add_row(
            format_time(row.ts, year=False),
            row.proxy,
            _short(row.session_id),
            row.era or "",
            _client(row.client_name, row.client_version),
            row.method,
            _target(row),
            _status(row.status),
            format_latency(row.latency_us),
            format_size(row.bytes_in),
            format_size(row.bytes_out),
            _error(row),
        )
    return table


def request_line(row: RequestRow) -> Text:
    """One request as a single line (what `logs --follow` prints)."""
    line = Text(f"{format_time(row.ts, year=False)} {row.proxy} ")
    if row.session_id:
        line.append(f"{_short(row.session_id)} ", style="dim")
    who = " ".join(part for part in (row.era, _client(row.client_name, row.client_version)) if part)
    if who:
        line.append(f"{who} ", style="cyan")
    line.append(row.method)
    target = _target(row)
    if target:
        line.append(f" -> {target}")
    line.append(" ")
    line.append_text(_status(row.status))
    line.append(
        f" {format_latency(row.latency_us)} {format_size(row.bytes_in)}"
        f" {format_size(row.bytes_out)}"
    )
    error = _error(row)
    if error:
        line.append(f" [{error}]", style="red")
    return line


def _stats_cells(row: ToolStats) -> list[str]:
    return [
        row.key,
        str(row.calls),
        format_latency(row.avg_us),
        format_latency(row.p50_us),
        format_latency(row.p95_us),
        format_latency(row.p99_us),
        format_latency(row.max_us),
        f"{row.error_pct:.1f}%",
        format_size(row.bytes_in),
        format_size(row.bytes_out),
    ]


def stats_table(report: StatsReport, *, title: str) -> Table:
    """Per tool or `<method>`: calls, avg, p50, p95, p99, max, errors %, bytes; then totals."""
    table = Table(title=title, title_justify="left")
    table.add_column("tool / method")
    for name in ("calls", "avg", "p50", "p95", "p99", "max", "errors", "in", "out"):
        table.add_column(name, justify="right")
    for row in report.rows:
        table.add_row(*_stats_cells(row))
    if report.total is not None:
        table.add_section()
        table.add_row(*_stats_cells(report.total), style="bold")
    return table


def _bucket_labels() -> list[str]:
    labels = [f"< {_bound(HISTOGRAM_BOUNDS_US[0])}"]
    for low, high in itertools.pairwise(HISTOGRAM_BOUNDS_US):
        labels.append(f"{_bound(low)}-{_bound(high)}")
    labels.append(f">= {_bound(HISTOGRAM_BOUNDS_US[-1])}")
    return labels


def histogram(key: str, counts: Sequence[int]) -> Text:
    """A horizontal bar per latency bucket, scaled to the fullest one."""
    labels = _bucket_labels()
    width = max(len(label) for label in labels)
    peak = max(counts, default=0) or 1
    out = Text(f"{key}\n", style="bold")
    for label, count in zip(labels, counts, strict=True):
        bar = "█" * round(count * _BAR_WIDTH / peak)
        out.append(f"  {label:>{width}} ")
        out.append(bar, style="cyan")
        out.append(f" {count}\n")
    return out


def _client(name: str | None, version: str | None) -> str:
    return " ".join(part for part in (name, version) if part)


def sessions_table(rows: Sequence[SessionRow], *, title: str) -> Table:
    """Sessions: id, proxy, client, platform, started, last seen, ended, calls, errors."""
    table = Table(title=title, title_justify="left")
    for name in ("session", "proxy", "client", "platform", "started", "last seen", "ended"):
        table.add_column(name)
    table.add_column("calls", justify="right")
    table.add_column("errors", justify="right")
    for row in rows:
        table.add_row(
            row.session_id,
            row.proxy,
            _client(row.client_name, row.client_version),
            row.client_platform or "",
            format_time(row.started_at),
            format_time(row.last_seen_at),
            format_time(row.ended_at) if row.ended_at is not None else "active",
            str(row.total_calls),
            str(row.total_errors),
        )
    return table


def session_table(detail: SessionDetail) -> Table:
    """One session's fields, one per line."""
    s = detail.session
    table = Table(title=f"session {s.session_id}", title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for field, value in (
        ("proxy", s.proxy),
        ("client", _client(s.client_name, s.client_version) or "-"),
        ("platform", s.client_platform or "-"),
        ("started", format_time(s.started_at)),
        ("last seen", format_time(s.last_seen_at)),
        ("ended", format_time(s.ended_at) if s.ended_at is not None else "active"),
        ("calls", str(s.total_calls)),
        ("errors", str(s.total_errors)),
    ):
        table.add_row(field, value)
    return table


def clients_table(rows: Sequence[ClientRow], *, title: str) -> Table:
    """Clients: name, version, platform, requests, sessions, errors, first and last seen."""
    table = Table(title=title, title_justify="left")
    for name in ("client", "version", "platform"):
        table.add_column(name)
    for name in ("requests", "sessions", "errors"):
        table.add_column(name, justify="right")
    table.add_column("first seen")
    table.add_column("last seen")
    for row in rows:
        table.add_row(
            row.client_name,
            row.client_version or "",
            row.client_platform or "",
            str(row.requests),
            str(row.sessions),
            str(row.errors),
            format_time(row.first_seen),
            format_time(row.last_seen),
        )
    return table


def store_table(stats: StoreStats) -> Table:
    """The store's file, sizes, row counts and time range."""
    table = Table(title="store", title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    rows = [
        ("path", stats.path),
        ("file", format_size(stats.file_bytes)),
        ("wal", format_size(stats.wal_bytes)),
        ("schema version", str(stats.schema_version)),
        ("created", format_time(stats.created_at)),
        ("written by", f"mcpr {stats.mcpr_version}" if stats.mcpr_version else "-"),
        ("requests", str(stats.requests)),
        ("sessions", str(stats.sessions)),
        ("server schemas", str(stats.server_schema)),
        ("schema changes", str(stats.schema_changes)),
        ("oldest request", format_time(stats.oldest_ts)),
        ("newest request", format_time(stats.newest_ts)),
    ]
    rows.extend((f"  proxy {name}", str(count)) for name, count in stats.proxies.items())
    for field, value in rows:
        table.add_row(field, value)
    return table
