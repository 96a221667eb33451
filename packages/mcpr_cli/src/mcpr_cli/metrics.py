"""The metrics registry behind `/metrics`, rendered in the Prometheus text format 0.0.4.

Two kinds of numbers, kept apart on purpose:

* Request counters and the two duration histograms are fed from the `RequestEvent`s the
  proxy emits. `observe_then(emit)` wraps the emit callable, so every exchange costs a few
  dict lookups and integer increments on the hot path: no lock (everything runs on the event
  loop's thread), no float arithmetic (durations stay integer microseconds until a scrape),
  and no allocation after the first request of a given method and status.
* Gauges, and the per-sink event counters, are read at scrape time from the `statistics()`
  of the objects that own them (connection handler, event bus, upstream probe, session
  table), so there is nothing to keep in sync and nothing to forget to decrement.

Cardinality is bounded: the `method` label is an MCP method mcpr knows, an HTTP verb for
traffic that is not JSON-RPC, or "other"; a client inventing method names cannot grow the
registry. `status_class` is the class of the HTTP status the client saw ("2xx" … "5xx", or
"none" when no response could be sent). `tool` is a tool name from the server's captured
`tools/list` (at most `MAX_TOOLS` of them) or "other", never a name a client made up.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final

from mcpr_core.events import ProxyEvent, RequestEvent, SchemaVersionCreated
from mcpr_core.mcp import Method

if TYPE_CHECKING:
    from mcpr_cli.bus import BusStatistics
    from mcpr_cli.proxy import ProxyStatistics
    from mcpr_integrations.store.writer import StoreStatistics

__all__ = [
    "CONTENT_TYPE",
    "DURATION_BUCKETS",
    "MAX_TOOLS",
    "TUNNEL_STATES",
    "UPSTREAM_STATES",
    "Metrics",
    "escape_label",
]

#: The media type of the text exposition format, as Prometheus asks for it.
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

#: Upper bounds (seconds) of both duration histograms: Prometheus' default buckets with
#: 1 ms and 2.5 ms in front (a proxied call on a local network takes a few milliseconds)
#: and 30 s / 60 s behind (the default `request_timeout`, and long tool calls).
DURATION_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
_BOUNDS_US: Final = tuple(round(b * 1_000_000) for b in DURATION_BUCKETS)
_LE: Final = (*(repr(b) for b in DURATION_BUCKETS), "+Inf")

#: Every value `mcpr_tunnel_status` can take (`mcp_tunnel_client.TunnelStatus`).
TUNNEL_STATES: Final = ("connecting", "connected", "disconnected", "evicted")
#: Every value `mcpr_upstream_status` can take (the probe's classification).
UPSTREAM_STATES: Final = ("connected", "auth_required", "not_mcp", "disconnected")
#: States in which the upstream counts as up: it answers, and speaks MCP (an OAuth-protected
#: server answers the tokenless probe 401, yet serves every client that brings a token).
_UP: Final = frozenset({"connected", "auth_required"})

_OTHER: Final = "other"
#: Tool names used as label values; a server listing more has the rest counted as "other".
MAX_TOOLS: Final = 200
_HTTP_VERBS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_METHOD_LABELS: Final[dict[str, str]] = {
    **{m.value: m.value for m in Method},
    **{verb: verb for verb in _HTTP_VERBS},
}


def escape_label(value: str) -> str:
    """Escape a label value: backslash, double quote and line feed (format 0.0.4)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status <= 599 else "none"


def _tool_names(payload: str) -> frozenset[str]:
    """The tool names of a captured `tools/list` payload (empty when it is not one)."""
    try:
        tools = json.loads(payload).get("tools")
    except (ValueError, AttributeError, RecursionError):
        return frozenset()
    if not isinstance(tools, list):
        return frozenset()
    names = (t.get("name") for t in tools if isinstance(t, dict))
    return frozenset(sorted(n for n in names if isinstance(n, str))[:MAX_TOOLS])


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(value)


