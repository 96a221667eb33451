"""The store's schema, its numbered migrations, and opening a connection (STORE.md).

Rules of this module:

* Table and column names are a public interface: users query the file with `sqlite3`.
* `meta.schema_version` says which migrations a file has had. Every opener (the writer and
  each reader) runs the missing ones on open, inside one `BEGIN IMMEDIATE` transaction that
  re-reads the version first, so two processes opening an old file at once migrate it once.
* A new file is created at the latest version in one step (`LATEST`). An existing file is
  brought forward by the numbered steps in `MIGRATIONS` (step N turns version N-1 into N),
  applied in order and each guarded by the stored version. Version 5 (STORE.md "Tables") is
  the oldest documented schema, so the steps start at 6; versions 1 to 4 of the reference
  tool were never written down, and files stamped with one are refused with a clear message
  rather than guessed at.
* A file stamped with a newer version than this code knows is refused too: an old mcpr must
  not write rows a newer schema does not expect.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import apsw

__all__ = [
    "LATEST",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "StoreError",
    "StoreMissingError",
    "default_store_path",
    "migrate",
    "open_reader",
    "open_writer",
    "schema_version",
]

#: The schema version this code writes and reads natively.
SCHEMA_VERSION = 6


class StoreError(Exception):
    """The store file cannot be opened, created or migrated."""


class StoreMissingError(StoreError):
    """There is no store file yet (nothing has been recorded)."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema step: run `statements` on a file at `version - 1`."""

    version: int
    description: str
    statements: tuple[str, ...]


# The `requests` table of version 5, left open so that version 6 can append its columns.
_REQUESTS_COLUMNS_V5 = """
CREATE TABLE requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL UNIQUE,
    ts INTEGER NOT NULL,
    proxy TEXT NOT NULL,
    session_id TEXT,
    method TEXT NOT NULL,
    tool TEXT,
    latency_us INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'error', 'timeout')),
    error_code TEXT,
    error_msg TEXT,
    bytes_in INTEGER,
    bytes_out INTEGER,
    resource_uri TEXT,
    prompt_name TEXT
"""

_V6_COLUMNS = (
    ("client_name", "TEXT"),
    ("client_version", "TEXT"),
    ("client_platform", "TEXT"),
    ("protocol_version", "TEXT"),
    ("era", "TEXT CHECK (era IN ('legacy', 'modern'))"),
    ("header_mismatch", "INTEGER NOT NULL DEFAULT 0"),
)

_OTHER_TABLES = (
    """CREATE TABLE sessions (
        session_id TEXT PRIMARY KEY,
        proxy TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        last_seen_at INTEGER NOT NULL,
        ended_at INTEGER,
        client_name TEXT,
        client_version TEXT,
        client_platform TEXT,
        total_calls INTEGER NOT NULL DEFAULT 0,
        total_errors INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE server_schema (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        proxy TEXT NOT NULL,
        upstream_url TEXT NOT NULL,
        method TEXT NOT NULL,
        payload TEXT NOT NULL,
        captured_at INTEGER NOT NULL,
        schema_hash TEXT NOT NULL,
        UNIQUE (proxy, upstream_url, method)
    )""",
    """CREATE TABLE schema_changes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        proxy TEXT NOT NULL,
        upstream_url TEXT NOT NULL,
        method TEXT NOT NULL,
        change_type TEXT NOT NULL,
        item_name TEXT,
        old_hash TEXT,
        new_hash TEXT,
        detected_at INTEGER NOT NULL
    )""",
)

_INDEXES_V5 = (
    "CREATE INDEX idx_requests_ts ON requests (ts)",
    "CREATE INDEX idx_requests_proxy_ts ON requests (proxy, ts)",
    "CREATE INDEX idx_requests_tool_ts ON requests (tool, ts) WHERE tool IS NOT NULL",
    "CREATE INDEX idx_requests_session ON requests (session_id) WHERE session_id IS NOT NULL",
    "CREATE INDEX idx_requests_status_ts ON requests (status, ts)",
    "CREATE INDEX idx_requests_slow ON requests (proxy, latency_us DESC, ts)",
    "CREATE INDEX idx_sessions_proxy_started ON sessions (proxy, started_at)",
    "CREATE INDEX idx_sessions_client ON sessions (client_name, client_platform)",
    "CREATE INDEX idx_sessions_active ON sessions (proxy, last_seen_at) WHERE ended_at IS NULL",
)

_INDEXES_V6 = ("CREATE INDEX idx_requests_client_ts ON requests (client_name, ts)",)

