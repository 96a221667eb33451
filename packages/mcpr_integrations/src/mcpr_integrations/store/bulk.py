"""Request and session events written by one statement per batch, each as on its own.

apsw lets go of the GIL around every SQLite call, and a writer thread that gives the GIL
up must wait for it again: in a proxy whose event loop keeps the GIL busy, that wait is
up to `sys.getswitchinterval()` (5 ms) per call. Three statements per request (open the
session, insert the request, bump the session), and one per session start or end, capped
the store at a few hundred to a few thousand events per second under load, far below
what the proxy serves: the bus then dropped what the store could not take.

So the writer's connection gets a TEMP view, `store_events`, with INSTEAD OF INSERT
triggers that run, for each row, exactly the statements of one event on its own (the
same SQL text as the one-at-a-time path, `?` parameters replaced by the row's columns).
A run of consecutive request, session-start and session-end events becomes one JSON
array and one `INSERT INTO store_events SELECT … FROM json_each(?)`: one SQLite call,
rows processed in order, the same rows as writing the events one by one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final

import apsw

from mcpr_core.events import ERROR_MSG_MAX, RequestEvent, SessionEnd, SessionStart

__all__ = [
    "BUMP_SESSION",
    "END_SESSION",
    "INSERT_REQUEST",
    "START_SESSION",
    "Event",
    "accepted",
    "install",
    "request_row",
    "write_events",
]

_REQUEST_COLUMNS: Final = (
    "request_id",
    "ts",
    "proxy",
    "session_id",
    "method",
    "tool",
    "latency_us",
    "status",
    "error_code",
    "error_msg",
    "bytes_in",
    "bytes_out",
    "resource_uri",
    "prompt_name",
    "client_name",
    "client_version",
    "client_platform",
    "protocol_version",
    "era",
    "header_mismatch",
)
#: The columns of `store_events`: a kind ('r', 's', 'e'), the request's, and for requests
#: whether it opens its session (`accepted`) and counts as an error (`failed`).
_EVENT_COLUMNS: Final = ("kind", *_REQUEST_COLUMNS, "accepted", "failed")


def _start_session(values: str) -> str:
    """Open a session, or keep its earliest start, clear its end when it comes after it,
    and fill its client fields still empty; `values` gives the 7 inserted columns."""
    return (
        "INSERT INTO sessions (session_id, proxy, started_at, last_seen_at, client_name,"
        f" client_version, client_platform) {values}"
        " ON CONFLICT (session_id) DO UPDATE SET"
        " started_at = MIN(started_at, excluded.started_at),"
        " ended_at = CASE WHEN excluded.started_at > ended_at THEN NULL ELSE ended_at END,"
        " client_name = COALESCE(client_name, excluded.client_name),"
        " client_version = COALESCE(client_version, excluded.client_version),"
        " client_platform = COALESCE(client_platform, excluded.client_platform)"
    )


def _insert_request(refs: Sequence[str]) -> str:
    """Insert a request from the 20 expressions `refs` (in `_REQUEST_COLUMNS` order); a
    client field it lacks is taken from its session."""
    sid = refs[3]
    values = [
        f"COALESCE({ref}, (SELECT {column} FROM sessions WHERE session_id = {sid}))"
        if column in ("client_name", "client_version", "client_platform")
        else ref
        for column, ref in zip(_REQUEST_COLUMNS, refs, strict=True)
    ]
    return f"INSERT INTO requests ({', '.join(_REQUEST_COLUMNS)}) VALUES ({', '.join(values)})"


def _bump_session(ts: str, failed: str, sid: str) -> str:
    return (
        f"UPDATE sessions SET last_seen_at = MAX(last_seen_at, {ts}),"
        f" total_calls = total_calls + 1, total_errors = total_errors + {failed}"
        f" WHERE session_id = {sid}"
    )


def _end_session(ts: str, sid: str) -> str:
    return f"UPDATE sessions SET ended_at = {ts} WHERE session_id = {sid} AND ended_at IS NULL"


#: One session start: session_id, proxy, ts, ts, client_name, client_version, client_platform.
START_SESSION: Final = _start_session("VALUES (?, ?, ?, ?, ?, ?, ?)")
#: One request, bound from `request_row`.
INSERT_REQUEST: Final = _insert_request([f"?{i}" for i in range(1, 21)])
#: Bump a session by one request: its ts, 1 if it failed else 0, the session id.
BUMP_SESSION: Final = _bump_session("?", "?", "?")
#: One session end: ts, session id.
END_SESSION: Final = _end_session("?", "?")

_NEW: Final = {column: f"NEW.{column}" for column in _EVENT_COLUMNS}
_TRIGGERS: Final = (
    "CREATE TEMP VIEW store_events AS SELECT "
    + ", ".join(f"NULL AS {column}" for column in _EVENT_COLUMNS)
    + " WHERE 0;"
    "CREATE TEMP TRIGGER store_request INSTEAD OF INSERT ON store_events"
    " WHEN NEW.kind = 'r' BEGIN "
    + _start_session(
        "SELECT NEW.session_id, NEW.proxy, NEW.ts, NEW.ts, NEW.client_name,"
        " NEW.client_version, NEW.client_platform"
        " WHERE NEW.session_id IS NOT NULL AND NEW.accepted"
    )
    + "; "
    + _insert_request([_NEW[column] for column in _REQUEST_COLUMNS])
    + "; "
    + _bump_session("NEW.ts", "NEW.failed", "NEW.session_id")
    + "; END;"
    "CREATE TEMP TRIGGER store_session_start INSTEAD OF INSERT ON store_events"
    " WHEN NEW.kind = 's' BEGIN "
    + _start_session(
        "SELECT NEW.session_id, NEW.proxy, NEW.ts, NEW.ts, NEW.client_name,"
        " NEW.client_version, NEW.client_platform WHERE true"
    )
    + "; END;"
    "CREATE TEMP TRIGGER store_session_end INSTEAD OF INSERT ON store_events"
    " WHEN NEW.kind = 'e' BEGIN " + _end_session("NEW.ts", "NEW.session_id") + "; END;"
)
_INSERT_EVENTS: Final = (
    "INSERT INTO store_events SELECT "
    + ", ".join(f"value ->> {i}" for i in range(len(_EVENT_COLUMNS)))
    + " FROM json_each(?) ORDER BY key"
)

Event = RequestEvent | SessionStart | SessionEnd


def install(conn: apsw.Connection) -> None:
    """Create the TEMP view and triggers of `write_events` on the writer's connection."""
    conn.execute(_TRIGGERS)


