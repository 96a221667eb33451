"""Tests of `mcpr_core.mcp`: taxonomy, platforms, eras, details and header checks."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcpr_core import mcp
from mcpr_core.events import ERROR_MSG_MAX
from mcpr_core.jsonrpc import Message, from_object, parse
from mcpr_core.mcp import (
    LEGACY_PROTOCOL_VERSIONS,
    MODERN_PROTOCOL_VERSION,
    HeaderCheck,
    Method,
    Platform,
    RequestDetail,
    ResponseDetail,
    Role,
    check_headers,
    client_platform,
    describe_request,
    describe_response,
    lookup,
    request_era,
    roles,
)
from tests.core.sse_data import sse_data
from tests.fixtures import FIXTURES


def _records() -> dict[str, dict[str, Any]]:
    records = {}
    for path in sorted(FIXTURES.glob("*.jsonl")):
        for index, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            records[f"{path.stem}[{index}]"] = json.loads(line)
    return records


RECORDS = _records()
WITH_BODY = sorted(name for name, r in RECORDS.items() if r["request"]["body"])


def _request(name: str) -> Message:
    msg = parse(RECORDS[name]["request"]["body"])
    assert isinstance(msg, Message)
    return msg


def _final_response(name: str) -> Message:
    response = RECORDS[name]["response"]
    headers = {k.lower(): v for k, v in response["headers"]}
    body = response["body"]
    if "text/event-stream" in headers.get("content-type", ""):
        body = sse_data(body)[-1]
    msg = parse(body)
    assert isinstance(msg, Message)
    return msg


def _msg(obj: dict[str, Any]) -> Message:
    msg = from_object({"jsonrpc": "2.0", **obj})
    assert isinstance(msg, Message)
    return msg


# --- taxonomy ----------------------------------------------------------------------------

# The lists of PRODUCT.md §2.2 and PROTOCOL.md §3.1/§3.2, as written there.
SPEC_ROLES: list[tuple[Role, str]] = [
    (Role.CLIENT_REQUEST, "ping initialize tools/list tools/call resources/list "
     "resources/templates/list resources/read resources/subscribe resources/unsubscribe "
     "prompts/list prompts/get completion/complete logging/setLevel tasks/list tasks/get "
     "tasks/result tasks/cancel server/discover subscriptions/listen tasks/update"),
    (Role.CLIENT_NOTIFICATION, "notifications/initialized notifications/cancelled "
     "notifications/progress notifications/roots/list_changed notifications/tasks/status"),
    (Role.SERVER_REQUEST, "ping sampling/createMessage elicitation/create roots/list tasks/get "
     "tasks/result tasks/list tasks/cancel"),
    (Role.SERVER_NOTIFICATION, "notifications/message notifications/progress "
     "notifications/cancelled notifications/resources/list_changed "
     "notifications/resources/updated notifications/tools/list_changed "
     "notifications/prompts/list_changed notifications/elicitation/complete "
     "notifications/tasks/status notifications/subscriptions/acknowledged"),
]  # fmt: skip
SPEC_PAIRS = [(role, name) for role, names in SPEC_ROLES for name in names.split()]


@pytest.mark.parametrize(("role", "name"), SPEC_PAIRS, ids=[f"{r.name}:{n}" for r, n in SPEC_PAIRS])
def test_every_spec_method_is_known_with_its_role(role: Role, name: str) -> None:
    """Each method the specs list is a `Method` and has the role the spec gives it."""
    method = lookup(name)
    assert method is not None
    assert method == name
    assert role in roles(method)


def test_roles_are_exactly_the_spec_lists() -> None:
    """No `Method` exists, or has a role, that the spec lists do not give it."""
    expected: dict[str, set[Role]] = {}
    for role, name in SPEC_PAIRS:
        expected.setdefault(name, set()).add(role)
    assert {m.value: set(roles(m)) for m in Method} == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ping", {Role.CLIENT_REQUEST, Role.SERVER_REQUEST}),
        ("notifications/progress", {Role.CLIENT_NOTIFICATION, Role.SERVER_NOTIFICATION}),
        ("tasks/get", {Role.CLIENT_REQUEST, Role.SERVER_REQUEST}),
        ("tools/call", {Role.CLIENT_REQUEST}),
    ],
)
def test_methods_with_several_roles(name: str, expected: set[Role]) -> None:
    """Methods sent by both sides carry every role they have."""
    method = lookup(name)
    assert method is not None
    assert roles(method) == expected


@pytest.mark.parametrize(
    "name", ["no/such/method", "", "Tools/Call", "tools/call ", "ui/initialize"]
)
def test_unknown_methods_look_up_as_none(name: str) -> None:
    """Unknown names (including case and whitespace variants) are None, kept by callers."""
    assert lookup(name) is None


def test_method_is_a_str() -> None:
    """`Method` members compare and format as their wire names."""
    assert isinstance(Method.TOOLS_CALL, str)
    assert {"tools/call": 1}[Method.TOOLS_CALL] == 1
    assert f"{Method.SERVER_DISCOVER}" == "server/discover"
    assert lookup("tools/call") is Method.TOOLS_CALL


def test_protocol_versions() -> None:
    """The modern version sorts after every legacy one (era detection relies on date order)."""
    assert MODERN_PROTOCOL_VERSION == "2026-07-28"
    assert tuple(sorted(LEGACY_PROTOCOL_VERSIONS)) == LEGACY_PROTOCOL_VERSIONS
    assert max(LEGACY_PROTOCOL_VERSIONS) < MODERN_PROTOCOL_VERSION


def test_public_names() -> None:
    """Every name in `__all__` exists, so the public surface cannot drift silently."""
    assert all(hasattr(mcp, name) for name in mcp.__all__)


# --- platforms ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "platform"),
    [
        ("claude-ai", Platform.CLAUDE),
        ("claude-code", Platform.CLAUDE),
        ("Claude Desktop", Platform.CLAUDE),
        ("cursor-vscode", Platform.CURSOR),  # first match wins over "vscode"
        ("Cursor", Platform.CURSOR),
        ("openai-mcp", Platform.CHATGPT),
        ("ChatGPT", Platform.CHATGPT),
        ("OpenAI Agents", Platform.CHATGPT),
        ("GitHub Copilot", Platform.VSCODE),
        ("Visual Studio Code", Platform.VSCODE),
        ("Visual Studio Code - Insiders", Platform.VSCODE),
        ("vscode-mcp", Platform.VSCODE),
        ("my-vs-code-ext", Platform.VSCODE),
        ("Windsurf", Platform.WINDSURF),
        ("claude via cursor", Platform.CLAUDE),
        ("Code - OSS", Platform.UNKNOWN),
        ("codex-mcp-client", Platform.UNKNOWN),
        ("mcp", Platform.UNKNOWN),
        ("mcp-inspector", Platform.UNKNOWN),
        ("", Platform.UNKNOWN),
        (None, Platform.UNKNOWN),
    ],
)
def test_client_platform(name: str | None, platform: Platform) -> None:
    """The platform is the first lower-cased substring match in PRODUCT §2.2's order."""
    assert client_platform(name) is platform


