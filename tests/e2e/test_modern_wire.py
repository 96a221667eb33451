"""The SDK server's 2026-07-28 refusals, direct and through mcpr, compared byte for byte.

Clients decide the era from 4xx answers (PROTOCOL.md §1.5), so each one must reach them
exactly as the server wrote it: status, headers (but `date`) and body. mcpr records each
as the upstream's answer (note "ok", the body's error code), never as an error of its own.
The server checks `Mcp-Param-*` against the body after base64 decoding, so its verdict on
a header sent through mcpr also shows that the header arrived intact.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
import pytest

from mcpr_cli.proxy import RunningProxy, serve
from mcpr_core.config import ProxyConfig
from mcpr_core.events import ProxyEvent, RequestEvent

VERSION = "2026-07-28"
META = {
    "io.modelcontextprotocol/protocolVersion": VERSION,
    "io.modelcontextprotocol/clientInfo": {"name": "wire-e2e", "version": "2"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


def b64(text: str) -> str:
    """The SEP-2243 encoding of a header value."""
    return "=?base64?" + base64.b64encode(text.encode()).decode() + "?="


def headers(method: str, name: str | None = None, **extra: str) -> dict[str, str]:
    """The headers of a 2026-07-28 POST."""
    out = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    out["mcp-protocol-version"] = VERSION
    out["mcp-method"] = method
    if name is not None:
        out["mcp-name"] = name
    return {**out, **extra}


def body(method: str, **params: Any) -> bytes:
    """A 2026-07-28 request (id 21) with the `_meta` envelope."""
    meta = {**META, **params.pop("_meta", {})}
    message = {"jsonrpc": "2.0", "id": 21, "method": method, "params": {**params, "_meta": meta}}
    return json.dumps(message).encode()


@dataclass
class Proxied:
    """mcpr in front of the SDK server, and the request events it emitted."""

    running: RunningProxy
    events: list[ProxyEvent]

    @property
    def url(self) -> str:
        """The proxy's MCP endpoint."""
        return f"{self.running.url}/mcp"

    async def requests(self, count: int) -> list[RequestEvent]:
        """The request events, once `count` exchanges have ended (a client may see the
        answer before mcpr has finished the exchange and emitted its event)."""
        with anyio.fail_after(5):
            # The handler's counters have no change event to wait on, so this polls.
            while self.running.statistics().handler.exchanges_total < count:  # noqa: ASYNC110
                await anyio.sleep(0.002)
        return [e for e in self.events if isinstance(e, RequestEvent)]


@asynccontextmanager
async def proxy(upstream: str, **overrides: Any) -> AsyncIterator[Proxied]:
    """Run mcpr in front of `upstream`; `overrides` set config fields."""
    config = ProxyConfig(mcp=upstream, port=0, admin="none", **overrides)
    events: list[ProxyEvent] = []
    async with serve(config, emit=events.append) as running:
        yield Proxied(running, events)


@pytest.fixture
async def proxied(mcp_server_url: str) -> AsyncIterator[Proxied]:
    """mcpr in front of the SDK server with the default configuration."""
    async with proxy(mcp_server_url) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    """A plain HTTP client."""
    async with httpx2.AsyncClient() as client:
        yield client


def fields(response: httpx2.Response) -> list[tuple[str, str]]:
    """The response's header fields in order, without `date` (the time it was sent)."""
    return [(k, v) for k, v in response.headers.multi_items() if k != "date"]


