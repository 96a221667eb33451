"""Tests of the store's schema: creation, file mode, and migrations between versions."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import apsw
import pytest

from mcpr_integrations.store import SCHEMA_VERSION, StoreError, StoreMissingError, StoreReader
from mcpr_integrations.store.schema import (
    LATEST,
    Migration,
    default_store_path,
    migrate,
    open_reader,
    open_writer,
    schema_version,
)

NOW = 1_767_225_600_000

# The version-5 schema exactly as STORE.md documents it, as an older mcpr left it on disk.
V5_DDL = """
CREATE TABLE requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL UNIQUE, ts INTEGER NOT NULL,
    proxy TEXT NOT NULL, session_id TEXT, method TEXT NOT NULL, tool TEXT,
    latency_us INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'error', 'timeout')),
    error_code TEXT, error_msg TEXT, bytes_in INTEGER, bytes_out INTEGER, resource_uri TEXT,
    prompt_name TEXT);
CREATE INDEX idx_requests_ts ON requests (ts);
CREATE INDEX idx_requests_proxy_ts ON requests (proxy, ts);
CREATE INDEX idx_requests_tool_ts ON requests (tool, ts) WHERE tool IS NOT NULL;
CREATE INDEX idx_requests_session ON requests (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX idx_requests_status_ts ON requests (status, ts);
CREATE INDEX idx_requests_slow ON requests (proxy, latency_us DESC, ts);
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY, proxy TEXT NOT NULL, started_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL, ended_at INTEGER, client_name TEXT, client_version TEXT,
    client_platform TEXT, total_calls INTEGER NOT NULL DEFAULT 0,
    total_errors INTEGER NOT NULL DEFAULT 0);
CREATE INDEX idx_sessions_proxy_started ON sessions (proxy, started_at);
CREATE INDEX idx_sessions_client ON sessions (client_name, client_platform);
CREATE INDEX idx_sessions_active ON sessions (proxy, last_seen_at) WHERE ended_at IS NULL;
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE server_schema (
    id INTEGER PRIMARY KEY AUTOINCREMENT, proxy TEXT NOT NULL, upstream_url TEXT NOT NULL,
    method TEXT NOT NULL, payload TEXT NOT NULL, captured_at INTEGER NOT NULL,
    schema_hash TEXT NOT NULL, UNIQUE (proxy, upstream_url, method));
CREATE TABLE schema_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, proxy TEXT NOT NULL, upstream_url TEXT NOT NULL,
    method TEXT NOT NULL, change_type TEXT NOT NULL, item_name TEXT, old_hash TEXT,
    new_hash TEXT, detected_at INTEGER NOT NULL);
INSERT INTO meta VALUES ('schema_version', '5'), ('created_at', '1700000000000'),
    ('mcpr_version', '0.4.70');
INSERT INTO requests (request_id, ts, proxy, session_id, method, tool, latency_us, status)
    VALUES ('old-1', 1700000000000, 'alpha', 's1', 'tools/call', 'search', 1500, 'ok');
INSERT INTO sessions (session_id, proxy, started_at, last_seen_at, client_name, total_calls)
    VALUES ('s1', 'alpha', 1700000000000, 1700000000000, 'claude-ai', 1);
