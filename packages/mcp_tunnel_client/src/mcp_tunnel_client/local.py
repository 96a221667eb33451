"""Replaying a tunnelled request against the local proxy: one HTTP/1.1 connection per request.

What goes to the local proxy is the public request less its `Host` and hop-by-hop fields
(RFC 9110 §7.6.1: they describe the relay's connection, not this one); the local proxy is
addressed by its own host and port. What comes back is handed over as a head and an async
iterator of body pieces, so the caller can stream them or collect them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import anyio
import anyio.abc

from mcp_tunnel_client.frames import Headers, Request
from mcp_tunnel_client.http1 import (
    EndOfBody,
    Head,
    HTTPError,
    NeedData,
    ResponseReader,
    encode_request,
)

__all__ = ["HOP_BY_HOP", "LocalError", "LocalResponse", "LocalTarget", "forwardable"]

#: Fields that describe one connection, never forwarded (RFC 9110 §7.6.1), plus `Host`
#: (the local proxy gets its own) and the body framing (each hop frames the body itself).
HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
_READ_SIZE: Final = 65536


class LocalError(Exception):
    """The local proxy could not be reached, or answered with something that is not HTTP."""


def forwardable(headers: Headers) -> Headers:
    """`headers` without `Host`, the hop-by-hop fields, and those `Connection` names."""
    named = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
    }
    return tuple(
        (name, value)
        for name, value in headers
        if name.lower() not in HOP_BY_HOP and name.lower() not in named
    )


@dataclass(frozen=True, slots=True)
class LocalTarget:
    """The local proxy the tunnel replays requests against."""

    host: str
    port: int

    @classmethod
    def from_url(cls, url: str) -> LocalTarget:
        """Parse `http://host:port` (the proxy's local URL; a path is ignored)."""
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"expected the local proxy's http:// URL, got {url!r}")
        return cls(parts.hostname, parts.port or 80)

    @property
    def authority(self) -> str:
        """`host:port`, bracketed for IPv6, as the `Host` header wants it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    async def open(self, request: Request, *, within: float) -> LocalResponse:
        """Send `request` and wait (up to `within` seconds) for the response head."""
        try:
            stream = await anyio.connect_tcp(self.host, self.port)
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise LocalError(
                f"cannot reach the local proxy at {self.authority}: {reason}"
            ) from None
        response = LocalResponse(stream, ResponseReader(head_request=request.method == "HEAD"))
        try:
            await stream.send(
                encode_request(
                    request.method,
                    request.path,
                    self.authority,
                    forwardable(request.headers),
                    request.body,
                )
            )
            with anyio.fail_after(within):
                await response._read_head()
        except BaseException as exc:
            await response.aclose()
            if isinstance(exc, TimeoutError):
                raise LocalError(f"the local proxy sent no response within {within:g} s") from None
            if isinstance(exc, OSError | anyio.BrokenResourceError):
                raise LocalError(f"the local proxy dropped the connection: {exc}") from None
            raise
        return response


class LocalResponse:
    """A response from the local proxy: `head`, then `receive()` the body; `aclose()` it."""

    def __init__(self, stream: anyio.abc.ByteStream, reader: ResponseReader) -> None:
        self._stream = stream
        self._reader = reader
        self._ended = False
        self.head = Head(0, ())

    @property
    def streams(self) -> bool:
        """True for an event stream, or a body whose length is not known up front."""
        names = {name.lower(): value for name, value in self.head.headers}
        content_type = names.get("content-type", "").lower()
        return content_type.startswith("text/event-stream") or "content-length" not in names

    async def _next(self) -> Head | bytes | EndOfBody:
        while True:
            try:
                event = self._reader.next_event()
            except HTTPError as exc:
                raise LocalError(str(exc)) from None
            if not isinstance(event, NeedData):
                return event
            try:
                data = await self._stream.receive(_READ_SIZE)
            except anyio.EndOfStream:
                data = b""
            except (OSError, anyio.BrokenResourceError) as exc:
                raise LocalError(f"the local proxy dropped the connection: {exc}") from None
            self._reader.receive_data(data)

    async def _read_head(self) -> None:
        event = await self._next()
        assert isinstance(event, Head)
        self.head = event

    async def receive(self) -> bytes | None:
        """The next piece of the body as it arrives, None at its end.

        Raises `LocalError` when the body breaks off.
        """
        while not self._ended:
            event = await self._next()
            if isinstance(event, EndOfBody):
                self._ended = True
            elif isinstance(event, bytes) and event:
                return event
        return None

    async def aclose(self) -> None:
        """Close the connection to the local proxy (ends its exchange if still running)."""
        with anyio.CancelScope(shield=True):
            await self._stream.aclose()
