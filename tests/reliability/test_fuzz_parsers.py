"""Item 1 of the reliability issue, offline: the core's parsers against generated input.

JSON-RPC classification, the SSE decoder, the widget CSP rewriter, routing (host checks,
classification, targets, forwarded headers) and the whole per-exchange pipeline each get
`EXAMPLES` generated inputs (25,000 each under MCPR_LONG_TESTS=1: 125,000 in all), built
to sit near the valid shapes, where parsers break: almost-JSON-RPC objects, huge and odd
ids, truncated and spliced JSON, deep nesting, SSE streams split at every boundary, widget
metadata with wrong types. None may raise, and each keeps the invariant stated in its test.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
from typing import Any, Final

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcpr_core import jsonrpc, routing
from mcpr_core.config import CspConfig, CspDirective, ProxyConfig, WidgetRule
from mcpr_core.csp import CspRewriter
from mcpr_core.events import RequestEvent
from mcpr_core.pipeline import (
    Exchange,
    Failure,
    Forward,
    Outcome,
    ReadBody,
    Reject,
    RequestHead,
    ResponseHead,
    Settings,
)
from mcpr_core.sse import END_OF_STREAM, NEED_DATA, SSEDecoder, SSEEvent
from tests.reliability.strategies import bodies, json_values
from tests.reliability.support import scaled

EXAMPLES: Final = scaled(1_000, 25_000)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
UPSTREAM = routing.parse_upstream_url("http://127.0.0.1:8000/mcp")


@FUZZ
@given(bodies())
def test_jsonrpc_parse_never_raises_and_classifies_consistently(body: bytes) -> None:
    """parse() returns a Message, Batch or Invalid; every Message is a well-formed shape."""
    parsed = jsonrpc.parse(body)
    members = parsed.items if isinstance(parsed, jsonrpc.Batch) else (parsed,)
    for item in members:
        if isinstance(item, jsonrpc.Message):
            assert item.obj["jsonrpc"] == "2.0"
            assert item.id is None or type(item.id) in (int, str)
            assert (item.method is not None) == (
                item.kind in (jsonrpc.MessageKind.REQUEST, jsonrpc.MessageKind.NOTIFICATION)
            )
        else:
            assert isinstance(item, jsonrpc.Invalid)


_SSE_PIECES = st.sampled_from(
    [b"data: ", b"data:", b"id: 7", b"event: message", b"retry: 10", b": ping", b"\n", b"\r",
     b"\r\n", b"\n\n", b'{"jsonrpc":"2.0","id":1,"result":{}}', b"\x00", b"\xef\xbb\xbf", b"x"]
) | st.binary(max_size=8)  # fmt: skip


def _decode(chunks: list[bytes]) -> tuple[list[SSEEvent], bytes]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for chunk in [*chunks, b""]:
        decoder.receive_data(chunk)
        while isinstance(event := decoder.next_event(), SSEEvent):
            events.append(event)
    assert decoder.next_event() is END_OF_STREAM or event is NEED_DATA
    return events, decoder.trailing


@FUZZ
@given(st.lists(_SSE_PIECES, max_size=40), st.lists(st.integers(0, 400), max_size=10))
def test_sse_decoder_keeps_every_byte_whatever_the_chunking(
    pieces: list[bytes], cuts: list[int]
) -> None:
    """The events' raw bytes plus the trailing rest are the input, and the events are the
    same whether the stream comes whole or cut at arbitrary points."""
    stream = b"".join(pieces)
    whole, rest = _decode([stream])
    assert b"".join(e.raw for e in whole) + rest == stream
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    chunked, chunked_rest = _decode([stream[a:b] for a, b in itertools.pairwise(bounds)])
    assert (chunked, chunked_rest) == (whole, rest)


_domains = st.lists(
    st.sampled_from(["https://api.example.com", "http://localhost:8000", "*.cdn.example", "'self'",
                     "http://127.0.0.1:8000", "", "data:", "https://a b"]) | st.text(max_size=15),
    max_size=4,
)  # fmt: skip
_csp_objects = st.fixed_dictionaries(
    {},
    optional={
        "connectDomains": _domains | json_values,
        "resourceDomains": _domains,
        "frameDomains": _domains,
        "connect_domains": _domains | json_values,
        "resource_domains": _domains,
    },
)
_metas = st.fixed_dictionaries(
    {},
    optional={
        "ui": st.fixed_dictionaries({}, optional={"csp": _csp_objects | json_values,
                                                  "resourceUri": st.text(max_size=20),
                                                  "domain": st.text(max_size=10)}) | json_values,
        "openai/widgetCSP": _csp_objects | json_values,
        "openai/outputTemplate": st.sampled_from(["ui://widget/a.html", ""]) | json_values,
        "ui/resourceUri": st.text(max_size=20),
    },
) | json_values  # fmt: skip
_items = st.fixed_dictionaries(
    {}, optional={"_meta": _metas, "uri": st.sampled_from(["ui://widget/a.html", "file:///x"]),
                  "name": st.text(max_size=5), "text": st.text(max_size=5)}
) | json_values  # fmt: skip
_results = st.fixed_dictionaries(
    {}, optional={"tools": st.lists(_items, max_size=3), "contents": st.lists(_items, max_size=3),
                  "resources": st.lists(_items, max_size=3), "_meta": _metas,
                  "cacheScope": st.sampled_from(["public", "private"]) | json_values}
)  # fmt: skip
_REWRITERS = [
    CspRewriter(CspConfig(domain="widgets.example.com"), upstream=UPSTREAM, public_url=None),
    CspRewriter(
        CspConfig(
            connect_domains=CspDirective(mode="replace", domains=("https://api.example.com",)),
            widgets=(
                WidgetRule(
                    match="ui://widget/*",
                    connect_domains=("https://w.example.com",),
                    connect_domains_mode="replace",
                    ui_domain="w.example.com",
                ),
            ),
        ),
        upstream=UPSTREAM,
        public_url="https://proxy.example.com/mcp",
    ),
]
_CSP_METHODS = ["tools/list", "tools/call", "resources/read", "resources/list",
                "resources/templates/list", "ping"]  # fmt: skip


@FUZZ
@given(
    st.sampled_from(_REWRITERS),
    st.sampled_from(_CSP_METHODS),
    _results,
    st.sampled_from([None, "claude-ai", "ChatGPT", "vscode", "x"]),
)
def test_csp_rewrite_never_raises_and_returns_json(
    rewriter: CspRewriter, method: str, result: dict[str, Any], client: str | None
) -> None:
    """A rewrite returns None or a new JSON-serialisable result; the input is left alone."""
    before = json.dumps(result, sort_keys=True)
    new = rewriter.rewrite(method, result, client)
    assert json.dumps(result, sort_keys=True) == before
    if new is not None:
        assert isinstance(new, dict)
        json.dumps(new)


_header_names = st.sampled_from(
    [b"host", b"origin", b"connection", b"content-length", b"transfer-encoding", b"accept",
     b"mcp-session-id", b"x-forwarded-for", b"x-forwarded-host", b"te", b"upgrade",
     b"keep-alive", b"content-type", b"authorization"]
) | st.binary(min_size=1, max_size=12)  # fmt: skip
_header_values = st.sampled_from(
    [b"127.0.0.1", b"localhost:3000", b"[::1]", b"evil.example", b"http://127.0.0.1", b"null",
     b"text/event-stream", b"close, x-secret", b"chunked", b"application/json", b""]
) | st.binary(max_size=30)  # fmt: skip
_headers = st.lists(st.tuples(_header_names, _header_values), max_size=8)


def _is_loopback_authority(authority: str) -> bool:
    """An independent reading of `host[:port]`: is the host localhost or a loopback address?"""
    if authority.startswith("["):
        host = authority[1 : authority.find("]")]
    else:
        host = authority.partition(":")[0]
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


@FUZZ
@given(
    st.sampled_from(["127.0.0.1", "0.0.0.0", "::1", "10.1.2.3"]),
    st.lists(st.sampled_from(["*", "example.com", "*.example.com:443", "[::1]"]), max_size=2),
    st.lists(st.sampled_from(["https://chatgpt.com", "*", "http://*"]), max_size=2),
    _headers,
    st.binary(max_size=8) | st.sampled_from([b"GET", b"POST", b"DELETE", b"CONNECT"]),
    st.binary(max_size=40) | st.sampled_from([b"/mcp?x=1", b"http://h/p?q#f", b"*", b"h:1"]),
)
def test_routing_never_raises_and_keeps_its_guarantees(
    bind: str,
    hosts: list[str],
    origins: list[str],
    headers: list[tuple[bytes, bytes]],
    method: bytes,
    target: bytes,
) -> None:
    """Host checks, classification, targets and forwarded headers take any bytes; a loopback
    bind with no allow-list passes only a single loopback Host; forwarded headers carry no
    hop-by-hop field and start with the upstream's Host."""
    verdict = routing.check_host_and_origin(
        headers, bind=bind, allowed_hosts=hosts, allowed_origins=origins
    )
    if verdict is routing.HostCheck.OK and bind == "127.0.0.1" and not hosts:
        [host] = [v for k, v in headers if k.lower() == b"host"]
        assert _is_loopback_authority(host.decode("latin-1").strip(" \t").lower())
    kind = routing.classify_head(method, headers)
    for route in routing.RequestKind:
        out = routing.upstream_target(route, target, UPSTREAM)
        assert isinstance(out, bytes)
    forwarded = routing.forward_request_headers(headers, upstream=UPSTREAM, client_host="1.2.3.4")
    assert forwarded[0] == (b"host", UPSTREAM.host_header)
    assert not {k.lower() for k, _ in forwarded} & routing.HOP_BY_HOP
    assert kind is None or isinstance(kind, routing.RequestKind)


