"""Era and client of requests whose body does not tell them: bodiless and legacy ones.

- GET streams and DELETEs have an era too (PROTOCOL.md §7 decision 8).
- A legacy request names no client; results are rewritten for the client of its session.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from mcpr_core.config import ProxyConfig
from mcpr_core.events import Era, RequestEvent
from mcpr_core.pipeline import (
    Exchange,
    Forward,
    Outcome,
    ReadBody,
    RequestHead,
    ResponseHead,
    Settings,
)
from mcpr_core.sessions import SessionTracker

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


class RecordingRewriter:
    """A `ResultRewriter` that rewrites nothing and notes the client it was asked about."""

    def __init__(self) -> None:
        self.clients: list[str | None] = []

    def wants(self, method: str, client_name: str | None) -> bool:
        """Every method may need rewriting."""
        self.clients.append(client_name)
        return True

    def rewrite(
        self, method: str, result: dict[str, Any], client_name: str | None
    ) -> dict[str, Any] | None:
        """Leave the result alone."""
        self.clients.append(client_name)
        return None


@pytest.mark.parametrize(
    ("session", "meta", "expected"),
    [
        (b"s1", {}, "claude-ai"),
        (b"unknown", {}, None),
        (b"s1", {"io.modelcontextprotocol/clientInfo": {"name": "own-name"}}, "own-name"),
    ],
    ids=["session-client", "unknown-session", "own-meta-wins"],
)
def test_legacy_results_are_rewritten_for_the_client_of_their_session(
    session: bytes, meta: dict[str, Any], expected: str | None
) -> None:
    """The rewriter hears of the session's client when the request names none itself."""
    tracker = SessionTracker("test", ttl=60.0)
    tracker.on_initialize(
        "s1", client_name="claude-ai", client_version="1", protocol_version="2025-11-25", now_ms=0
    )
    rewriter = RecordingRewriter()
    config = ProxyConfig(mcp=UPSTREAM, name="test")
    ex = Exchange(
        Settings.from_config(config, rewriter=rewriter, sessions=tracker),
        exchange_id="ex1",
        ts_ms=1_700_000_000_000,
        now=10.0,
    )
    headers = ((b"host", b"127.0.0.1:3000"), (b"mcp-session-id", session))
    assert isinstance(ex.receive_request_head(RequestHead(b"POST", b"/mcp", headers)), ReadBody)
    params = {"uri": "ui://widget/map.html", "_meta": meta}
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": params})
    assert isinstance(ex.receive_request_body(body.encode()), Forward)
    ex.receive_response_head(ResponseHead(200, ((b"content-type", b"application/json"),)), now=10.1)
    ex.receive_response_data(b'{"jsonrpc":"2.0","id":1,"result":{"contents":[]}}')
    ex.receive_response_end()
    assert rewriter.clients == [expected, expected]