"""


@contextmanager
def connect(path: Path) -> Iterator[apsw.Connection]:
    """A plain connection to a test file, always closed."""
    conn = apsw.Connection(str(path))
    try:
        yield conn
    finally:
        conn.close()


def layout(conn: apsw.Connection) -> dict[str, Any]:
    """Every table's columns (name, type, not-null, default, pk) and every index's columns."""
    out: dict[str, Any] = {}
    tables = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    for table in tables:
        out[table] = [tuple(r[1:]) for r in conn.execute(f"PRAGMA table_info({table})")]
    for (index,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    ):
        out[f"index {index}"] = [r[2] for r in conn.execute(f"PRAGMA index_xinfo({index})")]
    return out


def write_v5(path: Path) -> None:
    """Leave a version-5 file with one request and one session at `path`."""
    with connect(path) as conn:
        conn.execute(V5_DDL)


def test_new_store_is_created_at_the_latest_version_with_mode_0600(tmp_path: Path) -> None:
    """A new store gets its parent folders, mode 0600 and schema version 6 in one step."""
    path = tmp_path / "deep" / "er" / "store.db"
    open_writer(path, now_ms=NOW, mcpr_version="9.9").close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with connect(path) as conn:
        assert schema_version(conn) == SCHEMA_VERSION == 6
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        assert meta == {"schema_version": "6", "created_at": str(NOW), "mcpr_version": "9.9"}
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_empty_file_is_migrated_to_the_latest_version(tmp_path: Path) -> None:
    """An existing empty file (0 bytes) is treated as a new store."""
    path = tmp_path / "store.db"
    path.touch()
    open_writer(path, now_ms=NOW, mcpr_version="1").close()
    with connect(path) as conn:
        assert schema_version(conn) == 6


def test_v5_file_migrates_to_v6_keeping_rows(tmp_path: Path) -> None:
    """A version-5 file gains the version-6 columns and index; old rows stay, new columns NULL."""
    path = tmp_path / "store.db"
    write_v5(path)
    open_writer(path, now_ms=NOW, mcpr_version="0.1.0").close()
    with connect(path) as conn:
        assert schema_version(conn) == 6
        row = conn.execute(
            "SELECT request_id, tool, client_name, client_version, client_platform,"
            " protocol_version, era, header_mismatch FROM requests"
        ).fetchall()
        assert row == [("old-1", "search", None, None, None, None, None, 0)]
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        assert meta["created_at"] == "1700000000000"
        assert meta["mcpr_version"] == "0.1.0"
        migrated = layout(conn)
    fresh_path = tmp_path / "fresh.db"
    open_writer(fresh_path, now_ms=NOW, mcpr_version="0.1.0").close()
    with connect(fresh_path) as conn:
        assert layout(conn) == migrated


def test_reader_migrates_an_older_file(tmp_path: Path) -> None:
    """Opening a version-5 file for queries migrates it too (a newer CLI reads an older file)."""
    path = tmp_path / "store.db"
    write_v5(path)
    with StoreReader(path, now_ms=NOW) as reader:
        assert schema_version(reader.connection) == 6


def test_reader_never_creates_a_store(tmp_path: Path) -> None:
    """Queries against a missing file fail clearly and leave no file behind."""
    path = tmp_path / "none" / "store.db"
    with pytest.raises(StoreMissingError, match="no store at"):
        open_reader(path, now_ms=NOW)
    assert not path.parent.exists()


def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    """A file written by a newer mcpr is not touched by this one."""
    path = tmp_path / "store.db"
    open_writer(path, now_ms=NOW, mcpr_version="1").close()
    with connect(path) as conn:
        conn.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="newer than this mcpr knows"):
        open_writer(path, now_ms=NOW, mcpr_version="1")


def test_undocumented_old_version_is_refused(tmp_path: Path) -> None:
    """A file older than version 5 is refused rather than guessed at."""
    path = tmp_path / "store.db"
    with connect(path) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '3')")
    with pytest.raises(StoreError, match="older than this mcpr can migrate"):
        open_writer(path, now_ms=NOW, mcpr_version="1")


def test_foreign_database_is_refused(tmp_path: Path) -> None:
    """A SQLite file with tables but no mcpr version is left alone."""
    path = tmp_path / "other.db"
    with connect(path) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    with pytest.raises(StoreError, match="no mcpr schema version"):
        open_writer(path, now_ms=NOW, mcpr_version="1")


def test_unopenable_path_is_a_store_error(tmp_path: Path) -> None:
    """A path under a regular file cannot hold a store: StoreError, not OSError."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create"):
        open_writer(blocker / "store.db", now_ms=NOW, mcpr_version="1")


def test_migration_runner_applies_missing_steps_in_order_once(tmp_path: Path) -> None:
    """The runner applies every step above the stored version, in order, and only once."""
    steps = (
        Migration(3, "third", ("INSERT INTO log VALUES (3)",)),
        Migration(2, "second", ("INSERT INTO log VALUES (2)",)),
    )
    latest = Migration(3, "create", ("CREATE TABLE log (step INTEGER)",))
    with connect(tmp_path / "x.db") as conn:
        conn.execute(
            "CREATE TABLE log (step INTEGER);"
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "INSERT INTO meta VALUES ('schema_version', '1')"
        )
        assert migrate(conn, now_ms=NOW, migrations=steps, latest=latest) == 1
        assert migrate(conn, now_ms=NOW, migrations=steps, latest=latest) == 3
        assert [r[0] for r in conn.execute("SELECT step FROM log")] == [2, 3]
        assert schema_version(conn) == 3


def test_failed_migration_leaves_the_file_unchanged(tmp_path: Path) -> None:
    """A step that fails rolls back every step of the run, version stamp included."""
    steps = (
        Migration(2, "ok", ("CREATE TABLE two (x)",)),
        Migration(3, "broken", ("THIS IS NOT SQL",)),
    )
    with connect(tmp_path / "x.db") as conn:
        conn.execute(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "INSERT INTO meta VALUES ('schema_version', '1')"
        )
        with pytest.raises(apsw.SQLError):
            migrate(conn, now_ms=NOW, migrations=steps, latest=LATEST)
        assert schema_version(conn) == 1
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'two'").fetchone() is None


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"MCPR_DB": "/data/x.db", "HOME": "/home/u"}, Path("/data/x.db")),
        ({"MCPR_DB": "", "HOME": "/home/u"}, Path("/home/u/.mcpr/store.db")),
        ({"HOME": "/home/u"}, Path("/home/u/.mcpr/store.db")),
    ],
)
def test_default_store_path(environ: dict[str, str], expected: Path) -> None:
    """MCPR_DB wins when set and non-empty; otherwise the file lives in ~/.mcpr."""
    assert default_store_path(environ) == expected


def test_wal_and_shm_files_share_the_private_mode(tmp_path: Path) -> None:
    """SQLite's side files are as private as the store itself."""
    path = tmp_path / "store.db"
    conn = open_writer(path, now_ms=NOW, mcpr_version="1")
    try:
        conn.execute("INSERT INTO meta VALUES ('k', 'v')")
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            assert os.path.exists(side)
            assert stat.S_IMODE(side.stat().st_mode) == 0o600
    finally:
        conn.close()
