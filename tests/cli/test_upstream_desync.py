"""An upstream that sends more than its Content-Length must not poison the pool.

The surplus bytes answer no request of the proxy's. Were the connection reused, they would
be read as the answer to the next client's request: another client's response, or one the
upstream (or whoever controls its output) chose. The connection is closed instead.
"""

from __future__ import annotations

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

from tests.cli.wire import JSON, connect, rpc, run_proxy


def _response(body: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    return head % len(body) + body


async def _read_request(stream: anyio.abc.ByteStream, buffer: bytearray) -> None:
    """Consume one request (a head with a Content-Length body) from `buffer` and `stream`."""
    while b"\r\n\r\n" not in buffer:
        buffer += await stream.receive()
    head, _, _ = bytes(buffer).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    end = len(head) + 4 + length
    while len(buffer) < end:
        buffer += await stream.receive()
    del buffer[:end]


async def test_surplus_bytes_after_a_response_close_the_upstream_connection() -> None:
    """A second client never receives bytes the upstream appended to the first answer."""
    first = b'{"jsonrpc":"2.0","id":1,"result":{}}'
    forged = b'{"jsonrpc":"2.0","id":2,"result":{"forged":true}}'
    honest = b'{"jsonrpc":"2.0","id":2,"result":{"honest":true}}'
    connections = 0

    async def upstream(stream: anyio.abc.SocketStream) -> None:
        nonlocal connections
        connections += 1
        buffer = bytearray()
        async with stream:
            try:
                await _read_request(stream, buffer)
                if connections == 1:
                    await stream.send(_response(first) + _response(forged))
                else:
                    await stream.send(_response(honest))
                await _read_request(stream, buffer)
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    url = f"http://127.0.0.1:{listener.extra(SocketAttribute.local_port)}/mcp"
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, upstream)
        async with run_proxy(url) as proxy:
            async with connect(proxy) as c:
                one = await c.request(b"POST", b"/mcp", JSON, rpc("ping", 1))
            async with connect(proxy) as c:
                two = await c.request(b"POST", b"/mcp", JSON, rpc("ping", 2))
            await proxy.wait_exchanges(2)
        group.cancel_scope.cancel()
    assert one.body == first
    assert two.body == honest
    assert connections == 2
