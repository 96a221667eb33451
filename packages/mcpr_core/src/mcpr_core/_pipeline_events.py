"""The events an `Exchange` of `mcpr_core.pipeline` ends with.

Theory of operation
-------------------
When the upstream's answer starts, `track_session` feeds the legacy session table (and keeps
the events it returns); `Exchange.finish` then hands everything it learnt to
`request_events`, which puts those session events first and appends one `RequestEvent` per
JSON-RPC request of the exchange (one per member of a batch, one for any other exchange).

Rules
-----
* Session bookkeeping happens when the answer starts, not when it ends: a GET stream opened
  before a DELETE must not revive its session when it closes.
* A legacy request names no client: its event carries the identity of the client that
  opened its session.
* The first event has the exchange's id and mcpr's own span; the others `<id>.<n>`.
* The note is the outcome, except that a completed exchange whose answer was rewritten says
  so, a client hanging up on a modern request is a cancellation, and a call of a completed
  exchange answered `input_required` says that. A failure of the upstream or the proxy is
  the error of every call that has none of its own.
* A call's trace context is read from its `params._meta`, else from the request headers.
"""

from __future__ import annotations

from typing import Final

from mcpr_core import mcp, routing
from mcpr_core._pipeline_observe import Call
from mcpr_core._pipeline_types import Outcome, RequestHead
from mcpr_core.events import Era, ProxyEvent, RequestEvent
from mcpr_core.sessions import SessionInfo, SessionTracker
from mcpr_core.tracecontext import TraceParent, client_context

__all__ = ["client_trace", "request_events", "track_session"]

#: Outcomes that are the upstream's or the proxy's failure (a client hanging up is not).
_FAILED: Final = frozenset(
    {
        Outcome.UPSTREAM_UNREACHABLE,
        Outcome.UPSTREAM_TIMEOUT,
        Outcome.UPSTREAM_ERROR,
        Outcome.TRUNCATED,
    }
)


def client_trace(call: Call, head: RequestHead | None) -> tuple[TraceParent | None, str | None]:
    """The client's trace context for one call: its `params._meta`, else the headers."""
    detail = call.detail
    headers = head.headers if head is not None else ()
    return client_context(
        detail.traceparent if detail is not None else None,
        detail.tracestate if detail is not None else None,
        routing.header_value(headers, b"traceparent"),
        routing.header_value(headers, b"tracestate"),
    )


def track_session(
    tracker: SessionTracker | None,
    sid: str | None,
    head: RequestHead | None,
    calls: list[Call],
    *,
    status: int,
    request_session: bool,
    now_ms: int,
) -> tuple[list[ProxyEvent], SessionInfo | None]:
    """Feed the legacy session table; return its events and what it knows of the client.

    `sid` is the session id the client sees, `status` the upstream's answer, and
    `request_session` says the request itself carried the session id.
    """
    if tracker is None or sid is None or head is None:
        return [], None
    first = calls[0] if calls else None
    method = first.message.method if first is not None and first.message else None
    events: list[ProxyEvent] = []
    if method == "initialize" and not request_session:
        if 200 <= status < 300 and first is not None:
            detail = first.detail
            events += tracker.on_initialize(
                sid,
                client_name=detail.client_name if detail else None,
                client_version=detail.client_version if detail else None,
                # the answer's body is not in yet: the version the client asked for
                protocol_version=detail.protocol_version if detail else None,
                now_ms=now_ms,
            )
        return events, tracker.get(sid)
    if head.method == b"DELETE":
        info = tracker.get(sid)  # the client whose session this ends
        events += tracker.on_delete(sid, now_ms, status=status)
        return events, info
    info = tracker.touch(sid, now_ms)
    if status:
        events += tracker.on_response(sid, status=status, now_ms=now_ms)
    if method == "notifications/initialized":
        tracker.on_initialized(sid)
    return events, info if info is not None else tracker.get(sid)


