"""The per-exchange pipeline: one HTTP request/response carried through the proxy.

Theory of operation
-------------------
An `Exchange` is a sans-IO state machine for one HTTP exchange, driven like h11:

    ex = Exchange(settings, exchange_id=eid, ts_ms=wall_ms, now=mono)
    step = ex.receive_request_head(head)            # ReadBody | Forward | Reject
    step = ex.receive_request_body(body)            # after ReadBody: Forward | Reject
    head = ex.receive_response_head(resp, now=t)    # ResponseHead, or None while held back
    out = ex.receive_response_data(chunk)           # bytes to send now (b"" = held back)
    head, out = ex.receive_response_end()           # what is left (and a held head)
    events = ex.finish(now=t2, outcome=Outcome.COMPLETED)

State table (anything else raises `LocalProtocolError` and moves to ERROR):

    REQUEST_HEAD  --receive_request_head-->  REQUEST_BODY (ReadBody) | UPSTREAM (Forward)
                                             | DONE (Reject)
    REQUEST_BODY  --receive_request_body-->  UPSTREAM | DONE
    UPSTREAM      --receive_response_head--> RESPONSE
    UPSTREAM      --upstream_failed-------->  DONE
    RESPONSE      --receive_response_data-->  RESPONSE
    RESPONSE      --receive_response_end--->  DONE
    any but FINISHED --finish-------------->  FINISHED

Rules
-----
* Bodies pass through byte-exact. A POST body is read whole (it is small and must be
  classified before we know where it goes: PRODUCT.md §2.1) and then forwarded as the
  very bytes received. Response bytes are handed back as the same chunk objects unless a
  rewrite applies.
* `text/event-stream` responses are never buffered whole. Every chunk is decoded
  incrementally to observe JSON-RPC errors and results; when no rewrite is wanted the
  chunk itself goes out at once, otherwise complete events go out one by one, the
  rewritten ones re-encoded and all others as their raw bytes.
* JSON responses are buffered only when the `ResultRewriter` hook asks for their method
  (up to `max_response_body_size`; the proxy answers 502 beyond it). Otherwise they
  stream, and a bounded copy of the chunk references is kept to read the outcome.
* With `[fleet] replica`, `Mcp-Session-Id` is rewritten in the headers both ways (never in a
  body), and a session id another replica issued is answered 404 here (`mcpr_core.fleet`).
  Events carry the id the client sees.
* Exactly one `RequestEvent` per JSON-RPC request (one per member of a batch, one for
  any other exchange) comes out of `finish()`.

Layout
------
`Exchange` and its state live here. The values it takes and returns (and `Settings`) are
defined in `_pipeline_types`, the reading and rewriting of answers in `_pipeline_observe`,
and the building of its events in `_pipeline_events`; import them from this module, which
re-exports every public name.
"""

from __future__ import annotations

import enum
from typing import Final

from mcpr_core import fleet, jsonrpc, mcp, oauth, routing
from mcpr_core._pipeline_events import client_trace, request_events, track_session
from mcpr_core._pipeline_observe import (
    Call,
    Mode,
    content_type,
    map_challenges,
    observe_parsed,
    response_mode,
    rewrite_result,
)
from mcpr_core._pipeline_types import (
    Captured,
    Failure,
    Forward,
    HeaderList,
    Headers,
    Outcome,
    ReadBody,
    Reject,
    RequestHead,
    ResponseHead,
    ResultRewriter,
    Settings,
)
from mcpr_core.errors import LocalProtocolError
from mcpr_core.events import ERROR_MSG_MAX, Era, ProxyEvent
from mcpr_core.sessions import SessionInfo
from mcpr_core.sse import SSEDecoder, SSEEvent, reencode
from mcpr_core.tracecontext import TraceIds, TraceParent, child_of

__all__ = [
    "Captured",
    "Exchange",
    "ExchangeState",
    "Failure",
    "Forward",
    "HeaderList",
    "Headers",
    "Outcome",
    "ReadBody",
    "Reject",
    "RequestHead",
    "ResponseHead",
    "ResultRewriter",
    "Settings",
]

_JSON_HEADERS: Final[tuple[tuple[bytes, bytes], ...]] = ((b"content-type", b"application/json"),)
_TEXT_HEADERS: Final[tuple[tuple[bytes, bytes], ...]] = (
    (b"content-type", b"text/plain; charset=utf-8"),
)


