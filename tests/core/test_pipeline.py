"""Tests of the per-exchange pipeline (`mcpr_core.pipeline.Exchange`)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcpr_core import jsonrpc
from mcpr_core.config import CspConfig, ProxyConfig
from mcpr_core.csp import CspRewriter
from mcpr_core.errors import LocalProtocolError
from mcpr_core.events import ProxyEvent, RequestEvent, SessionEnd, SessionStart
from mcpr_core.pipeline import (
    Exchange,
    ExchangeState,
    Failure,
    Forward,
    Outcome,
    ReadBody,
    Reject,
    RequestHead,
    ResponseHead,
    Settings,
)
from mcpr_core.routing import RequestKind
from mcpr_core.sessions import SessionTracker

UPSTREAM = "http://127.0.0.1:8000/mcp"
JSON_HEADERS = ((b"content-type", b"application/json"),)
SSE_HEADERS = ((b"content-type", b"text/event-stream"),)


def settings(**overrides: Any) -> Settings:
    config = ProxyConfig(mcp=UPSTREAM, name="test", **overrides)
    return Settings.from_config(config)


def exchange(s: Settings | None = None) -> Exchange:
    return Exchange(s or settings(), exchange_id="ex1", ts_ms=1_700_000_000_000, now=10.0)


def post(headers: tuple[tuple[bytes, bytes], ...] = (), target: bytes = b"/mcp") -> RequestHead:
    base = ((b"host", b"127.0.0.1:3000"), (b"content-type", b"application/json"))
    return RequestHead(method=b"POST", target=target, headers=base + headers, client_host="1.2.3.4")


def body(method: str, rid: object = 1, **params: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}).encode()


def forwarded(ex: Exchange, payload: bytes, head: RequestHead | None = None) -> Forward:
    step = ex.receive_request_head(head or post())
    assert isinstance(step, ReadBody)
    fwd = ex.receive_request_body(payload)
    assert isinstance(fwd, Forward)
    return fwd


def respond(ex: Exchange, headers: Any, *chunks: bytes, status: int = 200) -> bytes:
    head = ex.receive_response_head(ResponseHead(status, headers), now=10.5)
    assert head is not None
    out = b"".join(ex.receive_response_data(c) for c in chunks)
    held, rest = ex.receive_response_end()
    assert held is None
    return out + rest


def only(events: tuple[ProxyEvent, ...]) -> RequestEvent:
    (event,) = events
    assert isinstance(event, RequestEvent)
    return event


def requests(events: tuple[ProxyEvent, ...]) -> list[RequestEvent]:
    return [e for e in events if isinstance(e, RequestEvent)]


def test_json_rpc_post_is_read_whole_then_forwarded_byte_exact() -> None:
    """A JSON POST is read whole and its very bytes go to the configured MCP path."""
    ex = exchange()
    payload = body("tools/call", 7, name="echo", arguments={"text": "hi"})
    fwd = forwarded(ex, payload, post(target=b"/?x=1"))
    assert fwd.body is payload
    assert fwd.method == b"POST"
    assert fwd.target == b"/mcp?x=1"
    assert (b"host", b"127.0.0.1:8000") in fwd.headers
    assert ex.kind is RequestKind.MCP_MESSAGE
    assert ex.state is ExchangeState.UPSTREAM


def test_mcp_method_is_known_once_the_body_was_read() -> None:
    """`mcp_method` is None until the body is read, then the (first) JSON-RPC method."""
    ex = exchange()
    assert ex.receive_request_head(post()) == ReadBody(limit=5 * 1024 * 1024)
    assert ex.mcp_method is None
    batch = b"[" + body("subscriptions/listen") + b"," + body("ping", 2) + b"]"
    ex.receive_request_body(batch)
    assert ex.mcp_method == "subscriptions/listen"
    raw = exchange()
    forwarded(raw, b"not json")
    assert raw.mcp_method is None


def test_public_url_path_is_an_mcp_path() -> None:
    """JSON-RPC sent to the public URL's path goes to the upstream's MCP path."""
    config = ProxyConfig(mcp=UPSTREAM, public_url="https://mcp.example.com/v1/mcp")
    ex = exchange(Settings.from_config(config))
    fwd = forwarded(ex, body("ping"), post(target=b"/v1/mcp"))
    assert fwd.target == b"/mcp"


def test_json_rpc_elsewhere_keeps_its_path_and_is_observed() -> None:
    """A JSON-RPC POST to another path (legacy HTTP+SSE /messages) keeps it, still observed."""
    ex = exchange()
    fwd = forwarded(ex, body("tools/list", 4), post(target=b"/messages/?session_id=ab"))
    assert fwd.target == b"/messages/?session_id=ab"
    assert respond(ex, (), b"Accepted", status=202) == b"Accepted"
    assert only(ex.finish(now=11, outcome=Outcome.COMPLETED)).mcp_method == "tools/list"


def test_json_response_passes_through_unchanged_and_is_observed() -> None:
    """JSON response chunks come back as the same objects, and a JSON-RPC error is recorded."""
    ex = exchange()
    forwarded(ex, body("tools/call", 3, name="missing"))
    answer = b'{"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"Unknown tool"}}'
    head = ex.receive_response_head(
        ResponseHead(200, (*JSON_HEADERS, (b"content-length", b"75"))), now=10.25
    )
    assert head is not None
    assert (b"content-length", b"75") in head.headers
    first, second = answer[:10], answer[10:]
    assert ex.receive_response_data(first) is first
    assert ex.receive_response_data(second) is second
    assert ex.receive_response_end() == (None, b"")
    event = only(ex.finish(now=11.0, outcome=Outcome.COMPLETED))
    assert event.mcp_method == "tools/call"
    assert event.tool == "missing"
    assert event.error_code == -32602
    assert event.error_msg == "Unknown tool"
    assert event.latency_us == 1_000_000
    assert event.upstream_us == 250_000
    assert event.response_size == len(answer)
    assert event.jsonrpc_id == 3
    assert event.note == "ok"


def test_tool_error_result_is_recorded_as_error() -> None:
    """A tool result with isError true is recorded with its first text as the message."""
    ex = exchange()
    forwarded(ex, body("tools/call", 1, name="fail"))
    result = {"content": [{"type": "text", "text": "boom"}], "isError": True}
    respond(ex, JSON_HEADERS, json.dumps({"jsonrpc": "2.0", "id": 1, "result": result}).encode())
    event = only(ex.finish(now=11.0, outcome=Outcome.COMPLETED))
    assert event.error_code is None
    assert event.error_msg == "boom"


def test_sse_response_streams_chunk_by_chunk_and_observes_the_result() -> None:
    """SSE chunks pass through as they come; the error inside the final event is recorded."""
    ex = exchange()
    forwarded(ex, body("tools/call", "a", name="slow"))
    progress = b'event: message\nid: 1\ndata: {"jsonrpc":"2.0","method":"notifications/progress",'
    progress += b'"params":{"progress":1}}\n\n'
    final = b'event: message\nid: 2\ndata: {"jsonrpc":"2.0","id":"a","error":'
    final += b'{"code":-32000,"message":"x"}}\n\n'
    stream = progress + final
    head = ex.receive_response_head(ResponseHead(200, SSE_HEADERS), now=10.1)
    assert head is not None
    outs = [ex.receive_response_data(stream[i : i + 7]) for i in range(0, len(stream), 7)]
    assert b"".join(outs) == stream
    assert all(outs)
    assert ex.receive_response_end() == (None, b"")
    assert ex.answered
    event = only(ex.finish(now=10.2, outcome=Outcome.COMPLETED))
    assert event.error_code == -32000
    assert event.response_size == len(stream)


def test_responses_for_other_ids_are_not_taken_as_ours() -> None:
    """A response whose id is "1" does not answer request id 1."""
    ex = exchange()
    forwarded(ex, body("ping", 1))
    respond(ex, JSON_HEADERS, b'{"jsonrpc":"2.0","id":"1","error":{"code":1,"message":"m"}}')
    assert not ex.answered
    assert only(ex.finish(now=11, outcome=Outcome.COMPLETED)).error_code is None


def test_non_json_post_is_streamed_passthrough() -> None:
    """A form POST is not read whole: it streams to the upstream origin under its own path."""
    ex = exchange()
    head = RequestHead(
        method=b"POST",
        target=b"/token?a=b",
        headers=(
            (b"host", b"localhost:3000"),
            (b"content-type", b"application/x-www-form-urlencoded"),
        ),
    )
    fwd = ex.receive_request_head(head)
    assert isinstance(fwd, Forward)
    assert fwd.body is None
    assert fwd.target == b"/token?a=b"
    assert ex.kind is RequestKind.PASSTHROUGH


def test_json_post_that_is_not_json_rpc_is_passthrough_and_still_recorded() -> None:
    """An invalid JSON-RPC body goes to its own path upstream and still makes one event."""
    ex = exchange()
    fwd = forwarded(ex, b'{"hello": "world"}', post(target=b"/api/thing"))
    assert fwd.target == b"/api/thing"
    assert ex.kind is RequestKind.PASSTHROUGH
    out = respond(ex, JSON_HEADERS, b'{"ok":true}')
    assert out == b'{"ok":true}'
    event = only(ex.finish(now=11, outcome=Outcome.COMPLETED))
    assert event.mcp_method is None
    assert event.path == "/api/thing"
    assert event.request_size == len(b'{"hello": "world"}')


def test_get_stream_and_delete_are_forwarded_with_their_own_method() -> None:
    """GET event streams and session DELETEs go to the MCP URL with the same HTTP method."""
    for method, extra in (
        (b"GET", (b"accept", b"text/event-stream")),
        (b"DELETE", (b"mcp-session-id", b"abc")),
    ):
        ex = exchange()
        head = RequestHead(method=method, target=b"/mcp", headers=((b"host", b"localhost"), extra))
        fwd = ex.receive_request_head(head)
        assert isinstance(fwd, Forward)
        assert fwd.method == method
        assert fwd.target == b"/mcp"


def test_batch_makes_one_event_per_request_member() -> None:
    """Each request of a batch is classified and answered separately."""
    ex = exchange()
    batch = b"[" + body("tools/list", 1) + b"," + body("prompts/get", 2, name="p") + b"]"
    forwarded(ex, batch)
    answer = [
        {"jsonrpc": "2.0", "id": 2, "error": {"code": -32602, "message": "no prompt"}},
        {"jsonrpc": "2.0", "id": 1, "result": {"tools": []}},
    ]
    respond(ex, JSON_HEADERS, json.dumps(answer).encode())
    events = requests(ex.finish(now=11, outcome=Outcome.COMPLETED))
    assert [e.mcp_method for e in events] == ["tools/list", "prompts/get"]
    assert [e.id for e in events] == ["ex1", "ex1.1"]
    assert events[0].error_code is None
    assert events[1].error_code == -32602
    assert events[1].prompt_name == "p"


def test_notification_alone_makes_one_event() -> None:
    """A notification POST (202 answer) is recorded once, with no JSON-RPC id."""
    ex = exchange()
    forwarded(ex, b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
    assert respond(ex, (), status=202) == b""
    event = only(ex.finish(now=11, outcome=Outcome.COMPLETED))
    assert event.mcp_method == "notifications/initialized"
    assert event.status == 202
    assert event.jsonrpc_id is None


@pytest.mark.parametrize(
    ("failure", "status", "note"),
    [
        (Failure.UNREACHABLE, 502, "upstream_unreachable"),
        (Failure.TIMEOUT, 504, "timeout"),
        (Failure.BAD_RESPONSE, 502, "upstream_error"),
    ],
)
def test_upstream_failure_answers_with_json_rpc_error_for_requests(
    failure: Failure, status: int, note: str
) -> None:
    """502/504 carry a JSON-RPC error with the request's id, and the event records the status."""
    ex = exchange()
    forwarded(ex, body("tools/list", "req-9"))
    reject = ex.upstream_failed(failure, "detail")
    assert reject.status == status
    parsed = jsonrpc.parse(reject.body)
    assert isinstance(parsed, jsonrpc.Message)
    assert parsed.id == "req-9"
    assert parsed.error is not None
    assert parsed.error.code == jsonrpc.INTERNAL_ERROR
    assert "detail" in parsed.error.message
    event = only(ex.finish(now=11, outcome=Outcome(note)))
    assert event.status == status
    assert event.error_code == status
    assert event.note == note


