"""Tests of the pipeline as a fleet replica: session ids rewritten in headers, foreign ids 404.

Also the upstream's 404 for a known session (`upstream_gone`) and `Exchange.between_events`,
which tells the transport when an SSE keep-alive comment may be written.
"""

from __future__ import annotations

import json
from typing import Any

from mcpr_core import fleet
from mcpr_core.config import FleetConfig, ProxyConfig
from mcpr_core.events import ProxyEvent, RequestEvent, SessionEnd, SessionStart
from mcpr_core.pipeline import (
    Exchange,
    ExchangeState,
    Forward,
    Outcome,
    ReadBody,
    Reject,
    RequestHead,
    ResponseHead,
    Settings,
)
from mcpr_core.routing import header_value
from mcpr_core.sessions import SessionTracker

UPSTREAM = "http://127.0.0.1:8000/mcp"
JSON = (b"content-type", b"application/json")
SSE = (b"content-type", b"text/event-stream")
INIT = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "clientInfo": {"name": "fleet-test", "version": "1"},
            "capabilities": {},
        },
    }
).encode()
INIT_ANSWER = b'{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18"}}'


def replica_settings(replica: str | None = "a") -> Settings:
    config = ProxyConfig(mcp=UPSTREAM, name="p", fleet=FleetConfig(replica=replica))
    return Settings.from_config(config, sessions=SessionTracker("p", ttl=60.0))


def exchange(s: Settings) -> Exchange:
    return Exchange(s, exchange_id="ex1", ts_ms=1_700_000_000_000, now=10.0)


def post(session_id: bytes | None = None, method: bytes = b"POST") -> RequestHead:
    headers = [(b"host", b"127.0.0.1:3000"), JSON]
    if session_id is not None:
        headers.append((b"mcp-session-id", session_id))
    return RequestHead(method=method, target=b"/mcp", headers=headers, client_host="10.0.0.9")


def call(name: str = "echo", rid: int = 1) -> bytes:
    message = {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {"name": name}}
    return json.dumps(message).encode()


def forward(ex: Exchange, head: RequestHead, payload: bytes) -> Forward:
    step = ex.receive_request_head(head)
    assert isinstance(step, ReadBody)
    fwd = ex.receive_request_body(payload)
    assert isinstance(fwd, Forward)
    return fwd


def answer(
    ex: Exchange, status: int, headers: list[tuple[bytes, bytes]], payload: bytes
) -> ResponseHead:
    head = ex.receive_response_head(ResponseHead(status, headers), now=10.01)
    assert head is not None
    ex.receive_response_data(payload)
    ex.receive_response_end()
    return head


def initialize(s: Settings, upstream_id: bytes = b"s1") -> tuple[ResponseHead, tuple[Any, ...]]:
    ex = exchange(s)
    forward(ex, post(), INIT)
    head = answer(ex, 200, [JSON, (b"mcp-session-id", upstream_id)], INIT_ANSWER)
    return head, ex.finish(now=10.02, outcome=Outcome.COMPLETED)


def requests(events: tuple[ProxyEvent, ...]) -> list[RequestEvent]:
    return [e for e in events if isinstance(e, RequestEvent)]


def test_minted_session_id_reaches_the_client_prefixed() -> None:
    """The upstream's new session id goes to the client as `a.` + id; events say the same."""
    s = replica_settings()
    head, events = initialize(s)
    assert header_value(head.headers, b"mcp-session-id") == b"a.s1"
    assert [e.session_id for e in events] == ["a.s1", "a.s1"]
    assert isinstance(events[0], SessionStart)
    assert s.sessions is not None
    assert "a.s1" in s.sessions


def test_prefix_is_stripped_on_the_way_up_and_only_from_the_header() -> None:
    """A request in the session goes upstream with the upstream's id; the body is untouched."""
    s = replica_settings()
    initialize(s)
    ex = exchange(s)
    payload = call("a.s1")  # the id appears in the body too: it must stay
    fwd = forward(ex, post(b"a.s1"), payload)
    assert header_value(fwd.headers, b"mcp-session-id") == b"s1"
    assert fwd.body is payload
    head = answer(ex, 200, [JSON, (b"mcp-session-id", b"s1")], b'{"jsonrpc":"2.0","id":1}')
    assert header_value(head.headers, b"mcp-session-id") == b"a.s1"
    (event,) = requests(ex.finish(now=10.05, outcome=Outcome.COMPLETED))
    assert event.session_id == "a.s1"
    assert event.client_name == "fleet-test"


