"""Reading the captured server schemas: snapshots, their changes, and tools nobody calls.

Rules of this module:

* The writer fills `server_schema` (the latest merged snapshot per proxy, upstream and
  method) and `schema_changes` (one row per difference) from `schema_version_created`
  events; this module only reads them, through a connection the caller opened.
* `load_snapshots` is what a starting proxy calls to seed `mcpr_core.schema.SchemaCapture`
  with the last stored snapshots of its upstream, so an unchanged server creates no new
  version after a restart. It opens its own short-lived read connection, and a store that
  does not exist yet simply has nothing to load.
* A payload is JSON text written by mcpr; one that does not parse (edited by hand) lists
  no tools rather than failing the command.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import apsw

from mcpr_integrations.store.schema import StoreMissingError, open_reader

__all__ = [
    "SchemaChangeRow",
    "SchemaRow",
    "UnusedToolRow",
    "load_snapshots",
    "schema_changes",
    "schema_snapshots",
    "tool_names",
    "unused_tools",
]

_SNAPSHOT_COLUMNS = "proxy, upstream_url, method, payload, captured_at, schema_hash"
_CHANGE_COLUMNS = (
    "id, proxy, upstream_url, method, change_type, item_name, old_hash, new_hash, detected_at"
)


@dataclass(frozen=True, slots=True)
class SchemaRow:
    """One row of `server_schema`: the latest snapshot of a method (payload as JSON text)."""

    proxy: str
    upstream_url: str
    method: str
    payload: str
    captured_at: int
    schema_hash: str

    def to_dict(self) -> dict[str, Any]:
        """The row keyed by column name, with the payload parsed (text if it is not JSON)."""
        out = asdict(self)
        with contextlib.suppress(ValueError):
            out["payload"] = json.loads(self.payload)
        return out


@dataclass(frozen=True, slots=True)
class SchemaChangeRow:
    """One row of `schema_changes`."""

    id: int
    proxy: str
    upstream_url: str
    method: str
    change_type: str
    item_name: str | None
    old_hash: str | None
    new_hash: str | None
    detected_at: int

    def to_dict(self) -> dict[str, Any]:
        """The row keyed by column name."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class UnusedToolRow:
    """A tool the latest `tools/list` of a proxy offers that was not called in the window.

    `last_called` is the newest `tools/call` of it ever recorded (before the window), or
    None when it was never called.
    """

    proxy: str
    upstream_url: str
    tool: str
    last_called: int | None

    def to_dict(self) -> dict[str, Any]:
        """The row as plain data."""
        return asdict(self)


def _where(proxy: str | None, method: str | None, since: tuple[str, int | None] | None) -> str:
    clauses = []
    if proxy is not None:
        clauses.append("proxy = :proxy")
    if method is not None:
        clauses.append("method = :method")
    if since is not None and since[1] is not None:
        clauses.append(f"{since[0]} >= :since")
    return " WHERE " + " AND ".join(clauses) if clauses else ""


def schema_snapshots(
    conn: apsw.Connection,
    *,
    proxy: str | None = None,
    upstream_url: str | None = None,
    method: str | None = None,
) -> list[SchemaRow]:
    """The latest snapshots, by proxy, upstream and method."""
    where = _where(proxy, method, None)
    if upstream_url is not None:
        where += (" AND" if where else " WHERE") + " upstream_url = :upstream_url"
    rows = conn.execute(
        f"SELECT {_SNAPSHOT_COLUMNS} FROM server_schema{where}"
        " ORDER BY proxy, upstream_url, method",
        {"proxy": proxy, "method": method, "upstream_url": upstream_url},
    )
    return [SchemaRow(*row) for row in rows]


def schema_changes(
    conn: apsw.Connection,
    *,
    proxy: str | None = None,
    method: str | None = None,
    since_ms: int | None = None,
    limit: int,
) -> list[SchemaChangeRow]:
    """Recorded changes, newest first; `since_ms` bounds `detected_at`."""
    where = _where(proxy, method, ("detected_at", since_ms))
    rows = conn.execute(
        f"SELECT {_CHANGE_COLUMNS} FROM schema_changes{where}"
        " ORDER BY detected_at DESC, id DESC LIMIT :limit",
        {"proxy": proxy, "method": method, "since": since_ms, "limit": limit},
    )
    return [SchemaChangeRow(*row) for row in rows]


def tool_names(payload: str) -> list[str]:
    """The distinct tool names of a `tools/list` payload, sorted; none if it is not readable."""
    try:
        value = json.loads(payload)
    except ValueError:
        return []
    listed = value.get("tools") if isinstance(value, dict) else None
    if not isinstance(listed, list):
        return []
    names = [item.get("name") for item in listed if isinstance(item, dict)]
    return sorted({name for name in names if isinstance(name, str)})


def unused_tools(
    conn: apsw.Connection, *, proxy: str | None = None, since_ms: int
) -> list[UnusedToolRow]:
    """Tools of each proxy's latest `tools/list` with no `tools/call` since `since_ms`."""
    out: list[UnusedToolRow] = []
    last_called: dict[str, dict[str, int]] = {}
    for snapshot in schema_snapshots(conn, proxy=proxy, method="tools/list"):
        calls = last_called.get(snapshot.proxy)
        if calls is None:
            calls = last_called[snapshot.proxy] = {
                tool: ts
                for tool, ts in conn.execute(
                    "SELECT tool, MAX(ts) FROM requests WHERE proxy = ? AND method = 'tools/call'"
                    " AND tool IS NOT NULL GROUP BY tool",
                    (snapshot.proxy,),
                )
            }
        for name in tool_names(snapshot.payload):
            last = calls.get(name)
            if last is None or last < since_ms:
                out.append(UnusedToolRow(snapshot.proxy, snapshot.upstream_url, name, last))
    return out


def load_snapshots(path: Path, *, proxy: str, upstream_url: str, now_ms: int) -> list[SchemaRow]:
    """The stored snapshots of `proxy` in front of `upstream_url` (none when there is no store).

    Feed each to `SchemaCapture.load(row.method, row.payload, row.schema_hash)`. Raises
    `StoreError` when the file exists but cannot be read.
    """
    try:
        conn = open_reader(path, now_ms=now_ms)
    except StoreMissingError:
        return []
    try:
        return schema_snapshots(conn, proxy=proxy, upstream_url=upstream_url)
    finally:
        conn.close()
