"""Tests of the store's writer: what each event becomes, batching, failures and draining."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

from mcpr_core.events import (
    Heartbeat,
    RequestEvent,
    SchemaChange,
    SchemaVersionCreated,
    SessionEnd,
    SessionStart,
)
from mcpr_integrations.sqlite import SqliteSink
from mcpr_integrations.store import Store, StoreError, request_status
from tests.integrations.store_data import NOW


def request(rid: str = "r1", **fields: Any) -> RequestEvent:
    """A plain successful POST; `fields` override."""
    base: dict[str, Any] = {
        "id": rid,
        "ts": NOW,
        "proxy": "p",
        "method": "POST",
        "path": "/mcp",
        "status": 200,
        "latency_us": 1234,
        "request_size": 10,
        "response_size": 20,
        "note": "ok",
    }
    return RequestEvent(**{**base, **fields})


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """Run a query on a separate connection."""
    conn = apsw.Connection(str(path))
    try:
        return [tuple(r) for r in conn.execute(sql)]
    finally:
        conn.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """Where the test's store lives."""
    return tmp_path / "store.db"


@pytest.fixture
def store(path: Path) -> Iterator[Store]:
    """An open store, closed after the test."""
    s = Store(path, mcpr_version="test")
    try:
        yield s
    finally:
        s.close()


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, "ok"),
        ({"status": 404}, "ok"),
        ({"status": 504, "note": "timeout", "error_code": 504}, "timeout"),
        ({"status": 0, "note": "timeout"}, "timeout"),
        ({"error_code": -32602, "error_msg": "Invalid params"}, "error"),
        ({"error_msg": "tool error"}, "error"),
        ({"status": 500}, "error"),
        ({"status": 502, "note": "upstream_unreachable", "error_code": 502}, "error"),
        ({"status": 413, "note": "rejected"}, "error"),
        ({"note": "truncated"}, "error"),
    ],
)
def test_request_status(fields: dict[str, Any], expected: str) -> None:
    """504 is a timeout; JSON-RPC errors, HTTP 5xx and proxy errors are errors."""
    assert request_status(request(**fields)) == expected


def test_request_event_becomes_one_row(store: Store, path: Path) -> None:
    """Every column is filled from the event, with the store's names and types."""
    store.put(
        [
            request(
                session_id=None,
                mcp_method="resources/read",
                resource_uri="ui://map",
                error_code=-32002,
                error_msg="not found",
                client_name="claude-ai",
                client_version="1.0",
                client_platform="claude",
                protocol_version="2026-07-28",
                era="modern",
                header_mismatch=True,
            )
        ]
    )
    store.flush()
    assert rows(path, "SELECT * FROM requests") == [
        (1, "r1", NOW, "p", None, "resources/read", None, 1234, "error", "-32002", "not found",
         10, 20, "ui://map", None, "claude-ai", "1.0", "claude", "2026-07-28", "modern", 1)
    ]  # fmt: skip


def test_method_falls_back_to_the_http_verb(store: Store, path: Path) -> None:
    """A request without a JSON-RPC method is stored under its HTTP verb."""
    store.put([request(method="GET", response_size=None)])
    store.flush()
    assert rows(path, "SELECT method, bytes_out FROM requests") == [("GET", None)]


def test_long_error_message_is_cut_to_512_characters(store: Store, path: Path) -> None:
    """error_msg is at most 512 characters in the store."""
    store.put([request(error_msg="x" * 600)])
    store.flush()
    assert rows(path, "SELECT length(error_msg) FROM requests") == [(512,)]


def test_session_lifecycle(store: Store, path: Path) -> None:
    """session_start inserts, requests bump calls/errors/last_seen, session_end sets ended_at."""
    store.put(
        [
            SessionStart(session_id="s", ts=NOW, proxy="p", client_name="c", client_version="1"),
            SessionStart(session_id="s", ts=NOW + 1, proxy="p", client_name="other"),
            request("a", ts=NOW + 10, session_id="s"),
            request("b", ts=NOW + 5, session_id="s", error_msg="tool error"),
            request("c", ts=NOW + 20, session_id="s", status=504, note="timeout"),
            SessionEnd(session_id="s", ts=NOW + 30, proxy="p", reason="deleted"),
            SessionEnd(session_id="s", ts=NOW + 40, proxy="p", reason="expired"),
        ]
    )
    store.flush()
    assert rows(path, "SELECT * FROM sessions") == [
        ("s", "p", NOW, NOW + 20, NOW + 30, "c", "1", None, 3, 2)
    ]


