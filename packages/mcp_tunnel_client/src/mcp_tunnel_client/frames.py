"""The tunnel's frames: one JSON object per WebSocket text message, both directions.

The first three kinds are the registration, then requests flow relay → client and
answers flow back. Bodies travel base64-encoded, as the reference tool sends them.

    client → relay   {"token": "...", "subdomain": "demo", "capabilities": ["stream"]}
    relay → client   {"subdomain": "demo", "url": "https://demo.example.com",
                      "capabilities": ["stream"], "window": 262144}
                  or {"subdomains": ["demo-1", "demo-2"], "error": "demo is taken"}
                  or {"error": "invalid token", "code": "bad_token"}
    relay → client   {"id": "7", "method": "POST", "path": "/mcp", "headers": {...}, "body": "..."}
    client → relay   {"id": "7", "status": 200, "headers": {...}, "body": "..."}

The streaming extension, used only when both sides listed `"stream"` in their capabilities:

    client → relay   {"id": "7", "status": 200, "headers": {...}, "stream": true}
    client → relay   {"id": "7", "chunk": "<base64>"}          (any number of them)
    client → relay   {"id": "7", "end": true}                  ("error": "..." if cut short)
    relay → client   {"id": "7", "credit": 65536}              (more bytes may be sent)
    relay → client   {"id": "7", "cancel": true}               (the public client went away)
    relay → client   {"evicted": "another client registered demo"}

A frame's kind follows from its keys (the reference tool's frames carry no type tag).
`parse_frame` accepts exactly what `encode_frame` produces, and turns everything else into
a `FrameError` with a message naming what is wrong; no other exception escapes it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "MAX_ID_LENGTH",
    "STREAM",
    "Cancel",
    "Chunk",
    "Credit",
    "End",
    "Evicted",
    "Frame",
    "FrameError",
    "Headers",
    "Hello",
    "Offer",
    "Refused",
    "Registered",
    "Request",
    "Response",
    "StreamHead",
    "encode_frame",
    "parse_frame",
]

#: The capability that turns on chunked responses with credit-based back-pressure.
STREAM: Final = "stream"
#: Longest request id accepted (the relay numbers requests; 128 is generous).
MAX_ID_LENGTH: Final = 128

#: Header fields as (name, value) pairs, names as received.
Headers = tuple[tuple[str, str], ...]

_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 §5.6.2 tchar
_FORBIDDEN_IN_VALUE: Final = re.compile(r"[\x00\r\n]")
_PATH: Final = re.compile(r"[/*][\x21-\x7e]*")  # RFC 9112 request-target: no spaces, no controls


class FrameError(ValueError):
    """A message that is not a valid tunnel frame; the text says what is wrong."""


@dataclass(frozen=True, slots=True)
class Hello:
    """The client's registration: its token, the subdomain it asks for, what it can do."""

    token: str
    subdomain: str | None = None
    capabilities: tuple[str, ...] = ()

    def __repr__(self) -> str:  # the token is a secret
        return f"Hello(subdomain={self.subdomain!r}, capabilities={self.capabilities!r})"


@dataclass(frozen=True, slots=True)
class Registered:
    """The relay accepted: requests for `url` come through this tunnel from now on."""

    subdomain: str
    url: str
    capabilities: tuple[str, ...] = ()
    window: int | None = None


@dataclass(frozen=True, slots=True)
class Offer:
    """The subdomain asked for is not available; these are (answer with a new `Hello`)."""

    subdomains: tuple[str, ...]
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """The relay will not register this client (bad token, nothing to offer, ...)."""

    error: str
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Evicted:
    """The relay gave this client's subdomain to someone else and drops this tunnel."""

    reason: str


@dataclass(frozen=True, slots=True)
class Request:
    """A request a public client sent to the relay, to be replayed against the local proxy."""

    id: str
    method: str
    path: str
    headers: Headers
    body: bytes


@dataclass(frozen=True, slots=True)
class Response:
    """A whole answer to request `id`."""

    id: str
    status: int
    headers: Headers
    body: bytes


@dataclass(frozen=True, slots=True)
class StreamHead:
    """The head of a streamed answer to request `id`; `Chunk`s and an `End` follow."""

    id: str
    status: int
    headers: Headers


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a streamed answer's body."""

    id: str
    data: bytes


@dataclass(frozen=True, slots=True)
class End:
    """The end of a streamed answer; `error` says why when it was cut short."""

    id: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Credit:
    """The relay passed `amount` more bytes of stream `id` on: that many more may come."""

    id: str
    amount: int


@dataclass(frozen=True, slots=True)
class Cancel:
    """The public client of request `id` went away: stop working on it."""

    id: str


Frame = (
    Hello
    | Registered
    | Offer
    | Refused
    | Evicted
    | Request
    | Response
    | StreamHead
    | Chunk
    | End
    | Credit
    | Cancel
)


