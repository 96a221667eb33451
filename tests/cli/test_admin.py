"""Tests of the admin listener and the metrics registry, over real loopback sockets.

`/metrics` is read by `parse_exposition`, a strict parser of the Prometheus text format 0.0.4
written here: every sample must belong to the family whose `# TYPE` line precedes it, names
and label values must be well formed (escapes included), counters must not be negative, and
histograms must have cumulative `le` buckets ending in `+Inf`, with `_sum` and `_count`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import version as dist_version
from typing import Any

import anyio
import h11
import pytest

from mcpr_cli.admin import DISTRIBUTIONS, AdminServer, Health, serve_admin
from mcpr_cli.bus import EventBus
from mcpr_cli.metrics import CONTENT_TYPE, DURATION_BUCKETS, Metrics
from mcpr_cli.probe import UpstreamProbe
from mcpr_core.config import ProxyConfig
from mcpr_core.events import Heartbeat, ProxyEvent, RequestEvent
from tests.cli.stub_upstream import ReceivedRequest, Responder, reply_with, stub_upstream
from tests.cli.wire import JSON, READ_TIMEOUT, SSE_ACCEPT, connect, rpc, wait_until
from tests.cli.wire import Proxy as WireProxy

# --- a strict parser of the text exposition format 0.0.4 -------------------------------------

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_VALUE = re.compile(r"[+-]?(?:Inf|NaN|[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+)")
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


@dataclass
class Sample:
    """One sample line."""

    name: str
    labels: dict[str, str]
    value: float


@dataclass
class Family:
    """One metric family: its TYPE, HELP and samples."""

    name: str
    type: str
    help: str | None = None
    samples: list[Sample] = field(default_factory=list)

    def value(self, **labels: str) -> float:
        """The value of the one sample with exactly these labels (no suffix)."""
        [match] = [s for s in self.samples if s.labels == labels and s.name == self.name]
        return match.value


def _parse_labels(text: str, line: str) -> tuple[dict[str, str], str]:
    """Parse `{a="x",b="y"}` at the start of `text`; return the labels and the rest."""
    assert text.startswith("{"), line
    labels: dict[str, str] = {}
    pos = 1
    while text[pos] != "}":
        name = _LABEL_NAME.match(text, pos)
        assert name is not None, f"bad label name in {line!r}"
        assert name.group() not in labels, f"duplicate label in {line!r}"
        pos = name.end()
        assert text[pos : pos + 2] == '="', f'expected =" in {line!r}'
        pos += 2
        value: list[str] = []
        while text[pos] != '"':
            char = text[pos]
            assert char != "\n", line
            if char == "\\":
                escaped = text[pos + 1]
                assert escaped in '\\"n', f"bad escape \\{escaped} in {line!r}"
                value.append("\n" if escaped == "n" else escaped)
                pos += 2
            else:
                value.append(char)
                pos += 1
        labels[name.group()] = "".join(value)
        pos += 1
        if text[pos] == ",":
            pos += 1
        else:
            assert text[pos] == "}", f"expected , or }} in {line!r}"
    return labels, text[pos + 1 :]


def _family_of(name: str, families: dict[str, Family]) -> Family | None:
    if name in families and families[name].type in ("counter", "gauge", "untyped"):
        return families[name]
    for suffix in ("_bucket", "_sum", "_count"):
        base = name.removesuffix(suffix)
        if base != name and base in families and families[base].type == "histogram":
            return families[base]
    return None


def parse_exposition(text: str) -> dict[str, Family]:
    """Parse and check a whole exposition; fail the test on any deviation."""
    assert text.endswith("\n"), "the exposition ends with a line feed"
    families: dict[str, Family] = {}
    helps: dict[str, str] = {}
    current: Family | None = None
    for line in text[:-1].split("\n"):
        assert line, "no blank lines"
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert _NAME.fullmatch(name), line
            assert name not in helps, f"second HELP for {name}"
            assert "\\" not in help_text.replace("\\\\", "").replace("\\n", ""), line
            helps[name] = help_text
        elif line.startswith("# TYPE "):
            name, kind = line[7:].split(" ")
            assert _NAME.fullmatch(name), line
            assert kind in _TYPES, line
            assert name not in families, f"second TYPE for {name}"
            current = families[name] = Family(name, kind, helps.get(name))
        elif line.startswith("#"):
            continue
        else:
            match = _NAME.match(line)
            assert match is not None, f"bad sample line {line!r}"
            name, rest = match.group(), line[match.end() :]
            labels: dict[str, str] = {}
            if rest.startswith("{"):
                labels, rest = _parse_labels(rest, line)
            assert rest.startswith(" "), line
            value_text = rest[1:].split(" ")[0]
            assert _VALUE.fullmatch(value_text), f"bad value in {line!r}"
            family = _family_of(name, families)
            assert family is not None, f"{name} has no TYPE"
            assert family is current, f"{name} is not next to its TYPE line"
            family.samples.append(Sample(name, labels, float(value_text)))
    for family in families.values():
        assert family.help is not None, f"{family.name} has no HELP"
        if family.type == "counter":
            assert all(s.value >= 0 for s in family.samples), family.name
            assert family.name.endswith("_total"), family.name
        if family.type == "histogram":
            _check_histogram(family)
    return families


def _check_histogram(family: Family) -> None:
    series: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for sample in family.samples:
        key = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
        entry = series.setdefault(key, {"buckets": [], "sum": None, "count": None})
        if sample.name.endswith("_bucket"):
            entry["buckets"].append((float(sample.labels["le"]), sample.value))
        elif sample.name.endswith("_sum"):
            entry["sum"] = sample.value
        else:
            entry["count"] = sample.value
    for key, entry in series.items():
        buckets = entry["buckets"]
        assert buckets, f"{family.name}{key} has no buckets"
        bounds = [b for b, _ in buckets]
        assert bounds == sorted(bounds), bounds
        assert len(set(bounds)) == len(bounds), bounds
        assert bounds[-1] == math.inf, "the last bucket is +Inf"
        counts = [c for _, c in buckets]
        assert counts == sorted(counts), f"{family.name}{key}: buckets are not cumulative"
        assert entry["sum"] is not None, f"{family.name}{key} has no _sum"
        assert entry["count"] == counts[-1], f"{family.name}{key}: _count != +Inf bucket"


def bucket(family: Family, le: str, **labels: str) -> float:
    """The cumulative count of one bucket."""
    [match] = [
        s for s in family.samples if s.name.endswith("_bucket") and s.labels == {**labels, "le": le}
    ]
    return match.value


# --- helpers ---------------------------------------------------------------------------------


@dataclass
class Reply:
    """An admin response."""

    status: int
    headers: dict[bytes, bytes]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


async def fetch(
    server: AdminServer, path: str, method: bytes = b"GET", raw: bytes | None = None
) -> Reply:
    """Send one request (or raw bytes) to the admin server and read the answer to EOF."""
    stream = await anyio.connect_tcp("127.0.0.1", server.port)
    async with stream:
        conn = h11.Connection(h11.CLIENT)
        if raw is None:
            request = h11.Request(method=method, target=path, headers=[(b"host", b"admin")])
            raw = conn.send(request) + conn.send(h11.EndOfMessage())
        await stream.send(raw)
        data = b""
        with anyio.fail_after(READ_TIMEOUT):
            while True:
                try:
                    data += await stream.receive()
                except anyio.EndOfStream:
                    break
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method=method, target=path, headers=[(b"host", b"admin")]))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    client.receive_data(b"")
    head = client.next_event()
    assert isinstance(head, h11.Response), head
    body = b""
    while isinstance(event := client.next_event(), h11.Data):
        body += event.data
    assert isinstance(event, h11.EndOfMessage), event
    return Reply(head.status_code, {bytes(k): bytes(v) for k, v in head.headers}, body)


async def scrape(server: AdminServer) -> dict[str, Family]:
    """GET /metrics and parse it strictly."""
    reply = await fetch(server, "/metrics")
    assert reply.status == 200
    assert reply.headers[b"content-type"] == CONTENT_TYPE.encode()
    return parse_exposition(reply.body.decode())


@asynccontextmanager
async def admin(
    metrics: Metrics | None = None, health: Health | None = None
) -> AsyncIterator[AdminServer]:
    """An admin server on a free loopback port."""
    async with serve_admin(
        "127.0.0.1", 0, metrics=metrics or Metrics(), health=health or Health()
    ) as server:
        yield server


@asynccontextmanager
async def proxy_with_metrics(upstream: str) -> AsyncIterator[tuple[WireProxy, Metrics]]:
    """mcpr in front of `upstream`, its events counted by a `Metrics` it is watched by."""
    from mcpr_cli.proxy import serve

    metrics = Metrics()
    events: list[ProxyEvent] = []
    config = ProxyConfig(mcp=upstream, port=0, admin="none", drain_timeout=2.0)
    async with serve(config, emit=metrics.observe_then(events.append)) as running:
        metrics.watch_proxy(running.statistics)
        metrics.watch_sessions(running.sessions.__len__)
        yield WireProxy(running, events), metrics


class ListSink:
    """A sink that keeps what it gets."""

    def __init__(self, name: str = "list") -> None:
        self._name = name
        self.events: list[ProxyEvent] = []

    @property
    def name(self) -> str:
        """The sink's name, as the metrics label it."""
        return self._name

    def on_event(self, event: ProxyEvent) -> None:
        """Keep one event."""
        self.events.append(event)

    def on_batch(self, events: Sequence[ProxyEvent]) -> None:
        """Keep several events."""
        self.events.extend(events)

    def flush(self) -> None:
        """Nothing to flush."""

    def close(self) -> None:
        """Nothing to close."""


