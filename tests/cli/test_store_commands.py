"""Tests of `mcpr proxy logs / slow / stats / sessions / session / clients` and `mcpr store`.

Each command runs through click's CliRunner against a store holding the known rows of
`tests.integrations.store_data`, with the clock fixed at its `NOW` and local time in UTC.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from mcpr_cli.cli import cli
from mcpr_integrations.store import Store
from tests.integrations.store_data import LEGACY, NOW, fill, search_row

OTHER_ROW = ["s-aaab0000", "alpha", "vscode 1.9", "vscode", "2025-12-31 23:30:00"]
OTHER_ROW += ["2025-12-31 23:46:00", "2025-12-31 23:50:00", "1", "0"]
LEGACY_ROW = ["s-aaaa1111", "alpha", "claude-ai 1.2", "claude", "2025-12-31 21:00:00"]
LEGACY_ROW += ["2025-12-31 23:59:00", "active", "20", "2"]


@pytest.fixture
def store_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """MCPR_DB names a filled store; the clock reads NOW; local time is UTC; tables are wide."""
    path = tmp_path / "store.db"
    fill(path)
    monkeypatch.setenv("MCPR_DB", str(path))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setattr("mcpr_cli.commands.common.now_ms", lambda: NOW)
    monkeypatch.setattr("mcpr_cli.commands.store.now_ms", lambda: NOW)
    yield path
    monkeypatch.undo()
    time.tzset()


def run(*args: str) -> Result:
    """Invoke `mcpr ARGS`."""
    return CliRunner().invoke(cli, list(args))


def ok(*args: str) -> str:
    """Invoke `mcpr ARGS`, expect success, return stdout."""
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result.stdout


def table(output: str) -> list[list[str]]:
    """The data rows of a rich table, as lists of stripped cells."""
    return [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in output.splitlines()
        if line.startswith("│")
    ]


def json_lines(output: str) -> list[dict[str, Any]]:
    """Parse one JSON object per line."""
    return [json.loads(line) for line in output.splitlines()]


@pytest.mark.usefixtures("store_path")
def test_logs_table() -> None:
    """logs prints the newest requests first, with era, client, units and the error column."""
    assert table(ok("proxy", "logs", "--tail", "3")) == [
        ["12-31 23:59:00", "alpha", "s-aaaa11", "legacy", "claude-ai 1.2", "tools/call", "search",
         "timeout", "20.00ms", "120B", "800B", "504 upstream timeout"],
        ["12-31 23:58:00", "alpha", "s-aaaa11", "legacy", "claude-ai 1.2", "tools/call", "search",
         "error", "19.00ms", "120B", "800B", "-32602 Invalid params"],
        ["12-31 23:57:00", "alpha", "s-aaaa11", "legacy", "claude-ai 1.2", "tools/call", "search",
         "ok", "18.00ms", "120B", "800B", ""],
    ]  # fmt: skip


@pytest.mark.usefixtures("store_path")
def test_logs_show_modern_clients_without_a_session() -> None:
    """A 2026-07-28 row has no session but names its era and its client, in the table and JSON."""
    assert table(ok("proxy", "logs", "--tool", "fetch", "--tail", "1")) == [
        ["12-31 22:00:02", "alpha", "", "modern", "cursor-agent 2.0", "tools/call", "fetch", "ok",
         "200us", "120B", "800B", ""],
    ]  # fmt: skip
    [row] = json_lines(ok("proxy", "logs", "--tool", "fetch", "--tail", "1", "--json"))
    assert {key: row[key] for key in ("session_id", "era", "client_name", "protocol_version")} == {
        "session_id": None,
        "era": "modern",
        "client_name": "cursor-agent",
        "protocol_version": "2026-07-28",
    }


@pytest.mark.usefixtures("store_path")
def test_logs_json_is_one_row_object_per_line() -> None:
    """--json prints each row as one object keyed by the store's column names."""
    assert json_lines(ok("proxy", "logs", "--tail", "2", "--json")) == [
        search_row(20).to_dict(),
        search_row(19).to_dict(),
    ]


