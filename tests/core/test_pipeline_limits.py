"""The pipeline's bounds (PRODUCT.md §9 "every size limit enforced before memory is spent"):
JSON too deep to decode, an SSE event that never ends, a body that never came whole, and a
method it will not carry (CONNECT)."""

from __future__ import annotations

import json
from typing import Any

from mcpr_core import jsonrpc
from mcpr_core.config import CspConfig, ProxyConfig
from mcpr_core.events import RequestEvent
from mcpr_core.pipeline import (
    Exchange,
    Forward,
    Outcome,
    ReadBody,
    Reject,
    RequestHead,
    ResponseHead,
    Settings,
)

UPSTREAM = "http://127.0.0.1:8000/mcp"
SSE = ((b"content-type", b"text/event-stream"),)
HEAD = RequestHead(
    method=b"POST",
    target=b"/mcp",
    headers=((b"host", b"127.0.0.1:3000"), (b"content-type", b"application/json")),
)
CAP = 1000


def _exchange(**overrides: Any) -> Exchange:
    settings = Settings.from_config(ProxyConfig(mcp=UPSTREAM, **overrides))
    return Exchange(settings, exchange_id="ex", ts_ms=0, now=0.0)


def _event(ex: Exchange, outcome: Outcome = Outcome.COMPLETED) -> RequestEvent:
    (event,) = ex.finish(now=1.0, outcome=outcome)
    assert isinstance(event, RequestEvent)
    return event


def test_json_nested_past_the_recursion_limit_is_answered_400_parse_error() -> None:
    """A body nested 100,000 deep is refused with 400 and a -32700 error, never forwarded."""
    ex = _exchange()
    assert isinstance(ex.receive_request_head(HEAD), ReadBody)
    step = ex.receive_request_body(b"[" * 100_000 + b"]" * 100_000)
    assert isinstance(step, Reject)
    assert step.status == 400
    answer = json.loads(step.body)
    assert answer["id"] is None
    assert answer["error"]["code"] == jsonrpc.PARSE_ERROR
    event = _event(ex, Outcome.REJECTED)
    assert (event.status, event.note, event.error_code) == (400, "rejected", -32700)
    assert event.error_msg == "Parse error: JSON nested too deeply"


def test_moderately_nested_json_is_forwarded() -> None:
    """Nesting well within the limit (100 levels) is an ordinary request."""
    params: Any = {}
    for _ in range(100):
        params = {"a": params}
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params})
    ex = _exchange()
    ex.receive_request_head(HEAD)
    assert isinstance(ex.receive_request_body(body.encode()), Forward)


def _sse_exchange(**overrides: Any) -> Exchange:
    ex = _exchange(max_response_body_size=CAP, **overrides)
    ex.receive_request_head(HEAD)
    call = {"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "ui://w"}}
    ex.receive_request_body(json.dumps(call).encode())
    assert ex.receive_response_head(ResponseHead(200, SSE), now=0.5) is not None
    return ex


def test_endless_sse_line_passes_through_once_it_exceeds_the_cap() -> None:
    """An observed event longer than max_response_body_size stops being decoded; bytes flow."""
    ex = _sse_exchange()
    chunks = [b"data: ", *[b"x" * 300] * 10, b"\n\n", b'data: {"jsonrpc":"2.0","id":1}\n\n']
    out = [ex.receive_response_data(chunk) for chunk in chunks]
    assert out == chunks
    assert not ex.between_events  # nothing is decoded any more
    assert ex.receive_response_end() == (None, b"")
    assert _event(ex).response_size == sum(map(len, chunks))


def test_endless_sse_line_of_a_rewritten_stream_is_released_at_the_cap() -> None:
    """A rewriting stream holds an unfinished event only up to the cap, then sends it on."""
    ex = _sse_exchange(csp=CspConfig(domain="example.com"))
    first = b'data: {"jsonrpc":"2.0","method":"notifications/message"}\n\ndata: '
    assert ex.receive_response_data(first) == first[: first.index(b"data: ", 10)]
    assert ex.receive_response_data(b"y" * 600) == b""
    # Past the cap: what was held goes out at once, and the rest passes straight through.
    assert ex.receive_response_data(b"y" * 600) == b"data: " + b"y" * 1200
    rest = b"z" * 50 + b"\n\n"
    assert ex.receive_response_data(rest) == rest
    assert ex.receive_response_end() == (None, b"")


def test_a_body_that_never_came_whole_is_refused_with_the_request_named() -> None:
    """client_error after ReadBody (a body cut off or too slow) answers and names the path."""
    ex = _exchange()
    assert isinstance(ex.receive_request_head(HEAD), ReadBody)
    reject = ex.client_error(408, "request body timeout")
    assert (reject.status, reject.body) == (408, b"request body timeout\n")
    event = _event(ex, Outcome.REJECTED)
    assert (event.method, event.path, event.status, event.note) == ("POST", "/mcp", 408, "rejected")


def test_connect_is_refused_501_before_anything_is_forwarded() -> None:
    """CONNECT would open a tunnel through the upstream: answered 501 from the head."""
    ex = _exchange()
    head = RequestHead(method=b"CONNECT", target=b"10.0.0.1:22", headers=HEAD.headers)
    step = ex.receive_request_head(head)
    assert isinstance(step, Reject)
    assert (step.status, step.reason) == (501, b"Not Implemented")
    assert (_event(ex, Outcome.REJECTED).status, ex.kind) == (501, None)


def test_an_empty_chunk_is_no_data_and_does_not_end_an_event_stream() -> None:
    """receive_response_data(b"") changes nothing: the SSE stream goes on afterwards."""
    ex = _sse_exchange()
    event = b'data: {"jsonrpc":"2.0","id":1,"result":{}}\n\n'
    assert ex.receive_response_data(b"") == b""
    assert ex.receive_response_data(event) == event
    assert ex.receive_response_end() == (None, b"")
    assert _event(ex).response_size == len(event)


def test_a_refused_head_request_is_answered_without_content() -> None:
    """A HEAD refused by the proxy (here 403) gets its status and no body to send."""
    ex = _exchange()
    headers = (*HEAD.headers, (b"origin", b"http://evil.example"))
    reject = ex.receive_request_head(RequestHead(method=b"HEAD", target=b"/mcp", headers=headers))
    assert isinstance(reject, Reject)
    assert (reject.status, reject.body) == (403, b"")
    event = _event(ex, Outcome.REJECTED)
    assert (event.status, event.response_size, event.error_code) == (403, 0, 403)
