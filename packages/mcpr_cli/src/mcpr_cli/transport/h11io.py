"""The two helpers every h11 conversation here goes through, and error translation.

`receive_event` pulls the next h11 event, reading from the stream when h11 needs data;
`send_event` serialises one event and writes it. End of stream and connection resets are
both fed to h11 as EOF, so h11 alone decides whether that was legal at this point.
"""

from __future__ import annotations

from typing import Final

import anyio
import anyio.abc
import h11

__all__ = ["READ_SIZE", "receive_event", "send_event"]

#: Bytes asked of the socket per read; large enough for a typical MCP message in one go.
READ_SIZE: Final = 65536

_EOF_ERRORS: Final = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError)


async def receive_event(conn: h11.Connection, stream: anyio.abc.ByteStream) -> h11.Event | type:
    """Return the next h11 event (or `h11.PAUSED`), reading from `stream` as needed.

    Raises `h11.RemoteProtocolError` for malformed input or a premature end of stream.
    """
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        try:
            data = await stream.receive(READ_SIZE)
        except _EOF_ERRORS:
            data = b""
        conn.receive_data(data)


async def send_event(
    conn: h11.Connection, stream: anyio.abc.ByteStream, event: h11.Event, *more: h11.Event
) -> None:
    """Serialise `event` (and `more`) with h11 and write it; a failed write marks h11 as failed.

    Several events go out in one write: on loopback each write is a syscall that also runs
    the receiving side of TCP, the largest single cost per exchange in the benchmark.
    """
    try:
        data = conn.send(event)
        if more:
            data = b"".join([data or b"", *(conn.send(e) or b"" for e in more)])
        if data:
            await stream.send(data)
    except BaseException:
        conn.send_failed()
        raise
