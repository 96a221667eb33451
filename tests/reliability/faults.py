"""A raw TCP upstream that misbehaves on cue: resets, half-closes, garbage, drips, lies.

The stub of `tests/cli/stub_upstream.py` speaks correct HTTP through h11; this one writes
whatever bytes a test scripts, so it can break HTTP on purpose. It reads each request (a
head and a Content-Length body) and hands the connection to the `Action` the script
returns for that request's number (1, 2, …):

    async with fault_upstream(lambda n: RESET if n == 1 else reply()) as upstream:
        ... upstream.url, upstream.requests, upstream.connections_open ...

An action returns True to keep the connection for the next request, False to close it.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

__all__ = [
    "CLOSE",
    "HALF_CLOSE",
    "HANG",
    "OK_BODY",
    "RESET",
    "Action",
    "FaultUpstream",
    "drip",
    "fault_upstream",
    "reply",
    "response",
    "send_then",
]

Action = Callable[[anyio.abc.SocketStream], Awaitable[bool]]

OK_BODY = b'{"jsonrpc":"2.0","id":1,"result":{}}'
_EOF = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


def response(body: bytes = OK_BODY, *, length: int | None = None, status: int = 200) -> bytes:
    """A whole HTTP/1.1 JSON response; `length` overrides the Content-Length it declares."""
    declared = len(body) if length is None else length
    head = f"HTTP/1.1 {status} OK\r\ncontent-type: application/json\r\n"
    return f"{head}content-length: {declared}\r\n\r\n".encode() + body


def reply(body: bytes = OK_BODY) -> Action:
    """Answer correctly and keep the connection."""

    async def action(stream: anyio.abc.SocketStream) -> bool:
        await stream.send(response(body))
        return True

    return action


async def _reset(stream: anyio.abc.SocketStream) -> None:
    """Close with an RST instead of a FIN (SO_LINGER with a zero timeout)."""
    sock = stream.extra(SocketAttribute.raw_socket)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await stream.aclose()


async def RESET(stream: anyio.abc.SocketStream) -> bool:
    """Reset the connection without a byte of answer."""
    await _reset(stream)
    return False


async def CLOSE(stream: anyio.abc.SocketStream) -> bool:
    """Close the connection (FIN) without a byte of answer."""
    return False


async def HALF_CLOSE(stream: anyio.abc.SocketStream) -> bool:
    """Shut down the sending side only, then wait for the peer to hang up."""
    await stream.send_eof()
    try:
        while await stream.receive():
            pass
    except _EOF:
        pass
    return False


async def HANG(stream: anyio.abc.SocketStream) -> bool:
    """Never answer; return when the peer hangs up."""
    try:
        while await stream.receive():
            pass
    except _EOF:
        pass
    return False


def send_then(data: bytes, then: Action = CLOSE) -> Action:
    """Send `data` as it is, then do `then` (close by default)."""

    async def action(stream: anyio.abc.SocketStream) -> bool:
        await stream.send(data)
        return await then(stream)

    return action


def drip(data: bytes, *, every: float, size: int = 1) -> Action:
    """Send `data` `size` bytes at a time, one piece every `every` seconds; keep the connection."""

    async def action(stream: anyio.abc.SocketStream) -> bool:
        for start in range(0, len(data), size):
            await stream.send(data[start : start + size])
            await anyio.sleep(every)
        return True

    return action


@dataclass(slots=True)
class FaultUpstream:
    """Where the fault upstream listens, and what it saw."""

    port: int
    requests: int = 0
    connections_open: int = 0
    connections_total: int = 0

    @property
    def url(self) -> str:
        """The MCP endpoint to configure a proxy with."""
        return f"http://127.0.0.1:{self.port}/mcp"


async def _read_request(stream: anyio.abc.SocketStream, buffer: bytearray) -> bool:
    """Take one request off the connection; False when the peer closed first."""
    try:
        while b"\r\n\r\n" not in buffer:
            data = await stream.receive()
            buffer += data
        head = bytes(buffer).partition(b"\r\n\r\n")[0]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        end = len(head) + 4 + length
        while len(buffer) < end:
            buffer += await stream.receive()
    except _EOF:
        return False
    del buffer[:end]
    return True


@asynccontextmanager
async def fault_upstream(script: Callable[[int], Action]) -> AsyncIterator[FaultUpstream]:
    """Listen on 127.0.0.1 (a free port) until the block exits; `script(n)` acts on request n."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    upstream = FaultUpstream(listener.extra(SocketAttribute.local_port))

    async def handle(stream: anyio.abc.SocketStream) -> None:
        upstream.connections_open += 1
        upstream.connections_total += 1
        buffer = bytearray()
        try:
            while await _read_request(stream, buffer):
                upstream.requests += 1
                try:
                    if not await script(upstream.requests)(stream):
                        return
                except _EOF:
                    return
        finally:
            upstream.connections_open -= 1
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, handle)
        try:
            yield upstream
        finally:
            group.cancel_scope.cancel()