def request_event(mcp_method: str | None, status: int = 200, **fields: Any) -> RequestEvent:
    """A request event with the fields the metrics read."""
    base: dict[str, Any] = {
        "id": "e1",
        "ts": 0,
        "proxy": "test",
        "method": "POST",
        "path": "/mcp",
        "status": status,
        "latency_us": 1500,
        "request_size": 10,
        "note": "ok",
        "mcp_method": mcp_method,
    }
    return RequestEvent(**{**base, **fields})


_JSON_REPLY = reply_with(
    200, [(b"content-type", b"application/json")], [b'{"jsonrpc":"2.0","id":1,"result":{}}']
)


# --- /metrics --------------------------------------------------------------------------------


async def test_metrics_count_proxied_requests_by_method_and_status() -> None:
    """Proxied requests are counted by MCP method (or HTTP verb) and status class, validly."""

    async def handler(request: ReceivedRequest, respond: Responder) -> None:
        if request.method == b"GET":
            await respond.reply(404, [(b"content-type", b"text/plain")], [b"nope"])
        else:
            await _JSON_REPLY(request, respond)

    async with stub_upstream(handler) as stub, proxy_with_metrics(stub.url) as (proxy, metrics):
        async with connect(proxy) as client:
            for n in range(3):
                await client.request(b"POST", b"/mcp", JSON, rpc("tools/call", n, name="echo"))
            await client.request(b"POST", b"/mcp", JSON, rpc("ping", 9))
            await client.request(b"GET", b"/favicon.ico")
        async with admin(metrics) as server:
            families = await scrape(server)
    requests = families["mcpr_requests_total"]
    assert requests.type == "counter"
    assert requests.value(method="tools/call", status_class="2xx") == 3
    assert requests.value(method="ping", status_class="2xx") == 1
    assert requests.value(method="GET", status_class="4xx") == 1
    durations = families["mcpr_request_duration_seconds"]
    assert durations.type == "histogram"
    assert bucket(durations, "+Inf", method="tools/call") == 3
    upstream = families["mcpr_upstream_duration_seconds"]
    assert bucket(upstream, "+Inf", method="ping") == 1
    assert families["mcpr_requests_in_flight"].value() == 0
    assert families["mcpr_sessions_active"].value() == 0


