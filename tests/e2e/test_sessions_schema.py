"""Legacy sessions and schema capture, observed on real SDK traffic through the proxy."""

from __future__ import annotations

import mcp

from mcpr_cli.proxy import serve
from mcpr_core.config import ProxyConfig
from mcpr_core.events import (
    ProxyEvent,
    RequestEvent,
    SchemaVersionCreated,
    SessionEnd,
    SessionStart,
)


async def test_legacy_session_is_tracked_from_initialize_to_delete(mcp_server_url: str) -> None:
    """A legacy client's session starts, its calls carry its client, and its DELETE ends it."""
    events: list[ProxyEvent] = []
    config = ProxyConfig(mcp=mcp_server_url, port=0, admin="none")
    async with serve(config, emit=events.append) as running:
        async with mcp.Client(running.url + "/mcp", mode="legacy") as client:
            await client.call_tool("echo", {"text": "hi"})
        assert running.statistics().sessions.sessions == 0
    [start] = [e for e in events if isinstance(e, SessionStart)]
    [end] = [e for e in events if isinstance(e, SessionEnd)]
    assert start.client_name == "mcp"
    assert start.protocol_version is not None
    assert (end.session_id, end.reason) == (start.session_id, "deleted")
    [call] = [e for e in events if isinstance(e, RequestEvent) and e.tool == "echo"]
    assert (call.session_id, call.client_name, call.era) == (start.session_id, "mcp", "legacy")


async def test_modern_requests_make_no_session(mcp_server_url: str) -> None:
    """2026-07-28 requests carry their identity themselves and open no session."""
    events: list[ProxyEvent] = []
    config = ProxyConfig(mcp=mcp_server_url, port=0, admin="none")
    async with (
        serve(config, emit=events.append) as running,
        mcp.Client(running.url + "/mcp", mode="2026-07-28") as client,
    ):
        await client.call_tool("echo", {"text": "hi"})
    assert not [e for e in events if isinstance(e, SessionStart | SessionEnd)]
    [call] = [e for e in events if isinstance(e, RequestEvent) and e.tool == "echo"]
    assert (call.client_name, call.era, call.protocol_version) == ("mcp", "modern", "2026-07-28")


async def test_tool_list_is_captured_once(mcp_server_url: str) -> None:
    """The first tools/list creates a schema version; the same list again creates none."""
    events: list[ProxyEvent] = []
    config = ProxyConfig(mcp=mcp_server_url, port=0, admin="none")
    async with serve(config, emit=events.append) as running:
        for mode in ("legacy", "2026-07-28"):
            async with mcp.Client(running.url + "/mcp", mode=mode) as client:
                await client.list_tools()
    versions = [e for e in events if isinstance(e, SchemaVersionCreated)]
    tools = [v for v in versions if v.method == "tools/list"]
    assert len(tools) == 1
    assert tools[0].changes[0].change_type == "initial"
    assert "echo" in tools[0].payload