# --- eras --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "session_id", "header", "era"),
    [
        ("tools/list", None, "2026-07-28", "modern"),
        (None, None, "2026-07-28", "modern"),
        ("initialize", None, "2026-07-28", "legacy"),
        ("tools/list", "abc", "2026-07-28", "legacy"),
        ("tools/list", "", "2026-07-28", "modern"),
        ("tools/list", None, None, "legacy"),
        *[("tools/list", None, v, "legacy") for v in LEGACY_PROTOCOL_VERSIONS],
        ("tools/list", None, "2025-01-01", "legacy"),
        ("tools/list", None, "2026-07-27", "legacy"),
        ("tools/list", None, "2099-01-01", "modern"),
        ("tools/list", None, "draft", "modern"),
        ("tools/list", None, "", "modern"),
        ("tools/list", None, "2025-1x-01", "modern"),
        ("tools/list", None, "2025/11/25", "modern"),
        ("tools/list", None, "\uff12\uff10\uff12\uff15-11-25", "modern"),
    ],
)
def test_request_era(
    method: str | None, session_id: str | None, header: str | None, era: str
) -> None:
    """Legacy means initialize, a session id, or no/pre-2026-07-28 version header (§7.8)."""
    assert request_era(method, session_id=session_id, protocol_version_header=header) == era