@pytest.mark.usefixtures("store_path")
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["beta"], ["stream"]),
        (["--tool", "fetch"], ["fetch-2", "fetch-1", "fetch-0"]),
        (["--method", "initialize"], ["init"]),
        (["--session", "s-aaab"], ["search-07"]),
        (["--client", "cursor-agent"], ["fetch-2", "fetch-1", "fetch-0"]),
        (["--client", "vscode"], ["search-07"]),
        (["--status", "error"], ["search-19"]),
        (["--error-code", "-32602"], ["search-19"]),
        (["--since", "3m"], ["search-20", "search-19", "search-18"]),
        (["alpha", "--tool", "search", "--status", "ok", "--since", "5m"],
         ["search-18", "search-17", "search-16"]),
    ],
)  # fmt: skip
def test_logs_filters(args: list[str], expected: list[str]) -> None:
    """NAME and every filter option reach the query."""
    rows = json_lines(ok("proxy", "logs", "--json", *args))
    assert [row["request_id"] for row in rows] == expected


@pytest.mark.usefixtures("store_path")
def test_logs_with_nothing_to_show() -> None:
    """An empty answer says so in words (and prints nothing with --json)."""
    assert ok("proxy", "logs", "nobody") == "No requests.\n"
    assert ok("proxy", "logs", "nobody", "--json") == ""