async def test_every_documented_family_is_declared() -> None:
    """An idle registry still declares every family with HELP and TYPE."""
    async with admin() as server:
        families = await scrape(server)
    assert {name: f.type for name, f in families.items()} == {
        "mcpr_requests_total": "counter",
        "mcpr_request_duration_seconds": "histogram",
        "mcpr_upstream_duration_seconds": "histogram",
        "mcpr_tool_calls_total": "counter",
        "mcpr_tool_call_duration_seconds": "histogram",
        "mcpr_header_mismatches_total": "counter",
        "mcpr_list_changed_total": "counter",
        "mcpr_requests_in_flight": "gauge",
        "mcpr_connections_open": "gauge",
        "mcpr_subscriptions_open": "gauge",
        "mcpr_sessions_active": "gauge",
        "mcpr_events_emitted_total": "counter",
        "mcpr_events_dropped_total": "counter",
        "mcpr_events_failed_total": "counter",
        "mcpr_sink_errors_total": "counter",
        "mcpr_sink_disabled": "gauge",
        "mcpr_upstream_up": "gauge",
        "mcpr_upstream_status": "gauge",
    }
    assert families["mcpr_upstream_up"].samples == []


def test_histogram_buckets_are_inclusive_and_cumulative() -> None:
    """An observation equal to a bound lands in that bound's bucket; buckets accumulate."""
    metrics = Metrics()
    for latency_us in (1000, 1001, 60_000_000, 90_000_000):
        metrics.observe(request_event("tools/call", latency_us=latency_us))
    family = parse_exposition(metrics.render())["mcpr_request_duration_seconds"]
    assert bucket(family, "0.001", method="tools/call") == 1
    assert bucket(family, "0.0025", method="tools/call") == 2
    assert bucket(family, "60.0", method="tools/call") == 3
    assert bucket(family, "+Inf", method="tools/call") == 4
    [total] = [s.value for s in family.samples if s.name.endswith("_sum")]
    assert total == pytest.approx(150.002001)
    les = [s.labels["le"] for s in family.samples if s.name.endswith("_bucket")]
    assert les == [*(repr(b) for b in DURATION_BUCKETS), "+Inf"]


