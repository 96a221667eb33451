"""Tests of storing captured schemas and reading them back; sessions reopened after an end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

from mcpr_core.events import (
    RequestEvent,
    SchemaChange,
    SchemaVersionCreated,
    SessionEnd,
    SessionStart,
)
from mcpr_core.schema import SchemaCapture, canonical_json
from mcpr_integrations.store import Store, StoreError
from mcpr_integrations.store.schema import open_reader
from mcpr_integrations.store.server_schema import (
    SchemaChangeRow,
    SchemaRow,
    UnusedToolRow,
    load_snapshots,
    schema_changes,
    schema_snapshots,
    tool_names,
    unused_tools,
)
from tests.integrations.schema_data import (
    ALPHA_URL,
    BETA_URL,
    DAY,
    HOUR,
    MINUTE,
    NOW,
    TOOLS_V2,
    fill,
    versions,
)


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding the schema dataset."""
    path = tmp_path_factory.mktemp("schema") / "store.db"
    fill(path)
    return path


@pytest.fixture
def conn(filled: Path) -> Iterator[apsw.Connection]:
    """A read connection to the filled store."""
    c = open_reader(filled, now_ms=NOW)
    yield c
    c.close()


def test_snapshots_hold_the_latest_version_per_method(conn: apsw.Connection) -> None:
    """One row per (proxy, upstream, method), the newest payload, ordered by proxy and method."""
    rows = schema_snapshots(conn)
    assert [(r.proxy, r.method, r.captured_at) for r in rows] == [
        ("alpha", "initialize", NOW - 3 * HOUR),
        ("alpha", "prompts/list", NOW - 3 * HOUR),
        ("alpha", "tools/list", NOW - HOUR),
        ("beta", "resources/templates/list", NOW - 2 * DAY),
    ]
    assert rows[2].payload == canonical_json({"tools": TOOLS_V2})
    assert rows[2].schema_hash == versions()[3].schema_hash


def test_snapshots_filter_by_proxy_method_and_upstream(conn: apsw.Connection) -> None:
    """Each filter narrows the snapshots; an unknown upstream has none."""
    assert [r.method for r in schema_snapshots(conn, proxy="beta")] == ["resources/templates/list"]
    assert [r.proxy for r in schema_snapshots(conn, method="tools/list")] == ["alpha"]
    assert len(schema_snapshots(conn, proxy="alpha", upstream_url=ALPHA_URL)) == 3
    assert schema_snapshots(conn, proxy="alpha", upstream_url=BETA_URL) == []


def test_changes_newest_first(conn: apsw.Connection) -> None:
    """Changes come newest first, each with its hashes and the time it was detected."""
    rows = schema_changes(conn, limit=3)
    v2 = versions()[3]
    assert rows == [
        SchemaChangeRow(
            6, "alpha", ALPHA_URL, "tools/list", "tool_modified", "search",
            v2.changes[2].old_hash, v2.changes[2].new_hash, NOW - HOUR,
        ),
        SchemaChangeRow(
            5, "alpha", ALPHA_URL, "tools/list", "tool_added", "report",
            None, v2.changes[1].new_hash, NOW - HOUR,
        ),
        SchemaChangeRow(
            4, "alpha", ALPHA_URL, "tools/list", "tool_removed", "legacy",
            v2.changes[0].old_hash, None, NOW - HOUR,
        ),
    ]  # fmt: skip


def test_changes_filter_by_proxy_method_and_time(conn: apsw.Connection) -> None:
    """proxy, method and since narrow the changes."""
    assert [r.change_type for r in schema_changes(conn, proxy="beta", limit=10)] == ["initial"]
    initial = schema_changes(conn, method="initialize", limit=10)
    assert [(r.proxy, r.change_type) for r in initial] == [("alpha", "initial")]
    recent = schema_changes(conn, since_ms=NOW - 2 * HOUR, limit=10)
    assert [r.item_name for r in recent] == ["search", "report", "legacy"]


def test_unused_tools_in_the_window(conn: apsw.Connection) -> None:
    """Listed tools without a call in the window, with their last call ever (or None)."""
    assert unused_tools(conn, since_ms=NOW - 7 * DAY) == [
        UnusedToolRow("alpha", ALPHA_URL, "fetch", NOW - 10 * DAY),
        UnusedToolRow("alpha", ALPHA_URL, "report", None),
    ]
    assert unused_tools(conn, since_ms=NOW - 30 * DAY) == [
        UnusedToolRow("alpha", ALPHA_URL, "report", None)
    ]
    assert unused_tools(conn, proxy="beta", since_ms=NOW - 7 * DAY) == []


def test_restart_loads_the_snapshots_and_creates_no_duplicate(filled: Path) -> None:
    """Seeding a new capture from the store: the same answers create no version, a change does."""
    rows = load_snapshots(filled, proxy="alpha", upstream_url=ALPHA_URL, now_ms=NOW)
    assert [r.method for r in rows] == ["initialize", "prompts/list", "tools/list"]
    capture = SchemaCapture("alpha", ALPHA_URL)
    for row in rows:
        assert capture.load(row.method, row.payload, row.schema_hash)
    assert capture.observe("tools/list", None, {"tools": list(reversed(TOOLS_V2))}, NOW) is None
    changed = capture.observe("tools/list", None, {"tools": TOOLS_V2[:2]}, NOW)
    assert changed is not None
    assert [(c.change_type, c.item_name) for c in changed.changes] == [("tool_removed", "report")]