@pytest.mark.parametrize("name", WITH_BODY)
def test_fixture_eras(name: str) -> None:
    """The recorded legacy exchanges read as legacy and the 2026-07-28 ones as modern."""
    headers = RECORDS[name]["request"]["headers"]
    era = request_era(
        _request(name).method,
        session_id=headers.get("Mcp-Session-Id"),
        protocol_version_header=headers.get("MCP-Protocol-Version"),
    )
    assert era == ("modern" if name.startswith("modern") else "legacy")


# --- describe_request --------------------------------------------------------------------

_OPENAI = {"client_name": "openai-mcp", "client_version": "1.0.0", "has_meta_envelope": True}
_MODERN = {**_OPENAI, "protocol_version": "2026-07-28"}
_CLAUDE = {"client_name": "claude-ai", "client_version": "0.1.0", "protocol_version": "2025-11-25"}

EXPECTED_REQUESTS: dict[str, dict[str, Any]] = {
    "conformance-everything[0]": _CLAUDE,
    "conformance-everything[1]": {},
    "conformance-everything[2]": {},
    "conformance-everything[3]": {"tool": "test_tool_with_progress"},
    "conformance-everything[4]": {"tool": "test_tool_with_logging"},
    "conformance-everything[5]": {"tool": "test_error_handling"},
    "conformance-everything[6]": {"resource_uri": "test://static-binary"},
    "conformance-everything[7]": {"prompt_name": "test_prompt_with_arguments"},
    "conformance-everything[8]": {},
    "conformance-everything[9]": {},
    "mcp-apps-map[0]": _CLAUDE,
    "mcp-apps-map[1]": {},
    "mcp-apps-map[2]": {},
    "mcp-apps-map[3]": {},
    "mcp-apps-map[4]": {"resource_uri": "ui://cesium-map/mcp-app.html"},
    "mcp-apps-map[5]": {"tool": "nonexistent"},
    "modern-2026-07-28[0]": _MODERN,
    "modern-2026-07-28[1]": _MODERN,
    "modern-2026-07-28[2]": {**_MODERN, "tool": "echo"},
    "modern-2026-07-28[3]": {**_MODERN, "tool": "countdown"},
    "modern-2026-07-28[4]": {**_MODERN, "tool": "confirm"},
    "modern-2026-07-28[5]": {**_MODERN, "resource_uri": "demo://greeting"},
    "modern-2026-07-28[6]": {**_MODERN, "prompt_name": "review"},
    "modern-2026-07-28[7]": {**_MODERN, "tool": "echo"},
    "modern-2026-07-28[8]": {**_OPENAI, "protocol_version": "2099-01-01"},
    "modern-2026-07-28[9]": _MODERN,
    "modern-2026-07-28[10]": {**_MODERN, "tool": "echo"},
    "modern-2026-07-28[12]": {**_MODERN, "tool": "confirm"},
    "modern-2026-07-28[13]": _MODERN,
}


def test_request_table_is_complete() -> None:
    """Every recorded request body has an expected detail."""
    assert sorted(EXPECTED_REQUESTS) == WITH_BODY


@pytest.mark.parametrize("name", WITH_BODY)
def test_fixture_request_detail(name: str) -> None:
    """Tool, URI, prompt, client identity and version come out of every recorded request."""
    msg = _request(name)
    empty = dict.fromkeys(RequestDetail.__slots__)
    expected = RequestDetail(
        **{**empty, "has_meta_envelope": False, "method": msg.method, **EXPECTED_REQUESTS[name]}
    )
    assert describe_request(msg) == expected


@pytest.mark.parametrize("name", WITH_BODY)
def test_fixture_client_platforms(name: str) -> None:
    """ChatGPT is recognised from the modern `_meta` identity, Claude from `initialize`."""
    client = describe_request(_request(name)).client_name
    if name.startswith("modern"):
        assert client_platform(client) is Platform.CHATGPT
    elif client is not None:
        assert client_platform(client) is Platform.CLAUDE


_META = "io.modelcontextprotocol/"


_NO_PARAMS: Any = object()


