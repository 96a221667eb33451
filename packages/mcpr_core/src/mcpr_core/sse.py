"""An incremental Server-Sent Events codec for a proxy that must forward every byte.

Theory of operation
-------------------
`SSEDecoder` is an h11-style pull machine. `receive_data(chunk)` appends bytes (``b""`` means
end of stream); `next_event()` returns the next complete event, `NEED_DATA` when more bytes are
needed, or `END_OF_STREAM` once the stream ended and every complete event has been returned.

Parsing follows the WHATWG HTML "Server-sent events" section (§9.2.6, "Interpreting an event
stream"), with the differences a proxy needs:

* Every event keeps `raw`, the exact bytes it was made of, so that the concatenation of all
  returned `raw` values followed by `trailing` always equals the input. A proxy forwards `raw`
  unchanged and re-encodes (`reencode`) only the events it rewrites.
* "If the data buffer is an empty string, [...] return" (the event is not dispatched): we return
  such events anyway, with ``has_data=False``, because comment-only keep-alives and `retry:` /
  `id:`-only events must be observed too. A block with no line at all (a blank line right after
  another one) is not an event: its bytes are carried into the `raw` of the next event.
* "Once the end of the file is reached, any pending data must be discarded": the incomplete
  remainder is not returned as an event but stays readable as `trailing`, to be forwarded.
* Where the events start and end never depends on how the input was split into chunks. So when
  the blank line that ends an event is a CR and it is the last byte received so far, the event
  is held until the next byte (or the end of the stream) shows whether an LF completes that CR.
  Streams with CRLF line ends see this only when a chunk splits the final pair, and CR-only
  streams are not seen in practice (the MCP SDKs write LF or CRLF).

The decoder is linear in the input: each byte is searched for CR and LF once (what the last
search found, or up to where it found nothing, survives between calls), each line is decoded
once, and consumed bytes are cut from the front of a `bytearray` (CPython advances the start of
the buffer and moves the rest only when it shrinks below half, so the cost stays linear).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from mcpr_core.errors import LocalProtocolError

__all__ = [
    "END_OF_STREAM",
    "NEED_DATA",
    "DecoderStatistics",
    "EndOfStream",
    "NeedData",
    "SSEDecoder",
    "SSEEvent",
    "encode_event",
    "reencode",
]


class NeedData(enum.Enum):
    """Sentinel type of `NEED_DATA`: `next_event()` needs more bytes before it can say more."""

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return self.value


class EndOfStream(enum.Enum):
    """Sentinel type of `END_OF_STREAM`: the stream ended and every complete event was returned."""

    END_OF_STREAM = "END_OF_STREAM"

    def __repr__(self) -> str:
        return self.value


# Single-member enums, so that `ev is NEED_DATA` narrows the union for mypy.
NEED_DATA: Final = NeedData.NEED_DATA
END_OF_STREAM: Final = EndOfStream.END_OF_STREAM


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One event block of the stream, with the bytes it was decoded from.

    `raw` runs from the first byte after the previous event through the blank line that ended
    this one: comments, unknown fields, a leading BOM and blank lines before it included.
    `data` is the data lines joined with ``"\\n"``; `event`, `id` and `retry` are the last valid
    value of their field (None when absent); `comments` holds each ``:`` line without the colon.
    """

    raw: bytes
    data: str
    event: str | None
    id: str | None
    retry: int | None
    comments: tuple[str, ...]
    has_data: bool


@dataclass(frozen=True, slots=True)
class DecoderStatistics:
    """A snapshot of an `SSEDecoder`: events returned, bytes received, bytes still held."""

    events: int
    bytes_in: int
    buffered: int
    eof: bool


_BOM: Final = b"\xef\xbb\xbf"
_CR: Final = 0x0D
_LF: Final = 0x0A
_SPACE: Final = 0x20
# "Lines must be separated by either a U+000D CARRIAGE RETURN U+000A LINE FEED (CRLF) character
# pair, a single U+000A LINE FEED (LF) character, or a single U+000D CARRIAGE RETURN (CR)
# character." CR and LF are searched with bytes.find (memchr); the pair is handled by hand
# because its two halves may arrive in different chunks.
_EOL_STR: Final = re.compile(r"\r\n|\r|\n")
_NEWLINES: Final = ("\n", "\r\n", "\r")


def _text(b: bytes | bytearray) -> str:
    # The stream is "decoded using the UTF-8 decode algorithm": bad bytes become U+FFFD. No line
    # end byte can occur inside a UTF-8 sequence, so decoding line by line is equivalent.
    return b.decode("utf-8", "replace")


