"""HTTP/1.1 framing for the proxy's own side of each hop (RFC 9112), sans-IO.

What clients send is parsed by h11 in the driver. What mcpr itself writes, and what the
upstream answers, go through the three small machines here, which do only what a proxy
needs and allocate almost nothing per message:

* `encode_request_head` writes a request head for the upstream.
* `ResponseParser` reads the upstream's response for one request: its head (1xx heads
  are skipped), then its body as the byte strings that arrived (Content-Length, chunked,
  or up to the end of the connection), then `Signal.END`. It says afterwards whether
  the connection can carry another request.
* `ResponseWriter` frames one response for a client: the head once, then body pieces,
  then the end. A body whose length is known passes byte for byte; any other body is
  chunked for an HTTP/1.1 client and delimited by closing the connection for HTTP/1.0.

Header names come out of the parser lower-cased; values are checked as RFC 9110 §5.5
field values. Anything malformed raises `RemoteProtocolError` with `status_hint` 502.

>>> parser = ResponseParser(method=b"POST")
>>> parser.receive_data(b"HTTP/1.1 200 OK\\r\\ncontent-length: 2\\r\\n\\r\\nok")
>>> head = parser.next_event()
>>> head.status, head.headers
(200, [(b'content-length', b'2')])
>>> parser.next_event(), parser.next_event(), parser.reusable
(b'ok', <Signal.END: 'end'>, True)
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from mcpr_core.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "LAST_CHUNK",
    "ParsedResponse",
    "ResponseParser",
    "ResponseWriter",
    "Signal",
    "chunk",
    "encode_request_head",
    "names_close",
]

#: The largest response head (all 1xx heads included) the parser accepts.
MAX_HEAD_SIZE: Final = 256 * 1024
#: The longest chunk-size line (with extensions) or trailer section line accepted.
_MAX_LINE: Final = 4096

_BLANK_LINE: Final = re.compile(rb"\n\r?\n")
_STATUS_LINE: Final = re.compile(rb"HTTP/1\.([0-9]) ([0-9]{3})(?: ([\t\x20-\x7e\x80-\xff]*))?")
_TOKEN: Final = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_FIELD_LINE: Final = re.compile(
    rb"(" + _TOKEN + rb"):[ \t]*+"
    rb"((?:[\x21-\x7e\x80-\xff](?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?)[ \t]*"
)
_CHUNK_SIZE: Final = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r?")
_DIGITS: Final = re.compile(rb"[0-9]{1,19}")


def _bad(message: str) -> RemoteProtocolError:
    """The error for a malformed response: the client gets 502 Bad Gateway."""
    return RemoteProtocolError(message, status_hint=502)


#: The chunk that ends a chunked body (with no trailer section).
LAST_CHUNK: Final = b"0\r\n\r\n"


def chunk(data: bytes) -> bytes:
    """`data` (not empty) as one chunk of a chunked body (RFC 9112 §7.1)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def names_close(value: bytes) -> bool:
    """Whether a `Connection` field value lists `close` (RFC 9112 §9.6)."""
    return any(token.strip(b" \t").lower() == b"close" for token in value.split(b","))


class Signal(enum.Enum):
    """What `ResponseParser.next_event` returns when it has no head and no bytes."""

    NEED_DATA = "need_data"
    END = "end"


@dataclass(frozen=True, slots=True)
class ParsedResponse:
    """A final response head (status 200-599), header names lower-case."""

    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    #: The minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    minor: int


def encode_request_head(
    method: bytes, target: bytes, headers: Sequence[tuple[bytes, bytes]]
) -> bytes:
    """The request head `method target HTTP/1.1` with `headers`, ready for the wire.

    Raises `LocalProtocolError` if a name or value would break the head's framing (CR or LF).
    """
    parts = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return _checked(b"".join(parts), len(headers) + 2)


def _checked(head: bytes, lines: int) -> bytes:
    # Every CR and LF must be one of the line ends written here: one more would let a
    # value start a header (or a message) of its own.
    if head.count(b"\n") != lines or head.count(b"\r") != lines:
        raise LocalProtocolError("a header name or value contains CR or LF")
    return head


class _Body(enum.Enum):
    NONE = 0
    LENGTH = 1
    CHUNKED = 2
    CLOSE = 3


class _Chunk(enum.Enum):
    SIZE = 0
    DATA = 1
    DATA_END = 2
    TRAILERS = 3


