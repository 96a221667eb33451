"""Tests of W3C trace context parsing, and of trace context through the exchange pipeline."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcpr_core.config import ProxyConfig
from mcpr_core.events import RequestEvent
from mcpr_core.pipeline import Exchange, Forward, Outcome, ReadBody, RequestHead, Settings
from mcpr_core.tracecontext import (
    TRACESTATE_MAX,
    TraceIds,
    TraceParent,
    child_of,
    client_context,
    parse_traceparent,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
HEADER = f"00-{TRACE}-{PARENT}-01"
META_TRACE = "0af7651916cd43dd8448eb211c80319c"
META_HEADER = f"00-{META_TRACE}-b7ad6b7169203331-00"
IDS = TraceIds(trace_id="a" * 32, span_id="b" * 16, sampled=True)


def test_valid_traceparent_is_parsed() -> None:
    """A version-00 header yields its trace id, parent id and flags."""
    parsed = parse_traceparent(HEADER)
    assert parsed == TraceParent(trace_id=TRACE, parent_id=PARENT, flags=1)
    assert parsed.sampled
    assert parsed.header() == HEADER
    assert parse_traceparent(HEADER.encode()) == parsed


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        f"ff-{TRACE}-{PARENT}-01",  # version ff is forbidden
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 has exactly four fields
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE.upper()}-{PARENT}-01",  # upper-case hex
        f"00-{TRACE[:-1]}-{PARENT}-01",  # short trace id
    ],
)
def test_invalid_traceparent_is_absent(value: str | None) -> None:
    """Every header W3C Trace Context calls invalid reads as no trace context."""
    assert parse_traceparent(value) is None


def test_future_version_keeps_the_known_fields() -> None:
    """A higher version may append fields: the first four are read, the rest ignored."""
    parsed = parse_traceparent(f"01-{TRACE}-{PARENT}-03-what-comes-next")
    assert parsed == TraceParent(trace_id=TRACE, parent_id=PARENT, flags=3)
    assert parsed.header() == f"00-{TRACE}-{PARENT}-03"


@given(st.text(max_size=80))
def test_arbitrary_text_never_raises(text: str) -> None:
    """Any text parses to a context or to None, never to an exception."""
    parsed = parse_traceparent(text)
    assert parsed is None or parse_traceparent(parsed.header()) == parsed


def test_meta_wins_over_headers() -> None:
    """A valid `traceparent` in `params._meta` is preferred, with its own tracestate."""
    parent, state = client_context(META_HEADER, "m=1", HEADER.encode(), b"h=1")
    assert parent is not None
    assert parent.trace_id == META_TRACE
    assert state == "m=1"


def test_headers_are_used_when_meta_has_none_or_an_invalid_one() -> None:
    """Without a valid `_meta` traceparent, the HTTP headers give the context."""
    for meta in (None, "nonsense"):
        parent, state = client_context(meta, "m=1", HEADER.encode(), b" h=1 ")
        assert parent is not None
        assert parent.trace_id == TRACE
        assert state == "h=1"


@pytest.mark.parametrize("state", ["", "x" * (TRACESTATE_MAX + 1), "a=\u00e9", "a=1\nb=2"])
def test_unusable_tracestate_is_dropped(state: str) -> None:
    """An empty, oversized or non-ASCII tracestate is left out; the traceparent is kept."""
    parent, kept = client_context(HEADER, state, None, None)
    assert parent is not None
    assert kept is None


def test_tracestate_without_traceparent_is_dropped() -> None:
    """Without a valid traceparent there is no context at all, tracestate included."""
    assert client_context(None, "m=1", b"bad", b"h=1") == (None, None)


def test_child_keeps_the_client_trace_and_flags() -> None:
    """mcpr's span joins the client's trace, keeps its flags and takes the driver's span id."""
    parent = parse_traceparent(f"00-{TRACE}-{PARENT}-00")
    assert child_of(parent, IDS) == TraceParent(trace_id=TRACE, parent_id="b" * 16, flags=0)