def _call(method: str, params: Any) -> Message:
    obj: dict[str, Any] = {"id": 1, "method": method}
    if params is not _NO_PARAMS:
        obj["params"] = params
    return _msg(obj)


_CI = _META + "clientInfo"
_PV = _META + "protocolVersion"


@pytest.mark.parametrize(
    ("method", "params", "field", "value"),
    [
        # params of any JSON type
        ("tools/call", ["echo"], "tool", None),
        ("tools/call", "echo", "tool", None),
        ("tools/call", None, "tool", None),
        ("tools/call", _NO_PARAMS, "tool", None),
        ("tools/call", {"name": 7}, "tool", None),
        ("tools/call", {"name": "t"}, "tool", "t"),
        # the name or uri is read for the right methods only
        ("prompts/get", {"name": "p"}, "tool", None),
        ("prompts/get", {"name": "p"}, "prompt_name", "p"),
        ("tools/call", {"name": "t"}, "prompt_name", None),
        ("resources/subscribe", {"uri": "u"}, "resource_uri", "u"),
        ("resources/unsubscribe", {"uri": "u"}, "resource_uri", "u"),
        ("resources/list", {"uri": "u"}, "resource_uri", None),
        ("resources/read", {"uri": ["u"]}, "resource_uri", None),
        ("notifications/resources/updated", {"uri": "u"}, "resource_uri", None),
        # clientInfo: initialize's param first, then the envelope; wrong types are None
        ("initialize", {"clientInfo": "x"}, "client_name", None),
        ("initialize", {"clientInfo": {"name": 1}}, "client_name", None),
        ("initialize", {"clientInfo": {"name": "n", "version": 2}}, "client_version", None),
        ("tools/list", {"clientInfo": {"name": "n"}}, "client_name", None),
        ("initialize", {"clientInfo": {"name": "a"}, "_meta": {_CI: {"name": "b"}}}, "client_name",
         "a"),
        ("initialize", {"clientInfo": None, "_meta": {_CI: {"name": "b"}}}, "client_name", "b"),
        ("tools/list", {"_meta": {_CI: ["name", "b"]}}, "client_name", None),
        # protocol version: initialize's param first, then the envelope
        ("initialize", {"protocolVersion": "v", "_meta": {_PV: "x"}}, "protocol_version", "v"),
        ("initialize", {"protocolVersion": 2025, "_meta": {_PV: "x"}}, "protocol_version", "x"),
        ("tools/list", {"protocolVersion": "2025-06-18"}, "protocol_version", None),
        ("ping", {"_meta": {_PV: 1}}, "protocol_version", None),
        # the envelope and trace context
        ("ping", {"_meta": {"progressToken": 1}}, "has_meta_envelope", False),
        ("ping", {"_meta": {_META + "logLevel": "info"}}, "has_meta_envelope", True),
        ("ping", {"_meta": [_META + "x"]}, "has_meta_envelope", False),
        ("ping", {"_meta": _META + "x"}, "has_meta_envelope", False),
        ("ping", {"_meta": {"traceparent": "00-ab-cd-01"}}, "traceparent", "00-ab-cd-01"),
        ("ping", {"_meta": {"traceparent": 1}}, "traceparent", None),
        ("ping", {"traceparent": "00-ab-cd-01"}, "traceparent", None),
    ],
)  # fmt: skip
def test_describe_request_is_defensive(method: str, params: Any, field: str, value: object) -> None:
    """Each detail is read from the one place the spec puts it; a wrong type reads as None."""
    assert getattr(describe_request(_call(method, params)), field) == value


def test_describe_request_with_non_string_meta_keys() -> None:
    """A `_meta` built in Python with non-string keys is not an envelope and does not raise."""
    msg = _msg({"id": 1, "method": "ping", "params": {"_meta": {1: "x", None: "y"}}})
    assert describe_request(msg).has_meta_envelope is False


@pytest.mark.parametrize(
    "obj", [{"id": 1, "result": {"name": "x"}}, {"id": 1, "error": {"code": 1, "message": "m"}}]
)
def test_describe_request_of_a_response_is_empty(obj: dict[str, Any]) -> None:
    """A response has no request detail: every field is empty."""
    assert describe_request(_msg(obj)) == RequestDetail(
        None, None, None, None, None, None, None, False, None
    )


