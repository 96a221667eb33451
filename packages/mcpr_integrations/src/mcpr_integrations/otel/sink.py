"""OtelSink: request events as OpenTelemetry spans and duration points, over OTLP/HTTP.

Each `RequestEvent` becomes one finished span (start `ts`, duration `latency_us`) and,
for JSON-RPC traffic, one point of the `mcp.server.operation.duration` histogram
(`semconv` says which names and attributes). Batching, retries with backoff, timeouts and
the export threads are the official SDK's: a `BatchSpanProcessor` and a
`PeriodicExportingMetricReader`, each over the OTLP/HTTP exporter. Nothing here waits on
the network: `on_batch` only hands finished spans to the processor's bounded queue (the
SDK drops, and counts, what does not fit), so a collector that hangs costs this sink's
queue, never a request. `flush()` leaves exporting to the SDK's own schedule (a forced
export would only hold this sink's lane); `close()` shuts both providers down, which
exports what is left within the exporter's timeout.

The providers are this sink's own, never the process-global ones.

Trace context: the span is the child of the client's `traceparent` (recorded on the event
from `params._meta` or the HTTP headers). When mcpr propagated its own span toward the
upstream (`[otel] propagate`), the event carries the ids it announced, and the span is
created with exactly those, so the upstream's spans nest under it. `trace_ids()` is the
id source the proxy uses for that, with the same sampling rule as the tracer.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from typing import Final

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from mcpr_core.events import ERROR_MSG_MAX, ProxyEvent, RequestEvent
from mcpr_core.tracecontext import TraceIds
from mcpr_integrations import __version__
from mcpr_integrations.otel.config import OtelConfig
from mcpr_integrations.otel.semconv import (
    DURATION_BUCKETS,
    DURATION_METRIC,
    error_type,
    metric_attributes,
    span_attributes,
    span_name,
)

__all__ = ["OtelSink"]

_SCOPE: Final = "mcpr"
_SPAN_ID_BITS: Final = 64
_TRACE_ID_BITS: Final = 128


def _nonzero(bits: int) -> int:
    while True:
        value = random.getrandbits(bits)
        if value:
            return value


class _AnnouncedIds(IdGenerator):
    """Random ids, except for the span whose ids mcpr already announced to the upstream.

    The sink sets the announced ids right before starting that span, from its one worker
    thread; a thread-local keeps any other thread's spans random.
    """

    def __init__(self) -> None:
        self._next = threading.local()

    def announce(self, trace_id: int | None, span_id: int | None) -> None:
        self._next.trace_id = trace_id
        self._next.span_id = span_id

    def generate_span_id(self) -> int:
        span_id: int | None = getattr(self._next, "span_id", None)
        self._next.span_id = None
        return span_id if span_id is not None else _nonzero(_SPAN_ID_BITS)

    def generate_trace_id(self) -> int:
        trace_id: int | None = getattr(self._next, "trace_id", None)
        self._next.trace_id = None
        return trace_id if trace_id is not None else _nonzero(_TRACE_ID_BITS)


class OtelSink:
    """Export request events as spans and `mcp.server.operation.duration` points."""

    def __init__(self, config: OtelConfig, *, proxy_name: str) -> None:
        attributes = {"service.version": __version__, "mcpr.proxy": proxy_name}
        resource = Resource.create(attributes)  # OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME
        unnamed = str(resource.attributes.get("service.name", "")).startswith("unknown_service")
        if config.service_name is not None or unnamed:
            name = config.service_name if config.service_name is not None else proxy_name
            resource = resource.merge(Resource({"service.name": name}))
        headers = dict(config.headers) or None
        base = config.endpoint
        self._ratio = TraceIdRatioBased(config.sample_ratio)
        self._ids = _AnnouncedIds()
        self._tracer_provider = TracerProvider(
            resource=resource, sampler=ParentBased(self._ratio), id_generator=self._ids
        )
        self._tracer_provider.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(
                    endpoint=f"{base}/v1/traces" if base is not None else None, headers=headers
                )
            )
        )
        exporter = OTLPMetricExporter(
            endpoint=f"{base}/v1/metrics" if base is not None else None, headers=headers
        )
        self._meter_provider = MeterProvider(
            resource=resource, metric_readers=[PeriodicExportingMetricReader(exporter)]
        )
        self._tracer = self._tracer_provider.get_tracer(_SCOPE, __version__)
        self._duration = self._meter_provider.get_meter(_SCOPE, __version__).create_histogram(
            DURATION_METRIC,
            unit="s",
            description="Duration of MCP requests and notifications as mcpr carried them.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._propagator = TraceContextTextMapPropagator()
        self._closed = False

    @property
    def name(self) -> str:
        """The sink's label in logs and metrics."""
        return "otel"

    def __repr__(self) -> str:
        return f"<OtelSink {self._tracer_provider.resource.attributes.get('service.name')}>"

    def trace_ids(self) -> TraceIds:
        """Fresh ids for a span mcpr announces upstream, sampled by the tracer's own rule."""
        trace_id = _nonzero(_TRACE_ID_BITS)
        result = self._ratio.should_sample(None, trace_id, "")
        return TraceIds(
            trace_id=f"{trace_id:032x}",
            span_id=f"{_nonzero(_SPAN_ID_BITS):016x}",
            sampled=result.decision is Decision.RECORD_AND_SAMPLE,
        )

    def on_event(self, event: ProxyEvent) -> None:
        """Record a request event; other events are not exported."""
        if isinstance(event, RequestEvent):
            self._record(event)

    def on_batch(self, events: Sequence[ProxyEvent]) -> None:
        """Record several events, in order."""
        for event in events:
            self.on_event(event)

    def flush(self) -> None:
        """Nothing to do: the SDK exports on its own schedule (see the module docstring)."""

    def close(self) -> None:
        """Shut both providers down: what they still hold is exported, within the timeout."""
        if self._closed:
            return
        self._closed = True
        self._tracer_provider.shutdown()
        self._meter_provider.shutdown()

    def _parent(self, event: RequestEvent) -> Context | None:
        if event.traceparent is None:
            return None
        carrier = {"traceparent": event.traceparent}
        if event.tracestate is not None:
            carrier["tracestate"] = event.tracestate
        return self._propagator.extract(carrier)

    def _record(self, event: RequestEvent) -> None:
        start_ns = event.ts * 1_000_000
        self._ids.announce(
            int(event.trace_id, 16) if event.trace_id is not None else None,
            int(event.span_id, 16) if event.span_id is not None else None,
        )
        try:
            span = self._tracer.start_span(
                span_name(event),
                context=self._parent(event),
                kind=SpanKind.SERVER,
                attributes=span_attributes(event),
                start_time=start_ns,
            )
        finally:
            self._ids.announce(None, None)
        error = error_type(event)
        if error is not None:
            message = event.error_msg if event.error_msg is not None else error
            span.set_status(Status(StatusCode.ERROR, message[:ERROR_MSG_MAX]))
        span.end(end_time=start_ns + event.latency_us * 1_000)
        if event.mcp_method is not None:
            self._duration.record(event.latency_us / 1_000_000, metric_attributes(event))
