"""Events: what mcpr records about the traffic it carries, and the sink protocol.

Every event is a frozen, slotted dataclass with a `type` tag and `to_dict()`. Events are
built once per exchange (never per chunk) and never mutated; sinks receive them through
the `EventSink` protocol.

This module is public API for sink authors (PRODUCT.md §6): a distribution registers a
factory (`SinkFactory`) under the entry-point group `mcpr.sinks`, `mcpr.toml` enables it
with `[[sinks]] use = "NAME"`, and the factory builds an `EventSink` from the sink's own
keys, raising `SinkConfigError` for a table it cannot accept.

Versioning. The field names are the interface: the stderr JSON lines, the SQLite store, the
cloud upload and third-party sinks all read them. mcpr-core follows semantic versioning, so
that a sink can depend on `mcpr-core>=0.1,<0.2` (before 1.0 the second number is the
"major" one):

* A compatible release (0.1.x) may add event types to `ProxyEvent`, add fields with a
  default to any event (and so keys to `to_dict()`), and add values to the open string
  fields (`RequestEvent.note`, `SessionEnd.reason`, `Heartbeat.upstream_status`,
  `SchemaChange.change_type`). A sink therefore ignores event types it does not know
  (`match` with a default case), builds events by keyword if it builds any, and treats an
  unknown `note` like any other.
* Only a breaking release (0.2) removes or renames an event, a field or a `type` tag,
  changes a field's type or meaning, or changes `EventSink`, `SinkFactory` or
  `SinkConfigError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal, Protocol, TypeAlias, runtime_checkable

__all__ = [
    "ERROR_MSG_MAX",
    "Era",
    "EventSink",
    "Heartbeat",
    "ProxyEvent",
    "RequestEvent",
    "SchemaChange",
    "SchemaVersionCreated",
    "SessionEnd",
    "SessionStart",
    "SinkConfigError",
    "SinkFactory",
    "event_to_json",
]

#: Longest `error_msg` kept on an event, in characters (PRODUCT.md §5).
ERROR_MSG_MAX = 512

Era = Literal["legacy", "modern"]


class _EventBase:
    """Shared serialisation of the event dataclasses."""

    __slots__ = ()
    type: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        """Return the event as a plain dict with its `type` tag first; None fields are kept."""
        out: dict[str, Any] = {"type": self.type}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = [
                    v.to_dict() if isinstance(v, _EventBase | SchemaChange) else v for v in value
                ]
            out[f.name] = value
        return out


@dataclass(frozen=True, slots=True)
class RequestEvent(_EventBase):
    """One HTTP exchange carried (or answered) by the proxy.

    `method` is the HTTP verb; `mcp_method` the JSON-RPC method when the body was one.
    `status` is the HTTP status the client saw (0 when none could be sent).
    `error_code` / `error_msg` hold a JSON-RPC error found in the response (JSON or SSE),
    a proxy error (the HTTP status as a string-free integer code), or a tool result with
    `isError: true` (code None, message from the result).
    `note` says how the exchange ended: "ok", "rewritten", "rewritten+sse",
    "input_required", "upstream_error", "timeout", "truncated", "client_closed",
    "cancelled" (a 2026-07-28 client closed its stream before the answer), "rejected", ….
    A 2026-07-28 multi round-trip call records `result_type` ("input_required" on the
    rounds that ask), `input_requests` (`key:method` of what was asked) and a
    `correlation_key` shared by all rounds of the same logical call.
    `traceparent` / `tracestate` are the W3C trace context the client sent (in
    `params._meta`, else in the HTTP headers), kept only when `traceparent` is valid.
    `trace_id` / `span_id` name mcpr's own span when its ids were chosen before forwarding
    (`[otel] propagate`): the upstream then received a `traceparent` naming that span.
    """

    type: ClassVar[str] = "request"

    id: str
    ts: int
    proxy: str
    method: str
    path: str
    status: int
    latency_us: int
    request_size: int
    note: str
    session_id: str | None = None
    mcp_method: str | None = None
    tool: str | None = None
    resource_uri: str | None = None
    prompt_name: str | None = None
    upstream_us: int | None = None
    response_size: int | None = None
    error_code: int | None = None
    error_msg: str | None = None
    client_name: str | None = None
    client_version: str | None = None
    client_platform: str | None = None
    protocol_version: str | None = None
    era: Era | None = None
    header_mismatch: bool = False
    jsonrpc_id: str | int | None = None
    result_type: str | None = None
    input_requests: tuple[str, ...] = ()
    correlation_key: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    trace_id: str | None = None
    span_id: str | None = None


@dataclass(frozen=True, slots=True)
class SessionStart(_EventBase):
    """A legacy MCP session began: an `initialize` answer carried `Mcp-Session-Id`."""

    type: ClassVar[str] = "session_start"

    session_id: str
    ts: int
    proxy: str
    client_name: str | None = None
    client_version: str | None = None
    client_platform: str | None = None
    protocol_version: str | None = None


@dataclass(frozen=True, slots=True)
class SessionEnd(_EventBase):
    """A legacy MCP session ended.

    `reason`: "deleted", "expired", "upstream_gone" (the upstream answered 404 for it),
    "evicted" (the proxy's session table was full) or "shutdown".
    """

    type: ClassVar[str] = "session_end"

    session_id: str
    ts: int
    proxy: str
    reason: str


@dataclass(frozen=True, slots=True)
class Heartbeat(_EventBase):
    """Periodic liveness record of a running proxy (not stored, uploaded to the cloud)."""

    type: ClassVar[str] = "heartbeat"

    ts: int
    proxy: str
    upstream_status: str
    uptime_s: int
    requests_total: int
    events_dropped: int
    #: The tunnel's status (connecting, connected, disconnected, evicted) when one runs.
    tunnel_status: str | None = None


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """One difference between two versions of a captured server schema."""

    change_type: str
    item_name: str | None
    old_hash: str | None
    new_hash: str | None

    def to_dict(self) -> dict[str, Any]:
        """Return the change as a plain dict."""
        return {
            "change_type": self.change_type,
            "item_name": self.item_name,
            "old_hash": self.old_hash,
            "new_hash": self.new_hash,
        }


@dataclass(frozen=True, slots=True)
class SchemaVersionCreated(_EventBase):
    """The merged answer of a listing method changed (or was seen for the first time)."""

    type: ClassVar[str] = "schema_version_created"

    ts: int
    proxy: str
    upstream_url: str
    method: str
    payload: str
    schema_hash: str
    changes: tuple[SchemaChange, ...] = ()


ProxyEvent = RequestEvent | SessionStart | SessionEnd | Heartbeat | SchemaVersionCreated


def event_to_json(event: ProxyEvent) -> str:
    """Serialise an event to one compact JSON object (no trailing newline)."""
    return json.dumps(event.to_dict(), separators=(",", ":"), ensure_ascii=False)


@runtime_checkable
class EventSink(Protocol):
    """Where events go. Implementations are synchronous and may block (they run off the loop).

    The bus gives each sink its own bounded queue and worker-thread calls: `on_event` or
    `on_batch` with events in emission order, `flush` every few seconds and at shutdown,
    then `close` once. Calls into one sink never overlap, though they may come from
    different threads. A sink must not raise for a single bad event; whatever it raises is
    counted and contained by the bus, and a sink that keeps failing is disabled.
    """

    @property
    def name(self) -> str:
        """A short name used in logs and metrics (a configured `[[sinks]] name` wins)."""
        ...

    def on_event(self, event: ProxyEvent) -> None:
        """Accept one event."""
        ...

    def on_batch(self, events: Sequence[ProxyEvent]) -> None:
        """Accept several events, in order."""
        ...

    def flush(self) -> None:
        """Make everything accepted so far durable or delivered."""
        ...

    def close(self) -> None:
        """Flush and release resources; no calls follow."""
        ...


#: What a `mcpr.sinks` entry point names: called with the sink's own keys from its
#: `[[sinks]]` table (TOML values; without `use`, `name` and `max_failures`, which mcpr
#: reads), it returns the sink. `mcpr validate` calls it too and closes the sink at once,
#: so a factory checks its keys eagerly but opens files and connections lazily.
SinkFactory: TypeAlias = Callable[[Mapping[str, Any]], EventSink]


class SinkConfigError(ValueError):
    """Raised by a sink factory for keys it cannot accept; mcpr reports them with key paths.

        raise SinkConfigError("max_bytes", "expected a positive integer, got -1")

    `key` is the sink's own key (None: the table as a whole); `mcpr validate` prints
    `sinks[N].<key>: <message>`. `from_problems` reports several at once.
    """

    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.problems: tuple[tuple[str | None, str], ...] = ((key, message),)

    @classmethod
    def from_problems(cls, problems: Sequence[tuple[str | None, str]]) -> SinkConfigError:
        """One error carrying every `(key, message)` of `problems` (at least one)."""
        if not problems:
            raise ValueError("SinkConfigError.from_problems needs at least one problem")
        error = cls(*problems[0])
        error.problems = tuple(problems)
        return error