_SETTINGS = [
    Settings.from_config(ProxyConfig(mcp="http://127.0.0.1:8000/mcp")),
    Settings.from_config(
        ProxyConfig(
            mcp="http://127.0.0.1:8000/mcp",
            public_url="https://proxy.example.com/mcp",
            max_response_body_size=300,
            max_request_body_size=2000,
        )
    ),
]
_ctypes = st.sampled_from(
    [b"application/json", b"text/event-stream", b"text/plain", b"application/json; charset=x"]
)


@FUZZ
@given(
    st.sampled_from(_SETTINGS),
    st.sampled_from([b"POST", b"GET", b"DELETE", b"PUT"]),
    st.sampled_from([b"/mcp", b"/", b"/.well-known/oauth-protected-resource", b"/x?y"]),
    _headers,
    bodies(),
    st.integers(100, 599),
    _ctypes,
    st.lists(bodies() | _SSE_PIECES, max_size=6),
)
def test_pipeline_carries_any_exchange_to_one_event_per_request(
    settings_: Settings,
    method: bytes,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    status: int,
    ctype: bytes,
    chunks: list[bytes],
) -> None:
    """Any request and any response go through the exchange machine without an exception,
    and `finish` yields at least one RequestEvent, one per JSON-RPC request of the body."""
    ex = Exchange(settings_, exchange_id="fuzz", ts_ms=0, now=0.0)
    head = [(b"host", b"127.0.0.1:3000"), (b"content-type", b"application/json"), *headers]
    step = ex.receive_request_head(RequestHead(method, target, head, "127.0.0.1"))
    if isinstance(step, ReadBody):
        step = ex.receive_request_body(body)
    if isinstance(step, Forward):
        client_head = ex.receive_response_head(
            ResponseHead(status, [(b"content-type", ctype)]), now=0.1
        )
        for chunk in chunks:
            ex.receive_response_data(chunk)
            if ex.response_too_large:
                ex.upstream_failed(Failure.RESPONSE_TOO_LARGE)
                break
        else:
            held, _ = ex.receive_response_end()
            assert (client_head is None) == (held is not None)
    else:
        assert isinstance(step, Reject)
    events = ex.finish(now=0.2, outcome=Outcome.COMPLETED)
    assert any(isinstance(event, RequestEvent) for event in events)
