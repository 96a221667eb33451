"""A real OTLP/HTTP receiver for tests: 127.0.0.1, port 0, protobuf bodies decoded with
the official `opentelemetry-proto` messages.

    with otlp_receiver() as receiver:
        ... export to receiver.url (a base URL: /v1/traces and /v1/metrics) ...
        receiver.wait_for(lambda: len(receiver.spans()) >= 3)
        [span] = receiver.spans("tools/call echo")

With `hang=True` every export request is held unanswered until the receiver closes, like
a collector that accepts connections and then stops responding.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import HistogramDataPoint
from opentelemetry.proto.trace.v1.trace_pb2 import Span

__all__ = ["OtlpReceiver", "attributes", "otlp_receiver"]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind is not None else None


def attributes(pairs: Iterator[KeyValue] | Any) -> dict[str, Any]:
    """OTLP key-values as a plain dict."""
    return {pair.key: _value(pair.value) for pair in pairs}


@dataclass
class OtlpReceiver:
    """What the receiver got so far (decoded), and the request headers it saw."""

    url: str = ""
    traces: list[ExportTraceServiceRequest] = field(default_factory=list)
    metrics: list[ExportMetricsServiceRequest] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    hung: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)
    release: threading.Event = field(default_factory=threading.Event)

    def spans(self, name: str | None = None) -> list[Span]:
        """Every span received (named `name`, if given), in arrival order."""
        with self.changed:
            found = [
                span
                for request in self.traces
                for resource in request.resource_spans
                for scope in resource.scope_spans
                for span in scope.spans
            ]
        return [s for s in found if name is None or s.name == name]

    def resources(self) -> list[dict[str, Any]]:
        """The resource attributes of every batch of spans received."""
        with self.changed:
            return [
                attributes(resource.resource.attributes)
                for request in self.traces
                for resource in request.resource_spans
            ]

    def histogram_points(self, metric: str) -> list[HistogramDataPoint]:
        """Every data point of the histogram `metric` received, in arrival order."""
        with self.changed:
            return [
                point
                for request in self.metrics
                for resource in request.resource_metrics
                for scope in resource.scope_metrics
                for item in scope.metrics
                if item.name == metric
                for point in item.histogram.data_points
            ]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Block until `predicate` holds after some export arrived; AssertionError at timeout."""
        with self.changed:
            if not self.changed.wait_for(predicate, timeout):
                raise AssertionError("the OTLP receiver did not get what was expected in time")


def _handler(receiver: OtlpReceiver, hang: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if hang:
                with receiver.changed:
                    receiver.hung += 1
                    receiver.changed.notify_all()
                receiver.release.wait()
                return
            if self.path == "/v1/traces":
                request: Any = ExportTraceServiceRequest.FromString(body)
                answer = ExportTraceServiceResponse().SerializeToString()
            elif self.path == "/v1/metrics":
                request = ExportMetricsServiceRequest.FromString(body)
                answer = ExportMetricsServiceResponse().SerializeToString()
            else:
                self.send_error(404)
                return
            with receiver.changed:
                if isinstance(request, ExportTraceServiceRequest):
                    receiver.traces.append(request)
                else:
                    receiver.metrics.append(request)
                receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                receiver.changed.notify_all()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read what was received, not an access log."""

    return Handler


@contextmanager
def otlp_receiver(*, hang: bool = False) -> Iterator[OtlpReceiver]:
    """Run a receiver on a free loopback port for the duration of the block."""
    receiver = OtlpReceiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver, hang))
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="otlp-receiver"
    )
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
        thread.join()
