"""The values an `Exchange` takes and returns, and the settings its proxy shares.

`mcpr_core.pipeline` re-exports every name here: import them from there. Heads, steps and
settings are frozen, slotted dataclasses and the closed sets are enums, so a driver can
`match` on a step (`ReadBody | Forward | Reject`) and end with `assert_never`;
`ResultRewriter` is the protocol a rewriting hook implements. Nothing here holds the state
of an exchange: that is `mcpr_core.pipeline.Exchange`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mcpr_core import routing
from mcpr_core.config import CspConfig, ProxyConfig
from mcpr_core.csp import CspRewriter
from mcpr_core.sessions import SessionTracker
from mcpr_core.tracecontext import TraceIds

__all__ = [
    "Captured",
    "Failure",
    "Forward",
    "HeaderList",
    "Headers",
    "Outcome",
    "ReadBody",
    "Reject",
    "RequestHead",
    "ResponseHead",
    "ResultRewriter",
    "Settings",
]

#: Header fields as (name, value) byte pairs, in order.
Headers = Sequence[tuple[bytes, bytes]]
#: The same, as a list the pipeline builds.
HeaderList = list[tuple[bytes, bytes]]


class Outcome(enum.Enum):
    """How the driver saw the exchange end; recorded as the event's `note`."""

    COMPLETED = "ok"
    REJECTED = "rejected"
    UPSTREAM_UNREACHABLE = "upstream_unreachable"
    UPSTREAM_TIMEOUT = "timeout"
    UPSTREAM_ERROR = "upstream_error"
    TRUNCATED = "truncated"
    CLIENT_CLOSED = "client_closed"
    CANCELLED = "cancelled"


class Failure(enum.Enum):
    """Why the proxy could not get a usable response head from the upstream."""

    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    RESPONSE_TOO_LARGE = "response_too_large"
    BAD_RESPONSE = "bad_response"


@dataclass(frozen=True, slots=True)
class RequestHead:
    """The head of a request as the client sent it (header names lower-case)."""

    method: bytes
    target: bytes
    headers: Headers
    client_host: str | None = None
    scheme: str = "http"


@dataclass(frozen=True, slots=True)
class ReadBody:
    """Read the whole request body (at most `limit` bytes), then call `receive_request_body`."""

    limit: int


@dataclass(frozen=True, slots=True)
class Forward:
    """Send this request upstream.

    `body` is the complete body to send (the client's own bytes); None means the body is
    streamed from the client as it arrives (non-JSON uploads, GET, DELETE).
    """

    method: bytes
    target: bytes
    headers: HeaderList
    body: bytes | None


@dataclass(frozen=True, slots=True)
class Reject:
    """Answer the client locally with this response; nothing goes upstream."""

    status: int
    reason: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """A response head, upstream's as received or the one to send to the client."""

    status: int
    headers: Headers
    reason: bytes = b""


class ResultRewriter(Protocol):
    """The hook for rewriting results on their way to the client (widget CSP, OAuth).

    `wants` is asked once per exchange, with the request's MCP method, before the
    response arrives; only then are JSON responses buffered. `rewrite` receives a parsed
    result object and returns a replacement, or None to leave the bytes untouched.
    """

    def wants(self, method: str, client_name: str | None) -> bool:
        """Whether results of `method` (for this client) may need rewriting."""
        ...

    def rewrite(
        self, method: str, result: dict[str, Any], client_name: str | None
    ) -> dict[str, Any] | None:
        """Return the rewritten result, or None when nothing changed."""
        ...


@dataclass(frozen=True, slots=True)
class Settings:
    """What every exchange of one proxy shares, computed once from its `ProxyConfig`."""

    proxy: str
    upstream: routing.UpstreamURL
    bind: str
    allowed_hosts: tuple[str, ...]
    allowed_origins: tuple[str, ...]
    strict_headers: bool
    max_request_body_size: int
    max_response_body_size: int
    #: The driver's source of ids for mcpr's own span (`[otel] propagate`): when set, the
    #: upstream gets a `traceparent` naming that span. The core draws no random numbers.
    trace_ids: Callable[[], TraceIds] | None = None
    mcp_paths: frozenset[bytes] = frozenset({b"/"})
    public_origin: str | None = None
    rewriter: ResultRewriter | None = None
    sessions: SessionTracker | None = None
    #: `[fleet] replica` as ASCII bytes: session ids are prefixed with it (`mcpr_core.fleet`).
    replica: bytes | None = None

    @classmethod
    def from_config(
        cls,
        config: ProxyConfig,
        rewriter: ResultRewriter | None = None,
        sessions: SessionTracker | None = None,
        trace_ids: Callable[[], TraceIds] | None = None,
    ) -> Settings:
        """Derive the per-proxy settings from a validated configuration.

        Without an explicit `rewriter`, the widget CSP rewriter is used as soon as the
        configuration says anything about the public side (`[csp]` or `public_url`);
        a proxy configured with neither leaves every result as the upstream sent it.
        """
        upstream = routing.parse_upstream_url(config.mcp)
        paths = {b"/", upstream.path.encode("ascii")}
        public_origin: str | None = None
        if config.public_url:
            public = routing.parse_upstream_url(config.public_url)
            paths.add(public.path.encode("ascii"))
            public_origin = public.origin
        elif config.csp.domain:
            public_origin = "https://" + config.csp.domain
        if rewriter is None and (config.public_url or config.csp != CspConfig()):
            rewriter = CspRewriter(config.csp, upstream=upstream, public_url=config.public_url)
        return cls(
            proxy=config.name,
            upstream=upstream,
            bind=config.bind,
            allowed_hosts=tuple(config.allowed_hosts),
            allowed_origins=tuple(config.allowed_origins),
            strict_headers=config.strict_headers,
            max_request_body_size=config.max_request_body_size,
            max_response_body_size=config.max_response_body_size,
            trace_ids=trace_ids,
            mcp_paths=frozenset(paths),
            public_origin=public_origin,
            rewriter=rewriter,
            sessions=sessions,
            replica=config.fleet.replica.encode("ascii") if config.fleet.replica else None,
        )


@dataclass(frozen=True, slots=True)
class Captured:
    """A listing result handed to schema capture, with the request params (its cursor)."""

    method: str
    params: Any
    result: dict[str, Any]
