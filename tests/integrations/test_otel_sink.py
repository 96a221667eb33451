"""OtelSink against a real OTLP/HTTP receiver: spans, parents, announced ids, the histogram."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from mcpr_core.events import RequestEvent, SessionEnd
from mcpr_integrations.otel.config import OtelConfig
from mcpr_integrations.otel.semconv import DURATION_BUCKETS, DURATION_METRIC
from mcpr_integrations.otel.sink import OtelSink
from tests.integrations.otlp_receiver import OtlpReceiver, attributes, otlp_receiver

TS = 1_750_000_000_000
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


def event(**fields: Any) -> RequestEvent:
    base: dict[str, Any] = {
        "id": "e1",
        "ts": TS,
        "proxy": "weather",
        "method": "POST",
        "path": "/mcp",
        "status": 200,
        "latency_us": 12_500,
        "request_size": 80,
        "note": "ok",
    }
    return RequestEvent(**(base | fields))


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


def export(receiver: OtlpReceiver, *events: RequestEvent, **config: Any) -> None:
    """Feed `events` to a sink exporting to `receiver`, then close it (which exports)."""
    sink = OtelSink(OtelConfig(endpoint=receiver.url, **config), proxy_name="weather")
    sink.on_batch(events)
    sink.close()


def test_tool_call_span_has_the_mcp_name_and_attributes(receiver: OtlpReceiver) -> None:
    """A tools/call becomes a server span `tools/call NAME` with the MCP attributes."""
    export(
        receiver,
        event(
            mcp_method="tools/call",
            tool="get_weather",
            session_id="s-1",
            protocol_version="2025-06-18",
            jsonrpc_id=7,
            client_name="claude-ai",
        ),
    )
    [span] = receiver.spans()
    assert span.name == "tools/call get_weather"
    assert span.kind == Span.SPAN_KIND_SERVER
    assert span.start_time_unix_nano == TS * 1_000_000
    assert span.end_time_unix_nano - span.start_time_unix_nano == 12_500_000
    assert attributes(span.attributes) == {
        "mcp.method.name": "tools/call",
        "mcp.session.id": "s-1",
        "mcp.protocol.version": "2025-06-18",
        "gen_ai.tool.name": "get_weather",
        "gen_ai.operation.name": "execute_tool",
        "jsonrpc.request.id": "7",
        "http.request.method": "POST",
        "http.response.status_code": 200,
        "url.path": "/mcp",
        "mcpr.proxy": "weather",
        "mcpr.note": "ok",
        "mcpr.client.name": "claude-ai",
    }
    assert span.status.code == Status.STATUS_CODE_UNSET
    [resource] = receiver.resources()
    assert resource["service.name"] == "weather"
    assert resource["service.instance.id"]


def test_errors_set_error_type_and_status(receiver: OtlpReceiver) -> None:
    """JSON-RPC errors, tool errors and proxy failures each get `error.type` and ERROR."""
    export(
        receiver,
        event(mcp_method="tools/call", tool="a", error_code=-32602, error_msg="Invalid params"),
        event(mcp_method="tools/call", tool="b", error_msg="city not found"),
        event(mcp_method="tools/call", tool="c", status=504, error_code=504, note="timeout"),
    )
    found = {s.name: (attributes(s.attributes), s.status) for s in receiver.spans()}
    attrs, status = found["tools/call a"]
    assert (attrs["error.type"], attrs["rpc.response.status_code"]) == ("-32602", "-32602")
    assert (status.code, status.message) == (Status.STATUS_CODE_ERROR, "Invalid params")
    attrs, status = found["tools/call b"]
    assert attrs["error.type"] == "tool_error"
    assert "rpc.response.status_code" not in attrs
    assert status.code == Status.STATUS_CODE_ERROR
    attrs, _ = found["tools/call c"]
    assert attrs["error.type"] == "504"
    assert "rpc.response.status_code" not in attrs


def test_span_names_without_a_tool(receiver: OtlpReceiver) -> None:
    """Prompts are named by prompt, resources and notifications by method, others by verb."""
    export(
        receiver,
        event(mcp_method="prompts/get", prompt_name="summary"),
        event(mcp_method="resources/read", resource_uri="ui://widget/map.html"),
        event(mcp_method="notifications/initialized", status=202),
        event(method="GET", status=200),
    )
    names = [s.name for s in receiver.spans()]
    assert names == ["prompts/get summary", "resources/read", "notifications/initialized", "GET"]
    read = receiver.spans("resources/read")[0]
    assert attributes(read.attributes)["mcp.resource.uri"] == "ui://widget/map.html"


def test_client_traceparent_parents_the_span(receiver: OtlpReceiver) -> None:
    """A recorded client traceparent makes mcpr's span its child, with its tracestate."""
    parent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    export(receiver, event(mcp_method="ping", traceparent=parent, tracestate="vendor=1"))
    [span] = receiver.spans()
    assert span.trace_id.hex() == CLIENT_TRACE
    assert span.parent_span_id.hex() == CLIENT_SPAN
    assert span.trace_state == "vendor=1"


