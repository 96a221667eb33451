"""A store filled with known rows, shared by the query tests and the command tests.

The clock is fixed at `NOW` (2026-01-01 00:00:00 UTC). The rows, in the order written:

- `initialize` on proxy alpha, 3 h ago, 5 ms, opening legacy session `s-aaaa1111` of
  claude-ai 1.2 (the session row is created from this request).
- three `tools/call fetch` on alpha, 2 h ago, 100/300/200 us, modern era (no session),
  client cursor-agent 2.0 from the request's own `_meta`.
- a `session_start` of `s-aaab0000` (vscode 1.9), 30 min ago.
- twenty `tools/call search` on alpha, call k (1..20) taking k ms, (21 - k) min ago, in
  session `s-aaaa1111`, except call 7 which belongs to `s-aaab0000`; call 19 answers a
  JSON-RPC error -32602, call 20 is a proxy timeout (504).
- a `session_end` of `s-aaab0000`, 10 min ago.
- one `GET /mcp` (a server-push stream) on proxy beta, 2 days ago, 2 s, no session.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcpr_core.events import ProxyEvent, RequestEvent, SessionEnd, SessionStart
from mcpr_integrations.store import RequestRow, Store

NOW = 1_767_225_600_000
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR

LEGACY = "s-aaaa1111"
OTHER = "s-aaab0000"


def _request(rid: str, ts: int, latency_us: int, **fields: Any) -> RequestEvent:
    base: dict[str, Any] = {
        "id": rid,
        "ts": ts,
        "proxy": "alpha",
        "method": "POST",
        "path": "/mcp",
        "status": 200,
        "latency_us": latency_us,
        "request_size": 120,
        "response_size": 800,
        "note": "ok",
    }
    return RequestEvent(**{**base, **fields})


def search_call(k: int) -> RequestEvent:
    """The k-th `tools/call search` (k = 1..20)."""
    fields: dict[str, Any] = {
        "session_id": OTHER if k == 7 else LEGACY,
        "mcp_method": "tools/call",
        "tool": "search",
        "era": "legacy",
        "protocol_version": "2025-11-25",
    }
    if k == 19:
        fields.update(error_code=-32602, error_msg="Invalid params")
    if k == 20:
        fields.update(status=504, note="timeout", error_code=504, error_msg="upstream timeout")
    return _request(f"search-{k:02d}", NOW - (21 - k) * MINUTE, k * 1000, **fields)


def events() -> list[ProxyEvent]:
    """Every event of the dataset, in the order the store receives them."""
    out: list[ProxyEvent] = [
        _request(
            "init",
            NOW - 3 * HOUR,
            5000,
            session_id=LEGACY,
            mcp_method="initialize",
            client_name="claude-ai",
            client_version="1.2",
            client_platform="claude",
            protocol_version="2025-11-25",
            era="legacy",
        )
    ]
    for j, latency in enumerate((100, 300, 200)):
        out.append(
            _request(
                f"fetch-{j}",
                NOW - 2 * HOUR + j * 1000,
                latency,
                mcp_method="tools/call",
                tool="fetch",
                client_name="cursor-agent",
                client_version="2.0",
                client_platform="cursor",
                protocol_version="2026-07-28",
                era="modern",
            )
        )
    out.append(
        SessionStart(
            session_id=OTHER,
            ts=NOW - 30 * MINUTE,
            proxy="alpha",
            client_name="vscode",
            client_version="1.9",
            client_platform="vscode",
        )
    )
    out.extend(search_call(k) for k in range(1, 21))
    out.append(SessionEnd(session_id=OTHER, ts=NOW - 10 * MINUTE, proxy="alpha", reason="deleted"))
    out.append(
        _request(
            "stream",
            NOW - 2 * DAY,
            2_000_000,
            proxy="beta",
            method="GET",
            request_size=0,
            response_size=4096,
        )
    )
    return out


def fill(path: Path) -> None:
    """Create the store at `path` and write the whole dataset into it."""
    store = Store(path, mcpr_version="test")
    try:
        store.put(events())
    finally:
        store.close()


def search_row(k: int) -> RequestRow:
    """The stored row of the k-th search call (row id 4 + k)."""
    other = k == 7
    status, code, msg = "ok", None, None
    if k == 19:
        status, code, msg = "error", "-32602", "Invalid params"
    if k == 20:
        status, code, msg = "timeout", "504", "upstream timeout"
    return RequestRow(
        id=4 + k,
        request_id=f"search-{k:02d}",
        ts=NOW - (21 - k) * MINUTE,
        proxy="alpha",
        session_id=OTHER if other else LEGACY,
        method="tools/call",
        tool="search",
        latency_us=k * 1000,
        status=status,
        error_code=code,
        error_msg=msg,
        bytes_in=120,
        bytes_out=800,
        resource_uri=None,
        prompt_name=None,
        client_name="vscode" if other else "claude-ai",
        client_version="1.9" if other else "1.2",
        client_platform="vscode" if other else "claude",
        protocol_version="2025-11-25",
        era="legacy",
        header_mismatch=False,
    )