def test_get_and_delete_are_rewritten_too() -> None:
    """The GET stream and the DELETE of a session carry the upstream's id upstream."""
    s = replica_settings()
    initialize(s)
    for method in (b"GET", b"DELETE"):
        ex = exchange(s)
        head = RequestHead(
            method=method,
            target=b"/mcp",
            headers=[(b"host", b"127.0.0.1:3000"), (b"mcp-session-id", b"a.s1")],
        )
        fwd = ex.receive_request_head(head)
        assert isinstance(fwd, Forward)
        assert header_value(fwd.headers, b"mcp-session-id") == b"s1"


def test_another_replicas_session_is_answered_404_locally() -> None:
    """A `b.` id never goes upstream: 404 with a JSON-RPC error naming replica b."""
    s = replica_settings()
    ex = exchange(s)
    step = ex.receive_request_head(post(b"b.s1"))
    assert isinstance(step, Reject)
    assert step.status == 404
    assert (b"content-type", b"application/json") in step.headers
    error = json.loads(step.body)
    assert error["id"] is None
    assert error["error"]["code"] == fleet.SESSION_NOT_FOUND
    assert "belongs to replica 'b', not 'a'" in error["error"]["message"]
    assert ex.state is ExchangeState.DONE
    events = ex.finish(now=10.01, outcome=Outcome.REJECTED)
    (event,) = requests(events)
    assert (event.status, event.session_id, event.note) == (404, "b.s1", "rejected")
    assert not any(isinstance(e, SessionEnd | SessionStart) for e in events)


def test_an_id_without_prefix_is_answered_404_while_the_fleet_is_on() -> None:
    """An unprefixed id (minted before the fleet, or forged) is not routable: 404 here."""
    step = exchange(replica_settings()).receive_request_head(post(b"s1"))
    assert isinstance(step, Reject)
    assert step.status == 404
    assert b"not issued through an mcpr fleet replica" in step.body


def test_a_foreign_host_is_still_403_before_the_session_check() -> None:
    """The DNS-rebinding check comes first, whatever the session id."""
    head = RequestHead(
        method=b"POST", target=b"/mcp", headers=[(b"host", b"evil.example"), JSON,
                                                 (b"mcp-session-id", b"b.s1")],
    )  # fmt: skip
    step = exchange(replica_settings()).receive_request_head(head)
    assert isinstance(step, Reject)
    assert step.status == 403


def test_without_a_replica_nothing_changes() -> None:
    """Fleet off: ids pass both ways exactly as they are, dotted or not."""
    s = replica_settings(None)
    head, events = initialize(s, b"b.s1")
    assert header_value(head.headers, b"mcp-session-id") == b"b.s1"
    assert events[0].session_id == "b.s1"
    ex = exchange(s)
    fwd = forward(ex, post(b"b.s1"), call())
    assert header_value(fwd.headers, b"mcp-session-id") == b"b.s1"


def test_upstream_404_for_a_known_session_ends_it_as_upstream_gone() -> None:
    """The upstream forgot the session: its 404 goes to the client and the session ends."""
    s = replica_settings()
    initialize(s)
    ex = exchange(s)
    forward(ex, post(b"a.s1"), call())
    gone = b'{"jsonrpc":"2.0","id":"server-error","error":{"code":-32600,"message":"gone"}}'
    head = answer(ex, 404, [JSON], gone)
    assert head.status == 404
    events = ex.finish(now=10.05, outcome=Outcome.COMPLETED)
    ends = [e for e in events if isinstance(e, SessionEnd)]
    assert [(e.session_id, e.reason) for e in ends] == [("a.s1", "upstream_gone")]
    assert s.sessions is not None
    assert "a.s1" not in s.sessions


def test_between_events_follows_the_sse_decoder() -> None:
    """Only between complete SSE events is the stream open to a keep-alive comment."""
    ex = exchange(replica_settings(None))
    forward(ex, post(), call())
    assert not ex.between_events
    ex.receive_response_head(ResponseHead(200, [SSE]), now=10.01)
    assert ex.between_events
    ex.receive_response_data(b"event: message\ndata: {")
    assert not ex.between_events
    ex.receive_response_data(b'"jsonrpc":"2.0","method":"x"}\n\n')
    assert ex.between_events
    ex.receive_response_end()
    assert not ex.between_events


def test_json_responses_are_never_between_events() -> None:
    """A JSON answer has no events: no keep-alive may be written into it."""
    ex = exchange(replica_settings(None))
    forward(ex, post(), call())
    ex.receive_response_head(ResponseHead(200, [JSON]), now=10.01)
    assert not ex.between_events
