"""Per-host widget identity through mcpr, for SDK clients that introduce themselves as hosts.

With `public_url` set, the map widget's `_meta.ui.domain` names mcpr's public side the way
each host expects it (PROTOCOL.md §7 decision 3): Claude (`claude-ai`) gets the first 32 hex
of sha256 of the public MCP URL under `claudemcpcontent.com`, ChatGPT (`openai-mcp`) the
public origin (also as `openai/widgetDomain`), any other client what the upstream sent.
A legacy client is known by its session, a 2026-07-28 one by every request's `_meta`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import mcp
import pytest
from mcp import types

from mcpr_cli.proxy import serve
from mcpr_core.config import ProxyConfig
from tests.e2e.mcp_app_server import MAP_URI

PUBLIC_URL = "https://mcp.example.com/mcp"
CLAUDE_DOMAIN = hashlib.sha256(PUBLIC_URL.encode()).hexdigest()[:32] + ".claudemcpcontent.com"


@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
@pytest.mark.parametrize(
    ("client_name", "ui_domain", "widget_domain"),
    [
        ("claude-ai", CLAUDE_DOMAIN, "https://mcp.example.com"),
        ("openai-mcp", "https://mcp.example.com", "https://mcp.example.com"),
        ("some-agent", None, "https://mcp.example.com"),
    ],
)
async def test_widget_domain_names_the_public_side_per_host(
    mcp_server_url: str,
    era: str,
    client_name: str,
    ui_domain: str | None,
    widget_domain: str,
) -> None:
    """The widget read through mcpr carries the domain its host expects, in either era."""
    config = ProxyConfig(mcp=mcp_server_url, port=0, admin="none", public_url=PUBLIC_URL)
    identity = types.Implementation(name=client_name, version="1.0.0")
    async with (
        serve(config, emit=lambda event: None) as running,
        mcp.Client(f"{running.url}/mcp", mode=era, client_info=identity) as client,
    ):
        read = await client.read_resource(MAP_URI)
    [content] = read.contents
    meta: dict[str, Any] = content.meta or {}
    assert meta["ui"].get("domain") == ui_domain
    assert meta["openai/widgetDomain"] == widget_domain
