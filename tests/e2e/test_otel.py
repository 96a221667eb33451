"""The OpenTelemetry sink end to end: real MCP traffic through mcpr into a real OTLP receiver.

* `mcpr proxy run` (a subprocess, on the test's event loop backend) in front of the SDK test
  server, with `[otel]` pointing at the receiver of `tests.integrations.otlp_receiver`:
  span names, attributes, parents from `params._meta` and from headers, histogram points.
* `[otel] propagate`: the upstream (a stub that records headers) sees a `traceparent` that
  names mcpr's exported span.
* A collector that hangs leaves the proxy's latency as it is with a healthy one.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp
import pytest

from mcpr_cli.bus import EventBus
from mcpr_cli.proxy import serve
from mcpr_cli.sinks import build_optional_sinks
from mcpr_core.config import ProxyConfig
from mcpr_integrations.otel.config import OtelConfig
from mcpr_integrations.otel.semconv import DURATION_METRIC
from mcpr_integrations.otel.sink import OtelSink
from tests.cli.stub_upstream import ReceivedRequest, reply_with, stub_upstream
from tests.cli.wire import JSON, Proxy, connect, rpc
from tests.e2e.mcp_app_server import GREETING_URI
from tests.e2e.processes import spawn_mcpr
from tests.integrations.otlp_receiver import OtlpReceiver, attributes, otlp_receiver

STARTUP_TIMEOUT = 20.0
MODERN = "2026-07-28"
META_TRACE = "0af7651916cd43dd8448eb211c80319c"
META_PARENT = "b7ad6b7169203331"
HEADER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
HEADER_PARENT = "00f067aa0ba902b7"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Mcpr:
    """`mcpr proxy run` with an `[otel]` table, as a subprocess."""

    def __init__(self, tmp_path: Path, upstream: str, otel: str, **settings: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        config = tmp_path / f"mcpr-{self.port}.toml"
        lines = [f'mcp = "{upstream}"', f"port = {self.port}", 'admin = "none"']
        lines += ['events_format = "off"', *(f'{k} = "{v}"' for k, v in settings.items())]
        config.write_text("\n".join([*lines, "[otel]", otel]) + "\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MCPR_", "OTEL_"))}
        env |= {"MCPR_DB": "none", "MCPR_HOME": str(tmp_path / "home")}
        # A hung collector makes the exporter give up after 2 s, so shutdown stays short.
        env |= {"OTEL_EXPORTER_OTLP_TIMEOUT": "2", "OTEL_BSP_SCHEDULE_DELAY": "100"}
        self.stderr_path = tmp_path / f"mcpr-{self.port}.stderr"
        self.proc = spawn_mcpr("proxy", "run", str(config), stderr_path=self.stderr_path, env=env)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while "listening on" not in self.stderr():
            assert self.proc.poll() is None, self.stderr()
            assert time.monotonic() < deadline, "mcpr did not start:\n" + self.stderr()
            time.sleep(0.05)

    def stderr(self) -> str:
        """What the proxy wrote to stderr so far."""
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, then the exit status (the sinks are flushed and closed by then)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STARTUP_TIMEOUT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def _modern_call(rid: int, text: str, **meta: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": rid,
        "method": "tools/call",
        "params": {
            "name": "echo",
            "arguments": {"text": text},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientInfo": {"name": "otel-test", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {},
                **meta,
            },
        },
    }


def _modern_headers(**extra: str) -> dict[str, str]:
    return {
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": MODERN,
        "mcp-method": "tools/call",
        "mcp-name": "echo",
        **extra,
    }


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


async def test_real_traffic_becomes_spans_and_points(
    receiver: OtlpReceiver, mcp_server_url: str, tmp_path: Path, anyio_backend_name: str
) -> None:
    """Names, attributes, parents (from `_meta` and headers) and histogram points arrive."""
    mcpr = Mcpr(
        tmp_path,
        mcp_server_url,
        f'endpoint = "{receiver.url}"',
        name="fleet-a",
        backend=anyio_backend_name,
    )
    try:
        assert "  sinks     otel" in mcpr.stderr()
        async with mcp.Client(mcpr.url, mode="legacy") as client:
            for n in range(3):
                await client.call_tool("echo", {"text": f"n{n}"})
            await client.call_tool("fail", {"reason": "boom"})
            await client.read_resource(GREETING_URI)
        async with httpx2.AsyncClient(timeout=STARTUP_TIMEOUT) as http:
            parent = f"00-{META_TRACE}-{META_PARENT}-01"
            body = _modern_call(1, "meta", traceparent=parent, tracestate="v=1")
            (await http.post(mcpr.url, headers=_modern_headers(), json=body)).raise_for_status()
            header = {"traceparent": f"00-{HEADER_TRACE}-{HEADER_PARENT}-01"}
            body = _modern_call(2, "header")
            answer = await http.post(mcpr.url, headers=_modern_headers(**header), json=body)
            answer.raise_for_status()
    finally:
        assert mcpr.stop() == 0
    echo = receiver.spans("tools/call echo")
    assert len(echo) == 5
    legacy = [attributes(s.attributes) for s in echo if s.trace_id.hex() not in (
        META_TRACE, HEADER_TRACE)]  # fmt: skip
    assert len(legacy) == 3
    assert len({a["mcp.session.id"] for a in legacy}) == 1
    assert all(a["mcp.method.name"] == "tools/call" for a in legacy)
    assert all(a["gen_ai.tool.name"] == "echo" for a in legacy)
    assert len({a["jsonrpc.request.id"] for a in legacy}) == 3
    assert all(a["mcp.protocol.version"] for a in legacy)
    [from_meta] = [s for s in echo if s.trace_id.hex() == META_TRACE]
    assert from_meta.parent_span_id.hex() == META_PARENT
    assert from_meta.trace_state == "v=1"
    assert attributes(from_meta.attributes)["mcp.protocol.version"] == MODERN
    [from_header] = [s for s in echo if s.trace_id.hex() == HEADER_TRACE]
    assert from_header.parent_span_id.hex() == HEADER_PARENT
    [fail] = receiver.spans("tools/call fail")
    assert attributes(fail.attributes)["error.type"] == "tool_error"
    [read] = receiver.spans("resources/read")
    assert attributes(read.attributes)["mcp.resource.uri"] == GREETING_URI
    assert receiver.spans("initialize")
    assert {r["service.name"] for r in receiver.resources()} == {"fleet-a"}
    points = receiver.histogram_points(DURATION_METRIC)
    echo_points = [p for p in points if attributes(p.attributes).get("gen_ai.tool.name") == "echo"]
    assert sum(p.count for p in echo_points) == 5
    assert all(0 < p.sum < 60 for p in echo_points)  # seconds, not microseconds


async def test_propagation_names_mcprs_span_toward_the_upstream(receiver: OtlpReceiver) -> None:
    """With `propagate`, the upstream's traceparent is the span mcpr exports, in the client's
    trace when it has one, in a new trace otherwise."""
    sink = OtelSink(OtelConfig(endpoint=receiver.url, propagate=True), proxy_name="p")
    bus = EventBus([sink], linger=0)
    reply = reply_with(200, JSON[:1], [b'{"jsonrpc":"2.0","id":1,"result":{}}'])
    async with stub_upstream(reply) as stub, anyio.create_task_group() as tasks:
        await tasks.start(bus.run)
        config = ProxyConfig(mcp=stub.url, port=0, admin="none", drain_timeout=2.0)
        async with (
            serve(config, emit=bus.emit, trace_ids=sink.trace_ids) as running,
            connect(Proxy(running, [])) as client,
        ):
            traced = (b"traceparent", f"00-{HEADER_TRACE}-{HEADER_PARENT}-01".encode())
            await client.request(b"POST", b"/mcp", (*JSON, traced), rpc("ping", 1))
            await client.request(b"POST", b"/mcp", JSON, rpc("tools/list", 2))
        await bus.aclose()
    sent: list[ReceivedRequest] = stub.requests
    announced = [(r.header(b"traceparent") or b"").decode().split("-") for r in sent]
    by_name = {s.name: s for s in receiver.spans()}
    ping, listing = by_name["ping"], by_name["tools/list"]
    assert announced[0][1:3] == [HEADER_TRACE, ping.span_id.hex()]
    assert ping.parent_span_id.hex() == HEADER_PARENT
    assert announced[1][1:3] == [listing.trace_id.hex(), listing.span_id.hex()]
    assert listing.parent_span_id == b""


def _latencies(url: str, count: int) -> list[float]:
    """Seconds per modern echo call, one after the other on one connection."""
    out: list[float] = []
    with httpx2.Client(timeout=STARTUP_TIMEOUT) as http:
        for n in range(count):
            started = time.perf_counter()
            http.post(url, headers=_modern_headers(), json=_modern_call(n, "x")).raise_for_status()
            out.append(time.perf_counter() - started)
    return out


def test_a_hanging_collector_leaves_latency_unchanged(mcp_server_url: str, tmp_path: Path) -> None:
    """Requests through mcpr take as long with a hung OTLP endpoint as with a healthy one."""
    with otlp_receiver() as healthy, otlp_receiver(hang=True) as hanging:
        timings: dict[str, float] = {}
        for label, target in (("healthy", healthy), ("hanging", hanging)):
            mcpr = Mcpr(tmp_path, mcp_server_url, f'endpoint = "{target.url}"')
            try:
                _latencies(mcpr.url, 20)  # warm up
                if label == "hanging":  # every export is stuck by now
                    hanging.wait_for(lambda: hanging.hung >= 1)
                timings[label] = statistics.median(_latencies(mcpr.url, 150))
            finally:
                started = time.monotonic()
                assert mcpr.stop() == 0
                assert time.monotonic() - started < 15  # the exporter gives up, mcpr exits
        assert healthy.spans("tools/call echo")
        assert not hanging.traces
    # Generous: a stall in the export path would cost seconds per request, not milliseconds.
    assert timings["hanging"] < 2 * timings["healthy"] + 0.005, timings


def test_optional_sinks_wire_propagation_only_when_asked(receiver: OtlpReceiver) -> None:
    """`mcpr proxy run` gets the sink's id source with `propagate = true`, and only then."""
    on = build_optional_sinks(
        proxy_name="p", otel=OtelConfig(endpoint=receiver.url, propagate=True)
    )
    off = build_optional_sinks(proxy_name="p", otel=OtelConfig(endpoint=receiver.url))
    try:
        assert [spec.sink.name for spec in on.specs] == ["otel"]
        assert on.trace_ids is not None
        assert len(on.trace_ids().span_id) == 16
        assert off.trace_ids is None
    finally:
        on.close()
        off.close()