def test_load_without_a_store_has_nothing(tmp_path: Path) -> None:
    """Before the first run there is no file, hence nothing to seed, and no file is created."""
    path = tmp_path / "none.db"
    assert load_snapshots(path, proxy="p", upstream_url=ALPHA_URL, now_ms=NOW) == []
    assert not path.exists()


def test_load_from_an_unreadable_file_raises(tmp_path: Path) -> None:
    """A file that is not a store is an error, not an empty load."""
    path = tmp_path / "bad.db"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError):
        load_snapshots(path, proxy="p", upstream_url=ALPHA_URL, now_ms=NOW)


def test_writer_upserts_snapshot_and_appends_changes(tmp_path: Path) -> None:
    """A second version replaces the snapshot and adds its change rows after the first's."""
    path = tmp_path / "store.db"
    first = SchemaVersionCreated(NOW, "p", ALPHA_URL, "tools/list", '{"tools":[]}', "h1",
                                 (SchemaChange("initial", None, None, "h1"),))  # fmt: skip
    second = SchemaVersionCreated(
        NOW + MINUTE, "p", ALPHA_URL, "tools/list", '{"tools":[{"name":"a"}]}', "h2",
        (SchemaChange("tool_added", "a", None, "ha"),),
    )  # fmt: skip
    with Store(path, mcpr_version="test") as store:
        store.put([first, second])
    conn = open_reader(path, now_ms=NOW)
    try:
        assert schema_snapshots(conn) == [
            SchemaRow("p", ALPHA_URL, "tools/list", '{"tools":[{"name":"a"}]}', NOW + MINUTE, "h2")
        ]
        assert [(r.change_type, r.detected_at) for r in schema_changes(conn, limit=5)] == [
            ("tool_added", NOW + MINUTE),
            ("initial", NOW),
        ]
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("payload", "names"),
    [
        ('{"tools":[{"name":"b"},{"name":"a"},{"name":"b"}]}', ["a", "b"]),
        ('{"tools":[{"name":{"x":1}},{"name":3},{"title":"t"},7,{"name":"ok"}]}', ["ok"]),
        ('{"tools":{}}', []),
        ("[1,2]", []),
        ("{broken", []),
    ],
)
def test_tool_names_of_any_payload(payload: str, names: list[str]) -> None:
    """Tool names are read defensively: odd items and broken payloads list nothing."""
    assert tool_names(payload) == names


def test_schema_row_to_dict_parses_the_payload() -> None:
    """--json shows the payload as JSON, or as text when it is not JSON."""
    row = SchemaRow("p", ALPHA_URL, "initialize", '{"a":1}', NOW, "h")
    assert row.to_dict() == {
        "proxy": "p",
        "upstream_url": ALPHA_URL,
        "method": "initialize",
        "payload": {"a": 1},
        "captured_at": NOW,
        "schema_hash": "h",
    }
    assert SchemaRow("p", ALPHA_URL, "initialize", "oops", NOW, "h").to_dict()["payload"] == "oops"


def _request(rid: str, ts: int, *, method: str = "POST", status: int = 200) -> RequestEvent:
    """A request in session `s` of proxy `p`."""
    return RequestEvent(
        id=rid, ts=ts, proxy="p", method=method, path="/mcp", status=status,
        latency_us=10, request_size=1, note="ok", session_id="s",
    )  # fmt: skip


def _session_rows(path: Path) -> list[tuple[object, ...]]:
    conn = open_reader(path, now_ms=NOW)
    try:
        return [tuple(r) for r in conn.execute("SELECT started_at, ended_at FROM sessions")]
    finally:
        conn.close()


def test_session_started_again_after_its_end_is_open(tmp_path: Path) -> None:
    """A session ended at shutdown and adopted by the next process is active again."""
    path = tmp_path / "store.db"
    with Store(path, mcpr_version="test") as store:
        store.put(
            [
                SessionStart(session_id="s", ts=NOW, proxy="p", client_name="c"),
                SessionEnd(session_id="s", ts=NOW + 10, proxy="p", reason="shutdown"),
                SessionStart(session_id="s", ts=NOW + 20, proxy="p"),
            ]
        )
    assert _session_rows(path) == [(NOW, None)]


def test_requests_reopen_only_when_they_arrived_after_the_end(tmp_path: Path) -> None:
    """Requests that arrived before the end (a long stream), DELETEs and 404s keep it ended."""
    path = tmp_path / "store.db"
    with Store(path, mcpr_version="test") as store:
        store.put(
            [
                SessionStart(session_id="s", ts=NOW, proxy="p"),
                SessionEnd(session_id="s", ts=NOW + 10, proxy="p", reason="deleted"),
                _request("stream", NOW + 5, method="GET"),
                _request("delete", NOW + 10, method="DELETE"),
                _request("late-delete", NOW + 11, method="DELETE"),
                _request("refused", NOW + 12, status=404),
            ]
        )
    assert _session_rows(path) == [(NOW, NOW + 10)]
    with Store(path, mcpr_version="test") as store:
        store.put([_request("back", NOW + 20)])
    assert _session_rows(path) == [(NOW, None)]


def test_accepted_delete_of_an_unseen_session_creates_no_row(tmp_path: Path) -> None:
    """A DELETE of a session the store never saw ends nothing and opens nothing."""
    path = tmp_path / "store.db"
    with Store(path, mcpr_version="test") as store:
        store.put(
            [
                SessionEnd(session_id="s", ts=NOW, proxy="p", reason="deleted"),
                _request("delete", NOW, method="DELETE"),
            ]
        )
    assert _session_rows(path) == []