REFUSALS = [
    pytest.param(
        "POST",
        headers("tools/call", "fail"),
        body("tools/call", name="echo", arguments={"text": "x"}),
        (400, -32020, True),  # mcpr sees the Mcp-Name mismatch too, and records it
        id="400-name-mismatch",
    ),
    pytest.param(
        "POST",
        headers("tools/call", "locate", **{"mcp-param-region": b64("Zürich")}),
        body("tools/call", name="locate", arguments={"region": "Genève"}),
        (400, -32020, False),  # only the server knows which argument the header mirrors
        id="400-param-mismatch",
    ),
    pytest.param(
        "POST",
        headers("tools/list", **{"mcp-protocol-version": "2099-01-01"}),
        body("tools/list", _meta={"io.modelcontextprotocol/protocolVersion": "2099-01-01"}),
        (400, -32022, False),
        id="400-unsupported-version",
    ),
    pytest.param(
        "POST", headers("foo/bar"), body("foo/bar"), (404, -32601, False), id="404-unknown"
    ),
    pytest.param("GET", headers("-"), None, (405, None, False), id="405-get"),
    pytest.param("DELETE", headers("-"), None, (405, None, False), id="405-delete"),
]


@pytest.mark.parametrize(("method", "sent", "payload", "expected"), REFUSALS)
async def test_refusals_pass_unchanged_and_are_the_upstream_answer(
    http: httpx2.AsyncClient,
    mcp_server_url: str,
    proxied: Proxied,
    method: str,
    sent: dict[str, str],
    payload: bytes | None,
    expected: tuple[int, int | None, bool],
) -> None:
    """Status, header fields and body bytes are the server's; the event is its answer."""
    status, code, mismatch = expected
    direct = await http.request(method, mcp_server_url, headers=sent, content=payload)
    through = await http.request(method, proxied.url, headers=sent, content=payload)
    assert direct.status_code == status
    assert (through.status_code, fields(through), through.content) == (
        direct.status_code,
        fields(direct),
        direct.content,
    )
    [event] = await proxied.requests(1)
    assert (event.status, event.note, event.error_code) == (status, "ok", code)
    assert (event.era, event.header_mismatch) == ("modern", mismatch)
    if payload is not None:
        assert event.client_name == "wire-e2e"


async def test_base64_param_and_name_are_accepted_through_mcpr(
    http: httpx2.AsyncClient, proxied: Proxied
) -> None:
    """Base64 `Mcp-Param-Region` and `Mcp-Name` values pass the server's own check via mcpr."""
    call = body("tools/call", name="locate", arguments={"region": "Zürich ✓"})
    sent = headers("tools/call", "locate", **{"mcp-param-region": b64("Zürich ✓")})
    located = await http.post(proxied.url, headers=sent, content=call)
    uri = "resource://users/Zoë/profile"
    read = await http.post(
        proxied.url,
        headers=headers("resources/read", b64(uri)),
        content=body("resources/read", uri=uri),
    )
    assert located.status_code == 200
    assert located.json()["result"]["structuredContent"] == {"result": "located in Zürich ✓"}
    assert read.status_code == 200
    assert read.json()["result"]["contents"][0]["text"] == '{"id": "Zoë"}'
    events = await proxied.requests(2)
    assert [(e.tool, e.resource_uri, e.header_mismatch) for e in events] == [
        ("locate", None, False),
        (None, uri, False),
    ]


async def test_strict_headers_answers_like_the_server(
    http: httpx2.AsyncClient, mcp_server_url: str
) -> None:
    """With strict_headers, mcpr refuses a mismatch as the server would: 400, -32020, same id."""
    sent = headers("tools/call", "fail")
    call = body("tools/call", name="echo", arguments={"text": "x"})
    async with proxy(mcp_server_url, strict_headers=True) as strict:
        ours = await http.post(strict.url, headers=sent, content=call)
        [event] = await strict.requests(1)
    theirs = await http.post(mcp_server_url, headers=sent, content=call)
    assert ours.status_code == theirs.status_code == 400
    assert ours.headers["content-type"] == theirs.headers["content-type"] == "application/json"
    assert ours.json()["id"] == theirs.json()["id"] == 21
    assert ours.json()["error"]["code"] == theirs.json()["error"]["code"] == -32020
    assert (event.note, event.header_mismatch, event.upstream_us) == ("rejected", True, None)