def test_method_label_is_bounded() -> None:
    """Unknown JSON-RPC methods and unusual HTTP verbs share the label "other"."""
    metrics = Metrics()
    for n in range(50):
        metrics.observe(request_event(f"x-vendor/method{n}"))
    metrics.observe(request_event(None, method="PROPFIND"))
    metrics.observe(request_event(None, method="DELETE", status=202))
    metrics.observe(request_event("notifications/initialized", status=202))
    requests = parse_exposition(metrics.render())["mcpr_requests_total"]
    assert requests.value(method="other", status_class="2xx") == 51
    assert requests.value(method="DELETE", status_class="2xx") == 1
    assert requests.value(method="notifications/initialized", status_class="2xx") == 1
    assert len(requests.samples) == 3


def test_other_events_are_passed_on_but_not_counted() -> None:
    """`observe_then` hands every event on, and counts only request events."""
    metrics = Metrics()
    seen: list[ProxyEvent] = []
    emit = metrics.observe_then(seen.append)
    beat = Heartbeat(ts=0, proxy="p", upstream_status="connected", uptime_s=1, requests_total=0,
                     events_dropped=0)  # fmt: skip
    event = request_event("ping", upstream_us=None)
    emit(beat)
    emit(event)
    assert seen == [beat, event]
    families = parse_exposition(metrics.render())
    assert families["mcpr_requests_total"].value(method="ping", status_class="2xx") == 1
    assert families["mcpr_upstream_duration_seconds"].samples == []


async def test_sink_counters_come_from_the_bus_and_labels_are_escaped() -> None:
    """Per-sink emitted/dropped counts are read from the bus; odd sink names are escaped."""
    name = 'we"ird\\sink\nname'
    bus = EventBus([ListSink(name), ListSink()], capacity=2)
    metrics = Metrics()
    metrics.watch_bus(bus.statistics)
    for _ in range(3):
        bus.emit(request_event("ping"))
    try:
        text = metrics.render()
        assert 'sink="we\\"ird\\\\sink\\nname"' in text
        families = parse_exposition(text)
    finally:
        await bus.aclose()
    emitted = families["mcpr_events_emitted_total"]
    assert emitted.value(sink=name) == 2
    assert families["mcpr_events_dropped_total"].value(sink=name) == 1
    assert families["mcpr_events_failed_total"].value(sink="list") == 0
    assert families["mcpr_sink_errors_total"].value(sink="list") == 0
    assert families["mcpr_sink_disabled"].value(sink="list") == 0


@pytest.mark.parametrize(
    ("status", "up"),
    [("connected", 1), ("auth_required", 1), ("not_mcp", 0), ("disconnected", 0)],
)
def test_upstream_gauges_follow_the_probe(status: str, up: int) -> None:
    """`mcpr_upstream_up` is 1 for an MCP server (token or not); the state set marks the status."""
    metrics = Metrics()
    metrics.watch_upstream(lambda: status)
    families = parse_exposition(metrics.render())
    assert families["mcpr_upstream_up"].value() == up
    states = {s.labels["status"]: s.value for s in families["mcpr_upstream_status"].samples}
    assert states == {s: float(s == status) for s in states}
    assert len(states) == 4


