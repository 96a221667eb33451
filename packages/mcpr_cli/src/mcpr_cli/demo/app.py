"""The sample MCP app behind `mcpr demo`: a tiny Streamable HTTP server on anyio + h11.

It speaks just enough MCP (legacy sessions, protocol 2025-06-18) to show what mcpr does:
a weather tool with a widget, the widget's `ui://` resource whose CSP names localhost (as a
server under development would), a tool that streams progress over SSE, a prompt, and a
tool that fails with a JSON-RPC error. It is a demonstration, not a general MCP server.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import anyio
import anyio.abc
import h11
from anyio.abc import SocketAttribute

from mcpr_cli.transport.h11io import receive_event, send_event

__all__ = ["WIDGET_URI", "DemoApp", "demo_app"]

WIDGET_URI: Final = "ui://demo/forecast.html"
_DEV_ORIGIN: Final = "http://localhost:5173"
_WIDGET_HTML: Final = (
    "<!doctype html><html><body><div id='forecast'></div>"
    "<script type='module' src='http://localhost:5173/widget.js'></script></body></html>"
)
_WIDGET_META: Final = {
    "ui": {
        "csp": {
            "connectDomains": [_DEV_ORIGIN, "https://api.open-meteo.com"],
            "resourceDomains": [_DEV_ORIGIN],
        },
        "prefersBorder": True,
    },
    "openai/widgetCSP": {
        "connect_domains": [_DEV_ORIGIN, "https://api.open-meteo.com"],
        "resource_domains": [_DEV_ORIGIN],
    },
    "openai/widgetDomain": _DEV_ORIGIN,
}
_TOOLS: Final = [
    {
        "name": "get_forecast",
        "description": "Three-day forecast for a city, shown in a widget.",
        "inputSchema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
        "_meta": {"ui": {"resourceUri": WIDGET_URI}, "openai/outputTemplate": WIDGET_URI},
    },
    {
        "name": "count_down",
        "description": "Counts down from n, reporting progress at every step.",
        "inputSchema": {"type": "object", "properties": {"n": {"type": "integer"}}},
    },
    {
        "name": "flaky_lookup",
        "description": "Always fails: shows how errors are recorded.",
        "inputSchema": {"type": "object", "properties": {}},
    },
]
_PROMPTS: Final = [
    {
        "name": "weather_summary",
        "description": "Summarise the weather for a city.",
        "arguments": [{"name": "city", "required": True}],
    }
]
_JSON: Final = [("content-type", "application/json")]
_SSE: Final = [("content-type", "text/event-stream"), ("cache-control", "no-cache")]

Reply = tuple[int, list[tuple[str, str]], bytes | list[bytes]]


def _result(rid: Any, result: dict[str, Any]) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}).encode()


def _error(rid: Any, code: int, message: str) -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}
    ).encode()


def _event(payload: dict[str, Any]) -> bytes:
    return b"event: message\ndata: " + json.dumps(payload).encode() + b"\n\n"


class DemoApp:
    """Answers the MCP requests of the demo; one instance serves every connection."""

    def __init__(self) -> None:
        self.sessions: set[str] = set()

    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        """The status, headers and body (one bytes, or SSE chunks) for one request."""
        if method == "DELETE":
            self.sessions.discard(headers.get("mcp-session-id", ""))
            return 200, [], b""
        if method != "POST":
            return 405, [("allow", "POST, DELETE")], b""
        try:
            message = json.loads(body)
        except ValueError:
            return 400, _JSON, _error(None, -32700, "Parse error")
        if not isinstance(message, dict) or "method" not in message:
            return 400, _JSON, _error(None, -32600, "Invalid Request")
        if "id" not in message:
            return 202, [], b""
        return self._request(message["id"], message["method"], message.get("params") or {})

    def _request(self, rid: Any, method: str, params: dict[str, Any]) -> Reply:
        if method == "initialize":
            session = secrets.token_hex(16)
            self.sessions.add(session)
            result = {
                "protocolVersion": "2025-06-18",
                "capabilities": {"tools": {}, "resources": {}, "prompts": {}},
                "serverInfo": {"name": "mcpr-demo-weather", "version": "1.0.0"},
            }
            return 200, [*_JSON, ("mcp-session-id", session)], _result(rid, result)
        if method == "tools/list":
            return 200, _JSON, _result(rid, {"tools": _TOOLS})
        if method == "tools/call":
            return self._call(rid, params)
        if method == "resources/list":
            entry = {"uri": WIDGET_URI, "name": "forecast", "mimeType": "text/html;profile=mcp-app"}
            return 200, _JSON, _result(rid, {"resources": [entry]})
        if method == "resources/read" and params.get("uri") == WIDGET_URI:
            content = {
                "uri": WIDGET_URI,
                "mimeType": "text/html;profile=mcp-app",
                "text": _WIDGET_HTML,
                "_meta": _WIDGET_META,
            }
            return 200, _JSON, _result(rid, {"contents": [content]})
        if method == "resources/read":
            return 200, _JSON, _error(rid, -32002, "Resource not found")
        if method == "prompts/list":
            return 200, _JSON, _result(rid, {"prompts": _PROMPTS})
        if method == "prompts/get":
            city = (params.get("arguments") or {}).get("city", "somewhere")
            text = f"Summarise the three-day forecast for {city} in one sentence."
            message = {"role": "user", "content": {"type": "text", "text": text}}
            return 200, _JSON, _result(rid, {"messages": [message]})
        return 200, _JSON, _error(rid, -32601, f"Method not found: {method}")

    def _call(self, rid: Any, params: dict[str, Any]) -> Reply:
        name = params.get("name")
        arguments = params.get("arguments") or {}
        if name == "get_forecast":
            city = str(arguments.get("city", "Paris"))
            days = [{"day": d, "high_c": 18 + i, "sky": "sun"} for i, d in enumerate("MTW")]
            result = {
                "content": [{"type": "text", "text": f"Sunny in {city} for three days."}],
                "structuredContent": {"city": city, "days": days},
                "_meta": {"openai/outputTemplate": WIDGET_URI},
            }
            return 200, _JSON, _result(rid, result)
        if name == "count_down":
            token = ((params.get("_meta") or {}).get("progressToken")) or "count"
            n = int(arguments.get("n", 3))
            chunks = [
                _event(
                    {
                        "jsonrpc": "2.0",
                        "method": "notifications/progress",
                        "params": {"progressToken": token, "progress": i + 1, "total": n},
                    }
                )
                for i in range(n)
            ]
            done = {"content": [{"type": "text", "text": f"counted down from {n}"}]}
            chunks.append(_event({"jsonrpc": "2.0", "id": rid, "result": done}))
            return 200, _SSE, chunks
        if name == "flaky_lookup":
            return 200, _JSON, _error(rid, -32000, "Upstream weather service unavailable")
        return 200, _JSON, _error(rid, -32602, f"Unknown tool: {name}")

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        """Serve one connection (keep-alive), streaming SSE replies event by event."""
        conn = h11.Connection(h11.SERVER)
        async with stream:
            while True:
                try:
                    request, body = await _read_request(conn, stream)
                except (h11.RemoteProtocolError, anyio.BrokenResourceError):
                    return
                if request is None:
                    return
                headers = {k.decode(): v.decode() for k, v in request.headers}
                status, out_headers, payload = self.answer(
                    request.method.decode(), request.target.decode(), headers, body
                )
                try:
                    await _write(conn, stream, status, out_headers, payload)
                except (anyio.BrokenResourceError, h11.LocalProtocolError):
                    return
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()


async def _read_request(
    conn: h11.Connection, stream: anyio.abc.SocketStream
) -> tuple[h11.Request | None, bytes]:
    request: h11.Request | None = None
    parts: list[bytes] = []
    while True:
        event = await receive_event(conn, stream)
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            parts.append(event.data)
        elif isinstance(event, h11.EndOfMessage):
            return request, b"".join(parts)
        else:
            return None, b""


async def _write(
    conn: h11.Connection,
    stream: anyio.abc.SocketStream,
    status: int,
    headers: list[tuple[str, str]],
    payload: bytes | list[bytes],
) -> None:
    if isinstance(payload, bytes):
        headers = [*headers, ("content-length", str(len(payload)))]
        await send_event(conn, stream, h11.Response(status_code=status, headers=headers))
        if payload:
            await send_event(conn, stream, h11.Data(data=payload))
    else:
        await send_event(conn, stream, h11.Response(status_code=status, headers=headers))
        for chunk in payload:
            await send_event(conn, stream, h11.Data(data=chunk))
            await anyio.sleep(0.05)  # a real tool does work between progress reports
    await send_event(conn, stream, h11.EndOfMessage())


@asynccontextmanager
async def demo_app() -> AsyncIterator[str]:
    """Run the demo app on a free loopback port; yields its MCP endpoint URL."""
    app = DemoApp()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, app.handle)
        try:
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            group.cancel_scope.cancel()