def test_announced_ids_are_the_span_ids(receiver: OtlpReceiver) -> None:
    """Ids announced to the upstream are exactly the span's, in or outside a client trace."""
    parent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    export(
        receiver,
        event(mcp_method="ping", traceparent=parent, trace_id=CLIENT_TRACE, span_id="1" * 16),
        event(id="e2", mcp_method="tools/list", trace_id="2" * 32, span_id="3" * 16),
        event(id="e3", mcp_method="tools/list"),
    )
    child, root, other = receiver.spans()
    assert (child.trace_id.hex(), child.span_id.hex()) == (CLIENT_TRACE, "1" * 16)
    assert child.parent_span_id.hex() == CLIENT_SPAN
    assert (root.trace_id.hex(), root.span_id.hex(), root.parent_span_id) == (
        "2" * 32,
        "3" * 16,
        b"",
    )
    assert other.span_id.hex() not in ("1" * 16, "3" * 16)


def test_duration_histogram_in_seconds(receiver: OtlpReceiver) -> None:
    """Each MCP event is one point of mcp.server.operation.duration, in seconds."""
    export(
        receiver,
        event(mcp_method="tools/call", tool="a", latency_us=20_000, session_id="s1"),
        event(mcp_method="tools/call", tool="a", latency_us=40_000, session_id="s2"),
        event(mcp_method="tools/list", latency_us=1_000),
        event(method="GET"),  # not JSON-RPC: a span, but no point
    )
    points = receiver.histogram_points(DURATION_METRIC)
    by_method = {attributes(p.attributes)["mcp.method.name"]: p for p in points}
    assert set(by_method) == {"tools/call", "tools/list"}
    call = by_method["tools/call"]
    assert attributes(call.attributes) == {
        "mcp.method.name": "tools/call",
        "gen_ai.tool.name": "a",
        "gen_ai.operation.name": "execute_tool",
    }
    assert call.count == 2
    assert call.sum == pytest.approx(0.06)
    assert list(call.explicit_bounds) == list(DURATION_BUCKETS)
    metric = next(
        m
        for request in receiver.metrics
        for resource in request.resource_metrics
        for scope in resource.scope_metrics
        for m in scope.metrics
        if m.name == DURATION_METRIC
    )
    assert metric.unit == "s"


def test_other_events_are_not_exported(receiver: OtlpReceiver) -> None:
    """Session and other non-request events make no span."""
    sink = OtelSink(OtelConfig(endpoint=receiver.url), proxy_name="weather")
    sink.on_event(SessionEnd(session_id="s", ts=TS, proxy="weather", reason="deleted"))
    sink.on_event(event(mcp_method="ping"))
    sink.close()
    assert [s.name for s in receiver.spans()] == ["ping"]


def test_service_name_and_headers_from_config(receiver: OtlpReceiver) -> None:
    """`service_name` names the resource; `headers` go with every export."""
    export(
        receiver,
        event(mcp_method="ping"),
        service_name="fleet-a",
        headers=(("authorization", "Bearer t0k"),),
    )
    assert receiver.resources()[0]["service.name"] == "fleet-a"
    assert all(h.get("authorization") == "Bearer t0k" for h in receiver.headers)


def test_standard_environment_variables_apply(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without [otel] keys, OTEL_EXPORTER_OTLP_ENDPOINT, _HEADERS and OTEL_SERVICE_NAME work."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-team=mcp")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    sink = OtelSink(OtelConfig(), proxy_name="weather")
    sink.on_event(event(mcp_method="ping"))
    sink.close()
    assert [s.name for s in receiver.spans()] == ["ping"]
    assert receiver.resources()[0]["service.name"] == "from-env"
    assert receiver.headers[0]["x-team"] == "mcp"


def test_sample_ratio_applies_to_new_traces_only(receiver: OtlpReceiver) -> None:
    """With ratio 0 new traces are dropped, while a sampled client trace is still kept."""
    parent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    export(
        receiver,
        event(mcp_method="tools/list"),
        event(mcp_method="ping", traceparent=parent),
        sample_ratio=0.0,
    )
    assert [s.name for s in receiver.spans()] == ["ping"]


def test_trace_ids_follow_the_sample_ratio() -> None:
    """Ids for propagation are well-formed and sampled by the same ratio as the tracer."""
    never = OtelSink(OtelConfig(endpoint="http://127.0.0.1:9", sample_ratio=0.0), proxy_name="p")
    always = OtelSink(OtelConfig(endpoint="http://127.0.0.1:9"), proxy_name="p")
    try:
        ids = always.trace_ids()
        assert len(ids.trace_id) == 32
        assert len(ids.span_id) == 16
        assert ids.sampled
        assert not never.trace_ids().sampled
    finally:
        never.close()
        always.close()


def test_hanging_collector_never_blocks_the_sink(monkeypatch: pytest.MonkeyPatch) -> None:
    """While the collector hangs, taking events stays immediate; close gives up in time."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "10")  # export as soon as possible
    with otlp_receiver(hang=True) as hanging:
        sink = OtelSink(OtelConfig(endpoint=hanging.url), proxy_name="weather")
        sink.on_event(event(mcp_method="ping"))
        hanging.wait_for(lambda: hanging.hung >= 1)
        started = time.monotonic()
        sink.on_batch([event(id=f"e{i}", mcp_method="ping") for i in range(500)])
        assert time.monotonic() - started < 1.0
        sink.close()
        assert time.monotonic() - started < 8.0