def test_follow_prints_every_new_row_once(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--follow prints the tail, then each new matching row once, in arrival order."""
    template = search_row(1)
    batches: list[list[tuple[str, str, int]]] = [
        [("late-1", "search", NOW + 1000), ("other", "fetch", NOW + 1500)],
        [],
        # A long call that began before the others but ended after them still shows.
        [("late-2", "search", NOW + 2000), ("late-3", "search", NOW - 30 * 60_000)],
    ]

    def sleep(seconds: float) -> None:
        if not batches:
            raise KeyboardInterrupt
        with Store(store_path, mcpr_version="test") as store:
            store.put(
                search_event(rid, tool, ts, template.session_id) for rid, tool, ts in batches.pop(0)
            )

    monkeypatch.setattr("mcpr_cli.commands.query.sleep", sleep)
    rows = json_lines(ok("proxy", "logs", "--follow", "--json", "--tail", "3", "--tool", "search"))
    assert [row["request_id"] for row in rows] == [
        "search-18",
        "search-19",
        "search-20",
        "late-1",
        "late-2",
        "late-3",
    ]


def search_event(rid: str, tool: str, ts: int, session_id: str | None) -> Any:
    """A new tools/call request event for the follow test."""
    from mcpr_core.events import RequestEvent

    return RequestEvent(
        id=rid, ts=ts, proxy="alpha", method="POST", path="/mcp", status=200, latency_us=10,
        request_size=1, note="ok", session_id=session_id, mcp_method="tools/call", tool=tool,
    )  # fmt: skip


def test_follow_human_lines(store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --json, --follow prints one line per request."""

    def sleep(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("mcpr_cli.commands.query.sleep", sleep)
    assert ok("proxy", "logs", "-f", "--tail", "2", "--tool", "search").splitlines() == [
        "12-31 23:58:00 alpha s-aaaa11 legacy claude-ai 1.2 tools/call -> search error 19.00ms"
        " 120B 800B [-32602 Invalid params]",
        "12-31 23:59:00 alpha s-aaaa11 legacy claude-ai 1.2 tools/call -> search timeout 20.00ms"
        " 120B 800B [504 upstream timeout]",
    ]
    assert ok("proxy", "logs", "-f", "--tail", "1", "--tool", "fetch").splitlines() == [
        "12-31 22:00:02 alpha modern cursor-agent 2.0 tools/call -> fetch ok 200us 120B 800B",
    ]


@pytest.mark.usefixtures("store_path")
def test_slow() -> None:
    """slow lists requests at or above the threshold, slowest first, in a table or JSON."""
    rows = table(ok("proxy", "slow", "--threshold", "19ms"))
    assert [(row[0], row[6], row[8]) for row in rows] == [
        ("12-30 00:00:00", "", "2.00s"),
        ("12-31 23:59:00", "search", "20.00ms"),
        ("12-31 23:58:00", "search", "19.00ms"),
    ]
    lines = json_lines(ok("proxy", "slow", "alpha", "--threshold", "0us", "--json", "--limit", "1"))
    assert [row["request_id"] for row in lines] == ["search-20"]
    assert ok("proxy", "slow", "--threshold", "1h") == "No slow requests.\n"


@pytest.mark.usefixtures("store_path")
def test_stats_table_and_histogram() -> None:
    """stats shows per-key figures, the totals, and bars for the busiest keys."""
    output = ok("proxy", "stats")
    assert table(output) == [
        ["search", "20", "10.50ms", "10.00ms", "19.00ms", "20.00ms", "20.00ms", "10.0%",
         "2.3KB", "15.6KB"],
        ["fetch", "3", "200us", "200us", "300us", "300us", "300us", "0.0%", "360B", "2.3KB"],
        ["<GET>", "1", "2.00s", "2.00s", "2.00s", "2.00s", "2.00s", "0.0%", "0B", "4.0KB"],
        ["<initialize>", "1", "5.00ms", "5.00ms", "5.00ms", "5.00ms", "5.00ms", "0.0%",
         "120B", "800B"],
        ["total", "25", "88.62ms", "9.00ms", "20.00ms", "2.00s", "2.00s", "8.0%", "2.8KB",
         "22.8KB"],
    ]  # fmt: skip
    lines = output.splitlines()
    search = lines.index("search")
    assert lines[search + 1 : search + 5] == [
        "        < 1ms  0",
        "      1ms-5ms " + "█" * 15 + " 4",
        "     5ms-10ms " + "█" * 18 + " 5",
        "    10ms-50ms " + "█" * 40 + " 11",
    ]
    assert "fetch" in lines
    assert "<GET>" in lines
    assert "<initialize>" not in lines


@pytest.mark.usefixtures("store_path")
def test_stats_json() -> None:
    """stats --json is one document: rows, total and histograms."""
    report = json.loads(ok("proxy", "stats", "alpha", "--since", "1h", "--json"))
    assert report["rows"] == [
        {"key": "search", "calls": 20, "avg_us": 10_500, "p50_us": 10_000, "p95_us": 19_000,
         "p99_us": 20_000, "max_us": 20_000, "errors": 2, "error_pct": 10.0, "bytes_in": 2400,
         "bytes_out": 16_000},
    ]  # fmt: skip
    assert report["total"]["calls"] == 20
    assert report["histograms"] == {"search": [0, 4, 5, 11, 0, 0, 0, 0, 0]}
    assert (
        json.loads(ok("proxy", "stats", "--client", "cursor-agent", "--json"))["total"]["calls"]
        == 3
    )


@pytest.mark.usefixtures("store_path")
def test_sessions() -> None:
    """sessions lists sessions newest-started first; --active and --client narrow them."""
    assert table(ok("proxy", "sessions")) == [OTHER_ROW, LEGACY_ROW]
    assert table(ok("proxy", "sessions", "--active")) == [LEGACY_ROW]
    [only] = json_lines(ok("proxy", "sessions", "--client", "vscode", "--json"))
    assert only["session_id"] == "s-aaab0000"
    assert only["ended_at"] == NOW - 10 * 60_000
    assert ok("proxy", "sessions", "beta") == "No sessions.\n"


@pytest.mark.usefixtures("store_path")
def test_session_by_prefix() -> None:
    """session ID finds a session by a unique prefix; an ambiguous one is a clear error."""
    output = ok("proxy", "session", "s-aaaa", "--limit", "1")
    assert ["calls", "20"] in table(output)
    assert ["started", "2025-12-31 21:00:00"] in table(output)
    assert "search" in output
    detail = json.loads(ok("proxy", "session", "s-aaaa", "--json", "--limit", "1"))
    assert detail["session_id"] == LEGACY
    assert detail["requests"] == [search_row(20).to_dict()]
    result = run("proxy", "session", "s-aaa")
    assert result.exit_code == 1
    assert "more than one session starts with 's-aaa'" in result.output


@pytest.mark.usefixtures("store_path")
def test_clients() -> None:
    """clients groups both eras by name, version and platform."""
    assert table(ok("proxy", "clients")) == [
        ["claude-ai", "1.2", "claude", "20", "1", "2", "2025-12-31 21:00:00",
         "2025-12-31 23:59:00"],
        ["cursor-agent", "2.0", "cursor", "3", "0", "0", "2025-12-31 22:00:00",
         "2025-12-31 22:00:02"],
        ["vscode", "1.9", "vscode", "1", "1", "0", "2025-12-31 23:46:00", "2025-12-31 23:46:00"],
    ]  # fmt: skip
    rows = json_lines(ok("proxy", "clients", "--since", "1h", "--json"))
    assert [(row["client_name"], row["requests"]) for row in rows] == [
        ("claude-ai", 19),
        ("vscode", 1),
    ]


def test_store_stats(store_path: Path) -> None:
    """store stats describes the file; --json has the same figures."""
    output = ok("store", "stats")
    assert ["requests", "25"] in table(output)
    assert ["schema version", "6"] in table(output)
    figures = json.loads(ok("store", "stats", "--json"))
    assert figures["path"] == str(store_path)
    assert figures["proxies"] == {"alpha": 24, "beta": 1}


@pytest.mark.usefixtures("store_path")
def test_vacuum_dry_run_then_real_run() -> None:
    """The dry run counts what the real run then deletes."""
    dry = json.loads(ok("store", "vacuum", "--before", "5m", "--dry-run", "--json"))
    assert dry == {"dry_run": True, "before_ts": NOW - 300_000, "requests": 20, "sessions": 1}
    real = json.loads(ok("store", "vacuum", "--before", "5m", "--json"))
    assert real == {**dry, "dry_run": False}
    assert json.loads(ok("store", "stats", "--json"))["requests"] == 5
    assert ok("store", "vacuum", "--before", "5m") == "Deleted 0 requests and 0 sessions.\n"
    assert ok("store", "vacuum", "--before", "1m", "--dry-run") == (
        "Would delete 4 requests and 0 sessions.\n"
    )


@pytest.mark.usefixtures("store_path")
@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["proxy", "logs", "--since", "10x"], "--since"),
        (["proxy", "logs", "--since", "500ms"], "--since"),
        (["proxy", "slow", "--threshold", "1.5s"], "--threshold"),
        (["proxy", "stats", "--since", "1h30m"], "--since"),
        (["store", "vacuum", "--before", "soon"], "--before"),
    ],
)
def test_bad_duration_is_a_usage_error(args: list[str], option: str) -> None:
    """A malformed duration exits 2 naming the option and the accepted units."""
    result = run(*args)
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.output
    assert "is not a duration: use an integer and one unit of" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["proxy", "logs"],
        ["proxy", "logs", "--follow"],
        ["proxy", "slow"],
        ["proxy", "stats"],
        ["proxy", "sessions"],
        ["proxy", "session", "abc"],
        ["proxy", "clients"],
        ["store", "stats"],
        ["store", "vacuum", "--before", "7d"],
    ],
)
def test_no_store_yet_is_a_clear_message(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a store file every command says so, exits 1, and creates nothing."""
    missing = tmp_path / "nowhere" / "store.db"
    monkeypatch.setenv("MCPR_DB", str(missing))
    monkeypatch.setenv("COLUMNS", "300")  # the error panel must not wrap the path
    result = run(*args)
    assert result.exit_code == 1
    assert f"no store at {missing} yet" in result.output
    assert not missing.parent.exists()
