"""Request events in the words of the OpenTelemetry semantic conventions for MCP.

PRODUCT.md §6 and the conventions' MCP page: a span named `{mcp.method.name} {target}`,
where the target is the tool or prompt name (a low-cardinality name; resource URIs are
not, so `resources/read` spans are named by the method alone), with the attributes
`mcp.method.name`, `mcp.session.id`, `mcp.protocol.version`, `mcp.resource.uri`,
`gen_ai.tool.name`, `gen_ai.prompt.name`, `jsonrpc.request.id`,
`rpc.response.status_code` and `error.type`; and the histogram
`mcp.server.operation.duration` in seconds, whose attributes leave out the unbounded ones
(session id, request id, resource URI).

`error.type` is the JSON-RPC error code as a string (`-32602`), `tool_error` for a tool
result with `isError: true`, the HTTP status when mcpr itself answered (`502`, `504`, `413`),
or how a failed exchange ended when nothing else says (`timeout`, `truncated`, …).

This module imports nothing of OpenTelemetry: it maps events to plain values.
"""

from __future__ import annotations

from typing import Final

from mcpr_core.events import RequestEvent

__all__ = [
    "DURATION_BUCKETS",
    "DURATION_METRIC",
    "error_type",
    "metric_attributes",
    "span_attributes",
    "span_name",
]

DURATION_METRIC: Final = "mcp.server.operation.duration"
#: The conventions' advised bucket boundaries for `mcp.server.operation.duration`, in seconds.
DURATION_BUCKETS: Final = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)

Attributes = dict[str, str | int | bool]

#: Notes of exchanges that failed on the upstream's or mcpr's side (as the pipeline counts
#: them: a client hanging up or cancelling is not a failure of the server).
_FAILED_NOTES: Final = frozenset({"upstream_unreachable", "timeout", "upstream_error", "truncated"})


def span_name(event: RequestEvent) -> str:
    """`{mcp.method.name} {target}`; the method alone without a target; the HTTP verb for
    traffic that was not JSON-RPC (a GET listen stream, a DELETE)."""
    if event.mcp_method is None:
        return event.method
    target = event.tool if event.tool is not None else event.prompt_name
    return f"{event.mcp_method} {target}" if target else event.mcp_method


def _is_http_status(event: RequestEvent, code: int) -> bool:
    """mcpr answered itself and recorded the HTTP status as the error code."""
    return code == event.status and 400 <= code <= 599


def error_type(event: RequestEvent) -> str | None:
    """The `error.type` of the exchange, or None when it succeeded."""
    if event.error_code is not None:
        return str(event.error_code)
    if event.error_msg is not None and event.tool is not None and event.note not in _FAILED_NOTES:
        return "tool_error"
    if event.note in _FAILED_NOTES:
        return event.note
    if event.status >= 500:
        return str(event.status)
    return None


def _common(event: RequestEvent) -> Attributes:
    out: Attributes = {}
    if event.mcp_method is not None:
        out["mcp.method.name"] = event.mcp_method
    if event.protocol_version is not None:
        out["mcp.protocol.version"] = event.protocol_version
    if event.tool is not None:
        out["gen_ai.tool.name"] = event.tool
        out["gen_ai.operation.name"] = "execute_tool"
    if event.prompt_name is not None:
        out["gen_ai.prompt.name"] = event.prompt_name
    if event.error_code is not None and not _is_http_status(event, event.error_code):
        out["rpc.response.status_code"] = str(event.error_code)
    error = error_type(event)
    if error is not None:
        out["error.type"] = error
    return out


def span_attributes(event: RequestEvent) -> Attributes:
    """Every attribute of the span of `event` (absent values are left out)."""
    out = _common(event)
    if event.session_id is not None:
        out["mcp.session.id"] = event.session_id
    if event.resource_uri is not None:
        out["mcp.resource.uri"] = event.resource_uri
    if event.jsonrpc_id is not None:
        out["jsonrpc.request.id"] = str(event.jsonrpc_id)
    out["http.request.method"] = event.method
    if event.status:
        out["http.response.status_code"] = event.status
    out["url.path"] = event.path
    out["mcpr.proxy"] = event.proxy
    out["mcpr.note"] = event.note
    if event.client_name is not None:
        out["mcpr.client.name"] = event.client_name
    return out


def metric_attributes(event: RequestEvent) -> Attributes:
    """The attributes of the duration point of `event`: the bounded ones only."""
    return _common(event)