def request_events(
    events: list[ProxyEvent],
    calls: list[Call],
    outcome: Outcome,
    exchange_id: str,
    ts_ms: int,
    proxy: str,
    head: RequestHead | None,
    started: float,
    now: float,
    upstream_at: float | None,
    status: int,
    request_size: int,
    response_size: int,
    session_id: str | None,
    session: SessionInfo | None,
    era: Era | None,
    header_mismatch: bool,
    failure_status: int | None,
    rewritten: str,
    span: TraceParent | None,
    /,
) -> tuple[ProxyEvent, ...]:
    """`events` (the session events), then one `RequestEvent` per call (at least one).

    The arguments are what the exchange learnt: `head` is the request head (None when none
    could be read), `started`, `upstream_at` and `now` monotonic times of its start, of
    the upstream's head and of its end, `session` the legacy session's client,
    `failure_status` the status of an answer the proxy made itself, `rewritten` the note of
    a rewritten answer ("" when none) and `span` mcpr's own span when propagating.

    They are positional only because this runs once per exchange: on CPython 3.11 a call
    passing more than 15 arguments by keyword was measured about 0.7 µs slower.
    """
    method = head.method.decode("ascii", "replace") if head is not None else "-"
    path = head.target.decode("utf-8", "replace").split("?", 1)[0] if head else "-"
    latency_us = max(0, int((now - started) * 1_000_000))
    upstream_us = (
        max(0, int((upstream_at - started) * 1_000_000)) if upstream_at is not None else None
    )
    calls = calls or [Call(message=None, detail=None)]
    note = outcome.value
    if rewritten and outcome is Outcome.COMPLETED:
        note = rewritten
    elif outcome is Outcome.CLIENT_CLOSED and era == "modern":
        # "closing the SSE response stream is the cancellation" (PROTOCOL.md §1.5)
        note = Outcome.CANCELLED.value
    for index, call in enumerate(calls):
        detail = call.detail
        message = call.message
        error_code = call.error_code
        error_msg = call.error_msg
        if error_code is None and failure_status is not None:
            error_code = failure_status
        if error_code is None and error_msg is None and outcome in _FAILED:
            error_msg = note
        rid = message.id if message is not None and message.has_id else None
        client_name = detail.client_name if detail else None
        client_version = detail.client_version if detail else None
        protocol_version = call.protocol_version or (detail.protocol_version if detail else None)
        if session is not None and client_name is None:
            client_name = session.client_name
            client_version = session.client_version
            protocol_version = protocol_version or session.protocol_version
        call_note = note
        correlation = None
        if message is not None and message.method is not None:
            if call.result_type == "input_required" or mcp.is_retry(message.params):
                correlation = mcp.correlation_key(message.method, message.params)
            if call.result_type == "input_required" and outcome is Outcome.COMPLETED:
                call_note = "input_required"
        parent, state = client_trace(call, head)
        first_span = span if index == 0 else None
        events.append(
            RequestEvent(
                id=exchange_id if index == 0 else f"{exchange_id}.{index}",
                ts=ts_ms,
                proxy=proxy,
                method=method,
                path=path,
                status=status,
                latency_us=latency_us,
                request_size=request_size,
                note=call_note,
                session_id=session_id,
                mcp_method=message.method if message is not None else None,
                tool=detail.tool if detail else None,
                resource_uri=detail.resource_uri if detail else None,
                prompt_name=detail.prompt_name if detail else None,
                upstream_us=upstream_us,
                response_size=response_size,
                error_code=error_code,
                error_msg=error_msg,
                client_name=client_name,
                client_version=client_version,
                client_platform=mcp.client_platform(client_name).value if client_name else None,
                protocol_version=protocol_version,
                era=era,
                header_mismatch=header_mismatch,
                jsonrpc_id=rid,
                result_type=call.result_type,
                input_requests=call.input_requests,
                correlation_key=correlation,
                traceparent=parent.header() if parent is not None else None,
                tracestate=state,
                trace_id=first_span.trace_id if first_span is not None else None,
                span_id=first_span.parent_id if first_span is not None else None,
            )
        )
    return tuple(events)