class _Histogram:
    """Bucket counts (not yet cumulative), sum and count of integer microseconds."""

    __slots__ = ("count", "counts", "sum_us")

    def __init__(self) -> None:
        self.counts = [0] * (len(_BOUNDS_US) + 1)  # the last slot is above every bound
        self.sum_us = 0
        self.count = 0

    def observe(self, micros: int) -> None:
        # `le` is inclusive: an observation equal to a bound belongs to that bound's bucket.
        self.counts[bisect_left(_BOUNDS_US, micros)] += 1
        self.sum_us += micros
        self.count += 1


class _Family:
    """The lines of one metric family: HELP, TYPE, then its samples."""

    def __init__(self, lines: list[str], name: str, kind: str, help_text: str) -> None:
        self._lines = lines
        self._name = name
        lines.append(f"# HELP {name} {_escape_help(help_text)}")
        lines.append(f"# TYPE {name} {kind}")

    def sample(
        self, value: float, labels: Iterable[tuple[str, str]] = (), suffix: str = ""
    ) -> None:
        pairs = ",".join(f'{key}="{escape_label(val)}"' for key, val in labels)
        name = self._name + suffix
        self._lines.append(
            f"{name}{{{pairs}}} {_number(value)}" if pairs else f"{name} {_number(value)}"
        )

    def histogram(self, hist: _Histogram, labels: tuple[tuple[str, str], ...]) -> None:
        cumulative = 0
        for le, count in zip(_LE, hist.counts, strict=True):
            cumulative += count
            self.sample(cumulative, (*labels, ("le", le)), "_bucket")
        self.sample(hist.sum_us / 1_000_000, labels, "_sum")
        self.sample(hist.count, labels, "_count")


