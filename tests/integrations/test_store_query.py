"""Tests of the query engine against the known rows of `store_data` (exact results)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mcpr_integrations.store import (
    ClientRow,
    RequestFilter,
    RequestRow,
    SessionLookupError,
    SessionRow,
    StoreReader,
    ToolStats,
    parse_duration,
)
from tests.integrations.store_data import HOUR, LEGACY, MINUTE, NOW, OTHER, fill, search_row


def ids(rows: list[RequestRow]) -> list[str]:
    """The request ids of rows, in order."""
    return [row.request_id for row in rows]


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreReader]:
    """A reader on a store holding the dataset."""
    path = tmp_path_factory.mktemp("query") / "store.db"
    fill(path)
    with StoreReader(path, now_ms=NOW) as r:
        yield r


def test_logs_returns_full_rows_newest_first(reader: StoreReader) -> None:
    """Rows carry every column; the newest arrival comes first."""
    assert reader.logs(RequestFilter(), limit=3) == [search_row(20), search_row(19), search_row(18)]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (RequestFilter(proxy="beta"), ["stream"]),
        (RequestFilter(tool="fetch"), ["fetch-2", "fetch-1", "fetch-0"]),
        (RequestFilter(method="initialize"), ["init"]),
        (RequestFilter(method="GET"), ["stream"]),
        (RequestFilter(session_prefix="s-aaab"), ["search-07"]),
        (RequestFilter(status="timeout"), ["search-20"]),
        (RequestFilter(status="error"), ["search-19"]),
        (RequestFilter(error_code="-32602"), ["search-19"]),
        (RequestFilter(client="cursor-agent"), ["fetch-2", "fetch-1", "fetch-0"]),
        (RequestFilter(since_ms=NOW - 3 * MINUTE), ["search-20", "search-19", "search-18"]),
        (
            RequestFilter(tool="search", status="ok", since_ms=NOW - 5 * MINUTE),
            ["search-18", "search-17", "search-16"],
        ),
        (RequestFilter(proxy="nobody"), []),
    ],
)
def test_logs_filters(reader: StoreReader, where: RequestFilter, expected: list[str]) -> None:
    """Each filter (and their combination) selects exactly the matching rows."""
    assert ids(reader.logs(where, limit=100)) == expected


def test_session_prefix_matches_every_session_it_starts(reader: StoreReader) -> None:
    """A short prefix covers both sessions: the initialize and all twenty searches."""
    assert len(reader.logs(RequestFilter(session_prefix="s-aaa"), limit=100)) == 21


def test_follow_reads_by_row_id(reader: StoreReader) -> None:
    """last_id is the newest matching row; logs_after returns later rows, oldest first."""
    assert reader.last_id(RequestFilter()) == 25
    assert reader.last_id(RequestFilter(tool="fetch")) == 4
    assert reader.last_id(RequestFilter(proxy="nobody")) == 0
    after = reader.logs_after(RequestFilter(tool="search"), 20)
    assert after == [search_row(17), search_row(18), search_row(19), search_row(20)]
    assert reader.logs_after(RequestFilter(), 25) == []


def test_slow_orders_by_latency(reader: StoreReader) -> None:
    """slow keeps latency >= threshold, slowest first, and honours proxy and limit."""
    where = RequestFilter()
    assert ids(reader.slow(where, threshold_us=18_000, limit=10)) == [
        "stream",
        "search-20",
        "search-19",
        "search-18",
    ]
    assert ids(reader.slow(RequestFilter(proxy="alpha"), threshold_us=19_000, limit=10)) == [
        "search-20",
        "search-19",
    ]
    assert ids(reader.slow(where, threshold_us=0, limit=2)) == ["stream", "search-20"]


def test_stats_per_tool_and_totals(reader: StoreReader) -> None:
    """Per key: nearest-rank percentiles computed by hand, errors, bytes; totals over all."""
    report = reader.stats(RequestFilter())
    assert report.rows == (
        # search: 1..20 ms. p50 = rank 10, p95 = rank 19, p99 = rank ceil(19.8) = 20.
        ToolStats("search", 20, 10_500, 10_000, 19_000, 20_000, 20_000, 2, 10.0, 2400, 16_000),
        # fetch: 100, 300, 200 us. p50 = rank ceil(1.5) = 2, p95 = p99 = rank 3.
        ToolStats("fetch", 3, 200, 200, 300, 300, 300, 0, 0.0, 360, 2400),
        ToolStats(
            "<GET>", 1, 2_000_000, 2_000_000, 2_000_000, 2_000_000, 2_000_000, 0, 0.0, 0, 4096
        ),
        ToolStats("<initialize>", 1, 5000, 5000, 5000, 5000, 5000, 0, 0.0, 120, 800),
    )
    # All 25: 100, 200, 300, 1000, 2000, 3000, 4000, 5000, 5000, 6000 ... 20000, 2000000.
    # p50 = rank 13 = 9000; p95 = rank 24 = 20000; p99 = rank 25; avg = 2215600 / 25.
    assert report.total == ToolStats(
        "total", 25, 88_624, 9000, 20_000, 2_000_000, 2_000_000, 2, 8.0, 2880, 23_296
    )


def test_stats_histograms_of_the_busiest_keys(reader: StoreReader) -> None:
    """The three busiest keys get bucket counts aligned with HISTOGRAM_BOUNDS_US."""
    report = reader.stats(RequestFilter())
    assert report.histograms == {
        "search": (0, 4, 5, 11, 0, 0, 0, 0, 0),
        "fetch": (3, 0, 0, 0, 0, 0, 0, 0, 0),
        "<GET>": (0, 0, 0, 0, 0, 0, 0, 1, 0),
    }
    assert report.to_dict()["histograms"]["fetch"] == [3, 0, 0, 0, 0, 0, 0, 0, 0]


def test_stats_with_filters_and_nothing_to_show(reader: StoreReader) -> None:
    """A client filter narrows the figures; an empty window has no rows and no totals."""
    cursor = reader.stats(RequestFilter(client="cursor-agent"))
    assert [row.key for row in cursor.rows] == ["fetch"]
    assert cursor.total is not None
    assert cursor.total.calls == 3
    empty = reader.stats(RequestFilter(proxy="nobody"))
    assert (empty.rows, empty.total, empty.histograms) == ((), None, {})


LEGACY_SESSION = SessionRow(
    LEGACY, "alpha", NOW - 3 * HOUR, NOW - MINUTE, None, "claude-ai", "1.2", "claude", 20, 2
)
OTHER_SESSION = SessionRow(
    OTHER, "alpha", NOW - 30 * MINUTE, NOW - 14 * MINUTE, NOW - 10 * MINUTE, "vscode", "1.9",
    "vscode", 1, 0,
)  # fmt: skip


def test_sessions_and_their_filters(reader: StoreReader) -> None:
    """Sessions come newest-started first; active, client, since and proxy narrow them."""
    assert reader.sessions(limit=10) == [OTHER_SESSION, LEGACY_SESSION]
    assert reader.sessions(limit=1) == [OTHER_SESSION]
    assert reader.sessions(active=True, limit=10) == [LEGACY_SESSION]
    assert reader.sessions(client="vscode", limit=10) == [OTHER_SESSION]
    assert reader.sessions(since_ms=NOW - 5 * MINUTE, limit=10) == [LEGACY_SESSION]
    assert reader.sessions(proxy="beta", limit=10) == []


def test_session_by_unique_prefix(reader: StoreReader) -> None:
    """A unique prefix finds the session and its latest requests, newest first."""
    detail = reader.session("s-aaaa", limit=2)
    assert detail.session == LEGACY_SESSION
    assert detail.requests == (search_row(20), search_row(19))
    assert detail.to_dict()["requests"][0]["request_id"] == "search-20"


@pytest.mark.parametrize(
    ("prefix", "message"), [("s-aaa", "more than one session"), ("zzz", "no session starts")]
)
def test_session_prefix_must_name_exactly_one(
    reader: StoreReader, prefix: str, message: str
) -> None:
    """An ambiguous or unknown prefix is a lookup error that says which."""
    with pytest.raises(SessionLookupError, match=message):
        reader.session(prefix)


def test_clients_cover_both_eras(reader: StoreReader) -> None:
    """Clients group by name, version and platform over legacy and modern requests alike."""
    assert reader.clients() == [
        ClientRow("claude-ai", "1.2", "claude", 20, 1, 2, NOW - 3 * HOUR, NOW - MINUTE),
        ClientRow("cursor-agent", "2.0", "cursor", 3, 0, 0, NOW - 2 * HOUR, NOW - 2 * HOUR + 2000),
        ClientRow("vscode", "1.9", "vscode", 1, 1, 0, NOW - 14 * MINUTE, NOW - 14 * MINUTE),
    ]
    assert reader.clients(since_ms=NOW - HOUR) == [
        ClientRow("claude-ai", "1.2", "claude", 19, 1, 2, NOW - 20 * MINUTE, NOW - MINUTE),
        ClientRow("vscode", "1.9", "vscode", 1, 1, 0, NOW - 14 * MINUTE, NOW - 14 * MINUTE),
    ]
    assert reader.clients(proxy="beta") == []


@pytest.mark.parametrize(
    ("text", "sub_second", "expected"),
    [
        ("30s", False, 30_000_000),
        ("15m", False, 900_000_000),
        ("1h", False, 3_600_000_000),
        ("7d", False, 604_800_000_000),
        ("2w", False, 1_209_600_000_000),
        ("500ms", True, 500_000),
        ("250us", True, 250),
        ("0s", False, 0),
    ],
)
def test_parse_duration(text: str, sub_second: bool, expected: int) -> None:
    """An integer and one unit become microseconds."""
    assert parse_duration(text, sub_second=sub_second) == expected


@pytest.mark.parametrize("text", ["", "10", "1h30m", "1.5h", "-1h", "5x", "500ms", "h"])
def test_parse_duration_refuses_everything_else(text: str) -> None:
    """Compound, fractional, unit-less or sub-second (for windows) values are refused."""
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)
