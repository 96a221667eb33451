"""A minimal, fast MCP upstream (h11 + anyio), run as its own process by the harness.

`python -m benchmarks.upstream --port N [--delay 0.01]` serves HTTP/1.1 keep-alive on
127.0.0.1 and prints `ready` once listening. It speaks just enough MCP for every path in
the benchmark, the FastMCP proxy included:

- `initialize` (a new `Mcp-Session-Id` each time), notifications (202), `ping`,
  `tools/list`, `tools/call` of `echo` (a small fixed result), `resources/list`, and
  `resources/read` of the captured ~230 KB widget with its CSP metadata;
- `tools/call` of `stream`: 20 `notifications/progress` events 10 ms apart, each carrying
  the CLOCK_MONOTONIC nanoseconds at which it was written (`sentAt`), then the result, so
  the client can time how long an event takes to get through a proxy;
- any other method: JSON-RPC error -32601; GET: 405; DELETE: 200.

Answers are JSON with a Content-Length, or SSE (chunked) when the request carries
`x-bench-framing: sse`. `--delay` holds every answer that long (the "slow upstream").
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import time
from typing import Any, Final

import anyio
import anyio.abc
import h11

from benchmarks.payloads import widget

__all__ = ["main"]

_READ: Final = 65536
_STREAM_EVENTS: Final = 20
_STREAM_GAP: Final = 0.01


def _dump(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class _Answers:
    """Result objects serialised once; only the id is spliced in per request."""

    def __init__(self) -> None:
        w = widget()
        tool_schema = {"type": "object", "properties": {"text": {"type": "string"}}}
        self.results: dict[str, bytes] = {
            "ping": b"{}",
            "tools/list": _dump(
                {
                    "tools": [
                        {"name": "echo", "description": "Say ok.", "inputSchema": tool_schema},
                        {"name": "stream", "description": "Progress.", "inputSchema": tool_schema},
                    ]
                }
            ),
            "tools/call": _dump({"content": [{"type": "text", "text": "ok"}], "isError": False}),
            "resources/list": _dump({"resources": [w.listing]}),
            "resources/read": _dump(w.result),
        }
        self.sessions = itertools.count(1)

    def initialize(self, params: dict[str, Any]) -> bytes:
        version = params.get("protocolVersion", "2025-11-25")
        return _dump(
            {
                "protocolVersion": version,
                "capabilities": {"tools": {}, "resources": {}},
                "serverInfo": {"name": "mcpr-bench-upstream", "version": "1.0.0"},
            }
        )


def _message(rid: object, result: bytes) -> bytes:
    return b'{"jsonrpc":"2.0","id":%s,"result":%s}' % (_dump(rid), result)


def _sse(message: bytes) -> bytes:
    return b"event: message\ndata: " + message + b"\n\n"


async def _send(conn: h11.Connection, stream: anyio.abc.ByteStream, *events: h11.Event) -> None:
    data = b"".join(conn.send(event) or b"" for event in events)
    await stream.send(data)


async def _answer(
    answers: _Answers,
    conn: h11.Connection,
    stream: anyio.abc.ByteStream,
    request: h11.Request,
    body: bytes,
) -> None:
    if request.method == b"GET":
        await _send(
            conn, stream, h11.Response(status_code=405, headers=[(b"content-length", b"0")])
        )
        await _send(conn, stream, h11.EndOfMessage())
        return
    if request.method != b"POST":
        await _send(
            conn, stream, h11.Response(status_code=200, headers=[(b"content-length", b"0")])
        )
        await _send(conn, stream, h11.EndOfMessage())
        return
    sse = any(k == b"x-bench-framing" and v == b"sse" for k, v in request.headers)
    message = json.loads(body)
    method = message.get("method", "")
    extra: list[tuple[bytes, bytes]] = []
    if "id" not in message:
        head = h11.Response(status_code=202, headers=[(b"content-length", b"0")])
        await _send(conn, stream, head, h11.EndOfMessage())
        return
    rid = message["id"]
    params = message.get("params") or {}
    if method == "initialize":
        extra.append((b"mcp-session-id", b"%x" % next(answers.sessions)))
        reply = _message(rid, answers.initialize(params))
    elif method == "tools/call" and params.get("name") == "stream":
        await _stream(conn, stream, rid)
        return
    elif method in answers.results:
        reply = _message(rid, answers.results[method])
    else:
        error = {"code": -32601, "message": f"Method not found: {method}"}
        reply = b'{"jsonrpc":"2.0","id":%s,"error":%s}' % (_dump(rid), _dump(error))
    if sse:
        headers = [(b"content-type", b"text/event-stream"), *extra]
        reply = _sse(reply)
    else:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(reply)),
            *extra,
        ]
    await _send(
        conn,
        stream,
        h11.Response(status_code=200, headers=headers),
        h11.Data(data=reply),
        h11.EndOfMessage(),
    )


async def _stream(conn: h11.Connection, stream: anyio.abc.ByteStream, rid: object) -> None:
    """Progress events written one by one, each stamped with the time of its writing."""
    await _send(
        conn,
        stream,
        h11.Response(status_code=200, headers=[(b"content-type", b"text/event-stream")]),
    )
    for step in range(1, _STREAM_EVENTS + 1):
        sent = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        note = {
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {
                "progressToken": 1,
                "progress": step,
                "total": _STREAM_EVENTS,
                "sentAt": sent,
            },
        }
        await _send(conn, stream, h11.Data(data=_sse(_dump(note))))
        await anyio.sleep(_STREAM_GAP)
    done = _message(rid, b'{"content":[{"type":"text","text":"streamed"}],"isError":false}')
    await _send(conn, stream, h11.Data(data=_sse(done)), h11.EndOfMessage())


async def _connection(answers: _Answers, delay: float, stream: anyio.abc.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 20)
    async with stream:
        while True:
            parts: list[bytes] = []
            request: h11.Request | None = None
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    try:
                        conn.receive_data(await stream.receive(_READ))
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        return
                elif isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    parts.append(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:  # ConnectionClosed, PAUSED
                    return
            assert request is not None
            if delay:
                await anyio.sleep(delay)
            try:
                await _answer(answers, conn, stream, request, b"".join(parts))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()


async def _serve(port: int, delay: float) -> None:
    answers = _Answers()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)

    async def handle(stream: anyio.abc.SocketStream) -> None:
        await _connection(answers, delay, stream)

    print("ready", flush=True)
    await listener.serve(handle)


def main() -> None:
    """Parse the flags and serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()
    options = {"use_uvloop": importlib.util.find_spec("uvloop") is not None}
    anyio.run(_serve, args.port, args.delay, backend="asyncio", backend_options=options)


if __name__ == "__main__":
    main()