class SSEDecoder:
    """Incremental decoder of a ``text/event-stream`` body (see the module docstring)."""

    __slots__ = (
        "_buf",
        "_bytes_in",
        "_comments",
        "_cr",
        "_cr_from",
        "_data",
        "_eof",
        "_event",
        "_events",
        "_id",
        "_lf",
        "_lf_from",
        "_lines",
        "_pos",
        "_retry",
        "_skip_lf",
        "_started",
    )

    def __init__(self) -> None:
        self._buf = bytearray()  # bytes not yet returned in an event: `trailing`
        self._pos = 0  # start of the first line of `_buf` not yet interpreted
        # Where the next CR / LF at or after `_pos` is, when it is known (-1: unknown); and
        # from where to search otherwise (the buffer had none of them before that offset).
        self._cr = self._lf = -1
        self._cr_from = self._lf_from = 0
        self._eof = False
        self._started = False  # the BOM check at the start of the stream was done
        self._skip_lf = False  # the last line ended with a CR at the end of the buffer
        self._bytes_in = 0
        self._events = 0
        # The event being built, from the lines interpreted so far.
        self._lines = False
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._retry: int | None = None
        self._comments: list[str] = []

    def receive_data(self, data: bytes) -> None:
        """Add bytes received from the peer; ``b""`` means the stream ended."""
        if self._eof:
            if data:
                raise LocalProtocolError("SSEDecoder received data after the end of the stream")
            return
        if not data:
            self._eof = True
            return
        self._buf += data
        self._bytes_in += len(data)

    def next_event(self) -> SSEEvent | NeedData | EndOfStream:
        """Return the next complete event, `NEED_DATA`, or `END_OF_STREAM` after the end."""
        buf = self._buf
        end = len(buf)
        pos = self._pos
        if not self._started:
            # "One leading U+FEFF BYTE ORDER MARK character must be ignored if any are present."
            if end < len(_BOM) and not self._eof and _BOM.startswith(buf):
                return NEED_DATA
            self._started = True
            if buf.startswith(_BOM):
                pos = len(_BOM)
        if self._skip_lf and pos < end:
            # The CR that ended the previous line was the first half of a CRLF pair.
            self._skip_lf = False
            if buf[pos] == _LF:
                pos += 1
        while True:
            # Find the first CR and the first LF at or after `pos`. Each search resumes where
            # the last one stopped, so no byte is searched twice, even when a long line arrives
            # in many chunks or when one of the two bytes never occurs (LF-only or CR-only).
            cr = self._cr
            if cr < pos:
                cr = buf.find(b"\r", max(pos, self._cr_from))
                self._cr = cr
                self._cr_from = end if cr < 0 else 0
            lf = self._lf
            if lf < pos:
                lf = buf.find(b"\n", max(pos, self._lf_from))
                self._lf = lf
                self._lf_from = end if lf < 0 else 0
            if cr < 0 and lf < 0:
                self._pos = pos
                return END_OF_STREAM if self._eof else NEED_DATA
            if 0 <= cr < lf or lf < 0:
                eol = cr
                nxt = cr + 1
                if nxt == lf:
                    nxt += 1
                elif nxt == end and not self._eof:
                    self._skip_lf = True  # the LF of a CRLF may be in the next chunk
            else:
                eol = lf
                nxt = lf + 1
            if eol > pos:
                self._interpret(buf, pos, eol)
                pos = nxt
            elif self._skip_lf and self._lines:
                # A blank line ended by the last byte received, a CR: whether the next byte is
                # its LF decides where `raw` ends, so wait for it (or for the end of the stream).
                self._skip_lf = False
                self._pos = pos
                return NEED_DATA
            elif self._lines:
                # "If the line is empty (a blank line): Dispatch the event."
                self._pos = 0
                return self._dispatch(nxt)
            else:
                pos = nxt  # a blank line with no event before it: its bytes join the next event

    def _interpret(self, buf: bytearray, start: int, end: int) -> None:
        self._lines = True
        colon = buf.find(b":", start, end)
        if colon == start:
            # "If the line starts with a U+003A COLON character (:): Ignore the line."
            self._comments.append(_text(buf[start + 1 : end]))
            return
        if colon < 0:
            # "Otherwise, the string is not empty but does not contain a U+003A COLON character
            # (:): Process the field using the whole line as the field name, and the empty
            # string as the field value."
            name = buf[start:end]
            first = end
        else:
            # "Let value be [...] after the first U+003A COLON character (:). If value starts
            # with a U+0020 SPACE character, remove it from value."
            name = buf[start:colon]
            first = colon + 1
            if first < end and buf[first] == _SPACE:
                first += 1
        # The value is sliced only for known fields: a data line may be very long.
        if name == b"data":
            self._data.append(_text(buf[first:end]))
        elif name == b"event":
            self._event = _text(buf[first:end])
        elif name == b"id":
            # "If the field value does not contain U+0000 NULL, then set the last event ID
            # buffer to the field value. Otherwise, ignore the field."
            if buf.find(b"\x00", first, end) < 0:
                self._id = _text(buf[first:end])
        elif name == b"retry":
            # "If the field value consists of only ASCII digits, then interpret the field value
            # as an integer in base ten [...]. Otherwise, ignore the field."
            value = buf[first:end]
            if value.isdigit():  # bytearray.isdigit() is ASCII-only and False when empty
                self._retry = int(value)
        # "Otherwise: The field is ignored." (The line stays in `raw`.)

    def _dispatch(self, length: int) -> SSEEvent:
        raw = bytes(self._buf[:length])
        del self._buf[:length]
        # Shift the search state with the buffer. A position left of the cut is stale: forget it.
        self._cr = self._cr - length if self._cr >= length else -1
        self._lf = self._lf - length if self._lf >= length else -1
        self._cr_from = max(0, self._cr_from - length)
        self._lf_from = max(0, self._lf_from - length)
        event = SSEEvent(
            raw=raw,
            data="\n".join(self._data),
            event=self._event,
            id=self._id,
            retry=self._retry,
            comments=tuple(self._comments),
            has_data=bool(self._data),
        )
        self._events += 1
        self._lines = False
        self._data = []
        self._event = self._id = None
        self._retry = None
        self._comments = []
        return event

    @property
    def trailing(self) -> bytes:
        """Bytes received but not yet returned in an event (after the end: the discarded rest)."""
        return bytes(self._buf)

    def statistics(self) -> DecoderStatistics:
        """Return counters describing the decoder now."""
        return DecoderStatistics(
            events=self._events, bytes_in=self._bytes_in, buffered=len(self._buf), eof=self._eof
        )

    def __repr__(self) -> str:
        state = "closed" if self._eof else "open"
        return (
            f"<SSEDecoder {state} events={self._events} bytes_in={self._bytes_in}"
            f" buffered={len(self._buf)}>"
        )