class ResponseParser:
    """Reads one response from the upstream, fed with `receive_data`.

    `method` is the request's: the response to HEAD has no body whatever its head says.
    """

    __slots__ = (
        "_body",
        "_buf",
        "_chunk",
        "_close",
        "_eof",
        "_head_request",
        "_head_used",
        "_max_head",
        "_remaining",
        "_scanned",
        "_state_end",
    )

    def __init__(self, *, method: bytes, max_head_size: int = MAX_HEAD_SIZE) -> None:
        self._buf = b""
        self._eof = False
        self._head_request = method == b"HEAD"
        self._max_head = max_head_size
        self._head_used = 0  # bytes of the 1xx heads already skipped
        self._scanned = 0  # bytes of an unfinished head already searched for its end
        self._body: _Body | None = None  # None until the final head is parsed
        self._chunk = _Chunk.SIZE
        self._remaining = 0
        self._close = False
        self._state_end = False

    def receive_data(self, data: bytes) -> None:
        """Add bytes read from the upstream; `b""` means it closed its side."""
        if not data:
            self._eof = True
        elif self._buf:
            self._buf += data
        else:
            self._buf = data

    @property
    def ended(self) -> bool:
        """Whether the whole response has been read (`Signal.END` was returned)."""
        return self._state_end

    @property
    def reusable(self) -> bool:
        """Whether the connection can carry another request now that this one ended.

        Not after HTTP/1.0, `Connection: close`, a body delimited by closing, or bytes
        beyond the end of the response: those would be read as the next answer.
        """
        return self._state_end and not self._close and not self._buf and not self._eof

    def next_event(self) -> ParsedResponse | bytes | Signal:
        """The head, then body bytes, then `Signal.END`; `Signal.NEED_DATA` to wait for more."""
        body = self._body
        if body is None:
            return self._next_head()
        if body is _Body.LENGTH:
            buf = self._buf
            if not buf:
                if self._eof:
                    raise _bad("upstream closed the connection inside a response body")
                return Signal.NEED_DATA
            remaining = self._remaining
            if len(buf) <= remaining:
                self._buf = b""
                self._remaining = remaining - len(buf)
                if self._remaining == 0:
                    self._body = _Body.NONE
                return buf
            self._buf = buf[remaining:]
            self._remaining = 0
            self._body = _Body.NONE
            return buf[:remaining]
        if body is _Body.NONE:
            self._state_end = True
            return Signal.END
        if body is _Body.CHUNKED:
            return self._next_chunked()
        buf = self._buf
        if buf:
            self._buf = b""
            return buf
        if self._eof:
            self._state_end = True
            return Signal.END
        return Signal.NEED_DATA

    def _next_head(self) -> ParsedResponse | Signal:
        while True:
            buf = self._buf
            limit = self._max_head - self._head_used
            # An unfinished head is not searched again from its start at every read: a head
            # trickling in byte by byte would cost time quadratic in its size.
            found = _BLANK_LINE.search(buf, self._scanned)
            if found is None:
                self._scanned = max(0, len(buf) - 2)
                # The blank line may still start 2 bytes back (a trailing b"\n\r").
                if len(buf) - 2 > limit:
                    raise _bad("upstream response head too large")
                if self._eof:
                    raise _bad("upstream closed the connection before a response")
                return Signal.NEED_DATA
            if found.start() > limit:
                raise _bad("upstream response head too large")
            self._buf = buf[found.end() :]
            self._scanned = 0
            head = self._parse_head(buf[: found.start()])
            if head is not None:
                return head
            self._head_used += found.end()

    def _parse_head(self, block: bytes) -> ParsedResponse | None:
        lines = block.split(b"\n")
        status_line = _STATUS_LINE.fullmatch(lines[0].rstrip(b"\r"))
        if status_line is None:
            raise _bad("malformed upstream status line")
        minor, status, reason = status_line.groups()
        code = int(status)
        headers: list[tuple[bytes, bytes]] = []
        for line in lines[1:]:
            field = _FIELD_LINE.fullmatch(line.rstrip(b"\r"))
            if field is None:
                raise _bad("malformed upstream header line")
            headers.append((field[1].lower(), field[2]))
        if code < 200:
            if code == 101 or code < 100:
                raise _bad(f"unexpected upstream status {code}")
            return None  # 100 Continue, 103 Early Hints: the final head follows
        self._frame(code, headers, int(minor))
        return ParsedResponse(code, reason or b"", headers, int(minor))

    def _frame(self, status: int, headers: list[tuple[bytes, bytes]], minor: int) -> None:
        """Choose how the body ends (RFC 9112 §6.3) and whether the connection stays open."""
        length: bytes | None = None
        chunked = False
        close = minor == 0
        repeated = False
        for index, (name, value) in enumerate(headers):
            if name == b"content-length":
                values = {v.strip(b" \t") for v in value.split(b",")}
                if len(values) != 1 or (length is not None and length not in values):
                    raise _bad("conflicting upstream Content-Length")
                repeated = length is not None
                length = values.pop()
                if _DIGITS.fullmatch(length) is None:
                    raise _bad("malformed upstream Content-Length")
                headers[index] = (name, length)  # "3, 3" passes on as "3"
            elif name == b"transfer-encoding":
                if chunked or value.strip(b" \t").lower() != b"chunked":
                    raise _bad("unsupported upstream Transfer-Encoding")
                chunked = True
            elif name == b"connection":
                close = close or names_close(value)
        if repeated:  # one Content-Length field for the client, not several
            first = next(i for i, (name, _) in enumerate(headers) if name == b"content-length")
            headers[first + 1 :] = [h for h in headers[first + 1 :] if h[0] != b"content-length"]
        if chunked and length is not None:
            # RFC 9112 §6.3 item 3: such a message "ought to be handled as an error".
            raise _bad("upstream sent both Content-Length and Transfer-Encoding")
        self._close = close
        if self._head_request or status in (204, 304):
            self._body = _Body.NONE
        elif chunked:
            self._body = _Body.CHUNKED
        elif length is not None:
            self._remaining = int(length)
            self._body = _Body.LENGTH if self._remaining else _Body.NONE
        else:
            self._body = _Body.CLOSE
            self._close = True

    def _next_chunked(self) -> bytes | Signal:
        while True:
            state = self._chunk
            buf = self._buf
            if state is _Chunk.DATA:
                if not buf:
                    return self._starved()
                remaining = self._remaining
                if len(buf) <= remaining:
                    self._buf = b""
                    piece = buf
                else:
                    self._buf = buf[remaining:]
                    piece = buf[:remaining]
                self._remaining = remaining - len(piece)
                if self._remaining == 0:
                    self._chunk = _Chunk.DATA_END
                return piece
            end = buf.find(b"\n")
            if end < 0:
                if len(buf) > _MAX_LINE:
                    raise _bad("upstream chunk line too long")
                return self._starved()
            if end > _MAX_LINE:
                raise _bad("upstream chunk line too long")
            line = buf[:end]
            self._buf = buf[end + 1 :]
            if state is _Chunk.SIZE:
                size = _CHUNK_SIZE.fullmatch(line)
                if size is None:
                    raise _bad("malformed upstream chunk size")
                self._remaining = int(size[1], 16)
                self._chunk = _Chunk.DATA if self._remaining else _Chunk.TRAILERS
            elif state is _Chunk.DATA_END:
                if line not in (b"", b"\r"):
                    raise _bad("upstream chunk longer than its size")
                self._chunk = _Chunk.SIZE
            elif line in (b"", b"\r"):  # the end of the trailer section
                self._body = _Body.NONE
                self._state_end = True
                return Signal.END
            elif _FIELD_LINE.fullmatch(line.rstrip(b"\r")) is None:
                raise _bad("malformed upstream trailer line")

    def _starved(self) -> Signal:
        if self._eof:
            raise _bad("upstream closed the connection inside a chunked body")
        return Signal.NEED_DATA


