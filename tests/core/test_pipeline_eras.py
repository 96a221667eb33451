"""The era of requests without a JSON-RPC body (PROTOCOL.md §7 decision 8)."""

from __future__ import annotations

import pytest

from mcpr_core.config import ProxyConfig
from mcpr_core.events import Era, RequestEvent
from mcpr_core.pipeline import Exchange, Forward, Outcome, RequestHead, ResponseHead, Settings

UPSTREAM = "http://127.0.0.1:8000/mcp"
SSE_ACCEPT = (b"accept", b"text/event-stream")


def finished(method: bytes, target: bytes, *headers: tuple[bytes, bytes]) -> RequestEvent:
    """Carry a bodiless request and a bodiless 200 through an exchange; return its event."""
    settings = Settings.from_config(ProxyConfig(mcp=UPSTREAM, name="test"))
    ex = Exchange(settings, exchange_id="ex1", ts_ms=1_700_000_000_000, now=10.0)
    head = RequestHead(method, target, ((b"host", b"127.0.0.1:3000"), *headers))
    assert isinstance(ex.receive_request_head(head), Forward)
    ex.receive_response_head(ResponseHead(200, ()), now=10.1)
    ex.receive_response_end()
    [event] = ex.finish(now=10.2, outcome=Outcome.COMPLETED)
    assert isinstance(event, RequestEvent)
    return event


@pytest.mark.parametrize(
    ("method", "headers", "era"),
    [
        (b"GET", [SSE_ACCEPT, (b"mcp-session-id", b"s1")], "legacy"),
        (b"GET", [SSE_ACCEPT, (b"mcp-protocol-version", b"2025-11-25")], "legacy"),
        (b"GET", [SSE_ACCEPT], "legacy"),
        (b"GET", [SSE_ACCEPT, (b"mcp-protocol-version", b"2026-07-28")], "modern"),
        (
            b"DELETE",
            [(b"mcp-session-id", b"s1"), (b"mcp-protocol-version", b"2025-11-25")],
            "legacy",
        ),
        (b"DELETE", [(b"mcp-protocol-version", b"2026-07-28")], "modern"),
    ],
)
def test_bodiless_requests_to_the_mcp_endpoint_have_an_era(
    method: bytes, headers: list[tuple[bytes, bytes]], era: Era
) -> None:
    """GET streams and DELETEs of the MCP endpoint get their era from the session and version."""
    assert finished(method, b"/mcp", *headers).era == era


def test_other_paths_have_no_era() -> None:
    """A request elsewhere (OAuth discovery, static files) is not MCP traffic: no era."""
    event = finished(b"GET", b"/.well-known/oauth-protected-resource/mcp")
    assert event.era is None
