"""Exact HTTP exchanges with the SDK server, as a raw client sees them, direct and through mcpr.

Whatever the server answers here (status, headers, body bytes, SSE framing), mcpr has to
answer the same: clients detect the era from 4xx bodies (PROTOCOL.md §1.5) and parse SSE
as it comes. Facts pinned, for mcp 2.3.0 behind uvicorn:

- SSE frames are `event: message\\r\\ndata: <compact JSON>\\r\\n\\r\\n`, no `id:` lines (no
  event store), with `cache-control: no-cache, no-transform` and `x-accel-buffering: no`.
- Legacy answers every request as SSE (even a single result); 2026-07-28 answers
  `application/json` unless the handler emits a notification first (then SSE).
- Legacy requests without a session id get 400 *and* a freshly minted `mcp-session-id`.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest

SSE_HEADERS = {
    "content-type": "text/event-stream",
    "cache-control": "no-cache, no-transform",
    "x-accel-buffering": "no",
}
ACCEPT_BOTH = {"accept": "application/json, text/event-stream"}
LEGACY_VERSION = "2025-11-25"
MODERN_VERSION = "2026-07-28"
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
    "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}},
}
SERVER_INFO_META = {"io.modelcontextprotocol/serverInfo": {"name": "mcpr-e2e", "version": "1.0.0"}}
MISSING_SESSION = {
    "jsonrpc": "2.0",
    "id": None,
    "error": {"code": -32600, "message": "Bad Request: Missing session ID"},
}
_FRAME = re.compile(rb"event: message\r\ndata: ([^\r\n]*)\r\n\r\n")


def parse_sse(body: bytes) -> list[dict[str, Any]]:
    """Decode a whole SSE body, requiring the SDK's exact framing for every event."""
    frames = _FRAME.findall(body)
    assert b"".join(b"event: message\r\ndata: " + f + b"\r\n\r\n" for f in frames) == body
    return [json.loads(frame) for frame in frames]


async def sse_messages(response: httpx2.Response) -> AsyncIterator[dict[str, Any]]:
    """Yield the JSON-RPC messages of a streamed SSE response as their events complete."""
    buffer = b""
    async for chunk in response.aiter_bytes():
        buffer += chunk
        while (end := buffer.find(b"\r\n\r\n")) != -1:
            frame, buffer = buffer[: end + 4], buffer[end + 4 :]
            [message] = parse_sse(frame)
            yield message
    assert buffer == b""


def modern_headers(method: str, name: str | None = None) -> dict[str, str]:
    """Return the request headers a 2026-07-28 client sends for `method` (and `name`)."""
    headers = {**ACCEPT_BOTH, "mcp-protocol-version": MODERN_VERSION, "mcp-method": method}
    if name is not None:
        headers["mcp-name"] = name
    return headers


def modern_request(id_: int, method: str, **params: Any) -> dict[str, Any]:
    """Return a 2026-07-28 request body with the `_meta` envelope."""
    meta = {**MODERN_META, **params.pop("_meta", {})}
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": {**params, "_meta": meta}}


@asynccontextmanager
async def legacy_session(http: httpx2.AsyncClient, url: str) -> AsyncIterator[dict[str, str]]:
    """Initialize a legacy session; yield the headers of its later requests; DELETE it."""
    opened = await http.post(
        url,
        headers=ACCEPT_BOTH,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": LEGACY_VERSION,
                "capabilities": {"elicitation": {"form": {}}},
                "clientInfo": {"name": "wire-test", "version": "0"},
            },
        },
    )
    assert opened.status_code == 200
    headers = {
        **ACCEPT_BOTH,
        "mcp-session-id": opened.headers["mcp-session-id"],
        "mcp-protocol-version": LEGACY_VERSION,
    }
    initialized = await http.post(
        url, headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"}
    )
    assert initialized.status_code == 202
    yield headers
    closed = await http.delete(url, headers=headers)
    assert closed.status_code == 200


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    """A plain HTTP client."""
    async with httpx2.AsyncClient() as client:
        yield client


async def test_legacy_initialize_opens_a_session(http: httpx2.AsyncClient, target_url: str) -> None:
    """initialize is answered as one SSE event, with a 32-hex session id in the headers."""
    response = await http.post(
        target_url,
        headers=ACCEPT_BOTH,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": LEGACY_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "wire-test", "version": "0"},
            },
        },
    )
    assert response.status_code == 200
    assert {k: response.headers.get(k) for k in SSE_HEADERS} == SSE_HEADERS
    session = response.headers["mcp-session-id"]
    assert re.fullmatch("[0-9a-f]{32}", session)
    assert parse_sse(response.content) == [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "result": {
                "capabilities": {
                    "prompts": {"listChanged": False},
                    "resources": {"listChanged": False, "subscribe": False},
                    "tools": {"listChanged": False},
                },
                "protocolVersion": LEGACY_VERSION,
                "serverInfo": {"name": "mcpr-e2e", "version": "1.0.0"},
            },
        }
    ]
    closed = await http.delete(target_url, headers={"mcp-session-id": session})
    assert closed.status_code == 200
    assert closed.content == b""