class ResponseWriter:
    """Frames one response for a client of HTTP/1.`minor` that asked with `method`.

    `head` picks the framing (RFC 9112 §6): a Content-Length among `headers` means the
    body passes byte for byte; else chunked for HTTP/1.1, or ended by closing for 1.0.
    After `end`, `close` says whether the connection must close (the client's wish, a
    body ended by closing, a body shorter than its Content-Length, or `keep_alive=False`).
    """

    __slots__ = ("_chunked", "_length", "_no_body", "close", "done", "head_sent")

    def __init__(self, *, method: bytes, minor: int, keep_alive: bool) -> None:
        self._no_body = method == b"HEAD"
        self._chunked = minor >= 1
        self._length: int | None = None
        self.close = not keep_alive
        self.head_sent = False
        self.done = False

    def head(
        self,
        status: int,
        reason: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        *,
        close: bool = False,
    ) -> bytes:
        """The head for the wire; `close=True` ends the connection after this response.

        Raises `LocalProtocolError` (and writes nothing) for a second head, a malformed
        Content-Length, or CR or LF in a name or value.
        """
        if self.head_sent:
            raise LocalProtocolError("response head already written")
        close = self.close or close
        length: int | None = None
        parts = [b"HTTP/1.1 %d " % status, reason, b"\r\n"]
        for name, value in headers:
            if len(name) == 14 and name.lower() == b"content-length":
                if not value.isdigit():
                    raise LocalProtocolError(f"bad Content-Length {value!r}")
                length = int(value)
            parts += (name, b": ", value, b"\r\n")
        lines = len(headers) + 2
        no_body = self._no_body or status in (204, 304) or status < 200
        chunked = False
        if no_body:
            length = None  # a HEAD answer's length is the GET body's: none follows
        elif length is None:
            if self._chunked:
                parts.append(b"transfer-encoding: chunked\r\n")
                lines += 1
                chunked = True
            else:
                close = True
        if close:
            parts.append(b"connection: close\r\n")
            lines += 1
        parts.append(b"\r\n")
        head = _checked(b"".join(parts), lines)
        self.head_sent = True
        self.close = close
        self._no_body = no_body
        self._chunked = chunked
        self._length = length
        return head

    def data(self, data: bytes) -> bytes:
        """Body bytes as they go on the wire (empty for a response without a body)."""
        if self._no_body or not data:
            return b""
        if self._chunked:
            return chunk(data)
        if self._length is not None:
            if len(data) > self._length:
                raise LocalProtocolError("more body than the response's Content-Length")
            self._length -= len(data)
        return data

    def end(self) -> bytes:
        """The bytes that end the body: the last chunk, or nothing."""
        self.done = True
        if self._length:
            self.close = True  # the client would wait for bytes that never come
        return LAST_CHUNK if self._chunked else b""