def test_sessions_gauge_reads_its_source() -> None:
    """`mcpr_sessions_active` is whatever the plugged-in session count says (0 unplugged)."""
    metrics = Metrics()
    assert parse_exposition(metrics.render())["mcpr_sessions_active"].value() == 0
    metrics.watch_sessions(lambda: 7)
    assert parse_exposition(metrics.render())["mcpr_sessions_active"].value() == 7


async def test_open_listen_streams_are_a_gauge() -> None:
    """An open `subscriptions/listen` stream counts in `mcpr_subscriptions_open` until it ends."""
    release = anyio.Event()

    async def handler(request: ReceivedRequest, respond: Responder) -> None:
        await respond.head(200, [(b"content-type", b"text/event-stream")])
        await respond.send(b": keep-alive\n\n")
        await release.wait()
        await respond.end()

    listen = rpc("subscriptions/listen", 1, notifications={"tools/list_changed": True})
    async with (
        stub_upstream(handler) as stub,
        proxy_with_metrics(stub.url) as (proxy, metrics),
        admin(metrics) as server,
        connect(proxy) as client,
    ):
        await client.send_request(b"POST", b"/mcp", (*JSON, *SSE_ACCEPT), listen)
        await client.read_head()
        assert await client.read_chunk() == b": keep-alive\n\n"
        families = await scrape(server)
        assert families["mcpr_subscriptions_open"].value() == 1
        assert families["mcpr_requests_in_flight"].value() == 1
        assert families["mcpr_connections_open"].value() == 1
        release.set()
        assert await client.read_chunk() is None
        await proxy.wait_exchanges(1)
        families = await scrape(server)
    assert families["mcpr_subscriptions_open"].value() == 0
    assert families["mcpr_requests_in_flight"].value() == 0


# --- /healthz, /ready, /version, errors --------------------------------------------------------


async def test_healthz_is_ok_until_the_drain_begins() -> None:
    """`/healthz` answers 200 `ok`, then 503 `draining` once the drain began."""
    health = Health()
    async with admin(health=health) as server:
        ok = await fetch(server, "/healthz")
        health.begin_drain()
        draining = await fetch(server, "/healthz")
    assert (ok.status, ok.body) == (200, b"ok\n")
    assert (draining.status, draining.body) == (503, b"draining\n")
    assert ok.headers[b"connection"] == b"close"
    assert ok.headers[b"content-type"].startswith(b"text/plain")


async def test_ready_follows_the_probe_and_the_drain() -> None:
    """`/ready` is 503 before a probe, 200 once the upstream answered, 503 again while draining."""
    async with stub_upstream(_JSON_REPLY) as stub:
        config = ProxyConfig(mcp=stub.url, admin="none")
        probe = UpstreamProbe(config, emit=lambda event: None)
        health = Health(probe)
        async with admin(health=health) as server:
            before = await fetch(server, "/ready")
            await probe.probe()
            ready = await fetch(server, "/ready")
            health.begin_drain()
            draining = await fetch(server, "/ready")
    assert before.status == 503
    assert before.json() == {"ready": False, "reason": "the upstream has not been probed yet"}
    assert ready.status == 200
    assert ready.headers[b"content-type"] == b"application/json"
    assert ready.json()["ready"] is True
    assert ready.json()["upstream"]["status"] == "connected"
    assert (draining.status, draining.json()) == (503, {"ready": False, "reason": "draining"})


async def test_ready_names_a_failed_probe(free_tcp_port_factory: Callable[[], int]) -> None:
    """With nothing listening upstream, `/ready` is 503 and its reason says the upstream is down."""
    config = ProxyConfig(mcp=f"http://127.0.0.1:{free_tcp_port_factory()}/mcp", admin="none")
    probe = UpstreamProbe(config, emit=lambda event: None)
    await probe.probe()
    async with admin(health=Health(probe)) as server:
        reply = await fetch(server, "/ready")
    assert reply.status == 503
    body = reply.json()
    assert body["ready"] is False
    assert body["reason"].startswith("upstream disconnected: cannot reach http://127.0.0.1:")
    assert body["upstream"]["status"] == "disconnected"


