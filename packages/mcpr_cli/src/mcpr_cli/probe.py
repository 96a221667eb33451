"""The upstream health probe: an `initialize` to the upstream every `probe_interval`.

Rules of this module (PRODUCT.md §8, issue "Upstream health probe"):

* Each probe opens a connection of its own, never one of the pool's: it sees what a new
  client would see, and it never takes a slot that traffic is waiting for.
* It POSTs a legacy `initialize` (protocol version 2025-06-18, client `mcpr-probe`) to the
  configured `mcp` URL and classifies the answer, in this order:

  ========================  =================================================================
  `auth_required`           401 or 403: the upstream is there and wants a token (clients
                            bring theirs, the probe has none), so this counts as up
  `disconnected`            no connection, no answer within `probe_timeout`, a broken
                            response, or a 5xx (a gateway in front of a dead server)
  `connected`               the body (JSON, or an event of an SSE stream) holds a JSON-RPC
                            response, whatever the status: a 2026-07-28-only server answers
                            `initialize` with 404 and a `-32601` error, and is still MCP
  `not_mcp`                 anything else: an HTML page, a 404 or 405 without JSON-RPC, JSON
                            that is not JSON-RPC
  ========================  =================================================================

* An answer that carried `Mcp-Session-Id` opened a session on the upstream: the probe ends it
  with a DELETE on another short-lived connection (the reference tool leaks one session per
  probe, 8,640 a day).
* Every probe emits a `Heartbeat` (status, uptime, requests served, events dropped) and is
  kept as `last`, which `/ready` and the `mcpr_upstream_*` gauges read.
"""

from __future__ import annotations

import enum
import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import anyio
import anyio.abc
import h11
import structlog
from anyio.abc import TaskStatus

from mcpr_cli import __version__
from mcpr_cli.transport.h11io import receive_event, send_event
from mcpr_core import jsonrpc
from mcpr_core.config import ProxyConfig
from mcpr_core.events import Heartbeat, ProxyEvent
from mcpr_core.routing import UpstreamURL
from mcpr_core.sse import NEED_DATA, SSEDecoder, SSEEvent

__all__ = [
    "PROBE_PROTOCOL_VERSION",
    "ProbeResult",
    "UpstreamProbe",
    "UpstreamStatus",
    "probe_upstream",
]

#: The protocol version the probe's `initialize` asks for: the last revision before 2025-11-25
#: made the header optional, so every legacy server still accepts it.
PROBE_PROTOCOL_VERSION: Final = "2025-06-18"
#: Bytes of a response body read to find the JSON-RPC answer; a real `initialize` result is a
#: few KB (server info, capabilities, instructions).
_MAX_BODY: Final = 1024 * 1024
_PROBE_ID: Final = "mcpr-probe"

_log = structlog.get_logger("mcpr.probe")

_NETWORK_ERRORS: Final = (
    OSError,  # refused, unreachable, unresolvable, TLS failures (ssl.SSLError is an OSError)
    anyio.BrokenResourceError,
    anyio.EndOfStream,
    anyio.ClosedResourceError,
    h11.ProtocolError,  # malformed HTTP, or EOF before a response
)


