"""The whole tunnel path on one machine: client → relay → WebSocket → tunnel → mcpr → server.

The relay, mcpr and the tunnel client run in-process on the test's event loop (asyncio and
trio); the MCP SDK test server is the session's subprocess. Public clients connect to the
relay's loopback port and say `Host: demo.tunnel.test:PORT`, which is how the relay tells
which tunnel a request is for; `*.localhost` names do not resolve everywhere, so the Host
header is set on the httpx2 client the SDK is given.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, cast

import anyio
import httpx2
import mcp
import pytest
from mcp import types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from mcp_tunnel_client import TunnelClient, TunnelStatus
from mcpr_cli.proxy import RunningProxy, serve
from mcpr_cli.relay.config import RelayConfig, TokenRule
from mcpr_cli.relay.server import RunningRelay, serve_relay
from mcpr_cli.tunnel import TunnelConfig, start_tunnel
from mcpr_core.config import ProxyConfig
from tests.e2e.mcp_app_server import MAP_URI, SERVER_NAME
from tests.e2e.test_http_wire import (
    legacy_session,
    modern_headers,
    modern_request,
    sse_messages,
)

LEGACY = "legacy"
MODERN = "2026-07-28"
RELAY = RelayConfig(
    domain="tunnel.test", tokens=(TokenRule("tok", ("demo",)),), port=0, scheme="http"
)
#: Bound on every wait for the tunnel; the server's slow tool sleeps far longer.
WITHIN = 10.0


@pytest.fixture(params=[LEGACY, MODERN])
def era(request: pytest.FixtureRequest) -> str:
    """The `mode=` given to `mcp.Client`."""
    param: str = request.param
    return param


@dataclass
class Path:
    """The relay, mcpr and the tunnel between them."""

    relay: RunningRelay
    proxy: RunningProxy
    client: TunnelClient

    @property
    def host(self) -> str:
        """The Host a public client sends."""
        return f"demo.tunnel.test:{self.relay.port}"

    @property
    def url(self) -> str:
        """Where a public client connects (the relay's loopback port), with the MCP path."""
        return f"{self.relay.url}/mcp"

    def http(self) -> httpx2.AsyncClient:
        """An HTTP client with the SDK's timeouts that addresses the tunnel by Host."""
        return create_mcp_http_client(headers={"Host": self.host})

    async def wait_connected(self) -> None:
        """Wait until the tunnel is registered."""
        with anyio.fail_after(WITHIN):
            await self.client.wait_for(TunnelStatus.CONNECTED)


@asynccontextmanager
async def tunnel_path(mcp_server_url: str, relay: RelayConfig = RELAY) -> AsyncIterator[Path]:
    """Relay, mcpr in front of the SDK server, and a connected tunnel from one to the other."""
    config = ProxyConfig(mcp=mcp_server_url, port=0, admin="none")
    async with (
        serve_relay(relay) as running_relay,
        serve(config, emit=lambda event: None) as proxy,
        anyio.create_task_group() as group,
    ):
        link = start_tunnel(TunnelConfig(running_relay.url, "tok", "demo"), proxy)
        await group.start(link.run)
        path = Path(running_relay, proxy, link)
        await path.wait_connected()
        yield path
        group.cancel_scope.cancel()


@asynccontextmanager
async def sdk_client(path: Path, era: str) -> AsyncIterator[mcp.Client]:
    """The SDK's client, talking to the relay as a public client would."""
    async with path.http() as http:
        transport = streamable_http_client(path.url, http_client=http)
        async with mcp.Client(transport, mode=era) as client:
            yield client


def _text(result: types.CallToolResult) -> str:
    [content] = result.content
    assert isinstance(content, types.TextContent)
    return content.text


async def test_sdk_client_through_the_tunnel(mcp_server_url: str, era: str) -> None:
    """The SDK client lists, calls and reads through relay, tunnel and mcpr in both eras."""
    async with tunnel_path(mcp_server_url) as path, sdk_client(path, era) as client:
        assert path.client.url == f"http://{path.host}"
        tools = await client.list_tools()
        assert "echo" in {tool.name for tool in tools.tools}
        assert _text(await client.call_tool("echo", {"text": "through"})) == "through"
        if era == LEGACY:
            assert client.session.server_info.name == SERVER_NAME  # type: ignore[union-attr]


async def test_tunnel_url_becomes_the_public_url_for_csp(mcp_server_url: str) -> None:
    """Widget CSP is rewritten for the URL the relay gave the tunnel."""
    async with tunnel_path(mcp_server_url) as path, sdk_client(path, MODERN) as client:
        result = await client.read_resource(MAP_URI)
    meta = result.contents[0].meta
    assert meta is not None
    assert f"http://{path.host}" in meta["ui"]["csp"]["connectDomains"]


async def _first_progress(
    http: httpx2.AsyncClient, url: str, headers: dict[str, str], body: Any
) -> dict[str, Any]:
    """POST a progress-reporting call; return its first SSE message, then hang up."""
    async with http.stream("POST", url, headers=headers, json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        # sse_messages is an async generator: close it here, not at garbage collection.
        messages = cast(AsyncGenerator[dict[str, Any], None], sse_messages(response))
        async with aclosing(messages):
            async for message in messages:
                return message
    raise AssertionError("the stream ended without a message")


async def test_progress_streams_event_by_event(mcp_server_url: str, era: str) -> None:
    """The first progress notification arrives while the server still sleeps before the last."""
    arguments = {"n": 2, "delay": 60.0}  # the second progress is a minute away
    async with tunnel_path(mcp_server_url) as path, path.http() as http:
        with anyio.fail_after(WITHIN):
            if era == MODERN:
                body = modern_request(
                    2,
                    "tools/call",
                    name="slow_count",
                    arguments=arguments,
                    _meta={"progressToken": 7},
                )
                headers = modern_headers("tools/call", "slow_count")
                first = await _first_progress(http, path.url, headers, body)
            else:
                async with legacy_session(http, path.url) as headers:
                    body = {
                        "jsonrpc": "2.0",
                        "id": 2,
                        "method": "tools/call",
                        "params": {
                            "name": "slow_count",
                            "arguments": arguments,
                            "_meta": {"progressToken": 7},
                        },
                    }
                    first = await _first_progress(http, path.url, headers, body)
    assert first["method"] == "notifications/progress"
    assert first["params"]["progress"] == 1


async def test_relay_restart_is_survived(mcp_server_url: str) -> None:
    """After the relay restarts on its port, the tunnel reconnects and SDK calls work again."""
    config = ProxyConfig(mcp=mcp_server_url, port=0, admin="none")
    async with serve(config, emit=lambda event: None) as proxy, anyio.create_task_group() as group:
        async with serve_relay(RELAY) as relay:
            port = relay.port
            link = TunnelClient(
                relay.url, "tok", proxy.url, subdomain="demo", backoff_min=0.01, backoff_max=0.05
            )
            await group.start(link.run)
            path = Path(relay, proxy, link)
            await path.wait_connected()
            async with sdk_client(path, MODERN) as client:
                assert _text(await client.call_tool("echo", {"text": "before"})) == "before"
        with anyio.fail_after(WITHIN):
            await link.wait_for(TunnelStatus.DISCONNECTED, TunnelStatus.CONNECTING)
        async with serve_relay(replace(RELAY, port=port)) as relay:
            path = Path(relay, proxy, link)
            await path.wait_connected()
            assert (link.registrations, link.url) == (2, f"http://{path.host}")
            async with sdk_client(path, MODERN) as client:
                assert _text(await client.call_tool("echo", {"text": "after"})) == "after"
        group.cancel_scope.cancel()