async def test_legacy_notification_is_accepted(http: httpx2.AsyncClient, target_url: str) -> None:
    """A notification in a session gets 202, an empty body and the session id back."""
    async with legacy_session(http, target_url) as headers:
        response = await http.post(
            target_url,
            headers=headers,
            json={"jsonrpc": "2.0", "method": "notifications/roots/list_changed"},
        )
    assert response.status_code == 202
    assert response.content == b""
    assert response.headers["mcp-session-id"] == headers["mcp-session-id"]


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
async def test_legacy_request_without_session_is_400(
    http: httpx2.AsyncClient, target_url: str, method: str
) -> None:
    """Anything but initialize without a session id is 400 -32600 (with a minted session id)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 5, "method": "tools/list"}).encode()
    response = await http.request(
        method,
        target_url,
        headers={**ACCEPT_BOTH, "content-type": "application/json"},
        content=body if method == "POST" else None,
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json() == MISSING_SESSION
    assert re.fullmatch("[0-9a-f]{32}", response.headers["mcp-session-id"])


async def test_legacy_unknown_session_is_404(http: httpx2.AsyncClient, target_url: str) -> None:
    """A session id the server does not know is 404 with a JSON-RPC error."""
    response = await http.post(
        target_url,
        headers={**ACCEPT_BOTH, "mcp-session-id": "0" * 32, "mcp-protocol-version": LEGACY_VERSION},
        json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    )
    assert response.status_code == 404
    assert response.json() == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32600, "message": "Session not found"},
    }


async def test_legacy_get_stream_is_one_per_session(
    http: httpx2.AsyncClient, target_url: str
) -> None:
    """The GET stream opens as SSE; a second GET in the same session is 409."""
    async with (
        legacy_session(http, target_url) as headers,
        http.stream("GET", target_url, headers=headers) as first,
    ):
        assert first.status_code == 200
        assert {k: first.headers.get(k) for k in SSE_HEADERS} == SSE_HEADERS
        second = await http.get(target_url, headers=headers)
    assert second.status_code == 409
    assert second.json() == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {
            "code": -32600,
            "message": "Conflict: Only one SSE stream is allowed per session",
        },
    }


async def test_legacy_progress_events_precede_the_result(
    http: httpx2.AsyncClient, target_url: str
) -> None:
    """A progress-reporting call streams its notifications, then its result, on the POST's SSE."""
    async with legacy_session(http, target_url) as headers:
        response = await http.post(
            target_url,
            headers=headers,
            json={
                "jsonrpc": "2.0",
                "id": 7,
                "method": "tools/call",
                "params": {
                    "name": "slow_count",
                    "arguments": {"n": 2, "delay": 0},
                    "_meta": {"progressToken": "tok"},
                },
            },
        )
    assert response.status_code == 200
    assert {k: response.headers.get(k) for k in SSE_HEADERS} == SSE_HEADERS
    assert parse_sse(response.content) == [
        {
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {"progressToken": "tok", "progress": 1, "total": 2, "message": "step 1/2"},
        },
        {
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {"progressToken": "tok", "progress": 2, "total": 2, "message": "step 2/2"},
        },
        {
            "jsonrpc": "2.0",
            "id": 7,
            "result": {
                "content": [{"text": "counted to 2", "type": "text"}],
                "isError": False,
                "structuredContent": {"result": "counted to 2"},
            },
        },
    ]