class UpstreamStatus(enum.StrEnum):
    """What the last probe found the upstream to be (module docstring for the rules)."""

    CONNECTED = "connected"
    AUTH_REQUIRED = "auth_required"
    NOT_MCP = "not_mcp"
    DISCONNECTED = "disconnected"

    @property
    def up(self) -> bool:
        """True when the upstream answers as an MCP server would (with or without a token)."""
        return self in (UpstreamStatus.CONNECTED, UpstreamStatus.AUTH_REQUIRED)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe: the classification, why, and what became of the session it opened."""

    status: UpstreamStatus
    detail: str
    http_status: int | None
    duration: float  # seconds, the DELETE excluded
    session_id: str | None = None
    session_closed: bool = False


@dataclass(slots=True)
class _Seen:
    """What the probe learnt so far; kept when a timeout cuts it short."""

    http_status: int | None = None
    session_id: str | None = None
    protocol_version: str = PROBE_PROTOCOL_VERSION


def _initialize_body() -> bytes:
    message = {
        "jsonrpc": "2.0",
        "id": _PROBE_ID,
        "method": "initialize",
        "params": {
            "protocolVersion": PROBE_PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "mcpr-probe", "version": __version__},
        },
    }
    return json.dumps(message, separators=(",", ":")).encode()


_INITIALIZE: Final = _initialize_body()


def _target(upstream: UpstreamURL) -> bytes:
    query = f"?{upstream.query}" if upstream.query else ""
    return (upstream.path + query).encode("ascii")


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    return next((value for key, value in headers if key == name), None)


async def _connect(
    upstream: UpstreamURL, ssl_context: ssl.SSLContext | None
) -> anyio.abc.ByteStream:
    if upstream.is_tls:
        context = ssl_context if ssl_context is not None else ssl.create_default_context()
        return await anyio.connect_tcp(
            upstream.host, upstream.port, ssl_context=context, tls_standard_compatible=False
        )
    return await anyio.connect_tcp(upstream.host, upstream.port)


async def _close(stream: anyio.abc.ByteStream) -> None:
    with anyio.CancelScope(shield=True):
        await stream.aclose()


async def _request(
    upstream: UpstreamURL,
    ssl_context: ssl.SSLContext | None,
    method: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes = b"",
) -> tuple[h11.Connection, anyio.abc.ByteStream, h11.Response]:
    """Open a connection, send one request and read the final response head."""
    stream = await _connect(upstream, ssl_context)
    try:
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=64 * 1024)
        base = [
            (b"host", upstream.host_header),
            (b"user-agent", f"mcpr-probe/{__version__}".encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        await send_event(
            conn,
            stream,
            h11.Request(method=method, target=_target(upstream), headers=base + headers),
        )
        if body:
            await send_event(conn, stream, h11.Data(data=body))
        await send_event(conn, stream, h11.EndOfMessage())
        while True:
            event = await receive_event(conn, stream)
            if isinstance(event, h11.Response):
                return conn, stream, event
            if not isinstance(event, h11.InformationalResponse):
                raise h11.RemoteProtocolError("the connection ended before a response")
    except BaseException:
        await _close(stream)
        raise


async def _body_chunks(conn: h11.Connection, stream: anyio.abc.ByteStream) -> list[bytes]:
    """The response body, up to `_MAX_BODY` bytes (what is beyond is not read)."""
    parts: list[bytes] = []
    size = 0
    while size <= _MAX_BODY:
        event = await receive_event(conn, stream)
        if isinstance(event, h11.Data):
            parts.append(bytes(event.data))
            size += len(event.data)
        elif isinstance(event, h11.EndOfMessage):
            break
        else:
            raise h11.RemoteProtocolError("the connection ended inside the response body")
    return parts


def _answer_in(parsed: jsonrpc.Parsed) -> jsonrpc.Message | None:
    """The JSON-RPC response in a parsed body (or batch), if there is one."""
    members = parsed.items if isinstance(parsed, jsonrpc.Batch) else (parsed,)
    for item in members:
        if isinstance(item, jsonrpc.Message) and item.is_response:
            return item
    return None


async def _json_answer(
    conn: h11.Connection, stream: anyio.abc.ByteStream
) -> jsonrpc.Message | None:
    return _answer_in(jsonrpc.parse(b"".join(await _body_chunks(conn, stream))))


async def _sse_answer(conn: h11.Connection, stream: anyio.abc.ByteStream) -> jsonrpc.Message | None:
    """The first JSON-RPC response on the stream; the rest of the stream is not waited for."""
    decoder = SSEDecoder()
    size = 0
    while size <= _MAX_BODY:
        event = await receive_event(conn, stream)
        if isinstance(event, h11.Data):
            decoder.receive_data(bytes(event.data))
            size += len(event.data)
        elif isinstance(event, h11.EndOfMessage):
            decoder.receive_data(b"")
        else:
            raise h11.RemoteProtocolError("the connection ended inside the event stream")
        while isinstance(sse := decoder.next_event(), SSEEvent):
            if sse.has_data and (answer := _answer_in(jsonrpc.parse(sse.data))) is not None:
                return answer
        if sse is not NEED_DATA:  # the stream ended without an answer
            return None
    return None


def _media_type(response: h11.Response) -> str:
    value = _header(list(response.headers), b"content-type") or b""
    return value.split(b";", 1)[0].strip().lower().decode("latin-1")


async def _initialize(
    upstream: UpstreamURL, ssl_context: ssl.SSLContext | None, seen: _Seen
) -> tuple[UpstreamStatus, str]:
    headers = [
        (b"content-type", b"application/json"),
        (b"accept", b"application/json, text/event-stream"),
    ]
    conn, stream, response = await _request(upstream, ssl_context, b"POST", headers, _INITIALIZE)
    try:
        status = response.status_code
        seen.http_status = status
        session = _header(list(response.headers), b"mcp-session-id")
        if session is not None:
            seen.session_id = session.decode("ascii", "replace")
        if status in (401, 403):
            return UpstreamStatus.AUTH_REQUIRED, f"HTTP {status}: authorization required"
        if status >= 500:
            return UpstreamStatus.DISCONNECTED, f"HTTP {status} from the upstream"
        media = _media_type(response)
        answer: jsonrpc.Message | None = None
        is_json = media == "application/json" or media.endswith("+json")
        if media == "text/event-stream":
            answer = await _sse_answer(conn, stream)
        elif is_json:
            answer = await _json_answer(conn, stream)
        if answer is not None:
            if isinstance(answer.result, dict):
                version = answer.result.get("protocolVersion")
                if isinstance(version, str) and version.isascii() and version.isprintable():
                    seen.protocol_version = version
            kind = "error" if answer.error is not None else "result"
            return UpstreamStatus.CONNECTED, f"HTTP {status}, JSON-RPC {kind}"
        if media == "text/html":
            return UpstreamStatus.NOT_MCP, f"HTTP {status}: an HTML page, not MCP"
        if is_json:
            return UpstreamStatus.NOT_MCP, f"HTTP {status}: JSON that is not JSON-RPC"
        if media == "text/event-stream":
            return UpstreamStatus.NOT_MCP, f"HTTP {status}: an event stream without JSON-RPC"
        what = f" ({media})" if media else ""
        return UpstreamStatus.NOT_MCP, f"HTTP {status}{what}: no JSON-RPC answer"
    finally:
        await _close(stream)


async def _delete_session(
    upstream: UpstreamURL, ssl_context: ssl.SSLContext | None, seen: _Seen, within: float
) -> bool:
    """End the session the probe opened; True when the upstream confirmed it (2xx)."""
    assert seen.session_id is not None
    headers = [
        (b"mcp-session-id", seen.session_id.encode("ascii", "replace")),
        (b"mcp-protocol-version", seen.protocol_version.encode("ascii")),
    ]
    with anyio.move_on_after(within):
        try:
            _, stream, response = await _request(upstream, ssl_context, b"DELETE", headers)
        except _NETWORK_ERRORS as exc:
            _log.info("probe_session_not_closed", session_id=seen.session_id, error=str(exc))
            return False
        await _close(stream)
        return 200 <= response.status_code < 300
    _log.info("probe_session_not_closed", session_id=seen.session_id, error="timed out")
    return False


async def probe_upstream(
    upstream: UpstreamURL, *, within: float, ssl_context: ssl.SSLContext | None = None
) -> ProbeResult:
    """Probe the upstream once (an `initialize`, then a DELETE for any session it opened).

    `within` bounds the `initialize` (no answer in time is `disconnected`), and the DELETE
    separately: a timeout is a classification here, not an error.
    """
    started = time.monotonic()
    seen = _Seen()
    status = UpstreamStatus.DISCONNECTED
    detail = f"no answer within {within:g} s"
    with anyio.move_on_after(within):
        try:
            status, detail = await _initialize(upstream, ssl_context, seen)
        except _NETWORK_ERRORS as exc:
            status, detail = UpstreamStatus.DISCONNECTED, _describe(upstream, exc)
    duration = time.monotonic() - started
    closed = False
    if seen.session_id is not None:
        closed = await _delete_session(upstream, ssl_context, seen, within)
    return ProbeResult(status, detail, seen.http_status, duration, seen.session_id, closed)


def _describe(upstream: UpstreamURL, exc: BaseException) -> str:
    if isinstance(exc, h11.ProtocolError):
        return f"bad HTTP from {upstream.origin}: {exc}"
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return f"cannot reach {upstream.origin}: {reason}"


class UpstreamProbe:
    """Probes the upstream every `probe_interval` and emits a `Heartbeat` after each probe.

    Run `await task_group.start(probe.run)`; `last` is the latest result (None before the
    first one finished). `requests_total`, `events_dropped` and `tunnel_status` feed the
    heartbeat.
    """

    def __init__(
        self,
        config: ProxyConfig,
        *,
        emit: Callable[[ProxyEvent], None],
        requests_total: Callable[[], int] = lambda: 0,
        events_dropped: Callable[[], int] = lambda: 0,
        tunnel_status: Callable[[], str | None] = lambda: None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._upstream = config.upstream
        self._proxy = config.name
        self._interval = config.probe_interval
        self._timeout = config.probe_timeout
        if ssl_context is None and config.upstream.is_tls:
            ssl_context = ssl.create_default_context(cafile=config.ca_file)
        self._ssl = ssl_context
        self._emit = emit
        self._requests_total = requests_total
        self._events_dropped = events_dropped
        self._tunnel_status = tunnel_status
        self._started = time.monotonic()
        self._last: ProbeResult | None = None
        self._probes = 0
        self._probed = anyio.Event()

    def __repr__(self) -> str:
        status = self._last.status.value if self._last is not None else "unknown"
        return f"<UpstreamProbe {self._upstream.origin} {status} probes={self._probes}>"

    @property
    def last(self) -> ProbeResult | None:
        """The latest probe's result."""
        return self._last

    @property
    def status(self) -> str | None:
        """The latest probe's classification as a string (None before the first)."""
        return self._last.status.value if self._last is not None else None

    @property
    def probes(self) -> int:
        """Probes finished so far."""
        return self._probes

    async def wait_probed(self, count: int = 1) -> ProbeResult:
        """Wait until at least `count` probes have finished; return the latest."""
        while self._probes < count or self._last is None:
            await self._probed.wait()
        return self._last

    async def probe(self) -> ProbeResult:
        """Probe now: record the result, log a change of status, emit a heartbeat."""
        result = await probe_upstream(self._upstream, within=self._timeout, ssl_context=self._ssl)
        previous = self._last
        self._last = result
        self._probes += 1
        self._probed.set()
        self._probed = anyio.Event()
        if previous is None or previous.status is not result.status:
            log = _log.info if result.status.up else _log.warning
            log("upstream_status", status=result.status.value, detail=result.detail)
        self._emit(
            Heartbeat(
                ts=time.time_ns() // 1_000_000,
                proxy=self._proxy,
                upstream_status=result.status.value,
                uptime_s=int(time.monotonic() - self._started),
                requests_total=self._requests_total(),
                events_dropped=self._events_dropped(),
                tunnel_status=self._tunnel_status(),
            )
        )
        return result

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Probe at once, then every `probe_interval` (start to start), until cancelled."""
        task_status.started()
        while True:
            started = anyio.current_time()
            await self.probe()
            await anyio.sleep(max(0.0, started + self._interval - anyio.current_time()))