# --- encoding --------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _headers_out(headers: Headers) -> dict[str, str]:
    """Headers as a JSON object; a repeated name is folded into one comma-joined value."""
    out: dict[str, str] = {}
    for name, value in headers:
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def _encode_fields(frame: Frame) -> dict[str, Any]:
    match frame:
        case Hello(token, subdomain, capabilities):
            hello: dict[str, Any] = {"token": token, "capabilities": list(capabilities)}
            if subdomain is not None:
                hello["subdomain"] = subdomain
            return hello
        case Registered(subdomain, url, capabilities, window):
            registered: dict[str, Any] = {
                "subdomain": subdomain,
                "url": url,
                "capabilities": list(capabilities),
            }
            if window is not None:
                registered["window"] = window
            return registered
        case Offer(subdomains, error):
            offer: dict[str, Any] = {"subdomains": list(subdomains)}
            if error is not None:
                offer["error"] = error
            return offer
        case Refused(error, code):
            return {"error": error} if code is None else {"error": error, "code": code}
        case Evicted(reason):
            return {"evicted": reason}
        case Request(id, method, path, headers, body):
            return {
                "id": id,
                "method": method,
                "path": path,
                "headers": _headers_out(headers),
                "body": _b64(body),
            }
        case Response(id, status, headers, body):
            return {
                "id": id,
                "status": status,
                "headers": _headers_out(headers),
                "body": _b64(body),
            }
        case StreamHead(id, status, headers):
            return {"id": id, "status": status, "headers": _headers_out(headers), "stream": True}
        case Chunk(id, data):
            return {"id": id, "chunk": _b64(data)}
        case End(id, error):
            return (
                {"id": id, "end": True}
                if error is None
                else {"id": id, "end": True, "error": error}
            )
        case Credit(id, amount):
            return {"id": id, "credit": amount}
        case Cancel(id):
            return {"id": id, "cancel": True}


def encode_frame(frame: Frame) -> str:
    """The JSON text of `frame`, compact, ready to send as one WebSocket text message."""
    return json.dumps(_encode_fields(frame), separators=(",", ":"), ensure_ascii=False)


# --- parsing ---------------------------------------------------------------------------------


def _str(obj: Mapping[str, Any], key: str, *, optional: bool = False) -> Any:
    value = obj.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise FrameError(f"{key!r} must be a string")
    return value


def _int(obj: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise FrameError(f"{key!r} must be an integer from {low} to {high}")
    return value


def _strings(obj: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = obj.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise FrameError(f"{key!r} must be an array of strings")
    return tuple(value)


def _body(obj: Mapping[str, Any], key: str) -> bytes:
    text = _str(obj, key)
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise FrameError(f"{key!r} must be base64") from None


def _header(name: object, value: object) -> tuple[str, str]:
    if not isinstance(name, str) or _TOKEN.fullmatch(name) is None:
        raise FrameError(f"invalid header name {str(name)[:60]!r}")
    if not isinstance(value, str) or _FORBIDDEN_IN_VALUE.search(value):
        raise FrameError(f"invalid value for header {name!r}")
    return name, value


def _headers(obj: Mapping[str, Any]) -> Headers:
    value = obj.get("headers", {})
    if isinstance(value, Mapping):
        return tuple(_header(name, item) for name, item in value.items())
    if isinstance(value, list):  # [[name, value], ...] keeps repeated fields apart
        pairs = []
        for pair in value:
            if not isinstance(pair, list) or len(pair) != 2:
                raise FrameError("'headers' pairs must be [name, value]")
            pairs.append(_header(pair[0], pair[1]))
        return tuple(pairs)
    raise FrameError("'headers' must be an object or an array of [name, value] pairs")


def _id(obj: Mapping[str, Any]) -> str:
    value = obj["id"]
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH:
        raise FrameError(f"'id' must be a string of 1 to {MAX_ID_LENGTH} characters")
    return value


def _true(obj: Mapping[str, Any], key: str) -> None:
    if obj[key] is not True:
        raise FrameError(f"{key!r} must be true")


def _parse_exchange(obj: Mapping[str, Any]) -> Frame:
    """A frame about one request (it has an `id`)."""
    id_ = _id(obj)
    if "method" in obj:
        method = _str(obj, "method")
        if _TOKEN.fullmatch(method) is None:
            raise FrameError(f"invalid method {method[:60]!r}")
        path = _str(obj, "path")
        if _PATH.fullmatch(path) is None:
            raise FrameError(f"invalid path {path[:60]!r}")
        return Request(id_, method, path, _headers(obj), _body(obj, "body"))
    if "status" in obj:
        status = _int(obj, "status", 100, 599)
        if "stream" in obj:
            _true(obj, "stream")
            return StreamHead(id_, status, _headers(obj))
        return Response(id_, status, _headers(obj), _body(obj, "body"))
    if "chunk" in obj:
        return Chunk(id_, _body(obj, "chunk"))
    if "end" in obj:
        _true(obj, "end")
        return End(id_, _str(obj, "error", optional=True))
    if "credit" in obj:
        return Credit(id_, _int(obj, "credit", 1, 2**31 - 1))
    if "cancel" in obj:
        _true(obj, "cancel")
        return Cancel(id_)
    raise FrameError("a frame with an 'id' needs 'method', 'status', 'chunk', 'end', ...")


def _parse_control(obj: Mapping[str, Any]) -> Frame:
    """A registration or connection-level frame (it has no `id`)."""
    if "token" in obj:
        return Hello(
            _str(obj, "token"), _str(obj, "subdomain", optional=True), _strings(obj, "capabilities")
        )
    if "url" in obj:
        window = obj.get("window")
        if window is not None:
            window = _int(obj, "window", 1, 2**31 - 1)
        return Registered(
            _str(obj, "subdomain"), _str(obj, "url"), _strings(obj, "capabilities"), window
        )
    if "subdomains" in obj:
        return Offer(_strings(obj, "subdomains"), _str(obj, "error", optional=True))
    if "evicted" in obj:
        return Evicted(_str(obj, "evicted"))
    if "error" in obj:
        return Refused(_str(obj, "error"), _str(obj, "code", optional=True))
    raise FrameError("unknown frame: no 'id', 'token', 'url', 'subdomains' or 'error'")


def parse_frame(data: bytes | str) -> Frame:
    """Decode one WebSocket message into a frame; raise `FrameError` when it is not one."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):  # JSONDecodeError and bad UTF-8 are ValueErrors
        raise FrameError("not a JSON text") from None
    if not isinstance(obj, dict):
        raise FrameError("a frame is a JSON object")
    return _parse_exchange(obj) if "id" in obj else _parse_control(obj)