def request_row(event: RequestEvent, status: str) -> list[object]:
    """The values of the event's `requests` row, in column order (client fields as given)."""
    error_msg = event.error_msg[:ERROR_MSG_MAX] if event.error_msg is not None else None
    return [
        event.id,
        event.ts,
        event.proxy,
        event.session_id,
        event.mcp_method or event.method,
        event.tool,
        event.latency_us,
        status,
        str(event.error_code) if event.error_code is not None else None,
        error_msg,
        event.request_size,
        event.response_size,
        event.resource_uri,
        event.prompt_name,
        event.client_name,
        event.client_version,
        event.client_platform,
        event.protocol_version,
        event.era,
        int(event.header_mismatch),
    ]


def accepted(event: RequestEvent) -> bool:
    """Whether the request opens its session: a 2xx answer with a session id, not DELETE."""
    return event.session_id is not None and 200 <= event.status < 300 and event.method != "DELETE"


def _row(event: Event, status: str | None) -> list[object]:
    if isinstance(event, RequestEvent):
        assert status is not None
        return ["r", *request_row(event, status), int(accepted(event)), int(status != "ok")]
    row: list[object] = [None] * len(_EVENT_COLUMNS)
    row[0], row[2], row[4] = "e", event.ts, event.session_id
    if isinstance(event, SessionStart):
        row[0], row[3] = "s", event.proxy
        row[15:18] = event.client_name, event.client_version, event.client_platform
    return row


def write_events(conn: apsw.Connection, events: Sequence[tuple[Event, str | None]]) -> None:
    """Write events (each request with its stored status) in order, in one statement.

    Raises `UnicodeEncodeError` for text SQLite cannot take (a lone surrogate) and any
    apsw error; the caller then writes them one at a time to find the culprit.
    """
    rows = [_row(event, status) for event, status in events]
    payload = json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
    payload.encode("utf-8")  # a lone surrogate fails here, not half-way into SQLite
    conn.execute(_INSERT_EVENTS, (payload,))
