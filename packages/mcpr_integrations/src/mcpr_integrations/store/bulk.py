"""A run of request events written with a few statements, whatever its length.

apsw lets go of the GIL around every SQLite call, and a writer thread that gives the GIL
up must wait for it again: in a proxy whose event loop keeps the GIL busy, that wait is
up to `sys.getswitchinterval()` (5 ms) per call. Three statements per request (open the
session, insert the request, bump the session) capped the store at a few hundred to a
few thousand requests per second under load, far below what the proxy serves. Here a run
of consecutive request events costs one `INSERT … SELECT … FROM json_each(?)` for all the
requests, one statement per distinct session to open it, and one statement per distinct
session to bump it: the same rows, in the same order, as one event at a time.

Why the result is the same (the writer applies other events one at a time, so a run
holds request events only, and no session ends inside it):

* Opening a session: each accepted request (2xx, not DELETE) inserts its session or keeps
  the earliest `started_at`, clears `ended_at` when it came after the end, and fills each
  client field still empty with its own. Over a run that is: the earliest and the latest
  accepted `ts`, and per field the first value given, which is what one upsert with
  those values does.
* Requests take a missing client identity from their session as it stands when they
  come: the stored session's field, else the first one given by an accepted request of
  the session earlier in the run. The requests are inserted before the sessions are
  opened, so the first is read from the table and the second is computed here.
* Requests bump their session (`last_seen_at`, `total_calls`, `total_errors`): that adds
  up, one update per session with the latest `ts`, the count and the errors.
* One difference: a run bumps the sessions it opens only once they are open. A request of
  a session not yet stored that comes before the session's first accepted request in the
  same run is counted in its totals (and `last_seen_at`), where one event at a time it
  would not be. A session id exists only once the server accepted it, so that takes a
  client reusing an id the store has not seen accepted yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import apsw

from mcpr_core.events import ERROR_MSG_MAX, RequestEvent

__all__ = ["BUMP_SESSION", "INSERT_REQUEST", "insert_requests", "request_row"]

_OPEN_SESSION = (
    "INSERT INTO sessions (session_id, proxy, started_at, last_seen_at, client_name,"
    " client_version, client_platform) VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (session_id) DO UPDATE SET"
    " started_at = MIN(started_at, excluded.started_at),"
    " ended_at = CASE WHEN excluded.last_seen_at > ended_at THEN NULL ELSE ended_at END,"
    " client_name = COALESCE(client_name, excluded.client_name),"
    " client_version = COALESCE(client_version, excluded.client_version),"
    " client_platform = COALESCE(client_platform, excluded.client_platform)"
)

_COLUMNS = (
    "request_id, ts, proxy, session_id, method, tool, latency_us, status, error_code,"
    " error_msg, bytes_in, bytes_out, resource_uri, prompt_name, client_name, client_version,"
    " client_platform, protocol_version, era, header_mismatch"
)


def _from_session(value: str, column: str, sid: str, run: str) -> str:
    """A client field as given, else the one its session has, else the one its run gave it."""
    return f"COALESCE({value}, (SELECT {column} FROM sessions WHERE session_id = {sid}), {run})"


def _select(values: list[str]) -> str:
    """The 20 values of `_COLUMNS`, client fields (14-16) taken from the session if absent.

    `values` may hold 3 more: the client fields the session got earlier in the run (not yet
    stored, since a run writes its requests before it opens their sessions).
    """
    sid = values[3]
    run = [*values[20:], "NULL", "NULL", "NULL"]
    return ", ".join(
        [
            *values[:14],
            _from_session(values[14], "client_name", sid, run[0]),
            _from_session(values[15], "client_version", sid, run[1]),
            _from_session(values[16], "client_platform", sid, run[2]),
            *values[17:20],
        ]
    )


#: One request, bound from `request_row`.
INSERT_REQUEST = (
    f"INSERT INTO requests ({_COLUMNS}) VALUES ({_select([f'?{i}' for i in range(1, 21)])})"
)
#: A run of requests: a JSON array of `request_row` lists, each followed by the client
#: fields its session got earlier in the run, inserted in order.
_INSERT_REQUESTS = (
    f"INSERT INTO requests ({_COLUMNS})"
    f" SELECT {_select([f'value ->> {i}' for i in range(23)])} FROM json_each(?) ORDER BY key"
)
#: Bump a session by `calls` requests, `errors` of them failed, the latest at `ts`.
BUMP_SESSION = (
    "UPDATE sessions SET last_seen_at = MAX(last_seen_at, ?),"
    " total_calls = total_calls + ?, total_errors = total_errors + ?"
    " WHERE session_id = ?"
)


def request_row(event: RequestEvent, status: str) -> list[object]:
    """The values of the event's `requests` row, in `_COLUMNS` order (client fields as given)."""
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


@dataclass(slots=True)
class _Session:
    """What a run does to one session."""

    proxy: str
    opened: bool = False
    first_ts: int = 0
    opened_ts: int = 0
    client: list[str | None] = field(default_factory=lambda: [None, None, None])
    last_ts: int = 0
    calls: int = 0
    errors: int = 0

    def open(self, event: RequestEvent) -> None:
        if not self.opened:
            self.opened = True
            self.proxy = event.proxy
            self.first_ts = self.opened_ts = event.ts
        self.first_ts = min(self.first_ts, event.ts)
        self.opened_ts = max(self.opened_ts, event.ts)
        given = (event.client_name, event.client_version, event.client_platform)
        client = self.client
        for index, value in enumerate(given):
            if client[index] is None:
                client[index] = value

    def bump(self, ts: int, failed: bool) -> None:
        self.last_ts = max(self.last_ts, ts) if self.calls else ts
        self.calls += 1
        self.errors += failed


def insert_requests(conn: apsw.Connection, events: list[tuple[RequestEvent, str]]) -> None:
    """Write a run of request events, each with its stored status (see the module doc).

    Raises `UnicodeEncodeError` for text SQLite cannot take (a lone surrogate) and any
    apsw error; the caller then writes the run one event at a time to find the culprit.
    """
    sessions: dict[str, _Session] = {}
    rows: list[list[object]] = []
    for event, status in events:
        row = request_row(event, status)
        rows.append(row)
        sid = event.session_id
        if sid is None:
            continue
        session = sessions.get(sid)
        if session is None:
            session = sessions[sid] = _Session(event.proxy)
        if 200 <= event.status < 300 and event.method != "DELETE":
            session.open(event)
        row.extend(session.client)
        session.bump(event.ts, status != "ok")
    payload = json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
    payload.encode("utf-8")  # a lone surrogate fails here, not half-way into SQLite
    opened = [
        (sid, one.proxy, one.first_ts, one.opened_ts, *one.client)
        for sid, one in sessions.items()
        if one.opened
    ]
    conn.execute(_INSERT_REQUESTS, (payload,))
    if opened:
        conn.executemany(_OPEN_SESSION, opened)
    bumps = [(one.last_ts, one.calls, one.errors, sid) for sid, one in sessions.items()]
    if bumps:
        conn.executemany(BUMP_SESSION, bumps)
