"""JSON-RPC 2.0: classify a body into requests, notifications, results and errors.

Theory of operation
-------------------
The proxy keeps the bytes it received and forwards *those*; this module only reads a
parsed copy. That is the whole reason it never re-serialises anything: PROTOCOL.md §2
says "Never re-serialize ids: `1` vs `1.0`, `"1"` vs `1`, integers > 2^53 must come back
byte-identical". A `Message` is a view on one decoded object, not a thing to encode.

`parse()` runs one `json.loads`-equivalent over the body and then classifies:

* an object becomes a `Message` or, when it breaks the rules below, an `Invalid`;
* an array becomes a `Batch` whose members are classified one by one (PRODUCT.md §2.1
  "batches (`[...]`) are accepted and each member is classified and recorded"); an
  empty array is `Invalid(EMPTY_BATCH)`, as JSON-RPC answers it with a single -32600;
* anything else (a string, a number, `null`, `true`) is `Invalid(NOT_AN_OBJECT)`.

The rules of an object (PRODUCT.md §2.1, PROTOCOL.md §2):

=============  ====================================================================
kind           members
=============  ====================================================================
REQUEST        `method` (string) and an `id` member; `"id": null` is still a request
NOTIFICATION   `method` (string) and **no** `id` member
RESULT         `id` and `result`; no `method`, no `error`
ERROR          `id` (or none, see below) and `error` = {`code`: integer, `message`: string}
=============  ====================================================================

Every object needs `"jsonrpc": "2.0"`. An `id` is a string, an integer (never a bool,
never a float) or null. PROTOCOL.md §2 notes that error responses carry the request id
"or `null`/absent when the id could not be read", so an error object without an `id`
member is accepted (`has_id` False); a result without one is not.

Nothing here raises on network input: every failure is an `Invalid` value with a
reason, so the driver can still forward the bytes raw and record what it saw.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any, NoReturn

__all__ = [
    "HEADER_MISMATCH",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "MISSING_CLIENT_CAPABILITY",
    "PARSE_ERROR",
    "RESOURCE_NOT_FOUND_LEGACY",
    "UNSUPPORTED_PROTOCOL_VERSION",
    "Batch",
    "ErrorObject",
    "Invalid",
    "InvalidReason",
    "JsonRpcId",
    "Message",
    "MessageKind",
    "Parsed",
    "error_body",
    "from_object",
    "parse",
]

# Standard codes (JSON-RPC 2.0 §5.1).
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# 2026-07-28 "reserves -32020…-32099 for the spec" (PROTOCOL.md §2).
HEADER_MISMATCH = -32020
MISSING_CLIENT_CAPABILITY = -32021
UNSUPPORTED_PROTOCOL_VERSION = -32022
# "-32002 resource not found (≤2025-11-25; … 2026-07-28 uses -32602)".
RESOURCE_NOT_FOUND_LEGACY = -32002

JsonRpcId = str | int | None


class MessageKind(enum.Enum):
    """The four shapes a valid JSON-RPC 2.0 object can take."""

    REQUEST = "request"
    NOTIFICATION = "notification"
    RESULT = "result"
    ERROR = "error"


class InvalidReason(enum.Enum):
    """Why a body, or one member of a batch, is not a JSON-RPC 2.0 message."""

    PARSE_ERROR = "parse_error"  # not UTF-8, not JSON, or a number JSON does not allow
    NOT_AN_OBJECT = "not_an_object"  # valid JSON but neither an object nor an array
    WRONG_VERSION = "wrong_version"  # `jsonrpc` missing or not exactly "2.0"
    BAD_ID = "bad_id"  # `id` present but not a string, an integer or null
    BAD_SHAPE = "bad_shape"  # none of the four shapes (or two at once)
    EMPTY_BATCH = "empty_batch"  # `[]`
    TOO_DEEP = "too_deep"  # nested deeper than the decoder's recursion limit


@dataclass(frozen=True, slots=True)
class ErrorObject:
    """The `error` member of an error response.

    `has_data` tells `"data": null` apart from no `data` member at all.
    """

    code: int
    message: str
    data: Any = None
    has_data: bool = False


@dataclass(frozen=True, slots=True)
class Message:
    """One valid JSON-RPC 2.0 object, classified.

    Fields that do not apply to the kind are None (`method` of a result, `result` of a
    request). `params` is whatever the `params` member held (None when absent): MCP wants
    an object, but "a proxy should still forward rather than judge" (PROTOCOL.md §2), so
    readers of `params` must check its type. `obj` is the decoded object itself.
    """

    kind: MessageKind
    id: JsonRpcId
    has_id: bool
    method: str | None
    params: Any
    result: Any
    error: ErrorObject | None
    obj: dict[str, Any]

    @property
    def is_request(self) -> bool:
        """True for a request (a method and an id, possibly a null id)."""
        return self.kind is MessageKind.REQUEST

    @property
    def is_notification(self) -> bool:
        """True for a notification (a method and no id member)."""
        return self.kind is MessageKind.NOTIFICATION

    @property
    def is_response(self) -> bool:
        """True for a result or an error response."""
        return self.kind is MessageKind.RESULT or self.kind is MessageKind.ERROR


@dataclass(frozen=True, slots=True)
class Invalid:
    """A body or batch member that is not JSON-RPC 2.0.

    `id` is the object's id when it could be read (a valid id in an otherwise broken
    object), so an error answer can still name the request; otherwise None.
    """

    reason: InvalidReason
    detail: str
    id: JsonRpcId = None


@dataclass(frozen=True, slots=True)
class Batch:
    """A JSON array of messages, each member classified on its own (never empty)."""

    items: tuple[Message | Invalid, ...]


Parsed = Message | Batch | Invalid


def _reject_constant(name: str) -> NoReturn:
    # json accepts NaN, Infinity and -Infinity by default; RFC 8259 §6 does not ("Numeric
    # values that cannot be represented ... such as Infinity and NaN are not permitted").
    raise ValueError(f"{name} is not a JSON number")


# One decoder for every call: `json.loads(s, parse_constant=...)` would build a new
# JSONDecoder (and its scanner) on each call, and this runs once per request.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def parse(body: bytes | bytearray | memoryview | str) -> Parsed:
    """Decode and classify one HTTP body; never raises.

    Bytes must be UTF-8 (RFC 8259 §8.1 "JSON text exchanged between systems that are not
    part of a closed ecosystem MUST be encoded using UTF-8"); a byte order mark is not
    skipped, so a body starting with one is a PARSE_ERROR. Integers longer than Python's
    digit limit (4300 by default) are a PARSE_ERROR too: they cannot be read, and the
    bytes are forwarded untouched anyway.
    """
    try:
        if isinstance(body, str):
            text = body
        else:
            if isinstance(body, memoryview) and not body.c_contiguous:
                body = body.tobytes()  # str() only decodes contiguous buffers
            text = str(body, "utf-8")
        value = _DECODER.decode(text)
    except UnicodeDecodeError as exc:
        return Invalid(InvalidReason.PARSE_ERROR, f"body is not UTF-8: {exc.reason}")
    except json.JSONDecodeError as exc:
        return Invalid(
            InvalidReason.PARSE_ERROR,
            f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
        )
    except ValueError as exc:
        # Non-finite constants (see _reject_constant) and integers over the digit limit.
        return Invalid(InvalidReason.PARSE_ERROR, f"invalid JSON: {exc}")
    except RecursionError:
        return Invalid(InvalidReason.TOO_DEEP, "JSON nested too deeply to decode")
    if isinstance(value, list):
        if not value:
            return Invalid(InvalidReason.EMPTY_BATCH, "empty batch")
        return Batch(tuple([from_object(item) for item in value]))
    return from_object(value)


def _valid_id(value: object) -> bool:
    # bool is a subclass of int, and JSON `true` is no id.
    return (
        value is None
        or isinstance(value, str)
        or (isinstance(value, int) and not isinstance(value, bool))
    )


def from_object(obj: object) -> Message | Invalid:
    """Classify one decoded JSON value as a message; never raises on JSON values."""
    if not isinstance(obj, dict):
        return Invalid(InvalidReason.NOT_AN_OBJECT, f"expected an object, got {_json_type(obj)}")
    has_id = "id" in obj
    id_ = obj.get("id")
    id_ok = _valid_id(id_)
    version = obj.get("jsonrpc")
    if not (isinstance(version, str) and version == "2.0"):
        return Invalid(InvalidReason.WRONG_VERSION, 'jsonrpc must be "2.0"', id_ if id_ok else None)
    if not id_ok:
        return Invalid(
            InvalidReason.BAD_ID, f"id must be a string, an integer or null, not {_json_type(id_)}"
        )

    has_result = "result" in obj
    has_error = "error" in obj
    if "method" in obj:
        method = obj["method"]
        if not isinstance(method, str):
            return Invalid(InvalidReason.BAD_SHAPE, "method must be a string", id_)
        if has_result or has_error:
            return Invalid(
                InvalidReason.BAD_SHAPE, "a message with a method has no result or error", id_
            )
        # PROTOCOL.md §2: "An object with "id": null and a method is, in plain JSON-RPC,
        # a *request* with a null id (not a notification)". Only a missing id member
        # makes a notification.
        kind = MessageKind.REQUEST if has_id else MessageKind.NOTIFICATION
        return Message(kind, id_, has_id, method, obj.get("params"), None, None, obj)

    if has_result:
        if has_error:
            return Invalid(
                InvalidReason.BAD_SHAPE, "a response has exactly one of result and error", id_
            )
        if not has_id:
            return Invalid(InvalidReason.BAD_SHAPE, "a result needs an id", id_)
        return Message(MessageKind.RESULT, id_, True, None, None, obj["result"], None, obj)

    if has_error:
        error = _error_object(obj["error"])
        if error is None:
            return Invalid(
                InvalidReason.BAD_SHAPE,
                "error must be an object with an integer code and a string message",
                id_,
            )
        return Message(MessageKind.ERROR, id_, has_id, None, None, None, error, obj)

    return Invalid(InvalidReason.BAD_SHAPE, "neither a method nor a result nor an error", id_)


def _error_object(value: object) -> ErrorObject | None:
    if not isinstance(value, dict):
        return None
    code = value.get("code")
    message = value.get("message")
    if not isinstance(code, int) or isinstance(code, bool) or not isinstance(message, str):
        return None
    has_data = "data" in value
    return ErrorObject(code, message, value.get("data"), has_data)


def _json_type(value: object) -> str:
    # JSON's names for the types, for `Invalid.detail`.
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def error_body(id: JsonRpcId, code: int, message: str, data: Any = None) -> bytes:
    """Encode an error response the proxy sends itself, as compact UTF-8 JSON.

    `data` is left out when None. The id is the request's, or None when it could not be
    read ("If there was an error in detecting the id ... it MUST be Null", JSON-RPC §5).
    """
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return json.dumps(
        {"jsonrpc": "2.0", "id": id, "error": error},
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")