def test_accepted_session_is_created_by_its_first_request(store: Store, path: Path) -> None:
    """A 2xx request in an unknown session creates it; a 4xx one (a stale id) does not."""
    store.put(
        [
            request("a", session_id="s1", client_name="claude-ai", client_platform="claude"),
            request("b", session_id="gone", status=404),
        ]
    )
    store.flush()
    assert rows(path, "SELECT session_id, started_at, client_name, total_calls FROM sessions") == [
        ("s1", NOW, "claude-ai", 1)
    ]


def test_legacy_request_takes_client_identity_from_its_session(store: Store, path: Path) -> None:
    """Version 6: a request without its own client fields inherits its session's."""
    store.put(
        [
            SessionStart(
                session_id="s", ts=NOW, proxy="p", client_name="vscode", client_platform="vscode"
            ),
            request("a", session_id="s"),
            request("b", session_id="s", client_name="own"),
        ]
    )
    store.flush()
    assert rows(path, "SELECT request_id, client_name, client_platform FROM requests") == [
        ("a", "vscode", "vscode"),
        ("b", "own", "vscode"),
    ]


def test_schema_version_created_upserts_and_appends_changes(store: Store, path: Path) -> None:
    """The snapshot is replaced per (proxy, upstream, method); every change is appended."""
    change = SchemaChange("tool_added", "search", None, "h2")
    store.put(
        [
            SchemaVersionCreated(NOW, "p", "http://u/mcp", "tools/list", "[1]", "h1"),
            SchemaVersionCreated(
                NOW + 1, "p", "http://u/mcp", "tools/list", "[2]", "h2", (change,)
            ),
        ]
    )
    store.flush()
    assert rows(path, "SELECT payload, captured_at, schema_hash FROM server_schema") == [
        ("[2]", NOW + 1, "h2")
    ]
    assert rows(
        path, "SELECT change_type, item_name, old_hash, new_hash, detected_at FROM schema_changes"
    ) == [("tool_added", "search", None, "h2", NOW + 1)]


def test_heartbeat_is_not_stored(store: Store, path: Path) -> None:
    """Heartbeats are skipped, and counted as such."""
    store.put([Heartbeat(NOW, "p", "up", 10, 5, 0)])
    store.flush()
    assert rows(path, "SELECT COUNT(*) FROM requests") == [(0,)]
    assert store.statistics().skipped == 1


def test_failing_statement_is_reported_and_skipped(path: Path) -> None:
    """A duplicate request id is reported; the rest of its batch is still written."""
    reports: list[str] = []
    store = Store(path, mcpr_version="t", on_error=lambda message, exc: reports.append(message))
    try:
        store.put([request("a"), request("a"), request("b")])
        store.flush()
        assert rows(path, "SELECT request_id FROM requests") == [("a",), ("b",)]
        assert reports == ["store: request event skipped"]
        stats = store.statistics()
        assert (stats.accepted, stats.stored, stats.failed) == (3, 2, 1)
    finally:
        store.close()


def test_failures_are_logged_by_default(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Without an error callback, skipped events go to the `mcpr.store` logger."""
    with Store(path, mcpr_version="t") as store:
        store.put([request("a"), request("a")])
    assert any(r.name == "mcpr.store" and "skipped" in r.getMessage() for r in caplog.records)


def test_close_drains_everything_accepted(path: Path) -> None:
    """close() returns only after every accepted event is committed, across many batches."""
    store = Store(path, mcpr_version="t", batch_size=7, queue_size=50)
    feeder = threading.Thread(target=store.put, args=([request(f"r{i}") for i in range(1000)],))
    feeder.start()
    feeder.join()
    store.close()
    assert rows(path, "SELECT COUNT(*) FROM requests") == [(1000,)]
    assert store.statistics().stored == 1000


def test_put_after_close_is_refused(store: Store) -> None:
    """A closed store accepts nothing more."""
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.put([request()])


def test_sqlite_sink_opens_the_store_named_by_mcpr_db(tmp_path: Path) -> None:
    """SqliteSink.open follows MCPR_DB, writes events, and close() drains them."""
    target = tmp_path / "sub" / "events.db"
    sink = SqliteSink.open({"MCPR_DB": str(target)}, mcpr_version="t")
    assert sink.name == "sqlite"
    sink.on_event(request("a"))
    sink.on_batch([request("b"), request("c")])
    sink.flush()
    assert sink.statistics().stored == 3
    sink.close()
    assert rows(target, "SELECT COUNT(*) FROM requests") == [(3,)]