# --- describe_response -------------------------------------------------------------------

_OK = ResponseDetail(None, None, False, None, None)
_COMPLETE = ResponseDetail(None, None, False, "complete", None)
_TOOL_ERROR = "This tool intentionally returns an error for testing"
_MISMATCH = "mcp-name header does not match the request body's 'name' parameter"

EXPECTED_RESPONSES: dict[str, ResponseDetail] = {
    "conformance-everything[0]": ResponseDetail(None, None, False, None, "2025-11-25"),
    "conformance-everything[2]": _OK,
    "conformance-everything[3]": _OK,
    "conformance-everything[4]": _OK,
    "conformance-everything[5]": ResponseDetail(None, _TOOL_ERROR, True, None, None),
    "conformance-everything[6]": _OK,
    "conformance-everything[7]": _OK,
    "conformance-everything[8]": ResponseDetail(-32601, "Method not found", True, None, None),
    "conformance-everything[9]": _OK,
    "mcp-apps-map[0]": ResponseDetail(None, None, False, None, "2025-11-25"),
    "mcp-apps-map[2]": _OK,
    "mcp-apps-map[3]": _OK,
    "mcp-apps-map[4]": _OK,
    "mcp-apps-map[5]": ResponseDetail(-32602, "Tool nonexistent not found", True, None, None),
    "modern-2026-07-28[0]": _COMPLETE,
    "modern-2026-07-28[1]": _COMPLETE,
    "modern-2026-07-28[2]": _COMPLETE,
    "modern-2026-07-28[3]": _COMPLETE,
    "modern-2026-07-28[4]": ResponseDetail(None, None, False, "input_required", None),
    "modern-2026-07-28[5]": _COMPLETE,
    "modern-2026-07-28[6]": _COMPLETE,
    "modern-2026-07-28[7]": ResponseDetail(-32020, _MISMATCH, True, None, None),
    "modern-2026-07-28[8]": ResponseDetail(
        -32022, "Unsupported protocol version", True, None, None
    ),
    "modern-2026-07-28[9]": ResponseDetail(-32601, "Method not found", True, None, None),
    "modern-2026-07-28[10]": ResponseDetail(-32020, _MISMATCH, True, None, None),
    "modern-2026-07-28[12]": _COMPLETE,
    "modern-2026-07-28[13]": _OK,  # the listen stream's acknowledgement: a notification
}


def test_response_table_is_complete() -> None:
    """Every recorded exchange with a JSON-RPC answer has an expected response detail."""
    answered = sorted(n for n, r in RECORDS.items() if r["response"]["body"])
    assert sorted(EXPECTED_RESPONSES) == answered


@pytest.mark.parametrize("name", sorted(EXPECTED_RESPONSES))
def test_fixture_response_detail(name: str) -> None:
    """Errors, tool errors, `resultType` and the negotiated version come out of each answer."""
    assert describe_response(_final_response(name)) == EXPECTED_RESPONSES[name]


@pytest.mark.parametrize(
    ("result", "error_msg", "is_error"),
    [
        ({"isError": True}, "tool error", True),
        ({"isError": True, "content": "boom"}, "tool error", True),
        ({"isError": True, "content": []}, "tool error", True),
        ({"isError": True, "content": [1, None, "text"]}, "tool error", True),
        ({"isError": True, "content": [{"type": "text", "text": 5}]}, "tool error", True),
        (
            {
                "isError": True,
                "content": [{"type": "image", "data": "x"}, {"type": "text", "text": "t"}],
            },
            "t",
            True,
        ),
        (
            {"isError": True, "content": [{"text": "untyped"}, {"type": "text", "text": ""}]},
            "tool error",
            True,
        ),
        ({"isError": "true", "content": [{"type": "text", "text": "t"}]}, None, False),
        ({"isError": 1}, None, False),
        ({"isError": False, "content": [{"type": "text", "text": "t"}]}, None, False),
    ],
)
def test_tool_errors(result: dict[str, Any], error_msg: str | None, is_error: bool) -> None:
    """Only `isError: true` is a tool error; its message is the first text item or "tool error"."""
    detail = describe_response(_msg({"id": 1, "result": result}))
    assert (detail.error_code, detail.error_msg, detail.is_error) == (None, error_msg, is_error)


