"""2026-07-28 request headers and 4xx answers through mcpr, against a scripted upstream.

- Every header of the era (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`,
  `=?base64?…?=` values included) reaches the upstream byte for byte, and the legacy ones
  (`Mcp-Session-Id`, `Last-Event-ID`) cross both ways.
- A header that disagrees with the body is recorded (`header_mismatch`) and forwarded; with
  `strict_headers` mcpr answers 400 with `-32020` itself and the upstream sees nothing.
- 4xx answers clients detect the era from (400 `-32020`/`-32022`, 404 `-32601`, 405 for
  GET/DELETE) pass unchanged, and are recorded as the upstream's answer, not mcpr's error.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.cli.stub_upstream import ReceivedRequest, Responder, reply_with, stub_upstream
from tests.cli.wire import JSON, connect, run_proxy

VERSION = b"2026-07-28"
RESULT = b'{"jsonrpc":"2.0","id":5,"result":{"resultType":"complete"}}'
JSON_REPLY = reply_with(200, [(b"content-type", b"application/json")], [RESULT])


def b64(text: str) -> bytes:
    """The SEP-2243 encoding of a header value: `=?base64?<base64 of UTF-8>?=`."""
    return b"=?base64?" + base64.b64encode(text.encode()) + b"?="


def call(name: str, version: str = "2026-07-28", **arguments: Any) -> bytes:
    """A 2026-07-28 `tools/call` (id 5) with the `_meta` envelope."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientInfo": {"name": "raw-test", "version": "1"},
    }
    params = {"name": name, "arguments": arguments, "_meta": meta}
    return json.dumps(
        {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": params}
    ).encode()


def modern(method: bytes = b"tools/call", name: bytes | None = None) -> list[tuple[bytes, bytes]]:
    """The request headers of a 2026-07-28 POST."""
    headers = [*JSON, (b"mcp-protocol-version", VERSION), (b"mcp-method", method)]
    if name is not None:
        headers.append((b"mcp-name", name))
    return headers


async def test_era_headers_reach_the_upstream_byte_for_byte() -> None:
    """Base64 values, Mcp-Param-* and legacy headers arrive as sent; base64 is no mismatch."""
    sent = [
        *modern(name=b64("météo")),
        (b"mcp-param-region", b64("Zürich ✓")),
        (b"mcp-param-count", b"42"),
        (b"mcp-param-unknown-to-mcpr", b"=?base64?bm90IHF1aXRlIGJhc2U2NA?="),  # not decodable
        (b"mcp-session-id", b"stray-session"),
        (b"last-event-id", b"ev-17"),
    ]
    session_back = reply_with(
        200, [(b"content-type", b"application/json"), (b"mcp-session-id", b"s-9")], [RESULT]
    )
    async with stub_upstream(session_back) as stub, run_proxy(stub.url) as proxy:
        async with connect(proxy) as client:
            reply = await client.request(b"POST", b"/mcp", sent, call("météo", region="Zürich ✓"))
        [event] = await proxy.wait_exchanges(1)
    [received] = stub.requests
    for name, value in sent[2:]:
        assert received.header(name) == value, name
    assert reply.header(b"mcp-session-id") == b"s-9"
    assert reply.body == RESULT
    # A session id makes the request legacy (§7.8), where these headers are not checked.
    assert (event.era, event.header_mismatch) == ("legacy", False)


async def test_base64_name_that_matches_the_body_is_no_mismatch() -> None:
    """`Mcp-Name` sent base64-encoded is decoded before it is compared with `params.name`."""
    async with stub_upstream(JSON_REPLY) as stub, run_proxy(stub.url) as proxy:
        async with connect(proxy) as client:
            await client.request(b"POST", b"/mcp", modern(name=b64("météo")), call("météo"))
        [event] = await proxy.wait_exchanges(1)
    assert stub.requests[0].header(b"mcp-name") == b64("météo")
    assert (event.era, event.tool, event.header_mismatch) == ("modern", "météo", False)
    assert (event.client_name, event.protocol_version) == ("raw-test", "2026-07-28")


MISMATCHES = [
    pytest.param(modern(name=b"other"), call("echo"), id="wrong-name"),
    pytest.param(modern(), call("echo"), id="missing-name"),
    pytest.param(modern(name=b64("échos")), call("échos!"), id="wrong-base64-name"),
    pytest.param(modern(name=b"=?base64?%%%?="), call("echo"), id="undecodable-name"),
    pytest.param(modern(b"tools/list", b"echo"), call("echo"), id="wrong-method"),
    pytest.param(modern(name=b"echo"), call("echo", version="2025-11-25"), id="wrong-version"),
]


@pytest.mark.parametrize(("headers", "body"), MISMATCHES)
async def test_mismatch_is_recorded_and_forwarded(
    headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    """By default a header/body disagreement goes upstream unchanged and the event says so."""
    async with stub_upstream(JSON_REPLY) as stub, run_proxy(stub.url) as proxy:
        async with connect(proxy) as client:
            reply = await client.request(b"POST", b"/mcp", headers, body)
        [event] = await proxy.wait_exchanges(1)
    [received] = stub.requests
    assert received.body == body
    assert (reply.status, reply.body) == (200, RESULT)
    assert (event.header_mismatch, event.note, event.era) == (True, "ok", "modern")


@pytest.mark.parametrize(("headers", "body"), MISMATCHES)
async def test_strict_headers_answers_a_mismatch_itself(
    headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    """With strict_headers, mcpr answers 400 with -32020 for the request id; nothing goes up."""
    async with stub_upstream(JSON_REPLY) as stub, run_proxy(stub.url, strict_headers=True) as proxy:
        async with connect(proxy) as client:
            reply = await client.request(b"POST", b"/mcp", headers, body)
        [event] = await proxy.wait_exchanges(1)
    assert stub.requests == []
    assert reply.status == 400
    assert reply.header(b"content-type") == b"application/json"
    answer = reply.json()
    assert (answer["id"], answer["error"]["code"]) == (5, -32020)
    assert answer["error"]["message"].startswith("Header mismatch: ")
    assert (event.status, event.note, event.header_mismatch) == (400, "rejected", True)


async def test_strict_headers_forwards_agreeing_headers() -> None:
    """With strict_headers, a request whose headers match its body goes through as usual."""
    async with stub_upstream(JSON_REPLY) as stub, run_proxy(stub.url, strict_headers=True) as proxy:
        async with connect(proxy) as client:
            reply = await client.request(b"POST", b"/mcp", modern(name=b64("écho")), call("écho"))
        [event] = await proxy.wait_exchanges(1)
    assert len(stub.requests) == 1
    assert (reply.status, event.note, event.header_mismatch) == (200, "ok", False)


UPSTREAM_4XX = [
    pytest.param(
        400,
        b'{"jsonrpc":"2.0", "id":5,"error":{"code":-32020,"message":"mcp-name mismatch"}}',
        -32020,
        id="400-header-mismatch",
    ),
    pytest.param(
        400,
        b'{"jsonrpc":"2.0","id":5,"error":{"code":-32022,"message":"Unsupported protocol'
        b' version","data":{"supported":["2026-07-28"],"requested":"2099-01-01"}}}',
        -32022,
        id="400-unsupported-version",
    ),
    pytest.param(
        404,
        b'{"jsonrpc":"2.0","id":5,"error":{"code":-32601,"message":"Method not found","data":"x"}}',
        -32601,
        id="404-method-not-found",
    ),
]


@pytest.mark.parametrize("public_url", [None, "https://mcp.example.com/mcp"])
@pytest.mark.parametrize(("status", "answer", "code"), UPSTREAM_4XX)
async def test_upstream_4xx_passes_unchanged_and_is_its_answer(
    status: int, answer: bytes, code: int, public_url: str | None
) -> None:
    """The status and body bytes reach the client; the event has the body's error code."""
    headers = [(b"content-type", b"application/json"), (b"x-upstream", b"1")]
    handler = reply_with(status, headers, [answer])
    async with stub_upstream(handler) as stub, run_proxy(stub.url, public_url=public_url) as proxy:
        async with connect(proxy) as client:
            reply = await client.request(b"POST", b"/mcp", modern(name=b"echo"), call("echo"))
        [event] = await proxy.wait_exchanges(1)
    assert (reply.status, reply.body) == (status, answer)
    assert reply.header(b"content-type") == b"application/json"
    assert reply.header(b"x-upstream") == b"1"
    assert (event.status, event.note, event.error_code, event.era) == (status, "ok", code, "modern")


@pytest.mark.parametrize("method", [b"GET", b"DELETE"])
async def test_405_for_get_and_delete_passes_unchanged(method: bytes) -> None:
    """A modern-only upstream's 405 with `Allow: POST` reaches the client as the answer."""

    async def refuse(request: ReceivedRequest, respond: Responder) -> None:
        await respond.reply(405, [(b"allow", b"POST"), (b"content-length", b"0")])

    headers = [(b"accept", b"text/event-stream"), (b"mcp-protocol-version", VERSION)]
    async with stub_upstream(refuse) as stub, run_proxy(stub.url) as proxy:
        async with connect(proxy) as client:
            reply = await client.request(method, b"/mcp", headers)
        [event] = await proxy.wait_exchanges(1)
    assert stub.requests[0].method == method
    assert (reply.status, reply.header(b"allow"), reply.body) == (405, b"POST", b"")
    assert (event.status, event.note, event.error_code, event.era) == (405, "ok", None, "modern")
