"""W3C Trace Context: reading a `traceparent`, and writing one for mcpr's own span.

A client that traces its calls says so with `traceparent` (and optionally `tracestate`),
either as HTTP headers or, per the 2026-07-28 convention, inside the request's
`params._meta`. mcpr records what it received on the request event; an OpenTelemetry sink
then makes mcpr's span a child of the client's.

Forwarding stays byte-for-byte unless the operator asks for propagation: then the driver
chooses mcpr's span ids up front (`TraceIds`; this package draws no random numbers) and the
pipeline sends `traceparent` toward the upstream naming mcpr's span, so the upstream's own
spans nest under it.

Parsing follows W3C Trace Context Level 1 §3.2: version `00` is exactly 55 characters of
lower-case hex fields; a higher version may append fields after a dash, which are ignored;
version `ff`, an all-zero trace id or parent id, or upper-case hex make the header invalid,
and an invalid header is treated as absent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "TRACESTATE_MAX",
    "TraceIds",
    "TraceParent",
    "child_of",
    "client_context",
    "parse_traceparent",
]

#: Longest `tracestate` kept, in characters: W3C Trace Context §3.3.1.1 lets a vendor drop
#: the whole header past 512 characters, and so does mcpr rather than store it.
TRACESTATE_MAX: Final = 512

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE: Final = "0" * 32
_ZERO_SPAN: Final = "0" * 16


@dataclass(frozen=True, slots=True)
class TraceParent:
    """A valid `traceparent`: 32 hex digits of trace id, 16 of parent span id, the flags."""

    trace_id: str
    parent_id: str
    flags: int

    @property
    def sampled(self) -> bool:
        """The `sampled` flag (bit 0): the caller records this trace."""
        return bool(self.flags & 1)

    def header(self) -> str:
        """The value as a version-00 header: `00-<trace id>-<parent id>-<flags>`."""
        return f"00-{self.trace_id}-{self.parent_id}-{self.flags:02x}"


@dataclass(frozen=True, slots=True)
class TraceIds:
    """Ids for mcpr's own span, chosen by the driver before the request is forwarded.

    `trace_id` (32 hex digits) and `sampled` only matter when the request carries no trace
    context: then mcpr's span starts a new trace. `span_id` is 16 hex digits.
    """

    trace_id: str
    span_id: str
    sampled: bool


def parse_traceparent(value: str | bytes | None) -> TraceParent | None:
    """The trace context of a `traceparent` value, or None when it is absent or invalid."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    match = _TRACEPARENT.fullmatch(value.strip(" \t"))
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return TraceParent(trace_id=trace_id, parent_id=parent_id, flags=int(flags, 16))


def client_context(
    meta_traceparent: str | None,
    meta_tracestate: str | None,
    header_traceparent: bytes | None,
    header_tracestate: bytes | None,
) -> tuple[TraceParent | None, str | None]:
    """The client's trace context and its `tracestate`, or (None, None).

    `params._meta` wins when its `traceparent` is valid (it names the very message, while
    headers may be set once per connection by an HTTP library); otherwise the HTTP headers.
    `tracestate` comes from the same place, and is dropped when empty, not printable ASCII
    or over TRACESTATE_MAX characters.
    """
    parent = parse_traceparent(meta_traceparent)
    state = meta_tracestate
    if parent is None:
        parent = parse_traceparent(header_traceparent)
        state = header_tracestate.decode("latin-1") if header_tracestate is not None else None
    if parent is None:
        return None, None
    if state is not None:
        state = state.strip(" \t")
        if (
            not state
            or len(state) > TRACESTATE_MAX
            or not (state.isascii() and state.isprintable())
        ):
            state = None
    return parent, state


def child_of(parent: TraceParent | None, ids: TraceIds) -> TraceParent:
    """mcpr's span as the upstream is told of it: in the client's trace, with the client's
    flags; or, without a client trace, in a new trace with the driver's ids and decision."""
    if parent is None:
        return TraceParent(trace_id=ids.trace_id, parent_id=ids.span_id, flags=int(ids.sampled))
    return TraceParent(trace_id=parent.trace_id, parent_id=ids.span_id, flags=parent.flags)