@pytest.mark.parametrize(
    "obj",
    [
        {"id": 1, "error": {"code": -32603, "message": "é" * (ERROR_MSG_MAX + 10)}},
        {"id": 1, "result": {"isError": True, "content": [{"type": "text", "text": "x" * 10_000}]}},
    ],
)
def test_error_messages_are_truncated(obj: dict[str, Any]) -> None:
    """Error messages are cut to ERROR_MSG_MAX characters."""
    detail = describe_response(_msg(obj))
    assert detail.error_msg is not None
    assert len(detail.error_msg) == ERROR_MSG_MAX


@pytest.mark.parametrize(
    ("result", "result_type", "protocol_version"),
    [
        ({"resultType": "complete"}, "complete", None),
        ({"resultType": "task"}, "task", None),
        ({"resultType": 1}, None, None),
        ({"protocolVersion": "2025-06-18"}, None, "2025-06-18"),
        ({"protocolVersion": ["2025-06-18"]}, None, None),
    ],
)
def test_result_type_and_version(
    result: dict[str, Any], result_type: str | None, protocol_version: str | None
) -> None:
    """`resultType` and `protocolVersion` are kept as sent when they are strings."""
    detail = describe_response(_msg({"id": 1, "result": result}))
    assert (detail.result_type, detail.protocol_version) == (result_type, protocol_version)


@pytest.mark.parametrize(
    "obj",
    [
        {"id": 1, "result": None},
        {"id": 1, "result": [1]},
        {"id": 1, "result": "isError"},
        {"id": 1, "method": "tools/call", "params": {"isError": True}},
        {"method": "notifications/message"},
    ],
)
def test_describe_response_without_detail(obj: dict[str, Any]) -> None:
    """Non-object results, requests and notifications give an empty response detail."""
    assert describe_response(_msg(obj)) == _OK


# --- check_headers -----------------------------------------------------------------------


def _b64(text: str) -> str:
    return "=?base64?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="


@pytest.mark.parametrize("name", WITH_BODY)
def test_fixture_headers(name: str) -> None:
    """Recorded headers agree with their bodies, except the two recorded -32020 cases."""
    headers = {k.lower(): v for k, v in RECORDS[name]["request"]["headers"].items()}
    check = check_headers(
        _request(name),
        mcp_method=headers.get("mcp-method"),
        mcp_name=headers.get("mcp-name"),
        protocol_version=headers.get("mcp-protocol-version"),
        session_id=headers.get("mcp-session-id"),
    )
    rejected = name in ("modern-2026-07-28[7]", "modern-2026-07-28[10]")
    assert check == HeaderCheck(("Mcp-Name",) if rejected else ())
    assert check.ok is not rejected


_V = "2026-07-28"
_ENVELOPE = {"_meta": {_META + "protocolVersion": _V}}


@pytest.mark.parametrize(
    ("obj", "headers", "mismatched"),
    [
        # Mcp-Method: required on every modern request, equal to the body's method
        ({"id": 1, "method": "tools/list"}, {"mcp_method": "tools/list"}, ()),
        ({"id": 1, "method": "tools/list"}, {"mcp_method": "tools/call"}, ("Mcp-Method",)),
        ({"id": 1, "method": "tools/list"}, {}, ("Mcp-Method",)),
        ({"id": 1, "method": "tools/list"}, {"mcp_method": "Tools/List"}, ("Mcp-Method",)),
        ({"id": 1, "method": "x/é"}, {"mcp_method": _b64("x/é")}, ()),
        # Mcp-Name: params.name or params.uri, required for three methods
        (
            {"id": 1, "method": "tools/call", "params": {"name": "echo"}},
            {"mcp_method": "tools/call", "mcp_name": "echo"},
            (),
        ),
        (
            {"id": 1, "method": "tools/call", "params": {"name": "echo"}},
            {"mcp_method": "tools/call"},
            ("Mcp-Name",),
        ),
        (
            {"id": 1, "method": "prompts/get", "params": {"name": "p"}},
            {"mcp_method": "prompts/get", "mcp_name": "q"},
            ("Mcp-Name",),
        ),
        (
            {"id": 1, "method": "resources/read", "params": {"uri": "file:///a b"}},
            {"mcp_method": "resources/read", "mcp_name": "file:///a b"},
            (),
        ),
        (
            {"id": 1, "method": "resources/read", "params": {"name": "file:///a"}},
            {"mcp_method": "resources/read", "mcp_name": "file:///a"},
            ("Mcp-Name",),
        ),
        ({"id": 1, "method": "tools/call", "params": "echo"}, {"mcp_method": "tools/call"}, ()),
        (
            {"id": 1, "method": "tools/call", "params": {"name": 5}},
            {"mcp_method": "tools/call", "mcp_name": "5"},
            ("Mcp-Name",),
        ),
        (
            {"id": 1, "method": "tools/list", "params": {"name": "x"}},
            {"mcp_method": "tools/list", "mcp_name": "y"},
            (),
        ),
        # base64-encoded values are decoded before comparing
        (
            {"id": 1, "method": "tools/call", "params": {"name": "héllo"}},
            {"mcp_method": "tools/call", "mcp_name": _b64("héllo")},
            (),
        ),
        (
            {"id": 1, "method": "tools/call", "params": {"name": " padded "}},
            {"mcp_method": "tools/call", "mcp_name": _b64(" padded ")},
            (),
        ),
        (
            {"id": 1, "method": "tools/call", "params": {"name": "héllo"}},
            {"mcp_method": "tools/call", "mcp_name": _b64("hello")},
            ("Mcp-Name",),
        ),
        (
            {"id": 1, "method": "tools/call", "params": {"name": "héllo"}},
            {"mcp_method": "tools/call", "mcp_name": "héllo".upper()},
            ("Mcp-Name",),
        ),
        (
            {"id": 1, "method": "tools/call", "params": {"name": "x"}},
            {"mcp_method": "tools/call", "mcp_name": "=?base64?!!!?="},
            ("Mcp-Name",),
        ),
        (
            {"id": 1, "method": "tools/call", "params": {"name": "x"}},
            {"mcp_method": "tools/call", "mcp_name": "=?base64?/w==?="},
            ("Mcp-Name",),
        ),
        (
            {"id": 1, "method": "tools/call", "params": {"name": "x"}},
            {"mcp_method": "tools/call", "mcp_name": "=?base64?é?="},
            ("Mcp-Name",),
        ),
        (
            {"id": 1, "method": "tools/call", "params": {"name": ""}},
            {"mcp_method": "tools/call", "mcp_name": "=?base64??="},
            (),
        ),
        (
            {"id": 1, "method": "tools/call", "params": {"name": "=?base64?="}},
            {"mcp_method": "tools/call", "mcp_name": "=?base64?="},
            (),
        ),
        (
            {"id": 1, "method": "tools/call", "params": {"name": "a"}},
            {"mcp_method": "tools/call", "mcp_name": "=?BASE64?YQ==?="},
            ("Mcp-Name",),
        ),
        # MCP-Protocol-Version: equal to the envelope's version when the body has one
        (
            {
                "id": 1,
                "method": "tools/list",
                "params": {"_meta": {_META + "protocolVersion": "2099-01-01"}},
            },
            {"mcp_method": "tools/list"},
            ("MCP-Protocol-Version",),
        ),
        (
            {
                "id": 1,
                "method": "tools/list",
                "params": {"_meta": {_META + "protocolVersion": 20260728}},
            },
            {"mcp_method": "tools/list"},
            (),
        ),
        ({"id": 1, "method": "tools/list", "params": _ENVELOPE}, {"mcp_method": "tools/list"}, ()),
        # several at once, in a fixed order
        (
            {"id": 1, "method": "tools/call", "params": {"name": "a", **_ENVELOPE}},
            {"mcp_method": "tools/list", "mcp_name": "b", "protocol_version": "2099-01-01"},
            ("Mcp-Method", "Mcp-Name", "MCP-Protocol-Version"),
        ),
    ],
)
def test_check_headers(
    obj: dict[str, Any], headers: dict[str, str], mismatched: tuple[str, ...]
) -> None:
    """Mcp-Method, Mcp-Name and MCP-Protocol-Version must equal the body on modern requests."""
    kwargs: dict[str, Any] = {"mcp_method": None, "mcp_name": None, "protocol_version": _V}
    assert check_headers(_msg(obj), **{**kwargs, **headers}) == HeaderCheck(mismatched)


@pytest.mark.parametrize(
    ("obj", "protocol_version", "session_id"),
    [
        ({"id": 1, "method": "tools/list"}, None, None),
        ({"id": 1, "method": "tools/list"}, "2025-11-25", None),
        ({"id": 1, "method": "tools/list"}, _V, "session-1"),
        ({"id": 1, "method": "initialize", "params": _ENVELOPE}, _V, None),
        ({"method": "notifications/cancelled"}, _V, None),
        ({"id": 1, "result": {}}, _V, None),
        ({"id": 1, "error": {"code": 1, "message": "m"}}, _V, None),
    ],
)
def test_check_headers_skips_legacy_and_non_requests(
    obj: dict[str, Any], protocol_version: str | None, session_id: str | None
) -> None:
    """Legacy-era requests, notifications and responses are never flagged."""
    check = check_headers(
        _msg(obj),
        mcp_method="wrong",
        mcp_name="wrong",
        protocol_version=protocol_version,
        session_id=session_id,
    )
    assert check.ok
    assert check.mismatched == ()


# --- properties --------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)
_KEYS = st.sampled_from(
    [
        "name",
        "uri",
        "clientInfo",
        "protocolVersion",
        "_meta",
        "traceparent",
        "isError",
        "content",
        "resultType",
        "type",
        "text",
        "version",
        _META + "clientInfo",
        _META + "protocolVersion",
    ]
)
# Objects shaped like MCP params and results: the keys the extractors look at, any values.
mcp_like = st.recursive(
    json_values,
    lambda children: (
        st.dictionaries(_KEYS | st.text(max_size=4), children, max_size=5)
        | st.lists(children, max_size=3)
    ),
    max_leaves=20,
)
methods = st.sampled_from(list(Method)).map(str) | st.text(max_size=12)
ids = st.none() | st.integers() | st.text(max_size=4)
requests = st.builds(
    lambda id_, method, params: {"jsonrpc": "2.0", "id": id_, "method": method, "params": params},
    ids,
    methods,
    mcp_like,
)
notifications = st.builds(
    lambda method, params: {"jsonrpc": "2.0", "method": method, "params": params},
    methods,
    mcp_like,
)
results = st.builds(lambda id_, r: {"jsonrpc": "2.0", "id": id_, "result": r}, ids, mcp_like)
errors = st.builds(
    lambda id_, code, message, data: {
        "jsonrpc": "2.0",
        "id": id_,
        "error": {"code": code, "message": message, "data": data},
    },
    ids,
    st.integers(),
    st.text(),
    json_values,
)
header_values = st.none() | st.text(max_size=12) | st.text(max_size=12).map(_b64)


@given(requests | notifications | results | errors)
def test_describe_never_raises(obj: dict[str, Any]) -> None:
    """Both describe functions return a detail for any message built from JSON."""
    msg = from_object(obj)
    assert isinstance(msg, Message)
    request = describe_request(msg)
    response = describe_response(msg)
    assert request.method == msg.method
    assert response.is_error is (response.error_msg is not None)
    assert response.error_msg is None or len(response.error_msg) <= ERROR_MSG_MAX


@given(
    requests | notifications | results,
    header_values,
    header_values,
    st.none() | st.sampled_from([*LEGACY_PROTOCOL_VERSIONS, _V]) | st.text(max_size=12),
    st.none() | st.text(max_size=4),
)
def test_check_headers_never_raises(
    obj: dict[str, Any],
    mcp_method: str | None,
    mcp_name: str | None,
    protocol_version: str | None,
    session_id: str | None,
) -> None:
    """Header checking returns a verdict for any message and any header values."""
    msg = from_object(obj)
    assert isinstance(msg, Message)
    check = check_headers(
        msg,
        mcp_method=mcp_method,
        mcp_name=mcp_name,
        protocol_version=protocol_version,
        session_id=session_id,
    )
    assert set(check.mismatched) <= {"Mcp-Method", "Mcp-Name", "MCP-Protocol-Version"}