def test_child_without_client_trace_starts_one() -> None:
    """Without a client trace, the driver's trace id and sampling decision are used."""
    assert child_of(None, IDS).header() == f"00-{'a' * 32}-{'b' * 16}-01"
    unsampled = TraceIds(trace_id="a" * 32, span_id="b" * 16, sampled=False)
    assert child_of(None, unsampled).flags == 0


# -- through the pipeline ---------------------------------------------------------------------


def _settings(propagate: bool) -> Settings:
    config = ProxyConfig(mcp="http://127.0.0.1:8000/mcp", name="t")
    return Settings.from_config(config, trace_ids=(lambda: IDS) if propagate else None)


def _call(
    settings: Settings, headers: tuple[tuple[bytes, bytes], ...] = (), **meta: str
) -> tuple[Forward, RequestEvent]:
    ex = Exchange(settings, exchange_id="e", ts_ms=1, now=1.0)
    params: dict[str, Any] = {"name": "echo"}
    if meta:
        params["_meta"] = meta
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params})
    base = ((b"host", b"127.0.0.1:3000"), (b"content-type", b"application/json"))
    head = RequestHead(method=b"POST", target=b"/mcp", headers=base + headers)
    assert isinstance(ex.receive_request_head(head), ReadBody)
    forward = ex.receive_request_body(body.encode())
    assert isinstance(forward, Forward)
    (event,) = ex.finish(now=2.0, outcome=Outcome.COMPLETED)
    assert isinstance(event, RequestEvent)
    return forward, event


def _header(forward: Forward, name: bytes) -> list[bytes]:
    return [v for k, v in forward.headers if k == name]


def test_meta_trace_context_is_recorded_and_forwarded_unchanged() -> None:
    """Without propagation the event records `_meta`'s context and the headers pass as sent."""
    sent = ((b"traceparent", HEADER.encode()),)
    forward, event = _call(_settings(False), sent, traceparent=META_HEADER, tracestate="v=1")
    assert _header(forward, b"traceparent") == [HEADER.encode()]
    assert (event.traceparent, event.tracestate) == (META_HEADER, "v=1")
    assert event.trace_id is None
    assert event.span_id is None


def test_header_trace_context_is_recorded() -> None:
    """A traceparent header is recorded when the body's `_meta` has none."""
    sent = ((b"traceparent", HEADER.encode()), (b"tracestate", b"h=2"))
    _, event = _call(_settings(False), sent)
    assert (event.traceparent, event.tracestate) == (HEADER, "h=2")


def test_no_trace_context_records_nothing() -> None:
    """A request without trace context has no trace fields on its event."""
    _, event = _call(_settings(False))
    assert (event.traceparent, event.tracestate, event.trace_id, event.span_id) == (None,) * 4


def test_propagation_points_the_upstream_at_mcprs_span() -> None:
    """With propagation the upstream's traceparent names mcpr's span in the client's trace."""
    sent = ((b"traceparent", HEADER.encode()), (b"tracestate", b"h=2"))
    forward, event = _call(_settings(True), sent, traceparent=META_HEADER, tracestate="m=1")
    expected = f"00-{META_TRACE}-{'b' * 16}-00".encode()
    assert _header(forward, b"traceparent") == [expected]
    assert _header(forward, b"tracestate") == [b"m=1"]
    assert event.traceparent == META_HEADER
    assert (event.trace_id, event.span_id) == (META_TRACE, "b" * 16)


def test_propagation_without_client_trace_starts_one() -> None:
    """With propagation and no client trace, the upstream sees the driver's new trace."""
    forward, event = _call(_settings(True))
    assert _header(forward, b"traceparent") == [f"00-{'a' * 32}-{'b' * 16}-01".encode()]
    assert _header(forward, b"tracestate") == []
    assert event.traceparent is None
    assert (event.trace_id, event.span_id) == ("a" * 32, "b" * 16)
