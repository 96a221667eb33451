"""A scriptable relay for driver tests: wsproto on 127.0.0.1, one test-controlled session.

The test receives each tunnel connection as a `RelaySide` (through `fake.sessions`) and
plays the relay's part frame by frame: read the client's hello, send a registration, push
requests, read answers, grant credit, cancel, close. Nothing of mcpr is used.

    async with fake_relay() as fake:
        client = TunnelClient(fake.url, "tok", local_url)
        ...
        side = await fake.next_session()
        hello = await side.receive()
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import h11
from anyio.abc import SocketAttribute
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection

from mcp_tunnel_client.frames import Frame, encode_frame, parse_frame
from mcp_tunnel_client.websocket import MAX_MESSAGE, WebSocket

__all__ = ["FakeRelay", "RelaySide", "fake_relay"]

#: Bound on every wait of a test on the client.
WITHIN = 5.0


class RelaySide:
    """The relay's end of one tunnel connection."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.done = anyio.Event()

    async def receive(self) -> Frame:
        """The client's next frame."""
        with anyio.fail_after(WITHIN):
            return parse_frame(await self.ws.receive_text())

    async def send(self, frame: Frame | str) -> None:
        """Send a frame, or any text."""
        await self.ws.send_text(frame if isinstance(frame, str) else encode_frame(frame))

    async def close(self) -> None:
        """Close the connection (the client sees the tunnel drop)."""
        await self.ws.aclose()
        self.done.set()


class FakeRelay:
    """The listener; `url` is what a tunnel client is given."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self._send: MemoryObjectSendStream[RelaySide]
        self._receive: MemoryObjectReceiveStream[RelaySide]
        self._send, self._receive = anyio.create_memory_object_stream[RelaySide](math.inf)

    async def next_session(self) -> RelaySide:
        """The next tunnel connection the client opened."""
        with anyio.fail_after(WITHIN):
            return await self._receive.receive()

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        """Accept the WebSocket upgrade, then hand the session to the test until it ends."""
        async with stream:
            await self._session(stream)

    async def _session(self, stream: anyio.abc.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive())
                continue
            break
        assert isinstance(event, h11.Request)
        ws_conn = WSConnection(ConnectionType.SERVER)
        ws_conn.initiate_upgrade_connection(list(event.headers), event.target)
        await stream.send(ws_conn.send(AcceptConnection()))
        side = RelaySide(WebSocket(stream, ws_conn, MAX_MESSAGE))
        self._send.send_nowait(side)
        await side.done.wait()

    def aclose(self) -> None:
        """No more sessions."""
        self._send.close()
        self._receive.close()


@asynccontextmanager
async def fake_relay() -> AsyncIterator[FakeRelay]:
    """Listen on a free loopback port until the block exits."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    fake = FakeRelay(listener.extra(SocketAttribute.local_port))
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, fake.handle, group)
        try:
            yield fake
        finally:
            group.cancel_scope.cancel()
            fake.aclose()
