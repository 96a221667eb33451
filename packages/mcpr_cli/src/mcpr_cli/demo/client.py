"""The scripted MCP client session of `mcpr demo` (anyio + h11, one keep-alive connection)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.abc
import h11

from mcpr_cli.transport.h11io import receive_event, send_event
from mcpr_core.sse import SSEDecoder, SSEEvent

__all__ = ["DemoClient", "Reply"]


@dataclass(slots=True)
class Reply:
    """One HTTP answer, with the JSON-RPC messages found in it (JSON or SSE)."""

    status: int
    headers: dict[str, str]
    body: bytes
    messages: list[dict[str, Any]] = field(default_factory=list)

    def result(self) -> dict[str, Any]:
        """The `result` of the final JSON-RPC response; ValueError when there is none."""
        for message in reversed(self.messages):
            if isinstance(message.get("result"), dict):
                result: dict[str, Any] = message["result"]
                return result
        raise ValueError(f"no JSON-RPC result in the answer (HTTP {self.status})")

    def error(self) -> dict[str, Any] | None:
        """The JSON-RPC error of the answer, if any."""
        for message in self.messages:
            if isinstance(message.get("error"), dict):
                error: dict[str, Any] = message["error"]
                return error
        return None


class DemoClient:
    """Talks MCP to one endpoint: a session id is kept once `initialize` returned one."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._path = parts.path or "/"
        self._stream: anyio.abc.SocketStream | None = None
        self._conn = h11.Connection(h11.CLIENT)
        self._next_id = 0
        self.session_id: str | None = None

    async def __aenter__(self) -> DemoClient:
        self._stream = await anyio.connect_tcp(self._host, self._port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stream is not None:
            await self._stream.aclose()

    async def request(self, method: str, params: dict[str, Any] | None = None) -> Reply:
        """Send a JSON-RPC request and read the whole answer."""
        self._next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self._next_id, "method": method}
        if params is not None:
            message["params"] = params
        reply = await self._exchange(b"POST", json.dumps(message).encode())
        if method == "initialize" and "mcp-session-id" in reply.headers:
            self.session_id = reply.headers["mcp-session-id"]
        return reply

    async def notify(self, method: str) -> Reply:
        """Send a JSON-RPC notification."""
        return await self._exchange(
            b"POST", json.dumps({"jsonrpc": "2.0", "method": method}).encode()
        )

    async def delete(self) -> Reply:
        """End the session (HTTP DELETE with its id)."""
        return await self._exchange(b"DELETE", b"")

    async def _exchange(self, method: bytes, body: bytes) -> Reply:
        stream = self._stream
        assert stream is not None, "use DemoClient as an async context manager"
        conn = self._conn
        headers = [
            ("host", f"{self._host}:{self._port}"),
            ("accept", "application/json, text/event-stream"),
            ("content-length", str(len(body))),
        ]
        if body:
            headers.append(("content-type", "application/json"))
        if self.session_id is not None:
            headers.append(("mcp-session-id", self.session_id))
        await send_event(
            conn, stream, h11.Request(method=method, target=self._path, headers=headers)
        )
        if body:
            await send_event(conn, stream, h11.Data(data=body))
        await send_event(conn, stream, h11.EndOfMessage())
        status, answer_headers, parts = 0, {}, []
        while True:
            event = await receive_event(conn, stream)
            if isinstance(event, h11.Response):
                status = event.status_code
                answer_headers = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise ConnectionError("the proxy closed the connection mid-answer")
        conn.start_next_cycle()
        payload = b"".join(parts)
        return Reply(status, answer_headers, payload, _messages(answer_headers, payload))


def _messages(headers: dict[str, str], body: bytes) -> list[dict[str, Any]]:
    if not body:
        return []
    if headers.get("content-type", "").startswith("text/event-stream"):
        decoder = SSEDecoder()
        decoder.receive_data(body)
        decoder.receive_data(b"")
        out = []
        while isinstance(event := decoder.next_event(), SSEEvent):
            if event.data:
                out.append(json.loads(event.data))
        return out
    parsed = json.loads(body)
    return [parsed] if isinstance(parsed, dict) else []
