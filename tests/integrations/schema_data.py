"""A store holding known captured schemas, shared by the store tests and the command tests.

The clock is fixed at `NOW` (2026-01-01 00:00:00 UTC). The versions come out of a real
`SchemaCapture`, in this order:

- proxy alpha in front of `ALPHA_URL`, 3 h ago: `initialize` (server demo 1.0), `tools/list`
  with search(q*), fetch(url*) and legacy(x), and `prompts/list` with summarize(text*, style).
- proxy alpha, 1 h ago: `tools/list` again, now search(q*, limit), fetch(url*) and report():
  search modified, report added, legacy removed.
- proxy beta in front of `BETA_URL`, 2 days ago: `resources/templates/list` with one template.
- requests on alpha: `tools/call search` 20 min ago, `tools/call fetch` 10 days ago, and a
  `tools/call legacy` 5 min ago (a tool no longer listed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcpr_core.events import ProxyEvent, RequestEvent, SchemaVersionCreated
from mcpr_core.schema import SchemaCapture
from mcpr_integrations.store import Store

NOW = 1_767_225_600_000
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR

ALPHA_URL = "http://127.0.0.1:8000/mcp"
BETA_URL = "http://127.0.0.1:9000/mcp"

INITIALIZE = {
    "protocolVersion": "2025-11-25",
    "capabilities": {"tools": {"listChanged": True}, "prompts": {}},
    "serverInfo": {"name": "demo", "version": "1.0"},
    "instructions": "Ask for the weather.\nThen more.",
}


def tool(name: str, description: str, *props: str, required: tuple[str, ...] = ()) -> Any:
    """A tool with string properties `props`."""
    schema = {"type": "object", "properties": {p: {"type": "string"} for p in props}}
    if required:
        schema["required"] = list(required)
    return {"name": name, "description": description, "inputSchema": schema}


TOOLS_V1 = [
    tool("search", "Search the index.", "q", required=("q",)),
    tool("fetch", "Fetch one page.\nLong text.", "url", required=("url",)),
    tool("legacy", "Old.", "x"),
]
TOOLS_V2 = [
    tool("search", "Search the index.", "q", "limit", required=("q",)),
    tool("fetch", "Fetch one page.\nLong text.", "url", required=("url",)),
    tool("report", "Write a report."),
]
PROMPTS = [
    {
        "name": "summarize",
        "description": "Summarize a text.",
        "arguments": [{"name": "text", "required": True}, {"name": "style"}],
    }
]
TEMPLATES = [{"name": "file", "uriTemplate": "file:///{path}", "description": "A file."}]


def versions() -> list[SchemaVersionCreated]:
    """The schema versions of the dataset, in the order they were captured."""
    alpha = SchemaCapture("alpha", ALPHA_URL)
    beta = SchemaCapture("beta", BETA_URL)
    out = [
        alpha.observe("initialize", None, INITIALIZE, NOW - 3 * HOUR),
        alpha.observe("tools/list", None, {"tools": TOOLS_V1}, NOW - 3 * HOUR),
        alpha.observe("prompts/list", None, {"prompts": PROMPTS}, NOW - 3 * HOUR),
        alpha.observe("tools/list", None, {"tools": TOOLS_V2}, NOW - HOUR),
        beta.observe(
            "resources/templates/list", None, {"resourceTemplates": TEMPLATES}, NOW - 2 * DAY
        ),
    ]
    assert all(v is not None for v in out)
    return [v for v in out if v is not None]


def call(rid: str, tool_name: str, ts: int) -> RequestEvent:
    """A successful `tools/call` on alpha."""
    return RequestEvent(
        id=rid,
        ts=ts,
        proxy="alpha",
        method="POST",
        path="/mcp",
        status=200,
        latency_us=1000,
        request_size=100,
        note="ok",
        mcp_method="tools/call",
        tool=tool_name,
    )


def events() -> list[ProxyEvent]:
    """Every event of the dataset."""
    out: list[ProxyEvent] = list(versions())
    out += [
        call("c1", "search", NOW - 20 * MINUTE),
        call("c2", "fetch", NOW - 10 * DAY),
        call("c3", "legacy", NOW - 5 * MINUTE),
    ]
    return out


def fill(path: Path) -> None:
    """Create the store at `path` and write the dataset into it."""
    store = Store(path, mcpr_version="test")
    try:
        store.put(events())
    finally:
        store.close()