def _check_line(what: str, value: str) -> None:
    if "\r" in value or "\n" in value:
        raise LocalProtocolError(f"SSE {what} must not contain CR or LF: {value!r}")


def encode_event(
    *,
    data: str | None = None,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
    comments: Sequence[str] = (),
    newline: str = "\n",
) -> bytes:
    """Encode one event: comments, then `event`, `id`, `retry`, then one line per data line.

    Every field is written as ``name: value`` (one space, which the decoder strips), so values
    come back exactly. `data` is split at CRLF, CR and LF into several ``data:`` lines (they
    decode back joined with LF); ``data=None`` writes no data line, ``data=""`` an empty one.
    Values that cannot be framed (a line end in a comment, `event` or `id`, a NUL in `id`, a
    negative `retry`, an unknown `newline`) raise `LocalProtocolError`.
    """
    if newline not in _NEWLINES:
        raise LocalProtocolError(f"SSE newline must be LF, CRLF or CR: {newline!r}")
    lines = []
    for comment in comments:
        _check_line("comment", comment)
        lines.append(f":{comment}")
    if event is not None:
        _check_line("event", event)
        lines.append(f"event: {event}")
    if id is not None:
        _check_line("id", id)
        if "\x00" in id:
            raise LocalProtocolError(f"SSE id must not contain NUL: {id!r}")
        lines.append(f"id: {id}")
    if retry is not None:
        if retry < 0:
            raise LocalProtocolError(f"SSE retry must be a non-negative integer: {retry!r}")
        lines.append(f"retry: {retry}")
    if data is not None:
        lines.extend(f"data: {line}" for line in _EOL_STR.split(data))
    lines.append("")
    lines.append("")
    try:
        return newline.join(lines).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise LocalProtocolError(f"SSE event is not encodable as UTF-8: {exc}") from None


def reencode(original: SSEEvent, *, data: str) -> bytes:
    """Encode `original` again with new `data`, keeping its other fields and its line ends.

    The result is `encode_event` of the fields, written with the line end `original.raw` uses
    (CRLF, LF or CR; the first line end of the event decides). Blank lines that preceded the
    event in `raw` are kept in front. Unknown fields, an `id` holding NUL and a leading BOM are
    dropped; the fields are written in `encode_event` order.
    """
    raw = original.raw
    skip = start = len(_BOM) if raw.startswith(_BOM) else 0
    while start < len(raw) and raw[start] in b"\r\n":
        start += 1
    lf = raw.find(b"\n", start)
    cr = raw.find(b"\r", start, len(raw) if lf < 0 else lf)
    if cr < 0:
        newline = "\n"  # also when `raw` has no line end at all (an event built by hand)
    elif cr + 1 == lf:
        newline = "\r\n"
    else:
        newline = "\r"
    out = encode_event(
        data=data if data or original.has_data else None,
        event=original.event,
        id=original.id,
        retry=original.retry,
        comments=original.comments,
        newline=newline,
    )
    return raw[skip:start] + out
