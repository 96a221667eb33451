"""What the benchmarks send and what the fast upstream answers, in one place.

Request bodies are templates with one `%d` for the JSON-RPC id, so every request of a run
carries its own id (an SDK server keeps in-flight ids per session and would reject
duplicates across concurrent connections). The ~230 KB widget comes from the captured
MCP Apps exchange in `tests/fixtures/mcp-apps-map.jsonl`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

__all__ = [
    "FIXTURE",
    "INITIALIZE",
    "INITIALIZED",
    "PROTOCOL_VERSION",
    "WORKLOADS",
    "Widget",
    "Workload",
    "widget",
]

FIXTURE: Final = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "mcp-apps-map.jsonl"

#: The protocol revision of the legacy (session) era the load speaks.
PROTOCOL_VERSION: Final = "2025-11-25"

INITIALIZE: Final = (
    b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25",'
    b'"capabilities":{},"clientInfo":{"name":"mcpr-bench","version":"1.0.0"}}}'
)
INITIALIZED: Final = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'


@dataclass(frozen=True, slots=True)
class Workload:
    """One kind of request: a body template and extra headers (`x-bench-framing: sse`)."""

    name: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    def render(self, request_id: int) -> bytes:
        """The body with this request's id."""
        return self.body % request_id


_CALL: Final = (
    b'{"jsonrpc":"2.0","id":%d,"method":"tools/call",'
    b'"params":{"name":"echo","arguments":{"text":"hi"}}}'
)
_READ: Final = (
    b'{"jsonrpc":"2.0","id":%d,"method":"resources/read",'
    b'"params":{"uri":"ui://cesium-map/mcp-app.html"}}'
)
_SSE: Final = (("x-bench-framing", "sse"),)

WORKLOADS: Final = {
    w.name: w
    for w in (
        Workload("ping", b'{"jsonrpc":"2.0","id":%d,"method":"ping"}'),
        Workload("tools/call", _CALL),
        Workload("tools/call sse", _CALL, _SSE),
        Workload("resources/read 230KB", _READ),
        Workload("resources/read 230KB sse", _READ, _SSE),
        Workload(
            "sse stream",
            b'{"jsonrpc":"2.0","id":%d,"method":"tools/call",'
            b'"params":{"name":"stream","arguments":{},"_meta":{"progressToken":1}}}',
            _SSE,
        ),
    )
}


@dataclass(frozen=True, slots=True)
class Widget:
    """The captured widget: its `resources/read` result and the entry `resources/list` shows."""

    uri: str
    result: dict[str, Any]
    listing: dict[str, Any]


@cache
def widget() -> Widget:
    """Read the fixture's `resources/read` answer (one SSE event with the JSON-RPC message)."""
    listing: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    for line in FIXTURE.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        method = json.loads(record["request"]["body"]).get("method")
        if method not in ("resources/list", "resources/read"):
            continue
        for data in record["response"]["body"].split("\n"):
            if data.startswith("data: "):
                message = json.loads(data[6:])
                if method == "resources/list":
                    listing = message["result"]["resources"][0]
                else:
                    result = message["result"]
    if listing is None or result is None:
        raise SystemExit(f"no resources/list and resources/read in {FIXTURE}")
    return Widget(uri=listing["uri"], result=result, listing=listing)