#: A new file, created at the latest version directly.
LATEST = Migration(
    SCHEMA_VERSION,
    "create the version-6 schema",
    (
        _REQUESTS_COLUMNS_V5 + "".join(f",\n    {name} {kind}" for name, kind in _V6_COLUMNS) + ")",
        *_OTHER_TABLES,
        *_INDEXES_V5,
        *_INDEXES_V6,
    ),
)

#: Numbered steps for existing files, oldest first.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        6,
        "the 2026-07-28 era: client identity, protocol version and era on every request",
        (
            *(f"ALTER TABLE requests ADD COLUMN {name} {kind}" for name, kind in _V6_COLUMNS),
            *_INDEXES_V6,
        ),
    ),
)


def default_store_path(environ: Mapping[str, str]) -> Path:
    """`MCPR_DB` when set and non-empty, else `$HOME/.mcpr/store.db`."""
    configured = environ.get("MCPR_DB", "")
    if configured:
        return Path(configured).expanduser()
    home = environ.get("HOME", "")
    return (Path(home) if home else Path.home()) / ".mcpr" / "store.db"


def schema_version(conn: apsw.Connection) -> int:
    """The version stamped in `meta` (0 for a file without one)."""
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if has_meta is None:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row is not None else 0


def migrate(
    conn: apsw.Connection,
    *,
    now_ms: int,
    migrations: Sequence[Migration] = MIGRATIONS,
    latest: Migration = LATEST,
) -> int:
    """Bring the file to `latest.version`; return the version it had before.

    An empty file gets `latest` in one step; an older one gets every step of `migrations`
    above its version, in order. All of it happens in one immediate transaction.
    """
    oldest = min((m.version for m in migrations), default=latest.version)
    conn.execute("BEGIN IMMEDIATE")
    try:
        before = schema_version(conn)
        if before == 0 and _has_tables(conn):
            raise StoreError("the file holds tables but no mcpr schema version")
        if before > latest.version:
            raise StoreError(
                f"store schema version {before} is newer than this mcpr knows "
                f"({latest.version}); upgrade mcpr"
            )
        if 0 < before < oldest - 1:
            raise StoreError(
                f"store schema version {before} is older than this mcpr can migrate "
                f"(from {oldest - 1}); move the file aside to start a new store"
            )
        steps = [latest] if before == 0 else [m for m in migrations if m.version > before]
        for step in sorted(steps, key=lambda m: m.version):
            for statement in step.statements:
                conn.execute(statement)
            _set_meta(conn, "schema_version", str(step.version))
        if before == 0:
            _set_meta(conn, "created_at", str(now_ms))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return before


def _has_tables(conn: apsw.Connection) -> bool:
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).fetchone()
    return found is not None


def _set_meta(conn: apsw.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def _configure(conn: apsw.Connection) -> None:
    # STORE.md: WAL so readers never block the writer; NORMAL is durable in WAL mode except
    # for the last transactions on power loss; 5 s of patience for a busy file.
    conn.pragma("busy_timeout", 5000)
    conn.pragma("journal_mode", "wal")
    conn.pragma("synchronous", "normal")
    conn.pragma("temp_store", "memory")


def open_writer(path: Path, *, now_ms: int, mcpr_version: str) -> apsw.Connection:
    """Create (mode 0600, parents too) or open the file, set the pragmas, migrate it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Create the file ourselves so that its mode is 0600 from the first byte; SQLite
        # gives the -wal and -shm files the same mode as the database file.
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    except OSError as exc:
        raise StoreError(f"cannot create {path}: {exc.strerror}") from exc
    conn = _connect(path, apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE)
    try:
        _configure(conn)
        migrate(conn, now_ms=now_ms)
        with conn:
            _set_meta(conn, "mcpr_version", mcpr_version)
    except apsw.Error as exc:
        conn.close()
        raise StoreError(f"cannot open {path}: {exc}") from exc
    except StoreError:
        conn.close()
        raise
    return conn


def open_reader(path: Path, *, now_ms: int) -> apsw.Connection:
    """Open an existing store for queries (migrating it if it is older); never create one."""
    if not path.exists():
        raise StoreMissingError(f"no store at {path} yet: run `mcpr proxy run` to record traffic")
    conn = _connect(path, apsw.SQLITE_OPEN_READWRITE)
    try:
        conn.pragma("busy_timeout", 5000)
        if schema_version(conn) != SCHEMA_VERSION:
            migrate(conn, now_ms=now_ms)
    except apsw.Error as exc:
        conn.close()
        raise StoreError(f"cannot read {path}: {exc}") from exc
    except StoreError:
        conn.close()
        raise
    return conn


def _connect(path: Path, flags: int) -> apsw.Connection:
    try:
        return apsw.Connection(str(path), flags=flags)
    except apsw.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc
