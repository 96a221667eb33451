"""MCP on top of JSON-RPC: method taxonomy, client platforms, eras and event details.

Theory of operation
-------------------
`mcpr_core.jsonrpc` says what shape a message has; this module says what it means to
MCP, for the event the proxy records. Everything is a read of an already classified
`Message`; nothing is rewritten and nothing here decides whether traffic flows.

* `Method` lists every method name of both eras (PRODUCT.md §2.2, PROTOCOL.md §3) and
  `roles()` says who may send it. Unknown methods are normal: "A classifier should keep
  'unknown method' as a first-class kind and forward it unchanged" (PROTOCOL.md §3.2), so
  `lookup()` returns None and callers keep the string.
* `client_platform()` maps a self-reported client name to a host (PRODUCT.md §2.2).
* `request_era()` applies decision 8 of PROTOCOL.md §7.
* `describe_request()` / `describe_response()` pull the few fields an event carries.
  Bodies come from the network, so every lookup checks its type: `params` may be any
  JSON value, `clientInfo` may be a string, `content` may be an object. Wrong types read
  as None; these functions never raise for a `Message` built from JSON.
* `check_headers()` compares the SEP-2243 request headers with the body, which is the
  authority (PROTOCOL.md §7 decision 7): the proxy records a mismatch, and rejects only
  when configured to.
"""

from __future__ import annotations

import enum
import hashlib
import json
from base64 import b64decode
from dataclasses import dataclass
from typing import Any

from mcpr_core.events import ERROR_MSG_MAX, Era
from mcpr_core.jsonrpc import Message, MessageKind

__all__ = [
    "LEGACY_PROTOCOL_VERSIONS",
    "META_PREFIX",
    "MODERN_PROTOCOL_VERSION",
    "HeaderCheck",
    "Method",
    "Platform",
    "RequestDetail",
    "ResponseDetail",
    "Role",
    "check_headers",
    "client_platform",
    "correlation_key",
    "describe_request",
    "describe_response",
    "input_requests",
    "is_retry",
    "lookup",
    "request_era",
    "roles",
]

MODERN_PROTOCOL_VERSION = "2026-07-28"
LEGACY_PROTOCOL_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")

#: Prefix of the reserved `_meta` keys of the 2026-07-28 per-request envelope.
META_PREFIX = "io.modelcontextprotocol/"
_META_CLIENT_INFO = META_PREFIX + "clientInfo"
_META_PROTOCOL_VERSION = META_PREFIX + "protocolVersion"


class Method(enum.StrEnum):
    """Every MCP method and notification name mcpr knows, across all revisions."""

    # Lifecycle and utilities.
    INITIALIZE = "initialize"
    PING = "ping"
    SERVER_DISCOVER = "server/discover"  # 2026-07-28
    LOGGING_SET_LEVEL = "logging/setLevel"
    COMPLETION_COMPLETE = "completion/complete"
    # Server features.
    TOOLS_LIST = "tools/list"
    TOOLS_CALL = "tools/call"
    RESOURCES_LIST = "resources/list"
    RESOURCES_TEMPLATES_LIST = "resources/templates/list"
    RESOURCES_READ = "resources/read"
    RESOURCES_SUBSCRIBE = "resources/subscribe"
    RESOURCES_UNSUBSCRIBE = "resources/unsubscribe"
    PROMPTS_LIST = "prompts/list"
    PROMPTS_GET = "prompts/get"
    SUBSCRIPTIONS_LISTEN = "subscriptions/listen"  # 2026-07-28
    # Tasks: core in 2025-11-25, the `io.modelcontextprotocol/tasks` extension since.
    TASKS_LIST = "tasks/list"
    TASKS_GET = "tasks/get"
    TASKS_RESULT = "tasks/result"
    TASKS_CANCEL = "tasks/cancel"
    TASKS_UPDATE = "tasks/update"  # extension only
    # Client features (server → client requests; inside `inputRequests` since 2026-07-28).
    SAMPLING_CREATE_MESSAGE = "sampling/createMessage"
    ELICITATION_CREATE = "elicitation/create"
    ROOTS_LIST = "roots/list"
    # Notifications.
    NOTIFICATIONS_INITIALIZED = "notifications/initialized"
    NOTIFICATIONS_CANCELLED = "notifications/cancelled"
    NOTIFICATIONS_PROGRESS = "notifications/progress"
    NOTIFICATIONS_MESSAGE = "notifications/message"
    NOTIFICATIONS_ROOTS_LIST_CHANGED = "notifications/roots/list_changed"
    NOTIFICATIONS_RESOURCES_LIST_CHANGED = "notifications/resources/list_changed"
    NOTIFICATIONS_RESOURCES_UPDATED = "notifications/resources/updated"
    NOTIFICATIONS_TOOLS_LIST_CHANGED = "notifications/tools/list_changed"
    NOTIFICATIONS_PROMPTS_LIST_CHANGED = "notifications/prompts/list_changed"
    NOTIFICATIONS_ELICITATION_COMPLETE = "notifications/elicitation/complete"
    NOTIFICATIONS_TASKS_STATUS = "notifications/tasks/status"
    NOTIFICATIONS_SUBSCRIPTIONS_ACKNOWLEDGED = "notifications/subscriptions/acknowledged"


class Role(enum.Enum):
    """Who sends a method, and as what. A method may have several roles."""

    CLIENT_REQUEST = "client_request"
    CLIENT_NOTIFICATION = "client_notification"
    SERVER_REQUEST = "server_request"
    SERVER_NOTIFICATION = "server_notification"


_CR = Role.CLIENT_REQUEST
_CN = Role.CLIENT_NOTIFICATION
_SR = Role.SERVER_REQUEST
_SN = Role.SERVER_NOTIFICATION

# The union of PRODUCT.md §2.2 and PROTOCOL.md §3.1/§3.2: one row per method, so a method
# added to one era but not the other still gets every role it has anywhere.
_ROLES: dict[Method, frozenset[Role]] = {
    Method.INITIALIZE: frozenset({_CR}),
    Method.PING: frozenset({_CR, _SR}),
    Method.SERVER_DISCOVER: frozenset({_CR}),
    Method.LOGGING_SET_LEVEL: frozenset({_CR}),
    Method.COMPLETION_COMPLETE: frozenset({_CR}),
    Method.TOOLS_LIST: frozenset({_CR}),
    Method.TOOLS_CALL: frozenset({_CR}),
    Method.RESOURCES_LIST: frozenset({_CR}),
    Method.RESOURCES_TEMPLATES_LIST: frozenset({_CR}),
    Method.RESOURCES_READ: frozenset({_CR}),
    Method.RESOURCES_SUBSCRIBE: frozenset({_CR}),
    Method.RESOURCES_UNSUBSCRIBE: frozenset({_CR}),
    Method.PROMPTS_LIST: frozenset({_CR}),
    Method.PROMPTS_GET: frozenset({_CR}),
    Method.SUBSCRIPTIONS_LISTEN: frozenset({_CR}),
    # 2025-11-25 lists tasks/* under both ClientRequest and ServerRequest.
    Method.TASKS_LIST: frozenset({_CR, _SR}),
    Method.TASKS_GET: frozenset({_CR, _SR}),
    Method.TASKS_RESULT: frozenset({_CR, _SR}),
    Method.TASKS_CANCEL: frozenset({_CR, _SR}),
    # The extension's tasks/update carries the client's input responses to a task.
    Method.TASKS_UPDATE: frozenset({_CR}),
    Method.SAMPLING_CREATE_MESSAGE: frozenset({_SR}),
    Method.ELICITATION_CREATE: frozenset({_SR}),
    Method.ROOTS_LIST: frozenset({_SR}),
    Method.NOTIFICATIONS_INITIALIZED: frozenset({_CN}),
    Method.NOTIFICATIONS_CANCELLED: frozenset({_CN, _SN}),
    Method.NOTIFICATIONS_PROGRESS: frozenset({_CN, _SN}),
    Method.NOTIFICATIONS_MESSAGE: frozenset({_SN}),
    Method.NOTIFICATIONS_ROOTS_LIST_CHANGED: frozenset({_CN}),
    Method.NOTIFICATIONS_RESOURCES_LIST_CHANGED: frozenset({_SN}),
    Method.NOTIFICATIONS_RESOURCES_UPDATED: frozenset({_SN}),
    Method.NOTIFICATIONS_TOOLS_LIST_CHANGED: frozenset({_SN}),
    Method.NOTIFICATIONS_PROMPTS_LIST_CHANGED: frozenset({_SN}),
    Method.NOTIFICATIONS_ELICITATION_COMPLETE: frozenset({_SN}),
    Method.NOTIFICATIONS_TASKS_STATUS: frozenset({_CN, _SN}),
    Method.NOTIFICATIONS_SUBSCRIPTIONS_ACKNOWLEDGED: frozenset({_SN}),
}

_BY_NAME: dict[str, Method] = {m.value: m for m in Method}


def lookup(method: str) -> Method | None:
    """Return the known `Method` of that name, or None for a method mcpr does not know."""
    return _BY_NAME.get(method)


def roles(method: Method) -> frozenset[Role]:
    """Return every role `method` has in any revision (client/server, request/notification)."""
    return _ROLES[method]


class Platform(enum.StrEnum):
    """The AI host a client name points to."""

    CLAUDE = "claude"
    CURSOR = "cursor"
    CHATGPT = "chatgpt"
    VSCODE = "vscode"
    WINDSURF = "windsurf"
    UNKNOWN = "unknown"


# PRODUCT.md §2.2: "lower-cased substring, first match". Order matters: Cursor calls
# itself "cursor-vscode", which must not read as VS Code.
_PLATFORM_NEEDLES: tuple[tuple[str, Platform], ...] = (
    ("claude", Platform.CLAUDE),
    ("cursor", Platform.CURSOR),
    ("chatgpt", Platform.CHATGPT),
    ("openai", Platform.CHATGPT),
    ("copilot", Platform.VSCODE),
    ("vscode", Platform.VSCODE),
    ("vs-code", Platform.VSCODE),
    ("visual studio code", Platform.VSCODE),
    ("windsurf", Platform.WINDSURF),
)


def client_platform(client_name: str | None) -> Platform:
    """Map a self-reported client name (e.g. `openai-mcp`, `claude-ai`) to its platform."""
    if not client_name:
        return Platform.UNKNOWN
    name = client_name.lower()
    for needle, platform in _PLATFORM_NEEDLES:
        if needle in name:
            return platform
    return Platform.UNKNOWN


def _is_legacy_version(version: str) -> bool:
    # Protocol versions are ISO dates, so string order is date order. A value that is not
    # shaped like a date (or a future date) is not "before 2026-07-28": the Python SDK
    # likewise sends every non-handshake-era value down its modern path, where the
    # server answers -32022 UnsupportedProtocolVersion.
    return (
        len(version) == 10
        and version.isascii()
        and version[4] == "-"
        and version[7] == "-"
        and version.replace("-", "").isdigit()
        and version < MODERN_PROTOCOL_VERSION
    )


def request_era(
    method: str | None, *, session_id: str | None, protocol_version_header: str | None
) -> Era:
    """Decide which era a request belongs to (PROTOCOL.md §7 decision 8).

    "A request is legacy when it is `initialize`, carries `Mcp-Session-Id`, or has no
    `MCP-Protocol-Version` header or a value before `2026-07-28`; otherwise modern."
    An empty `Mcp-Session-Id` names no session and counts as absent.
    """
    if method == Method.INITIALIZE or session_id:
        return "legacy"
    if protocol_version_header is None or _is_legacy_version(protocol_version_header):
        return "legacy"
    return "modern"


@dataclass(frozen=True, slots=True)
class RequestDetail:
    """What an event records about a request or notification.

    `protocol_version` is `initialize`'s `params.protocolVersion`, else the modern
    envelope's `_meta["io.modelcontextprotocol/protocolVersion"]`. `has_meta_envelope` is
    True when `params._meta` carries any `io.modelcontextprotocol/` key. `traceparent` and
    `tracestate` are the W3C trace context a client may put in `params._meta`, as given.
    """

    method: str | None
    tool: str | None
    resource_uri: str | None
    prompt_name: str | None
    client_name: str | None
    client_version: str | None
    protocol_version: str | None
    has_meta_envelope: bool
    traceparent: str | None
    tracestate: str | None = None


_URI_METHODS = frozenset(
    {Method.RESOURCES_READ, Method.RESOURCES_SUBSCRIBE, Method.RESOURCES_UNSUBSCRIBE}
)


def _get_str(obj: dict[str, Any] | None, key: str) -> str | None:
    if obj is None:
        return None
    value = obj.get(key)
    return value if isinstance(value, str) else None