class Metrics:
    """Counters fed by request events, gauges read from their owners when scraped.

    Wire it up once: `emit = metrics.observe_then(bus.emit)` before the proxy starts, then
    `watch_proxy(running.statistics)`, `watch_bus(bus.statistics)`,
    `watch_upstream(lambda: probe.status)` and `watch_sessions(tracker.__len__)`. A source
    never watched reads as zero (or, for the upstream, as no sample at all).
    """

    def __init__(self) -> None:
        self._requests: dict[str, dict[int, int]] = {}
        self._durations: dict[str, _Histogram] = {}
        self._upstream: dict[str, _Histogram] = {}
        self._tools: frozenset[str] = frozenset()
        self._tool_calls: dict[tuple[str, bool], int] = {}
        self._tool_durations: dict[str, _Histogram] = {}
        self._header_mismatches = 0
        self._proxy: Callable[[], ProxyStatistics] | None = None
        self._bus: Callable[[], BusStatistics] | None = None
        self._upstream_status: Callable[[], str | None] | None = None
        self._tunnel_status: Callable[[], str] | None = None
        self._sessions: Callable[[], int] | None = None
        self._store: Callable[[], StoreStatistics] | None = None

    def __repr__(self) -> str:
        total = sum(sum(by_status.values()) for by_status in self._requests.values())
        return f"<Metrics requests={total} methods={len(self._requests)}>"

    # -- feeding ---------------------------------------------------------------------------

    def observe(self, event: ProxyEvent) -> None:
        """Count a request event; learn the tool names from a new `tools/list` version."""
        if not isinstance(event, RequestEvent):
            if isinstance(event, SchemaVersionCreated) and event.method == "tools/list":
                self.know_tools(_tool_names(event.payload))
            return
        method = event.mcp_method if event.mcp_method is not None else event.method
        label = _METHOD_LABELS.get(method, _OTHER)
        by_status = self._requests.get(label)
        if by_status is None:
            by_status = self._requests[label] = {}
            self._durations[label] = _Histogram()
        by_status[event.status] = by_status.get(event.status, 0) + 1
        self._durations[label].observe(event.latency_us)
        if event.upstream_us is not None:
            upstream = self._upstream.get(label)
            if upstream is None:
                upstream = self._upstream[label] = _Histogram()
            upstream.observe(event.upstream_us)
        if label == "tools/call":
            self._observe_tool(event)
        if event.header_mismatch:
            self._header_mismatches += 1

    def _observe_tool(self, event: RequestEvent) -> None:
        tool = event.tool if event.tool in self._tools else _OTHER
        failed = (
            event.error_code is not None
            or event.error_msg is not None
            or not 200 <= event.status < 300
        )
        key = (tool, failed)
        self._tool_calls[key] = self._tool_calls.get(key, 0) + 1
        hist = self._tool_durations.get(tool)
        if hist is None:
            hist = self._tool_durations[tool] = _Histogram()
        hist.observe(event.latency_us)

    def know_tools(self, names: Iterable[str]) -> None:
        """Use these tool names (the server's, e.g. a stored snapshot's) as `tool` labels.

        They replace the previous set; at most `MAX_TOOLS` are kept. Calls already counted
        keep their label.
        """
        self._tools = frozenset(sorted(names)[:MAX_TOOLS])

    def observe_then(self, emit: Callable[[ProxyEvent], None]) -> Callable[[ProxyEvent], None]:
        """Wrap `emit` so that every event is counted here first, then passed on."""
        observe = self.observe

        def observe_and_emit(event: ProxyEvent) -> None:
            observe(event)
            emit(event)

        return observe_and_emit

    def watch_proxy(self, statistics: Callable[[], ProxyStatistics]) -> None:
        """Read in-flight exchanges, open connections and listen streams from `statistics`."""
        self._proxy = statistics

    def watch_bus(self, statistics: Callable[[], BusStatistics]) -> None:
        """Read the per-sink event counters from `statistics`."""
        self._bus = statistics

    def watch_upstream(self, status: Callable[[], str | None]) -> None:
        """Read the upstream's last probe status (one of UPSTREAM_STATES, None before any)."""
        self._upstream_status = status

    def watch_tunnel(self, status: Callable[[], str]) -> None:
        """Read the tunnel's status (one of TUNNEL_STATES); unwatched, no tunnel family."""
        self._tunnel_status = status

    def watch_sessions(self, count: Callable[[], int]) -> None:
        """Read the number of active MCP sessions (e.g. `len` of the session table)."""
        self._sessions = count

    def watch_store(self, statistics: Callable[[], StoreStatistics]) -> None:
        """Read the store writer's counters; unwatched (no store), no store family.

        The bus hands the store its events without error even when the disk is full: the
        writer's own `failed` count is where such losses show.
        """
        self._store = statistics

    # -- scraping --------------------------------------------------------------------------

    def render(self) -> str:
        """The whole registry in the text exposition format, ending with a line feed."""
        lines: list[str] = []
        self._render_requests(lines)
        self._render_gauges(lines)
        self._render_events(lines)
        self._render_upstream(lines)
        self._render_tunnel(lines)
        self._render_store(lines)
        lines.append("")
        return "\n".join(lines)

    def _render_requests(self, lines: list[str]) -> None:
        family = _Family(
            lines,
            "mcpr_requests_total",
            "counter",
            "Requests handled, by MCP method (or HTTP verb) and the class of the HTTP status "
            "the client saw.",
        )
        for method, by_status in sorted(self._requests.items()):
            by_class: dict[str, int] = {}
            for status, count in by_status.items():
                status_class = _status_class(status)
                by_class[status_class] = by_class.get(status_class, 0) + count
            for status_class, count in sorted(by_class.items()):
                family.sample(count, (("method", method), ("status_class", status_class)))
        family = _Family(
            lines,
            "mcpr_request_duration_seconds",
            "histogram",
            "Time from the request head to the end of the response, by MCP method.",
        )
        for method, hist in sorted(self._durations.items()):
            family.histogram(hist, (("method", method),))
        family = _Family(
            lines,
            "mcpr_upstream_duration_seconds",
            "histogram",
            "Time from the request head until the upstream's response head, by MCP method.",
        )
        for method, hist in sorted(self._upstream.items()):
            family.histogram(hist, (("method", method),))
        family = _Family(
            lines,
            "mcpr_tool_calls_total",
            "counter",
            "tools/call requests by tool (from the captured tools/list, else other) and outcome "
            "(error: a JSON-RPC error, a tool result with isError, or no 2xx answer).",
        )
        for (tool, failed), count in sorted(self._tool_calls.items()):
            family.sample(count, (("tool", tool), ("outcome", "error" if failed else "ok")))
        family = _Family(
            lines,
            "mcpr_tool_call_duration_seconds",
            "histogram",
            "Time from the request head to the end of the response of tools/call, by tool.",
        )
        for tool, hist in sorted(self._tool_durations.items()):
            family.histogram(hist, (("tool", tool),))
        _Family(
            lines,
            "mcpr_header_mismatches_total",
            "counter",
            "2026-07-28 requests whose Mcp-Method, Mcp-Name or MCP-Protocol-Version header "
            "disagreed with the body (forwarded unless strict_headers).",
        ).sample(self._header_mismatches)
        stats = self._proxy() if self._proxy is not None else None
        _Family(
            lines,
            "mcpr_list_changed_total",
            "counter",
            "notifications/*/list_changed seen in response streams.",
        ).sample(stats.handler.list_changed_total if stats is not None else 0)

    def _render_gauges(self, lines: list[str]) -> None:
        stats = self._proxy() if self._proxy is not None else None
        handler = stats.handler if stats is not None else None
        gauges = (
            (
                "mcpr_requests_in_flight",
                "Exchanges between request head and end of response right now.",
                handler.exchanges_in_flight if handler is not None else 0,
            ),
            (
                "mcpr_connections_open",
                "Client connections open right now.",
                handler.connections_open if handler is not None else 0,
            ),
            (
                "mcpr_subscriptions_open",
                "Open subscriptions/listen streams (2026-07-28 clients).",
                handler.subscriptions_open if handler is not None else 0,
            ),
            (
                "mcpr_sessions_active",
                "Legacy MCP sessions the proxy knows of (Mcp-Session-Id).",
                self._sessions() if self._sessions is not None else 0,
            ),
        )
        for name, help_text, value in gauges:
            _Family(lines, name, "gauge", help_text).sample(value)

    def _render_events(self, lines: list[str]) -> None:
        sinks = self._bus().sinks if self._bus is not None else ()
        for name, help_text, field in (
            ("mcpr_events_emitted_total", "Events accepted into each sink's queue.", "accepted"),
            (
                "mcpr_events_dropped_total",
                "Events dropped because a sink's queue was full or the sink was disabled.",
                "dropped",
            ),
            ("mcpr_events_failed_total", "Events a sink raised on while taking them.", "failed"),
            ("mcpr_sink_errors_total", "Calls into a sink that raised.", "errors"),
        ):
            family = _Family(lines, name, "counter", help_text)
            for sink in sinks:
                family.sample(getattr(sink, field), (("sink", sink.name),))
        family = _Family(
            lines,
            "mcpr_sink_disabled",
            "gauge",
            "1 once a sink failed too many times in a row and no longer gets events.",
        )
        for sink in sinks:
            family.sample(int(sink.disabled), (("sink", sink.name),))

    def _render_upstream(self, lines: list[str]) -> None:
        status = self._upstream_status() if self._upstream_status is not None else None
        up = _Family(
            lines,
            "mcpr_upstream_up",
            "gauge",
            "1 when the last probe found the upstream answering as an MCP server "
            "(connected, or asking for authorization), else 0.",
        )
        if status is not None:
            up.sample(1 if status in _UP else 0)
        states = _Family(
            lines,
            "mcpr_upstream_status",
            "gauge",
            "The last probe's classification of the upstream: 1 for the current state.",
        )
        if status is not None:
            for state in UPSTREAM_STATES:
                states.sample(1 if state == status else 0, (("status", state),))

    def _render_tunnel(self, lines: list[str]) -> None:
        if self._tunnel_status is None:
            return
        status = self._tunnel_status()
        family = _Family(
            lines,
            "mcpr_tunnel_status",
            "gauge",
            "The tunnel to the relay ([tunnel] in mcpr.toml): 1 for the current state.",
        )
        for state in TUNNEL_STATES:
            family.sample(1 if state == status else 0, (("status", state),))

    def _render_store(self, lines: list[str]) -> None:
        if self._store is None:
            return
        stats = self._store()
        family = _Family(
            lines,
            "mcpr_store_events_total",
            "counter",
            "Events the store's writer took: stored, skipped (not stored by design), or failed"
            " (lost to a write error, such as a full disk).",
        )
        for outcome in ("stored", "skipped", "failed"):
            family.sample(getattr(stats, outcome), (("outcome", outcome),))
