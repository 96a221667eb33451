"""Reading, and where asked rewriting, the upstream's answers for `mcpr_core.pipeline`.

Theory of operation
-------------------
An `Exchange` keeps one `Call` per JSON-RPC message of its request. As the response comes in
(one JSON body, or an event stream decoded event by event), every JSON-RPC message of it
goes through `observe_message`, which matches an answer to the request it answers by id and
writes the outcome (error, result type, input requests) into that request's `Call`.
`response_mode` decides, once the response head is in, how much of the body is read at all.

Rules
-----
* Ids are matched by type and value, so a request with id 1 is not answered by id "1"
  (JSON-RPC 2.0 §5: the response's id "MUST be the same as the value of the id member in
  the Request Object"). A request is answered at most once: a second answer with its id
  is ignored.
* A body in a content coding is never read, and neither is one that is neither JSON nor an
  event stream: it passes through unobserved.
* The outcome is read from the upstream's own answer; a rewrite never touches errors, only
  results, and only results that answer a request of this exchange (`rewrite_result`).
* The result of a listing method (`schema.CAPTURED_METHODS`) is handed to schema capture;
  `notifications/*/list_changed` names are collected for the driver.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Final

from mcpr_core import jsonrpc, mcp, oauth, routing
from mcpr_core._pipeline_types import Captured, Headers, ResultRewriter
from mcpr_core.schema import CAPTURED_METHODS, LIST_CHANGED

__all__ = [
    "Call",
    "Mode",
    "content_type",
    "map_challenges",
    "observe_message",
    "observe_parsed",
    "response_mode",
    "rewrite_result",
]

_JSON_TYPES: Final = (b"application/json",)
_SSE_TYPE: Final = b"text/event-stream"


class Mode(enum.Enum):
    """How the response body is handled."""

    PASS = "pass"  # stream chunks through, observe nothing
    JSON_OBSERVE = "json_observe"  # stream chunks through, keep references to read the outcome
    JSON_BUFFER = "json_buffer"  # hold the body, rewrite, send with a new Content-Length
    SSE_OBSERVE = "sse_observe"  # stream chunks through, decode a copy event by event
    SSE_REWRITE = "sse_rewrite"  # send complete events, re-encoding the rewritten ones


@dataclass(slots=True)
class Call:
    """What we know about one JSON-RPC message of the request, and later its answer."""

    message: jsonrpc.Message | None
    detail: mcp.RequestDetail | None
    error_code: int | None = None
    error_msg: str | None = None
    answered: bool = False
    result_type: str | None = None
    input_requests: tuple[str, ...] = ()
    protocol_version: str | None = None


def content_type(headers: Headers) -> bytes:
    """The media type of `headers`, lower-case and without parameters (b"" when absent)."""
    value = routing.header_value(headers, b"content-type")
    if value is None:
        return b""
    return value.split(b";", 1)[0].strip().lower()


def _id_key(value: jsonrpc.JsonRpcId) -> tuple[str, str | int | None]:
    """A dict key for a JSON-RPC id that keeps 1 and "1" apart."""
    return (type(value).__name__, value)


def response_mode(
    headers: Headers,
    kind: routing.RequestKind | None,
    *,
    target: bytes,
    public: bool,
    rewriting: bool,
    observing: bool,
) -> Mode:
    """How to handle the body of an upstream response with these `headers`.

    `kind` and `target` are the request's; `public` says a public origin is configured,
    `rewriting` that results of the request's method may be rewritten, and `observing`
    that the request held JSON-RPC messages whose answers are worth reading. Outside MCP
    traffic only an OAuth discovery document is read (to map it to the public origin).
    """
    ctype = content_type(headers)
    encoded = routing.header_value(headers, b"content-encoding")
    if encoded is not None and encoded.strip().lower() != b"identity":
        return Mode.PASS
    if kind is routing.RequestKind.PASSTHROUGH:
        if public and ctype in _JSON_TYPES and oauth.is_discovery_path(target):
            return Mode.JSON_BUFFER
        return Mode.PASS
    if ctype == _SSE_TYPE:
        return Mode.SSE_REWRITE if rewriting else Mode.SSE_OBSERVE
    if ctype in _JSON_TYPES and observing:
        return Mode.JSON_BUFFER if rewriting else Mode.JSON_OBSERVE
    return Mode.PASS


def map_challenges(headers: Headers, upstream: str, public: str) -> Headers:
    """Point `resource_metadata` in WWW-Authenticate challenges at the public origin.

    `upstream` and `public` are the upstream's origin and the proxy's public one.
    """
    if routing.header_value(headers, b"www-authenticate") is None:
        return headers
    return [
        (k, oauth.rewrite_www_authenticate(v, upstream_origin=upstream, public_origin=public))
        if k == b"www-authenticate"
        else (k, v)
        for k, v in headers
    ]


def observe_parsed(
    parsed: jsonrpc.Parsed, calls: list[Call], list_changed: list[str], captured: Captured | None
) -> Captured | None:
    """Observe every message of a parsed body; return the listing result to capture.

    That is the last listing result the body answered with, else `captured` unchanged.
    """
    if isinstance(parsed, jsonrpc.Message):
        return observe_message(parsed, calls, list_changed, captured)
    if isinstance(parsed, jsonrpc.Batch):
        for item in parsed.items:
            if isinstance(item, jsonrpc.Message):
                captured = observe_message(item, calls, list_changed, captured)
    return captured


def observe_message(
    message: jsonrpc.Message, calls: list[Call], list_changed: list[str], captured: Captured | None
) -> Captured | None:
    """Match a response to the request it answers and note its outcome.

    A `list_changed` notification is appended to `list_changed`. Returns the listing
    result to capture: this answer's when it answers a listing method, else `captured`.
    """
    if not message.is_response:
        if message.method in LIST_CHANGED:
            list_changed.append(message.method)
        return captured
    key = _id_key(message.id)
    for call in calls:
        req = call.message
        if req is None or not req.has_id or _id_key(req.id) != key or call.answered:
            continue
        detail = mcp.describe_response(message)
        call.answered = True
        call.error_code = detail.error_code
        call.error_msg = detail.error_msg
        call.result_type = detail.result_type
        call.protocol_version = detail.protocol_version
        method = req.method
        if method in CAPTURED_METHODS and isinstance(message.result, dict):
            captured = Captured(method, req.params, message.result)
        if detail.is_error and call.error_msg is None:
            call.error_msg = "tool error"
        if detail.result_type == "input_required":
            call.input_requests = mcp.input_requests(message.result)
        return captured
    return captured


def rewrite_result(
    message: jsonrpc.Message,
    calls: list[Call],
    rewriter: ResultRewriter | None,
    method: str | None,
    client: str | None,
) -> str | None:
    """The JSON text of `message` with its result rewritten, or None when nothing changed.

    `method` is the request's MCP method when the rewriter wants its results (else None)
    and `client` the client's name; only a result answering one of `calls` is offered.
    """
    if rewriter is None or method is None or message.kind is not jsonrpc.MessageKind.RESULT:
        return None
    if not isinstance(message.result, dict) or not _is_ours(message.id, calls):
        return None
    result = rewriter.rewrite(method, message.result, client)
    if result is None:
        return None
    new = {**message.obj, "result": result}
    return json.dumps(new, ensure_ascii=False, separators=(",", ":"))


def _is_ours(rid: jsonrpc.JsonRpcId, calls: list[Call]) -> bool:
    return any(
        c.message is not None and c.message.has_id and _id_key(c.message.id) == _id_key(rid)
        for c in calls
    )