class ExchangeState(enum.Enum):
    """Where an exchange is in its life (see the state table in the module docstring)."""

    REQUEST_HEAD = "request_head"
    REQUEST_BODY = "request_body"
    UPSTREAM = "upstream"
    RESPONSE = "response"
    DONE = "done"
    FINISHED = "finished"
    ERROR = "error"


#: The answer to each failure: status, reason phrase, and the message the client reads.
_FAILURES: Final[dict[Failure, tuple[int, bytes, str]]] = {
    Failure.UNREACHABLE: (502, b"Bad Gateway", "upstream unreachable"),
    Failure.TIMEOUT: (504, b"Gateway Timeout", "upstream timed out"),
    Failure.RESPONSE_TOO_LARGE: (502, b"Bad Gateway", "upstream response too large"),
    Failure.BAD_RESPONSE: (502, b"Bad Gateway", "invalid upstream response"),
}


_REASONS: Final = {
    400: b"Bad Request",
    408: b"Request Timeout",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
}


def _with_session_id(headers: Headers, session_id: bytes) -> HeaderList:
    """`headers` with every `Mcp-Session-Id` field set to `session_id`."""
    return [(k, session_id) if k == b"mcp-session-id" else (k, v) for k, v in headers]


class Exchange:
    """The sans-IO machine for one proxied HTTP exchange (see the module docstring)."""

    __slots__ = (
        "_buffer",
        "_buffered",
        "_calls",
        "_captured",
        "_client_head",
        "_decoder",
        "_era",
        "_failure_status",
        "_head",
        "_header_mismatch",
        "_id",
        "_kind",
        "_list_changed",
        "_mode",
        "_oauth",
        "_observed",
        "_observed_size",
        "_parsed",
        "_request_session",
        "_request_size",
        "_response_size",
        "_rewrite_client",
        "_rewrite_method",
        "_rewritten",
        "_session_events",
        "_session_id",
        "_session_info",
        "_settings",
        "_span",
        "_started",
        "_state",
        "_status",
        "_ts_ms",
        "_upstream_at",
        "_upstream_session",
    )

    def __init__(self, settings: Settings, *, exchange_id: str, ts_ms: int, now: float) -> None:
        self._settings = settings
        self._id = exchange_id
        self._ts_ms = ts_ms
        self._started = now
        self._state = ExchangeState.REQUEST_HEAD
        self._head: RequestHead | None = None
        self._kind: routing.RequestKind | None = None
        self._parsed: jsonrpc.Parsed | None = None
        self._calls: list[Call] = []
        self._era: Era | None = None
        self._header_mismatch = False
        self._session_id: str | None = None
        self._request_size = 0
        self._response_size = 0
        self._status = 0
        self._upstream_at: float | None = None
        self._mode = Mode.PASS
        self._decoder: SSEDecoder | None = None
        self._observed: list[bytes] = []
        self._observed_size = 0
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._client_head: ResponseHead | None = None
        self._rewrite_method: str | None = None
        self._rewrite_client: str | None = None
        self._rewritten = ""
        self._oauth = False
        self._captured: Captured | None = None
        self._list_changed: list[str] = []
        self._request_session = False
        self._session_events: list[ProxyEvent] = []
        self._session_info: SessionInfo | None = None
        self._failure_status: int | None = None
        self._span: TraceParent | None = None
        self._upstream_session: bytes | None = None

    # -- introspection ---------------------------------------------------------------

    @property
    def state(self) -> ExchangeState:
        """The current state."""
        return self._state

    @property
    def kind(self) -> routing.RequestKind | None:
        """How the request was classified, once known."""
        return self._kind

    @property
    def mcp_method(self) -> str | None:
        """The JSON-RPC method of the request (the first member of a batch), once read."""
        first = self._calls[0].message if self._calls else None
        return first.method if first is not None else None

    @property
    def captured(self) -> Captured | None:
        """The result of a listing method (tools/list, initialize, …) for schema capture."""
        return self._captured

    @property
    def list_changed(self) -> tuple[str, ...]:
        """`notifications/*/list_changed` names seen in the response stream, not yet taken."""
        return tuple(self._list_changed)

    def take_list_changed(self) -> tuple[str, ...]:
        """Hand out the `list_changed` names seen since the last take.

        A long-lived stream (`subscriptions/listen`, a legacy GET stream) carries them for
        as long as it lasts: its driver takes them as they come, not only at the end.
        """
        if not self._list_changed:
            return ()
        taken = tuple(self._list_changed)
        self._list_changed.clear()
        return taken

    @property
    def between_events(self) -> bool:
        """An event-stream response is under way and the client got only whole events so far.

        Then an SSE comment (a keep-alive) can be written without splitting an event.
        """
        decoder = self._decoder
        return (
            self._state is ExchangeState.RESPONSE
            and decoder is not None
            and decoder.statistics().buffered == 0
        )

    @property
    def answered(self) -> bool:
        """Every JSON-RPC request of the exchange has seen its response go to the client."""
        requests = [c for c in self._calls if c.message is not None and c.message.is_request]
        return bool(requests) and all(c.answered for c in requests)

    def __repr__(self) -> str:
        return f"<Exchange {self._id} state={self._state.name} kind={self._kind}>"

    def _expect(self, *states: ExchangeState) -> None:
        if self._state not in states:
            bad = self._state
            self._state = ExchangeState.ERROR
            raise LocalProtocolError(f"exchange is in state {bad.name}")

    # -- request side ----------------------------------------------------------------

    def receive_request_head(self, head: RequestHead) -> ReadBody | Forward | Reject:
        """Classify the request head: read the body first, forward now, or reject."""
        self._expect(ExchangeState.REQUEST_HEAD)
        self._head = head
        s = self._settings
        sid = routing.header_value(head.headers, b"mcp-session-id")
        self._session_id = sid.decode("ascii", "replace") if sid is not None else None
        self._request_session = sid is not None
        check = routing.check_host_and_origin(
            head.headers,
            bind=s.bind,
            allowed_hosts=s.allowed_hosts,
            allowed_origins=s.allowed_origins,
        )
        if check is not routing.HostCheck.OK:
            what = "Origin" if check is routing.HostCheck.BAD_ORIGIN else "Host"
            return self._reject(403, b"Forbidden", f"Forbidden: {what} header not allowed")
        if head.method == b"CONNECT":
            # A tunnel would reach whatever the upstream chose to connect to, and h11 cannot
            # carry one: mcpr is its clients' origin server, not a forward proxy.
            return self._reject(501, b"Not Implemented", "CONNECT is not supported: no tunnels")
        if sid is not None and s.replica is not None:
            self._upstream_session = fleet.upstream_session_id(s.replica, sid)
            if self._upstream_session is None:
                return self._session_not_ours(s.replica, sid)
        length = routing.header_value(head.headers, b"content-length")
        if length is not None and length.isdigit() and int(length) > s.max_request_body_size:
            return self.body_too_large()
        kind = routing.classify_head(head.method, head.headers)
        if kind is None and not self._wants_body(head.headers):
            kind = routing.RequestKind.PASSTHROUGH
        if kind is None:
            self._state = ExchangeState.REQUEST_BODY
            return ReadBody(limit=s.max_request_body_size)
        self._kind = kind
        if head.target.split(b"?", 1)[0] in s.mcp_paths:
            # A GET stream or a DELETE of the MCP endpoint has its era too (§7.8).
            version = routing.header_value(head.headers, b"mcp-protocol-version")
            header = version.decode("ascii", "replace") if version is not None else None
            self._era = mcp.request_era(
                None, session_id=self._session_id, protocol_version_header=header
            )
        self._state = ExchangeState.UPSTREAM
        return self._forward(None)

    @staticmethod
    def _wants_body(headers: Headers) -> bool:
        """A POST is read whole only when it may be JSON-RPC (JSON or no content type)."""
        ctype = content_type(headers)
        return ctype == b"" or ctype.endswith(b"json")

    def client_error(self, status: int, message: str) -> Reject:
        """The request head, or later its body, was unusable (400, 408, 431): the answer.

        Before a head was received, the event of such an exchange has method "-" and path
        "-": nothing of the head could be trusted. A body that came malformed or too slowly
        (read whole, or while streamed upstream) is refused the same way.
        """
        self._expect(ExchangeState.REQUEST_HEAD, ExchangeState.REQUEST_BODY, ExchangeState.UPSTREAM)
        reason = _REASONS.get(status, b"Bad Request")
        return self._reject_raw(status, reason, _TEXT_HEADERS, message.encode() + b"\n")

    def body_too_large(self) -> Reject:
        """The request body exceeds `max_request_body_size`: answer 413."""
        self._expect(ExchangeState.REQUEST_HEAD, ExchangeState.REQUEST_BODY, ExchangeState.UPSTREAM)
        limit = self._settings.max_request_body_size
        return self._reject(413, b"Content Too Large", f"request body over {limit} bytes")

    def receive_request_body(self, body: bytes) -> Forward | Reject:
        """Take the complete request body (after `ReadBody`) and decide where it goes."""
        self._expect(ExchangeState.REQUEST_BODY)
        if len(body) > self._settings.max_request_body_size:
            return self.body_too_large()
        self._request_size = len(body)
        parsed = jsonrpc.parse(body)
        if isinstance(parsed, jsonrpc.Invalid) and parsed.reason is jsonrpc.InvalidReason.TOO_DEEP:
            return self._too_deep()
        if isinstance(parsed, jsonrpc.Invalid):
            self._kind = routing.RequestKind.PASSTHROUGH
            self._calls.append(Call(message=None, detail=None))
        else:
            self._kind = routing.RequestKind.MCP_MESSAGE
            self._parsed = parsed
            members = parsed.items if isinstance(parsed, jsonrpc.Batch) else (parsed,)
            for item in members:
                if isinstance(item, jsonrpc.Message) and item.method is not None:
                    self._calls.append(Call(item, mcp.describe_request(item)))
                elif isinstance(item, jsonrpc.Message):
                    self._calls.append(Call(item, None))
            if not self._calls:
                self._calls.append(Call(message=None, detail=None))
            reject = self._check_era()
            if reject is not None:
                return reject
        self._state = ExchangeState.UPSTREAM
        return self._forward(body)

    def _too_deep(self) -> Reject:
        """A body nested past the decoder's recursion limit: 400 with a -32700 error.

        Forwarding it would hand the upstream the same stack-exhausting input, so it is
        answered here (JSON-RPC §5.1: -32700 "Invalid JSON was received by the server").
        """
        message = "Parse error: JSON nested too deeply"
        self._kind = routing.RequestKind.PASSTHROUGH
        self._calls.append(Call(None, None, error_code=jsonrpc.PARSE_ERROR, error_msg=message))
        body = jsonrpc.error_body(None, jsonrpc.PARSE_ERROR, message)
        return self._reject_raw(400, b"Bad Request", _JSON_HEADERS, body)

    def _check_era(self) -> Reject | None:
        """Record the era and any header/body disagreement (PROTOCOL.md §7.7, §7.8)."""
        first = self._calls[0]
        assert self._head is not None
        headers = self._head.headers
        version = routing.header_value(headers, b"mcp-protocol-version")
        version_s = version.decode("ascii", "replace") if version is not None else None
        method = first.message.method if first.message is not None else None
        self._era = mcp.request_era(
            method, session_id=self._session_id, protocol_version_header=version_s
        )
        if self._era != "modern" or first.message is None or method is None:
            return None
        mcp_method = routing.header_value(headers, b"mcp-method")
        mcp_name = routing.header_value(headers, b"mcp-name")
        check = mcp.check_headers(
            first.message,
            mcp_method=mcp_method.decode("latin-1") if mcp_method is not None else None,
            mcp_name=mcp_name.decode("latin-1") if mcp_name is not None else None,
            protocol_version=version_s,
        )
        if not check.mismatched:
            return None
        self._header_mismatch = True
        if not self._settings.strict_headers:
            return None
        names = ", ".join(check.mismatched)
        body = jsonrpc.error_body(
            first.message.id, jsonrpc.HEADER_MISMATCH, f"Header mismatch: {names}"
        )
        return self._reject_raw(400, b"Bad Request", _JSON_HEADERS, body)

    def _forward(self, body: bytes | None) -> Forward:
        assert self._head is not None
        assert self._kind is not None
        s = self._settings
        head = self._head
        # MCP traffic goes to the configured endpoint when it was sent to the proxy's own
        # MCP path (or "/"); elsewhere (the legacy HTTP+SSE transport's /sse and /messages,
        # PROTOCOL.md §1.7) it keeps its path and is only observed.
        route = self._kind
        if head.target.split(b"?", 1)[0] not in s.mcp_paths:
            route = routing.RequestKind.PASSTHROUGH
        target = routing.upstream_target(route, head.target, s.upstream)
        headers = routing.forward_request_headers(
            head.headers, upstream=s.upstream, client_host=head.client_host, scheme=head.scheme
        )
        if self._upstream_session is not None:
            headers = _with_session_id(headers, self._upstream_session)
        rewriter = s.rewriter
        if rewriter is not None and self._kind is routing.RequestKind.MCP_MESSAGE:
            call = self._calls[0]
            method = call.message.method if call.message is not None else None
            client = call.detail.client_name if call.detail is not None else None
            if client is None and self._session_id is not None and s.sessions is not None:
                # A legacy request names no client: it is the one that opened its session.
                info = s.sessions.get(self._session_id)
                client = info.client_name if info is not None else None
            self._rewrite_client = client
            if method is not None and rewriter.wants(method, client):
                self._rewrite_method = method
        discovery = (
            s.public_origin is not None
            and self._kind is routing.RequestKind.PASSTHROUGH
            and oauth.is_discovery_path(head.target)
        )
        if self._rewrite_method is not None or discovery:
            # A body we may rewrite must come back readable, so ask for no content coding.
            # Dropping the header is not enough: RFC 9110 §12.5.3 reads a missing
            # Accept-Encoding as "any coding is acceptable".
            headers = [(k, v) for k, v in headers if k != b"accept-encoding"]
            headers.append((b"accept-encoding", b"identity"))
        if s.trace_ids is not None:
            headers = self._propagate(headers, s.trace_ids())
        return Forward(method=head.method, target=target, headers=headers, body=body)

    def _propagate(self, headers: HeaderList, ids: TraceIds) -> HeaderList:
        """Point the upstream's `traceparent` at mcpr's span, a child of the client's."""
        call = self._calls[0] if self._calls else Call(message=None, detail=None)
        parent, state = client_trace(call, self._head)
        self._span = child_of(parent, ids)
        out = [(k, v) for k, v in headers if k.lower() not in (b"traceparent", b"tracestate")]
        out.append((b"traceparent", self._span.header().encode("ascii")))
        if state is not None:
            out.append((b"tracestate", state.encode("ascii")))
        return out

    # -- proxy-made answers -------------------------------------------------------------

    def _request_id(self) -> tuple[bool, jsonrpc.JsonRpcId]:
        """Whether the request was a single JSON-RPC request, and its id."""
        parsed = self._parsed
        if isinstance(parsed, jsonrpc.Message) and parsed.has_id and parsed.method is not None:
            return True, parsed.id
        return False, None

    def _session_not_ours(self, replica: bytes, sid: bytes) -> Reject:
        """A fleet replica's 404 for a session id it did not issue (see `mcpr_core.fleet`)."""
        message = fleet.not_ours_message(replica.decode("ascii"), sid)
        body = jsonrpc.error_body(None, fleet.SESSION_NOT_FOUND, message)
        return self._reject_raw(404, b"Not Found", _JSON_HEADERS, body)

    def _reject(self, status: int, reason: bytes, message: str) -> Reject:
        has_id, rid = self._request_id()
        if has_id:
            body = jsonrpc.error_body(rid, jsonrpc.INTERNAL_ERROR, message)
            return self._reject_raw(status, reason, _JSON_HEADERS, body)
        return self._reject_raw(status, reason, _TEXT_HEADERS, message.encode() + b"\n")

    def _reject_raw(
        self,
        status: int,
        reason: bytes,
        headers: tuple[tuple[bytes, bytes], ...],
        body: bytes,
    ) -> Reject:
        self._state = ExchangeState.DONE
        self._status = status
        self._failure_status = status
        for call in self._calls:
            call.error_code = call.error_code or status
            call.error_msg = call.error_msg or body.decode("utf-8", "replace")[:ERROR_MSG_MAX]
        if self._head is not None and self._head.method == b"HEAD":
            body = b""  # "The server SHOULD NOT send content in the response" (RFC 9110 §9.3.2)
        self._response_size = len(body)
        return Reject(status=status, reason=reason, headers=headers, body=body)

    def upstream_failed(self, failure: Failure, detail: str = "") -> Reject:
        """No usable response head came back: build the 502/504 answer for the client."""
        self._expect(ExchangeState.UPSTREAM, ExchangeState.RESPONSE)
        status, reason, message = _FAILURES[failure]
        if detail:
            message = f"{message}: {detail}"
        return self._reject(status, reason, message)

    # -- response side --------------------------------------------------------------------

    def receive_response_head(self, head: ResponseHead, *, now: float) -> ResponseHead | None:
        """Take the upstream's head; return the head for the client, or None if held back."""
        self._expect(ExchangeState.UPSTREAM)
        self._state = ExchangeState.RESPONSE
        self._upstream_at = now
        self._status = head.status
        headers_in = head.headers
        sid = routing.header_value(headers_in, b"mcp-session-id")
        if sid is not None and self._settings.replica is not None:
            sid = fleet.client_session_id(self._settings.replica, sid)
            headers_in = _with_session_id(headers_in, sid)
        if self._session_id is None and sid is not None:
            self._session_id = sid.decode("ascii", "replace")
        # Session bookkeeping happens when the answer starts, not when it ends: a GET
        # stream opened before a DELETE must not revive its session when it closes.
        now_ms = self._ts_ms + int((now - self._started) * 1000)
        self._session_events, self._session_info = track_session(
            self._settings.sessions,
            self._session_id,
            self._head,
            self._calls,
            status=self._status,
            request_session=self._request_session,
            now_ms=now_ms,
        )
        public = self._settings.public_origin
        if public is not None:
            headers_in = map_challenges(headers_in, self._settings.upstream.origin, public)
        assert self._head is not None
        mode = response_mode(
            head.headers,
            self._kind,
            target=self._head.target,
            public=public is not None,
            rewriting=bool(self._rewrite_method),
            observing=bool(self._calls),
        )
        if mode is Mode.JSON_BUFFER and self._kind is routing.RequestKind.PASSTHROUGH:
            self._oauth = True
        elif mode is Mode.SSE_OBSERVE or mode is Mode.SSE_REWRITE:
            self._decoder = SSEDecoder()
        self._mode = mode
        keep_length = mode is not Mode.SSE_REWRITE
        headers = routing.forward_response_headers(headers_in, keep_content_length=keep_length)
        client_head = ResponseHead(status=head.status, headers=headers, reason=head.reason)
        if mode is Mode.JSON_BUFFER:
            self._client_head = client_head
            return None
        return client_head

    def receive_response_data(self, data: bytes) -> bytes:
        """Take a chunk of the upstream body; return the bytes to send to the client now.

        Raises nothing for bad content: an undecodable body is simply not observed. When a
        buffered body grows past `max_response_body_size`, `response_too_large` turns true
        and the driver answers with `upstream_failed(Failure.RESPONSE_TOO_LARGE)`. An empty
        chunk is no data (the end of the body is `receive_response_end`).
        """
        self._expect(ExchangeState.RESPONSE)
        mode = self._mode
        if not data:
            return b""  # to the SSE decoder, b"" would mean the end of the stream
        if mode is Mode.PASS:
            self._response_size += len(data)
            return data
        if mode is Mode.JSON_OBSERVE:
            if self._observed_size <= self._settings.max_response_body_size:
                self._observed.append(data)
                self._observed_size += len(data)
            self._response_size += len(data)
            return data
        if mode is Mode.JSON_BUFFER:
            self._buffer.append(data)
            self._buffered += len(data)
            return b""
        decoder = self._decoder
        assert decoder is not None
        decoder.receive_data(data)
        if mode is Mode.SSE_OBSERVE:
            self._drain_sse(decoder, rewrite=False)
            self._response_size += len(data)
            if decoder.statistics().buffered > self._settings.max_response_body_size:
                self._stop_observing()  # what it held was sent already
            return data
        out = self._drain_sse(decoder, rewrite=True)
        if decoder.statistics().buffered > self._settings.max_response_body_size:
            out += self._stop_observing()
        self._response_size += len(out)
        return out

    def _stop_observing(self) -> bytes:
        """An event grew past `max_response_body_size`: pass the rest of the stream through.

        Holding an unterminated event (one endless `data:` line) would cost unbounded
        memory; from here on the bytes flow unobserved and unrewritten. Returns the bytes
        the decoder held back, which a rewriting stream has not sent yet.
        """
        decoder = self._decoder
        assert decoder is not None
        self._decoder = None
        self._mode = Mode.PASS
        return decoder.trailing

    @property
    def response_too_large(self) -> bool:
        """A buffered response body exceeded `max_response_body_size`."""
        return self._buffered > self._settings.max_response_body_size

    def receive_response_end(self) -> tuple[ResponseHead | None, bytes]:
        """The upstream body ended: return a held-back head (if any) and the last bytes."""
        self._expect(ExchangeState.RESPONSE)
        self._state = ExchangeState.DONE
        mode = self._mode
        if mode is Mode.JSON_OBSERVE:
            body = b"".join(self._observed)
            if body:
                parsed = jsonrpc.parse(body)
                self._captured = observe_parsed(
                    parsed, self._calls, self._list_changed, self._captured
                )
            self._observed = []
            return None, b""
        if mode is Mode.JSON_BUFFER:
            return self._finish_buffered()
        if mode in (Mode.SSE_OBSERVE, Mode.SSE_REWRITE):
            decoder = self._decoder
            assert decoder is not None
            decoder.receive_data(b"")
            out = self._drain_sse(decoder, rewrite=mode is Mode.SSE_REWRITE)
            if mode is Mode.SSE_REWRITE:
                out += decoder.trailing
                self._response_size += len(out)
                return None, out
        return None, b""

    def _finish_buffered(self) -> tuple[ResponseHead | None, bytes]:
        body = b"".join(self._buffer)
        self._buffer = []
        head = self._client_head
        assert head is not None
        s = self._settings
        rewritten: bytes | None = None
        if self._oauth:
            assert s.public_origin is not None
            rewritten = oauth.rewrite_discovery(
                body, upstream_origin=s.upstream.origin, public_origin=s.public_origin
            )
        else:
            # One parse serves both: the outcome is read from the upstream's own answer
            # (a rewrite never touches errors), then the result is rewritten.
            parsed = jsonrpc.parse(body)
            calls = self._calls
            self._captured = observe_parsed(parsed, calls, self._list_changed, self._captured)
            if isinstance(parsed, jsonrpc.Message):
                text = rewrite_result(
                    parsed, calls, s.rewriter, self._rewrite_method, self._rewrite_client
                )
                rewritten = text.encode() if text is not None else None
        if rewritten is not None:
            body = rewritten
            self._rewritten = "rewritten"
        headers = [(k, v) for k, v in head.headers if k != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        self._response_size += len(body)
        return ResponseHead(status=head.status, headers=headers, reason=head.reason), body

    # -- observation ------------------------------------------------------------------------

    def _drain_sse(self, decoder: SSEDecoder, *, rewrite: bool) -> bytes:
        """Observe every complete event; when rewriting, return their (new) bytes."""
        out: list[bytes] = []
        while True:
            event = decoder.next_event()
            if not isinstance(event, SSEEvent):
                break
            new = self._observe_sse_event(event, rewrite=rewrite)
            if rewrite:
                out.append(event.raw if new is None else new)
        return b"".join(out)

    def _observe_sse_event(self, event: SSEEvent, *, rewrite: bool) -> bytes | None:
        if not event.has_data or not event.data:
            return None
        if event.event not in (None, "message"):
            return None
        parsed = jsonrpc.parse(event.data)
        calls = self._calls
        self._captured = observe_parsed(parsed, calls, self._list_changed, self._captured)
        if not rewrite or not isinstance(parsed, jsonrpc.Message):
            return None
        rewriter = self._settings.rewriter
        data = rewrite_result(parsed, calls, rewriter, self._rewrite_method, self._rewrite_client)
        if data is None:
            return None
        self._rewritten = "rewritten+sse"
        return reencode(event, data=data)

    # -- the event ----------------------------------------------------------------------------

    def finish(self, *, now: float, outcome: Outcome) -> tuple[ProxyEvent, ...]:
        """End the exchange and return its events.

        Session events of the legacy era come first, then one `RequestEvent` per JSON-RPC
        request (at least one). Legacy requests carry the client identity of their session.
        """
        if self._state is ExchangeState.FINISHED:
            self._state = ExchangeState.ERROR
            raise LocalProtocolError("exchange already finished")
        self._state = ExchangeState.FINISHED
        return request_events(
            self._session_events,
            self._calls,
            outcome,
            self._id,
            self._ts_ms,
            self._settings.proxy,
            self._head,
            self._started,
            now,
            self._upstream_at,
            self._status,
            self._request_size,
            self._response_size,
            self._session_id,
            self._session_info,
            self._era,
            self._header_mismatch,
            self._failure_status,
            self._rewritten,
            self._span,
        )