async def test_legacy_elicitation_is_answered_by_a_post(
    http: httpx2.AsyncClient, target_url: str
) -> None:
    """The server asks on the call's SSE stream; the answer POST gets 202; then the result comes."""
    async with legacy_session(http, target_url) as headers:
        call = {
            "jsonrpc": "2.0",
            "id": 8,
            "method": "tools/call",
            "params": {"name": "greet", "arguments": {}},
        }
        seen: list[dict[str, Any]] = []
        async with http.stream("POST", target_url, headers=headers, json=call) as response:
            assert response.status_code == 200
            async for message in sse_messages(response):
                seen.append(message)
                if message.get("method") == "elicitation/create":
                    answer = await http.post(
                        target_url,
                        headers=headers,
                        json={
                            "jsonrpc": "2.0",
                            "id": message["id"],
                            "result": {"action": "accept", "content": {"name": "Bo"}},
                        },
                    )
                    assert (answer.status_code, answer.content) == (202, b"")
    asked, result = seen
    # The server numbers its own requests from 1 per session: ids collide with the client's.
    assert asked == {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "elicitation/create",
        "params": {
            "mode": "form",
            "message": "What is your name?",
            "requestedSchema": {
                "description": "The answer the `greet` tools elicit from the user.",
                "properties": {"name": {"title": "Name", "type": "string"}},
                "required": ["name"],
                "title": "Name",
                "type": "object",
            },
        },
    }
    assert result == {
        "jsonrpc": "2.0",
        "id": 8,
        "result": {
            "content": [{"text": "Hello, Bo!", "type": "text"}],
            "isError": False,
            "structuredContent": {"result": "Hello, Bo!"},
        },
    }