def test_upstream_failure_for_a_notification_is_plain_text() -> None:
    """Without a request id there is nothing to answer in JSON-RPC: the body is text."""
    ex = exchange()
    forwarded(ex, b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
    reject = ex.upstream_failed(Failure.UNREACHABLE)
    assert reject.status == 502
    assert (b"content-type", b"text/plain; charset=utf-8") in reject.headers
    assert reject.body == b"upstream unreachable\n"


def test_declared_body_over_the_cap_is_rejected_before_reading() -> None:
    """A Content-Length over max_request_body_size is answered 413 at once."""
    ex = exchange(settings(max_request_body_size=10))
    step = ex.receive_request_head(post(((b"content-length", b"11"),)))
    assert isinstance(step, Reject)
    assert step.status == 413
    assert only(ex.finish(now=11, outcome=Outcome.REJECTED)).status == 413


def test_body_over_the_cap_after_reading_is_rejected() -> None:
    """A body that turned out larger than the cap (chunked) is answered 413."""
    ex = exchange(settings(max_request_body_size=10))
    assert isinstance(ex.receive_request_head(post()), ReadBody)
    step = ex.receive_request_body(b"x" * 11)
    assert isinstance(step, Reject)
    assert step.status == 413


@pytest.mark.parametrize(
    ("header", "value"),
    [(b"host", b"evil.example"), (b"origin", b"https://evil.example")],
)
def test_foreign_host_or_origin_is_forbidden_on_loopback(header: bytes, value: bytes) -> None:
    """Bound to loopback, a foreign Host or Origin gets 403 (DNS rebinding protection)."""
    ex = exchange()
    head = RequestHead(
        method=b"POST",
        target=b"/mcp",
        headers=((b"host", b"127.0.0.1:3000"), (b"content-type", b"application/json")),
    )
    headers = tuple((k, value) if k == header else (k, v) for k, v in head.headers)
    if header == b"origin":
        headers = (*headers, (b"origin", value))
    step = ex.receive_request_head(RequestHead(b"POST", b"/mcp", headers))
    assert isinstance(step, Reject)
    assert step.status == 403


MODERN = (
    (b"mcp-protocol-version", b"2026-07-28"),
    (b"mcp-method", b"tools/call"),
    (b"mcp-name", b"other"),
)


def test_modern_header_mismatch_is_recorded_and_forwarded() -> None:
    """A Mcp-Name that disagrees with the body is recorded but forwarded by default."""
    ex = exchange()
    forwarded(ex, body("tools/call", 1, name="echo"), post(MODERN))
    respond(ex, JSON_HEADERS, b'{"jsonrpc":"2.0","id":1,"result":{}}')
    event = only(ex.finish(now=11, outcome=Outcome.COMPLETED))
    assert event.header_mismatch
    assert event.era == "modern"


def test_strict_headers_rejects_a_mismatch_with_32020() -> None:
    """With strict_headers the proxy answers a mismatch itself: 400 and -32020."""
    ex = exchange(settings(strict_headers=True))
    assert isinstance(ex.receive_request_head(post(MODERN)), ReadBody)
    step = ex.receive_request_body(body("tools/call", 1, name="echo"))
    assert isinstance(step, Reject)
    assert step.status == 400
    parsed = jsonrpc.parse(step.body)
    assert isinstance(parsed, jsonrpc.Message)
    assert parsed.error is not None
    assert parsed.error.code == jsonrpc.HEADER_MISMATCH


def test_legacy_session_and_client_identity_are_recorded() -> None:
    """initialize records the client; the session id comes from the response header."""
    ex = exchange()
    forwarded(
        ex,
        body(
            "initialize",
            0,
            protocolVersion="2025-06-18",
            clientInfo={"name": "claude-ai", "version": "0.1.0"},
        ),
    )
    respond(
        ex, (*JSON_HEADERS, (b"mcp-session-id", b"sess-1")), b'{"jsonrpc":"2.0","id":0,"result":{}}'
    )
    event = only(ex.finish(now=11, outcome=Outcome.COMPLETED))
    assert event.session_id == "sess-1"
    assert event.client_name == "claude-ai"
    assert event.client_platform == "claude"
    assert event.protocol_version == "2025-06-18"
    assert event.era == "legacy"


def test_client_hanging_up_is_not_an_error() -> None:
    """An exchange the client abandoned is noted but carries no error."""
    ex = exchange()
    forwarded(ex, body("tools/list", 1))
    ex.receive_response_head(ResponseHead(200, SSE_HEADERS), now=10.1)
    event = only(ex.finish(now=11, outcome=Outcome.CLIENT_CLOSED))
    assert event.note == "client_closed"
    assert event.error_msg is None
    assert event.error_code is None


def test_truncated_stream_is_an_error() -> None:
    """An upstream that died mid-stream leaves an error on the event."""
    ex = exchange()
    forwarded(ex, body("tools/list", 1))
    ex.receive_response_head(ResponseHead(200, SSE_HEADERS), now=10.1)
    ex.receive_response_data(b"data: {}\n")
    event = only(ex.finish(now=11, outcome=Outcome.TRUNCATED))
    assert event.error_msg == "truncated"


class Stamp:
    """A test rewriter that stamps `_meta.stamped` on tools/list results."""

    def wants(self, method: str, client_name: str | None) -> bool:
        return method == "tools/list"

    def rewrite(
        self, method: str, result: dict[str, Any], client_name: str | None
    ) -> dict[str, Any] | None:
        if result.get("leave"):
            return None
        return {**result, "_meta": {"stamped": client_name or True}}


def rewriting(**overrides: Any) -> Exchange:
    config = ProxyConfig(mcp=UPSTREAM, **overrides)
    return exchange(Settings.from_config(config, rewriter=Stamp()))


def test_json_result_is_buffered_rewritten_and_relengthed() -> None:
    """A wanted JSON result is held, rewritten, and sent with a corrected Content-Length."""
    ex = rewriting()
    forwarded(ex, body("tools/list", 1))
    original = b'{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}'
    headers = (*JSON_HEADERS, (b"content-length", str(len(original)).encode()))
    assert ex.receive_response_head(ResponseHead(200, headers), now=10.1) is None
    assert ex.receive_response_data(original[:5]) == b""
    assert ex.receive_response_data(original[5:]) == b""
    head, out = ex.receive_response_end()
    assert head is not None
    assert json.loads(out)["result"] == {"tools": [], "_meta": {"stamped": True}}
    assert (b"content-length", str(len(out)).encode()) in head.headers
    assert sum(1 for k, _ in head.headers if k == b"content-length") == 1
    assert only(ex.finish(now=11, outcome=Outcome.COMPLETED)).note == "rewritten"


def test_json_result_left_alone_keeps_its_bytes() -> None:
    """When the rewriter changes nothing, the buffered body goes out as received."""
    ex = rewriting()
    forwarded(ex, body("tools/list", 1))
    original = b'{"jsonrpc":"2.0","id":1,"result":{"leave":true}}'
    assert ex.receive_response_head(ResponseHead(200, JSON_HEADERS), now=10.1) is None
    ex.receive_response_data(original)
    _, out = ex.receive_response_end()
    assert out == original
    assert only(ex.finish(now=11, outcome=Outcome.COMPLETED)).note == "ok"


def test_buffered_response_over_the_cap_is_flagged() -> None:
    """A buffered body beyond max_response_body_size turns response_too_large on."""
    ex = rewriting(max_response_body_size=8)
    forwarded(ex, body("tools/list", 1))
    ex.receive_response_head(ResponseHead(200, JSON_HEADERS), now=10.1)
    ex.receive_response_data(b"123456789")
    assert ex.response_too_large
    assert ex.upstream_failed(Failure.RESPONSE_TOO_LARGE).status == 502


def test_sse_rewrite_reencodes_only_the_result_event() -> None:
    """In an SSE answer only the result event is re-encoded; ids and other events stay."""
    ex = rewriting()
    forwarded(ex, body("tools/list", 5))
    note = b'id: 1\r\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{}}\r\n\r\n'
    result = (
        b'event: message\r\nid: 2\r\ndata: {"jsonrpc":"2.0","id":5,"result":{"tools":[]}}\r\n\r\n'
    )
    head = ex.receive_response_head(
        ResponseHead(200, (*SSE_HEADERS, (b"content-length", b"999"))), now=10.1
    )
    assert head is not None
    assert all(k != b"content-length" for k, _ in head.headers)
    out = ex.receive_response_data(note + result[:20])
    assert out == note
    out += ex.receive_response_data(result[20:])
    _, rest = ex.receive_response_end()
    out += rest
    assert out.startswith(note + b"event: message\r\nid: 2\r\ndata: ")
    rewritten = out[len(note) :].split(b"data: ", 1)[1].strip()
    assert json.loads(rewritten)["result"]["_meta"] == {"stamped": True}
    assert only(ex.finish(now=11, outcome=Outcome.COMPLETED)).note == "rewritten+sse"


def test_rewriter_is_not_asked_for_passthrough() -> None:
    """Passthrough responses are never buffered, whatever the rewriter wants."""
    ex = rewriting()
    forwarded(ex, b"not json at all", post(target=b"/x"))
    head = ex.receive_response_head(ResponseHead(200, JSON_HEADERS), now=10.1)
    assert head is not None


def test_compressed_response_is_passed_without_observation() -> None:
    """A gzip body cannot be read: it streams through untouched and unobserved."""
    ex = rewriting()
    forwarded(ex, body("tools/list", 1))
    headers = (*JSON_HEADERS, (b"content-encoding", b"gzip"))
    head = ex.receive_response_head(ResponseHead(200, headers), now=10.1)
    assert head is not None
    assert ex.receive_response_data(b"\x1f\x8b") == b"\x1f\x8b"


def test_calls_out_of_order_raise_and_move_to_error() -> None:
    """Driving the machine in the wrong order is a LocalProtocolError and ends in ERROR."""
    ex = exchange()
    with pytest.raises(LocalProtocolError):
        ex.receive_response_data(b"x")
    assert ex.state is ExchangeState.ERROR
    with pytest.raises(LocalProtocolError):
        ex.receive_request_head(post())


def test_finish_twice_raises() -> None:
    """finish() gives the events once; a second call is a driver bug."""
    ex = exchange()
    ex.finish(now=11, outcome=Outcome.CANCELLED)
    with pytest.raises(LocalProtocolError):
        ex.finish(now=11, outcome=Outcome.CANCELLED)


def test_repr_shows_id_and_state() -> None:
    """The repr names the exchange and its state."""
    assert repr(exchange()) == "<Exchange ex1 state=REQUEST_HEAD kind=None>"


@given(st.binary(max_size=512))
def test_any_request_body_is_handled(payload: bytes) -> None:
    """Arbitrary request bytes never raise: they are forwarded and produce one event."""
    ex = exchange()
    ex.receive_request_head(post())
    step = ex.receive_request_body(payload)
    assert isinstance(step, Forward)
    assert step.body == payload
    assert len(ex.finish(now=11, outcome=Outcome.COMPLETED)) >= 1


@given(st.lists(st.binary(max_size=64), max_size=8), st.sampled_from([JSON_HEADERS, SSE_HEADERS]))
def test_any_response_bytes_pass_through_unchanged(chunks: list[bytes], headers: Any) -> None:
    """Arbitrary response bytes are observed without error and reach the client unchanged."""
    ex = exchange()
    forwarded(ex, body("tools/call", 1, name="x"))
    ex.receive_response_head(ResponseHead(200, headers), now=10.1)
    out = b"".join(ex.receive_response_data(c) for c in chunks if c)
    out += ex.receive_response_end()[1]
    assert out == b"".join(chunks)
    only(ex.finish(now=11, outcome=Outcome.COMPLETED))


def test_no_public_side_configured_means_no_rewriter() -> None:
    """Without [csp] or public_url, results are never buffered for a rewrite."""
    assert settings().rewriter is None
    assert settings().public_origin is None


def test_csp_domain_turns_the_widget_rewriter_on() -> None:
    """A [csp] domain makes widget results go through the CSP rewriter."""
    config = ProxyConfig(mcp=UPSTREAM, csp=CspConfig(domain="widgets.example.com"))
    s = Settings.from_config(config)
    assert isinstance(s.rewriter, CspRewriter)
    assert s.public_origin == "https://widgets.example.com"
    ex = exchange(s)
    gzip = post(((b"accept-encoding", b"gzip, br"),))
    fwd = forwarded(ex, body("resources/read", 1, uri="ui://w"), gzip)
    assert (b"accept-encoding", b"gzip, br") not in fwd.headers
    result = {
        "contents": [
            {
                "uri": "ui://w",
                "mimeType": "text/html;profile=mcp-app",
                "text": "<p>",
                "_meta": {"ui": {"csp": {"connectDomains": ["http://localhost:9000"]}}},
            }
        ]
    }
    answer = json.dumps({"jsonrpc": "2.0", "id": 1, "result": result}).encode()
    assert ex.receive_response_head(ResponseHead(200, JSON_HEADERS), now=10.1) is None
    ex.receive_response_data(answer)
    _, out = ex.receive_response_end()
    meta = json.loads(out)["result"]["contents"][0]["_meta"]
    assert (b"accept-encoding", b"identity") in fwd.headers
    assert meta["ui"]["csp"]["connectDomains"] == ["https://widgets.example.com"]
    assert meta["openai/widgetCSP"]["connect_domains"] == ["https://widgets.example.com"]


PUBLIC = "https://mcp.example.com/mcp"


def test_oauth_discovery_document_names_the_public_origin() -> None:
    """A protected-resource metadata document is rewritten to the proxy's public origin."""
    ex = exchange(Settings.from_config(ProxyConfig(mcp=UPSTREAM, public_url=PUBLIC)))
    head = RequestHead(
        b"GET", b"/.well-known/oauth-protected-resource/mcp", ((b"host", b"localhost"),)
    )
    assert isinstance(ex.receive_request_head(head), Forward)
    document = b'{"resource":"http://127.0.0.1:8000/mcp","authorization_servers":["https://a"]}'
    assert ex.receive_response_head(ResponseHead(200, JSON_HEADERS), now=10.1) is None
    ex.receive_response_data(document)
    held, out = ex.receive_response_end()
    assert held is not None
    assert json.loads(out)["resource"] == "https://mcp.example.com/mcp"
    assert (b"content-length", str(len(out)).encode()) in held.headers
    assert only(ex.finish(now=11, outcome=Outcome.COMPLETED)).note == "rewritten"


def test_www_authenticate_points_at_public_metadata() -> None:
    """A 401 challenge's resource_metadata URL is mapped to the public origin."""
    ex = exchange(Settings.from_config(ProxyConfig(mcp=UPSTREAM, public_url=PUBLIC)))
    forwarded(ex, body("tools/list", 1))
    challenge = (
        b'Bearer resource_metadata="http://127.0.0.1:8000/.well-known/oauth-protected-resource"'
    )
    head = ex.receive_response_head(
        ResponseHead(401, ((b"www-authenticate", challenge),)), now=10.1
    )
    assert head is not None
    assert dict(head.headers)[b"www-authenticate"] == (
        b'Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource"'
    )


def test_discovery_is_left_alone_without_a_public_origin() -> None:
    """With no public origin known, discovery documents stream through untouched."""
    ex = exchange()
    head = RequestHead(b"GET", b"/.well-known/oauth-protected-resource", ((b"host", b"localhost"),))
    ex.receive_request_head(head)
    assert ex.receive_response_head(ResponseHead(200, JSON_HEADERS), now=10.1) is not None


@pytest.mark.parametrize(
    ("status", "reason"), [(400, b"Bad Request"), (431, b"Request Header Fields Too Large")]
)
def test_unreadable_head_is_answered_and_recorded(status: int, reason: bytes) -> None:
    """A head that could not be parsed gets a text answer and still one event."""
    ex = exchange()
    reject = ex.client_error(status, "bad head")
    assert (reject.status, reject.reason, reject.body) == (status, reason, b"bad head\n")
    event = only(ex.finish(now=11, outcome=Outcome.REJECTED))
    assert (event.method, event.path, event.status, event.error_code) == ("-", "-", status, status)


def test_declared_upload_over_the_cap_is_rejected_too() -> None:
    """A streamed (non-JSON) upload whose Content-Length exceeds the cap is answered 413."""
    ex = exchange(settings(max_request_body_size=10))
    head = RequestHead(b"PUT", b"/upload", ((b"host", b"localhost"), (b"content-length", b"11")))
    step = ex.receive_request_head(head)
    assert isinstance(step, Reject)
    assert step.status == 413


def _mrtr_round(params: dict[str, Any], result: dict[str, Any]) -> RequestEvent:
    ex = exchange()
    modern = ((b"mcp-protocol-version", b"2026-07-28"), (b"mcp-method", b"tools/call"))
    forwarded(ex, body("tools/call", 9, **params), post((*modern, (b"mcp-name", b"greet"))))
    respond(ex, JSON_HEADERS, json.dumps({"jsonrpc": "2.0", "id": 9, "result": result}).encode())
    return only(ex.finish(now=11, outcome=Outcome.COMPLETED))


def test_input_required_rounds_are_recorded_and_linked() -> None:
    """An input_required answer is noted with what it asks; its retry shares the key."""
    asked = {
        "resultType": "input_required",
        "inputRequests": {"name": {"method": "elicitation/create", "params": {}}},
        "requestState": "opaque-1",
    }
    first = _mrtr_round({"name": "greet", "arguments": {"x": 1}}, asked)
    assert first.note == "input_required"
    assert first.result_type == "input_required"
    assert first.input_requests == ("name:elicitation/create",)
    assert first.error_msg is None
    retry = _mrtr_round(
        {
            "name": "greet",
            "arguments": {"x": 1},
            "inputResponses": {"name": {"action": "accept"}},
            "requestState": "opaque-1",
        },
        {"resultType": "complete", "content": []},
    )
    assert retry.note == "ok"
    assert retry.result_type == "complete"
    assert retry.correlation_key == first.correlation_key
    assert first.correlation_key is not None
    other = _mrtr_round({"name": "greet", "arguments": {"x": 2}}, asked)
    assert other.correlation_key != first.correlation_key


def test_plain_calls_carry_no_correlation_key() -> None:
    """A call that never asks for input has no correlation key."""
    event = _mrtr_round({"name": "greet"}, {"content": []})
    assert event.correlation_key is None
    assert event.input_requests == ()


def test_modern_client_closing_early_is_a_cancellation() -> None:
    """A 2026-07-28 client that hangs up before its answer cancelled the request."""
    ex = exchange()
    modern = ((b"mcp-protocol-version", b"2026-07-28"), (b"mcp-method", b"tools/list"))
    forwarded(ex, body("tools/list", 1), post(modern))
    ex.receive_response_head(ResponseHead(200, SSE_HEADERS), now=10.1)
    event = only(ex.finish(now=11, outcome=Outcome.CLIENT_CLOSED))
    assert event.note == "cancelled"
    assert event.error_msg is None


def session_settings() -> Settings:
    tracker = SessionTracker("test", ttl=60.0)
    return Settings.from_config(ProxyConfig(mcp=UPSTREAM, name="test"), sessions=tracker)


def with_session(sid: bytes) -> RequestHead:
    return post(((b"mcp-session-id", sid),))


def test_legacy_session_lifecycle_through_exchanges() -> None:
    """initialize opens the session, later requests carry its client, DELETE ends it."""
    s = session_settings()
    ex = exchange(s)
    init = body(
        "initialize",
        0,
        protocolVersion="2025-06-18",
        clientInfo={"name": "Visual Studio Code", "version": "1.99"},
    )
    forwarded(ex, init)
    answer = b'{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18"}}'
    respond(ex, (*JSON_HEADERS, (b"mcp-session-id", b"s1")), answer)
    start, first = ex.finish(now=11, outcome=Outcome.COMPLETED)
    assert isinstance(start, SessionStart)
    assert (start.session_id, start.client_name, start.client_platform) == (
        "s1",
        "Visual Studio Code",
        "vscode",
    )
    assert start.protocol_version == "2025-06-18"
    assert isinstance(first, RequestEvent)

    ex = exchange(s)
    forwarded(ex, body("tools/call", 1, name="echo"), with_session(b"s1"))
    respond(ex, JSON_HEADERS, b'{"jsonrpc":"2.0","id":1,"result":{}}')
    call = only(ex.finish(now=11, outcome=Outcome.COMPLETED))
    assert (call.session_id, call.client_name, call.client_version) == (
        "s1",
        "Visual Studio Code",
        "1.99",
    )
    assert call.protocol_version == "2025-06-18"
    assert s.sessions is not None
    assert s.sessions.get("s1") is not None

    ex = exchange(s)
    head = RequestHead(b"DELETE", b"/mcp", ((b"host", b"localhost"), (b"mcp-session-id", b"s1")))
    ex.receive_request_head(head)
    respond(ex, (), status=200)
    end, delete = ex.finish(now=11, outcome=Outcome.COMPLETED)
    assert isinstance(end, SessionEnd)
    assert end.reason == "deleted"
    assert isinstance(delete, RequestEvent)
    assert (delete.client_name, delete.era) == ("Visual Studio Code", "legacy")
    assert s.sessions.get("s1") is None


def test_listing_results_and_list_changed_are_handed_to_capture() -> None:
    """A tools/list result is exposed for schema capture; list_changed names are collected."""
    ex = exchange()
    forwarded(ex, body("tools/list", 1, cursor="c2"))
    stream = (
        b'data: {"jsonrpc":"2.0","method":"notifications/tools/list_changed"}\n\n'
        b'data: {"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}]}}\n\n'
    )
    respond(ex, SSE_HEADERS, stream)
    assert ex.captured is not None
    assert ex.captured.method == "tools/list"
    assert ex.captured.params == {"cursor": "c2"}
    assert ex.captured.result == {"tools": [{"name": "a"}]}
    assert ex.list_changed == ("notifications/tools/list_changed",)
