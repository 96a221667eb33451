"""The real MCP Apps capture through the running proxy with a `[csp]` section."""

from __future__ import annotations

import json
from typing import Any

from mcpr_core.config import CspConfig, CspDirective
from mcpr_core.events import RequestEvent
from tests.cli.stub_upstream import reply_with, stub_upstream
from tests.cli.test_transport_replay import EXCHANGES, Recorded
from tests.cli.wire import connect, run_proxy

CSP = CspConfig(
    domain="widgets.example.com",
    connect_domains=CspDirective(domains=("https://api.example.com",), mode="extend"),
)


def _recorded(name: str) -> Recorded:
    [found] = [e for e in EXCHANGES if e.id.startswith("mcp-apps-map") and _method(e) == name]
    return found


def _method(recorded: Recorded) -> str | None:
    message = recorded.request_message()
    return message.get("method") if message else None


def _sse_message(body: bytes) -> dict[str, Any]:
    data = [line[5:].strip() for line in body.splitlines() if line.startswith(b"data:")]
    [payload] = [d for d in data if d]
    message = json.loads(payload)
    assert isinstance(message, dict)
    return message


async def test_map_widget_csp_is_rewritten_and_its_html_untouched() -> None:
    """resources/read of the map widget names the public domain first, keeps the upstream's
    real domains, gains the openai/widgetCSP twin, and carries the HTML byte-identical."""
    recorded = _recorded("resources/read")
    handler = reply_with(recorded.status, recorded.response_headers, recorded.chunks())
    async with (
        stub_upstream(handler) as stub,
        run_proxy(stub.url, csp=CSP) as proxy,
        connect(proxy) as c,
    ):
        reply = await c.request(
            recorded.method, b"/mcp", recorded.request_headers, recorded.request_body
        )
        [event] = await proxy.wait_exchanges(1)
    assert reply.status == 200
    original = _sse_message(recorded.body)["result"]["contents"][0]
    content = _sse_message(reply.body)["result"]["contents"][0]
    connect_domains = content["_meta"]["ui"]["csp"]["connectDomains"]
    assert connect_domains[0] == "https://widgets.example.com"
    upstream_domains = original["_meta"]["ui"]["csp"]["connectDomains"]
    assert all(d in connect_domains for d in upstream_domains if "localhost" not in d)
    assert "https://api.example.com" in connect_domains
    assert content["_meta"]["openai/widgetCSP"]["connect_domains"] == connect_domains
    assert content["_meta"]["openai/widgetDomain"] == "https://widgets.example.com"
    assert content["text"] == original["text"]
    assert isinstance(event, RequestEvent)
    assert event.note == "rewritten+sse"


async def test_results_without_widget_metadata_keep_their_bytes() -> None:
    """initialize carries no widget metadata: its answer crosses the proxy byte-identical."""
    recorded = _recorded("initialize")
    handler = reply_with(recorded.status, recorded.response_headers, recorded.chunks())
    async with (
        stub_upstream(handler) as stub,
        run_proxy(stub.url, csp=CSP) as proxy,
        connect(proxy) as c,
    ):
        reply = await c.request(
            recorded.method, b"/mcp", recorded.request_headers, recorded.request_body
        )
    assert reply.body == recorded.body