def _get_dict(obj: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    if obj is None:
        return None
    value = obj.get(key)
    return value if isinstance(value, dict) else None


def describe_request(msg: Message) -> RequestDetail:
    """Extract the event fields of a request (or notification); never raises.

    Tool from `tools/call` `params.name`, resource URI from `resources/read|subscribe|
    unsubscribe` `params.uri`, prompt from `prompts/get` `params.name`. The client's
    identity comes from `initialize` `params.clientInfo` (legacy) or, on any request,
    `params._meta["io.modelcontextprotocol/clientInfo"]` (2026-07-28, PROTOCOL.md §4.4).
    A response yields a detail with every field empty.
    """
    method = msg.method
    params = msg.params if isinstance(msg.params, dict) else None
    meta = _get_dict(params, "_meta")

    tool = _get_str(params, "name") if method == Method.TOOLS_CALL else None
    prompt_name = _get_str(params, "name") if method == Method.PROMPTS_GET else None
    resource_uri = _get_str(params, "uri") if method in _URI_METHODS else None

    client_info: dict[str, Any] | None = None
    protocol_version: str | None = None
    if method == Method.INITIALIZE:
        client_info = _get_dict(params, "clientInfo")
        protocol_version = _get_str(params, "protocolVersion")
    if client_info is None:
        client_info = _get_dict(meta, _META_CLIENT_INFO)
    if protocol_version is None:
        protocol_version = _get_str(meta, _META_PROTOCOL_VERSION)

    has_envelope = False
    if meta is not None:
        for key in meta:
            if isinstance(key, str) and key.startswith(META_PREFIX):
                has_envelope = True
                break

    return RequestDetail(
        method=method,
        tool=tool,
        resource_uri=resource_uri,
        prompt_name=prompt_name,
        client_name=_get_str(client_info, "name"),
        client_version=_get_str(client_info, "version"),
        protocol_version=protocol_version,
        has_meta_envelope=has_envelope,
        traceparent=_get_str(meta, "traceparent"),
        tracestate=_get_str(meta, "tracestate"),
    )


@dataclass(frozen=True, slots=True)
class ResponseDetail:
    """What an event records about a response.

    `is_error` covers both a JSON-RPC error and a tool result with `isError: true`
    ("Tool failures are *results* ... error-rate metrics must look inside
    `result.isError` as well as `error`", PROTOCOL.md §2). For the latter `error_code` is
    None and `error_msg` is the first text content item, or "tool error".
    `result_type` is the result's `resultType` as sent (None when absent, which the spec
    says to treat as "complete"; `"input_required"` is neither an error nor final).
    `protocol_version` is a result's `protocolVersion` (the `initialize` answer).
    """

    error_code: int | None
    error_msg: str | None
    is_error: bool
    result_type: str | None
    protocol_version: str | None


_NO_RESPONSE_DETAIL = ResponseDetail(None, None, False, None, None)
_TOOL_ERROR_MSG = "tool error"


def _first_text(content: object) -> str | None:
    if not isinstance(content, list):
        return None
    for item in content:
        if isinstance(item, dict) and item.get("type") == "text":
            text = item.get("text")
            if isinstance(text, str):
                return text
    return None


def describe_response(msg: Message) -> ResponseDetail:
    """Extract the event fields of a result or error; never raises.

    `error_msg` is cut to `ERROR_MSG_MAX` characters. A request or notification yields a
    detail with every field empty.
    """
    if msg.kind is MessageKind.ERROR:
        assert msg.error is not None  # an ERROR message always carries its error object
        return ResponseDetail(msg.error.code, msg.error.message[:ERROR_MSG_MAX], True, None, None)
    if msg.kind is not MessageKind.RESULT or not isinstance(msg.result, dict):
        return _NO_RESPONSE_DETAIL
    result: dict[str, Any] = msg.result
    error_msg: str | None = None
    # Only the JSON literal `true` marks a tool error; "isError": 1 or "yes" does not.
    is_error = result.get("isError") is True
    if is_error:
        error_msg = (_first_text(result.get("content")) or _TOOL_ERROR_MSG)[:ERROR_MSG_MAX]
    return ResponseDetail(
        error_code=None,
        error_msg=error_msg,
        is_error=is_error,
        result_type=_get_str(result, "resultType"),
        protocol_version=_get_str(result, "protocolVersion"),
    )


@dataclass(frozen=True, slots=True)
class HeaderCheck:
    """Result of comparing the SEP-2243 request headers with the body.

    `mismatched` names each header ("Mcp-Method", "Mcp-Name", "MCP-Protocol-Version") that
    disagrees with the body or is missing where the spec requires it; empty means agreement.
    """

    mismatched: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no header disagrees with the body."""
        return not self.mismatched


_HEADERS_OK = HeaderCheck()
_B64_OPEN = "=?base64?"
_B64_CLOSE = "?="

# Methods whose `Mcp-Name` mirrors a body field (PROTOCOL.md §1.5): "`Mcp-Name` (=
# `params.name` for `tools/call` / `prompts/get`, `params.uri` for `resources/read`)".
_NAME_FIELD: dict[str, str] = {
    Method.TOOLS_CALL: "name",
    Method.PROMPTS_GET: "name",
    Method.RESOURCES_READ: "uri",
}


def _decode_header(value: str) -> str | None:
    # "Values outside visible ASCII ... are sent as `=?base64?<base64 of UTF-8>?=`
    # (lower-case markers)". None when the value claims to be encoded but is not valid.
    if not (value.startswith(_B64_OPEN) and value.endswith(_B64_CLOSE)):
        return value
    if len(value) < len(_B64_OPEN) + len(_B64_CLOSE):
        return value  # "=?base64?=" overlaps its own markers: a literal value
    try:
        raw = b64decode(value[len(_B64_OPEN) : -len(_B64_CLOSE)], validate=True)
        return raw.decode("utf-8")
    except ValueError:  # binascii.Error, non-ASCII text, or bytes that are not UTF-8
        return None


def _header_agrees(header: str | None, body: str | None) -> bool:
    if header is None:
        return body is None
    return body is not None and _decode_header(header) == body


def check_headers(
    msg: Message,
    *,
    mcp_method: str | None,
    mcp_name: str | None,
    protocol_version: str | None,
    session_id: str | None = None,
) -> HeaderCheck:
    """Compare `Mcp-Method`, `Mcp-Name` and `MCP-Protocol-Version` with the body.

    Only modern-era requests are checked (`request_era` with `protocol_version` as the
    header; pass `session_id` when the request carried one): earlier revisions define no
    such headers, and PROTOCOL.md §1.5 notes the header "is then unvalidated". Header
    values arrive as received; `=?base64?…?=` values are decoded before comparing.

    * `Mcp-Method` must equal `method` ("`Mcp-Method` (= `method`, all requests)").
    * `Mcp-Name` must equal `params.name` (`tools/call`, `prompts/get`) or `params.uri`
      (`resources/read`); missing counts as a mismatch, since it is "REQUIRED".
    * `MCP-Protocol-Version` must equal `_meta["io.modelcontextprotocol/protocolVersion"]`
      when the body carries one.
    """
    if msg.kind is not MessageKind.REQUEST:
        return _HEADERS_OK
    method = msg.method
    assert method is not None  # a request always has its method
    era = request_era(method, session_id=session_id, protocol_version_header=protocol_version)
    if era == "legacy":
        return _HEADERS_OK
    assert protocol_version is not None  # a modern request always names its version
    params = msg.params if isinstance(msg.params, dict) else None

    mismatched: list[str] = []
    if not _header_agrees(mcp_method, method):
        mismatched.append("Mcp-Method")
    name_field = _NAME_FIELD.get(method)
    if name_field is not None and not _header_agrees(mcp_name, _get_str(params, name_field)):
        mismatched.append("Mcp-Name")
    body_version = _get_str(_get_dict(params, "_meta"), _META_PROTOCOL_VERSION)
    if body_version is not None and _decode_header(protocol_version) != body_version:
        mismatched.append("MCP-Protocol-Version")
    return HeaderCheck(tuple(mismatched)) if mismatched else _HEADERS_OK


# -- multi round-trip requests (2026-07-28, SEP-2322) ------------------------------------
#
# A server that needs input answers with `resultType: "input_required"`, `inputRequests`
# (key -> an `elicitation/create`, `sampling/createMessage` or `roots/list` request) and an
# opaque `requestState`; "the client retries the *original* request (new id) with
# `params.inputResponses` (same keys) and `params.requestState`" (PROTOCOL.md §1.5). The
# rounds of one logical call therefore share everything in `params` except those two keys
# (and the per-request `_meta`), which is what the correlation key hashes.

_ROUND_KEYS = frozenset({"inputResponses", "requestState", "_meta"})


def is_retry(params: object) -> bool:
    """Whether request params carry the answers of an earlier `input_required` round."""
    return isinstance(params, dict) and ("inputResponses" in params or "requestState" in params)


def correlation_key(method: str, params: object) -> str:
    """A stable key shared by every round of one multi round-trip call (16 hex digits)."""
    stable = (
        {k: v for k, v in params.items() if k not in _ROUND_KEYS}
        if isinstance(params, dict)
        else params
    )
    try:
        text = json.dumps([method, stable], sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):  # not JSON-serialisable: cannot come from a parsed body
        text = method
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def input_requests(result: object) -> tuple[str, ...]:
    """`key:method` for each entry of an `input_required` result's `inputRequests`."""
    if not isinstance(result, dict):
        return ()
    requests = result.get("inputRequests")
    if not isinstance(requests, dict):
        return ()
    out = []
    for key, request in requests.items():
        method = request.get("method") if isinstance(request, dict) else None
        out.append(f"{key}:{method if isinstance(method, str) else '?'}")
    return tuple(out)