async def test_modern_result_is_plain_json(http: httpx2.AsyncClient, target_url: str) -> None:
    """A 2026-07-28 call that emits nothing is answered application/json, with no session id."""
    response = await http.post(
        target_url,
        headers=modern_headers("tools/call", "echo"),
        json=modern_request(3, "tools/call", name="echo", arguments={"text": "hi"}),
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert "mcp-session-id" not in response.headers
    assert response.json() == {
        "jsonrpc": "2.0",
        "id": 3,
        "result": {
            "content": [{"text": "hi", "type": "text"}],
            "isError": False,
            "resultType": "complete",
            "structuredContent": {"result": "hi"},
            "_meta": SERVER_INFO_META,
        },
    }


async def test_modern_progress_switches_to_sse(http: httpx2.AsyncClient, target_url: str) -> None:
    """A 2026-07-28 call that reports progress is answered as SSE: notifications, then result."""
    response = await http.post(
        target_url,
        headers=modern_headers("tools/call", "slow_count"),
        json=modern_request(
            4,
            "tools/call",
            name="slow_count",
            arguments={"n": 2, "delay": 0},
            _meta={"progressToken": 4},
        ),
    )
    assert response.status_code == 200
    assert {k: response.headers.get(k) for k in SSE_HEADERS} == SSE_HEADERS
    assert [m.get("method") for m in parse_sse(response.content)] == [
        "notifications/progress",
        "notifications/progress",
        None,
    ]
    *progress, result = parse_sse(response.content)
    assert [p["params"]["progress"] for p in progress] == [1, 2]
    assert result["id"] == 4
    assert result["result"]["structuredContent"] == {"result": "counted to 2"}


@pytest.mark.parametrize("opted_in", [True, False], ids=["log-level", "no-log-level"])
async def test_modern_logs_need_the_meta_opt_in(
    http: httpx2.AsyncClient, target_url: str, opted_in: bool
) -> None:
    """Log messages are sent (as SSE) only when `_meta` carries a log level; else plain JSON."""
    meta = {"io.modelcontextprotocol/logLevel": "info"} if opted_in else {}
    response = await http.post(
        target_url,
        headers=modern_headers("tools/call", "chatty"),
        json=modern_request(5, "tools/call", name="chatty", arguments={"text": "z"}, _meta=meta),
    )
    assert response.status_code == 200
    if not opted_in:
        assert response.headers["content-type"] == "application/json"
        assert response.json()["result"]["structuredContent"] == {"result": "logged z"}
        return
    assert response.headers["content-type"] == "text/event-stream"
    *logs, result = parse_sse(response.content)
    assert logs == [
        {
            "jsonrpc": "2.0",
            "method": "notifications/message",
            "params": {"level": "info", "data": "info: z"},
        },
        {
            "jsonrpc": "2.0",
            "method": "notifications/message",
            "params": {"level": "warning", "data": "warning: z"},
        },
    ]
    assert result["result"]["structuredContent"] == {"result": "logged z"}


async def test_modern_input_required_round_trip(http: httpx2.AsyncClient, target_url: str) -> None:
    """An eliciting call returns input_required; the retry with inputResponses completes it."""
    headers = modern_headers("tools/call", "greet")
    first = await http.post(
        target_url,
        headers=headers,
        json=modern_request(10, "tools/call", name="greet", arguments={}),
    )
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json"
    body = first.json()
    assert body["id"] == 10
    asked = body["result"]
    assert asked["resultType"] == "input_required"
    [(key, request)] = asked["inputRequests"].items()
    # The key is the resolver's `module:qualname`; the server runs as a script.
    assert key == "__main__:ask_name"
    assert request == {
        "method": "elicitation/create",
        "params": {
            "message": "What is your name?",
            "mode": "form",
            "requestedSchema": {
                "properties": {"name": {"title": "Name", "type": "string"}},
                "required": ["name"],
                "type": "object",
            },
        },
    }
    assert isinstance(asked["requestState"], str)

    retry = modern_request(
        11,
        "tools/call",
        name="greet",
        arguments={},
        inputResponses={key: {"action": "accept", "content": {"name": "Cy"}}},
        requestState=asked["requestState"],
    )
    second = await http.post(target_url, headers=headers, json=retry)
    assert second.status_code == 200
    assert second.json() == {
        "jsonrpc": "2.0",
        "id": 11,
        "result": {
            "content": [{"text": "Hello, Cy!", "type": "text"}],
            "isError": False,
            "resultType": "complete",
            "structuredContent": {"result": "Hello, Cy!"},
            "_meta": SERVER_INFO_META,
        },
    }


async def test_modern_notification_is_accepted(http: httpx2.AsyncClient, target_url: str) -> None:
    """A 2026-07-28 notification POST gets 202 with no body and no content type."""
    response = await http.post(
        target_url,
        headers={**ACCEPT_BOTH, "mcp-protocol-version": MODERN_VERSION},
        json={"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}},
    )
    assert response.status_code == 202
    assert response.content == b""
    assert "content-type" not in response.headers


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_modern_get_and_delete_are_405(
    http: httpx2.AsyncClient, target_url: str, method: str
) -> None:
    """With a 2026-07-28 version header, GET and DELETE are 405 with `Allow: POST`."""
    response = await http.request(
        method, target_url, headers={**ACCEPT_BOTH, "mcp-protocol-version": MODERN_VERSION}
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.content == b""


@pytest.mark.parametrize(
    ("method_header", "name_header", "message"),
    [
        (
            "tools/call",
            "fail",
            "mcp-name header does not match the request body's 'name' parameter",
        ),
        ("tools/call", None, "mcp-name header does not match the request body's 'name' parameter"),
        ("tools/list", "echo", "mcp-method header does not match the request body's method"),
    ],
    ids=["wrong-name", "missing-name", "wrong-method"],
)
async def test_modern_header_mismatch_is_400(
    http: httpx2.AsyncClient,
    target_url: str,
    method_header: str,
    name_header: str | None,
    message: str,
) -> None:
    """Routing headers that disagree with the body are 400 with HeaderMismatch (-32020)."""
    response = await http.post(
        target_url,
        headers=modern_headers(method_header, name_header),
        json=modern_request(12, "tools/call", name="echo", arguments={"text": "x"}),
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "jsonrpc": "2.0",
        "id": 12,
        "error": {"code": -32020, "message": message},
    }


async def test_modern_unknown_method_is_404(http: httpx2.AsyncClient, target_url: str) -> None:
    """An unknown 2026-07-28 method is 404 with -32601 (the body tells it from a legacy 404)."""
    response = await http.post(
        target_url, headers=modern_headers("foo/bar"), json=modern_request(13, "foo/bar")
    )
    assert response.status_code == 404
    assert response.json() == {
        "jsonrpc": "2.0",
        "id": 13,
        "error": {"code": -32601, "message": "Method not found", "data": "foo/bar"},
    }


async def test_modern_unsupported_version_is_400(http: httpx2.AsyncClient, target_url: str) -> None:
    """An unknown protocol version is 400 with -32022 listing the supported versions."""
    body = modern_request(14, "tools/list")
    body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2099-01-01"
    response = await http.post(
        target_url,
        headers={**modern_headers("tools/list"), "mcp-protocol-version": "2099-01-01"},
        json=body,
    )
    assert response.status_code == 400
    assert response.json() == {
        "jsonrpc": "2.0",
        "id": 14,
        "error": {
            "code": -32022,
            "message": "Unsupported protocol version",
            "data": {"supported": [MODERN_VERSION], "requested": "2099-01-01"},
        },
    }


async def test_foreign_origin_is_403(http: httpx2.AsyncClient, target_url: str) -> None:
    """A request from a foreign Origin is refused with 403."""
    response = await http.post(
        target_url,
        headers={**modern_headers("tools/list"), "origin": "http://evil.example"},
        json=modern_request(15, "tools/list"),
    )
    # The SDK's body is the text `Invalid Origin header`; mcpr checks Origin itself (PROTOCOL.md
    # §7 decision 5), so only the status is pinned.
    assert response.status_code == 403