async def test_ready_without_a_probe_depends_on_draining_only() -> None:
    """Without a probe `/ready` is 200 until the drain begins."""
    async with admin() as server:
        reply = await fetch(server, "/ready")
    assert (reply.status, reply.json()) == (200, {"ready": True})


async def test_version_lists_the_three_distributions() -> None:
    """`/version` is a JSON object of the installed versions of the three distributions."""
    async with admin() as server:
        reply = await fetch(server, "/version")
    assert reply.status == 200
    assert reply.json() == {name: dist_version(name) for name in DISTRIBUTIONS}


async def test_query_strings_are_ignored() -> None:
    """A query string does not change which endpoint answers."""
    async with admin() as server:
        reply = await fetch(server, "/healthz?verbose=1")
    assert (reply.status, reply.body) == (200, b"ok\n")


async def test_unknown_paths_are_404_and_other_methods_405() -> None:
    """Unknown paths answer 404; anything but GET answers 405 with `Allow: GET`."""
    async with admin() as server:
        missing = await fetch(server, "/nope")
        posted = await fetch(server, "/metrics", method=b"POST")
    assert missing.status == 404
    assert posted.status == 405
    assert posted.headers[b"allow"] == b"GET"


async def test_malformed_requests_get_400() -> None:
    """Bytes that are not an HTTP request are answered 400 and the connection closed."""
    async with admin() as server:
        reply = await fetch(server, "/", raw=b"NOT HTTP AT ALL\r\n\r\n")
    assert reply.status == 400


async def test_a_silent_client_is_let_go() -> None:
    """A client that connects and sends nothing is disconnected, and the server keeps serving."""
    async with admin() as server:
        with anyio.CancelScope() as scope:
            stream = await anyio.connect_tcp("127.0.0.1", server.port)
            async with stream:
                scope.deadline = anyio.current_time() + 0.1
                await anyio.sleep_forever()
        reply = await fetch(server, "/healthz")
    assert reply.status == 200


async def test_admin_port_in_use_raises() -> None:
    """Binding the admin listener to a port already in use raises OSError before serving."""
    async with admin() as server:
        with pytest.raises(OSError, match="in use"):
            async with admin_on(server.port):
                pass


@asynccontextmanager
async def admin_on(port: int) -> AsyncIterator[AdminServer]:
    """An admin server on a given port."""
    async with serve_admin("127.0.0.1", port, metrics=Metrics(), health=Health()) as server:
        yield server


async def test_connections_gauge_counts_open_clients() -> None:
    """`mcpr_connections_open` counts client connections held open by keep-alive."""
    async with stub_upstream(_JSON_REPLY) as stub, proxy_with_metrics(stub.url) as (proxy, m):
        async with connect(proxy) as client, admin(m) as server:
            await client.request(b"POST", b"/mcp", JSON, rpc("ping"))
            families = await scrape(server)
        await wait_until(lambda: proxy.running.statistics().handler.connections_open == 0)
    assert families["mcpr_connections_open"].value() == 1


_BAD_EXPOSITIONS = {
    "sample without TYPE": "# HELP x_total h\nx_total 1\n",
    "sample away from its TYPE": (
        "# HELP a h\n# TYPE a gauge\n# HELP b h\n# TYPE b gauge\na 1\nb 1\n"
    ),
    "bad escape": '# HELP a h\n# TYPE a gauge\na{l="\\t"} 1\n',
    "no +Inf bucket": (
        '# HELP h h\n# TYPE h histogram\nh_bucket{le="1.0"} 1\nh_sum 1\nh_count 1\n'
    ),
    "buckets not cumulative": (
        '# HELP h h\n# TYPE h histogram\nh_bucket{le="1.0"} 2\nh_bucket{le="+Inf"} 1\n'
        "h_sum 1\nh_count 1\n"
    ),
    "count differs from +Inf": (
        '# HELP h h\n# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 2\n'
    ),
    "no final line feed": "# HELP a h\n# TYPE a gauge\na 1",
    "negative counter": "# HELP a_total h\n# TYPE a_total counter\na_total -1\n",
}


@pytest.mark.parametrize("text", _BAD_EXPOSITIONS.values(), ids=_BAD_EXPOSITIONS.keys())
def test_the_exposition_parser_is_strict(text: str) -> None:
    """The parser used above rejects each kind of malformed exposition."""
    with pytest.raises(AssertionError):
        parse_exposition(text)
