"""A sans-IO HTTP/1.1 client codec, just enough to replay one request against the local proxy.

The tunnel client opens one connection per replayed request and says `Connection: close`,
so this codec knows a single request and a single response: the request is serialised
whole by `encode_request`, and `ResponseReader` turns the response bytes into a `Head`,
body pieces and `EndOfBody`, framed by `Transfer-Encoding: chunked`, `Content-Length`, or
the end of the connection (RFC 9112 §6.3, in that order of precedence). Interim (1xx)
responses are skipped. Anything malformed raises `HTTPError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from mcp_tunnel_client.frames import Headers

__all__ = [
    "MAX_HEAD",
    "NEED_DATA",
    "EndOfBody",
    "HTTPError",
    "Head",
    "NeedData",
    "ResponseReader",
    "encode_request",
]

#: Largest response head accepted (the proxy's own default limit for headers is 64 KiB).
MAX_HEAD: Final = 64 * 1024
_MAX_CHUNK_LINE: Final = 1024

_STATUS_LINE: Final = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9])(?: [^\r\n]*)?")
_HEX: Final = re.compile(rb"[0-9A-Fa-f]{1,16}")


class HTTPError(Exception):
    """The local proxy's response is not valid HTTP/1.1, or ended too early."""


@dataclass(frozen=True, slots=True)
class Head:
    """The status and header fields of the final response."""

    status: int
    headers: Headers


@dataclass(frozen=True, slots=True)
class EndOfBody:
    """The response is complete."""


class NeedData:
    """The type of NEED_DATA."""

    def __repr__(self) -> str:
        return "NEED_DATA"


#: Returned by `next_event` when more bytes are needed.
NEED_DATA: Final = NeedData()


def encode_request(method: str, target: str, host: str, headers: Headers, body: bytes) -> bytes:
    """The request's bytes: `headers` as given (without Host and hop-by-hop fields), then
    `Host`, a `Content-Length` when there is a body or the method usually has one, and
    `Connection: close`."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return b"".join(_bytes(line) + b"\r\n" for line in lines) + b"\r\n" + body


def _bytes(text: str) -> bytes:
    """Header bytes as the relay decoded them (latin-1), or UTF-8 for wider characters."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


class ResponseReader:
    """Parses one response; feed bytes with `receive_data` (b"" at end of connection)."""

    def __init__(self, *, head_request: bool = False) -> None:
        self._head_request = head_request
        self._buffer = bytearray()
        self._eof = False
        self._head: Head | None = None
        self._done = False
        self._length: int | None = None  # bytes left with Content-Length framing
        self._chunked = False
        self._chunk_state = "size"  # size, data, crlf (after a chunk's data), trailer
        self._chunk_left = 0  # bytes left in the current chunk's data
        self._until_close = False

    def receive_data(self, data: bytes) -> None:
        """Take bytes from the connection; an empty `data` means it was closed."""
        if data:
            self._buffer += data
        else:
            self._eof = True

    def next_event(self) -> Head | bytes | EndOfBody | NeedData:
        """The next piece of the response, or NEED_DATA."""
        if self._done:
            return NEED_DATA
        if self._head is None:
            return self._read_head()
        if self._chunked:
            return self._read_chunked()
        if self._until_close:
            return self._take(len(self._buffer)) or self._finish_at_eof()
        assert self._length is not None
        if self._length == 0:
            return self._end()
        piece = self._take(self._length)
        if piece:
            self._length -= len(piece)
            return piece
        if self._eof:
            raise HTTPError("the local proxy closed the connection before the body's end")
        return NEED_DATA

    def _take(self, limit: int) -> bytes:
        piece = bytes(self._buffer[:limit])
        del self._buffer[:limit]
        return piece

    def _end(self) -> EndOfBody:
        self._done = True
        return EndOfBody()

    def _finish_at_eof(self) -> EndOfBody | NeedData:
        return self._end() if self._eof else NEED_DATA

    def _read_head(self) -> Head | bytes | EndOfBody | NeedData:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD:
                raise HTTPError(f"response head larger than {MAX_HEAD} bytes")
            if self._eof:
                raise HTTPError("the local proxy closed the connection without a response")
            return NEED_DATA
        raw = self._take(end + 4)[:-4]
        status_line, *fields = raw.split(b"\r\n")
        match = _STATUS_LINE.fullmatch(status_line)
        if match is None:
            raise HTTPError(f"invalid status line {status_line[:80]!r}")
        status = int(match.group(1))
        headers = tuple(_field(line) for line in fields)
        if status < 200:
            return self._read_head()  # interim response: the final one follows
        self._head = Head(status, headers)
        self._frame_body(status, headers)
        return self._head

    def _frame_body(self, status: int, headers: Headers) -> None:
        names = {name.lower(): value for name, value in headers}
        if self._head_request or status in (204, 304):
            self._length = 0
        elif "chunked" in names.get("transfer-encoding", "").lower():
            self._chunked = True
        elif "content-length" in names:
            value = names["content-length"].strip()
            if not value.isdigit():
                raise HTTPError(f"invalid Content-Length {value[:40]!r}")
            self._length = int(value)
        else:
            self._until_close = True

    def _read_chunked(self) -> bytes | EndOfBody | NeedData:
        while True:
            if self._chunk_state == "data":
                piece = self._take(self._chunk_left)
                if not piece:
                    return self._more()
                self._chunk_left -= len(piece)
                if self._chunk_left == 0:
                    self._chunk_state = "crlf"
                return piece
            line = self._line()
            if line is None:
                return self._more()
            if self._chunk_state == "crlf":
                if line:
                    raise HTTPError("chunk data longer than its announced size")
                self._chunk_state = "size"
            elif self._chunk_state == "trailer":
                if not line:
                    return self._end()
            else:
                size_text = line.split(b";", 1)[0].strip()
                if _HEX.fullmatch(size_text) is None:
                    raise HTTPError(f"invalid chunk size {line[:40]!r}")
                self._chunk_left = int(size_text, 16)
                self._chunk_state = "data" if self._chunk_left else "trailer"

    def _line(self) -> bytes | None:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            if len(self._buffer) > _MAX_CHUNK_LINE:
                raise HTTPError("chunk size or trailer line too long")
            return None
        return self._take(end + 2)[:-2]

    def _more(self) -> NeedData:
        if self._eof:
            raise HTTPError("the local proxy closed the connection inside a chunked body")
        return NEED_DATA


def _field(line: bytes) -> tuple[str, str]:
    name, colon, value = line.partition(b":")
    if not colon or not name or name != name.strip():
        raise HTTPError(f"invalid header line {line[:80]!r}")
    return name.decode("latin-1"), value.strip().decode("latin-1")
