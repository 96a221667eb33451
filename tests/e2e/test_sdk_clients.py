"""The SDK's own client (`mcp.Client`) in both eras, against the server and through mcpr.

Every test runs for each era (`legacy`: `initialize` + session; `2026-07-28`: stateless
requests with the `_meta` envelope), each target (`direct`, `proxied`) and each backend
(asyncio, trio): `mcp.Client` 2.3.0 and its httpx2 transport work on trio (one harmless
ResourceWarning aside, silenced in conftest.py).

What the two eras look like on the wire is pinned in test_http_wire.py; here the client's
view is checked: results, errors and the callbacks a proxy must keep working.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
import mcp
import pytest
from mcp import types
from mcp.client.session import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client

from mcpr_core.events import ProxyEvent, RequestEvent
from tests.e2e.mcp_app_server import (
    GREETING_TEXT,
    GREETING_URI,
    MAP_HTML,
    MAP_META,
    MAP_MIME,
    MAP_URI,
    SERVER_NAME,
)

LEGACY = "legacy"
MODERN = "2026-07-28"

#: How long a test waits for notifications the SDK delivers in their own tasks.
NOTIFY_TIMEOUT = 5.0


@pytest.fixture(params=[LEGACY, MODERN])
def era(request: pytest.FixtureRequest) -> str:
    """The `mode=` given to `mcp.Client`: a forced `initialize` handshake, or 2026-07-28."""
    param: str = request.param
    return param


@dataclass
class Peer:
    """The client side of server→client traffic: answers questions, records what arrived."""

    elicitations: list[types.ElicitRequestParams] = field(default_factory=list)
    samplings: list[types.CreateMessageRequestParams] = field(default_factory=list)
    logs: list[tuple[str, Any]] = field(default_factory=list)
    logs_done: anyio.Event = field(default_factory=anyio.Event)
    expected_logs: int = 2

    async def elicit(
        self, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        """Answer every elicitation with the name Ada."""
        self.elicitations.append(params)
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    async def sample(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        """Answer every sampling request with the same two words from a fake model."""
        self.samplings.append(params)
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="old pond"),
            model="fake-1",
        )

    async def log(self, params: types.LoggingMessageNotificationParams) -> None:
        """Record a log message."""
        self.logs.append((params.level, params.data))
        if len(self.logs) >= self.expected_logs:
            self.logs_done.set()

    def client(
        self, url: str, era: str, *, log_level: types.LoggingLevel | None = "debug"
    ) -> mcp.Client:
        """Return an unentered client wired to this peer's callbacks."""
        return mcp.Client(
            url,
            mode=era,
            elicitation_callback=self.elicit,
            sampling_callback=self.sample,
            logging_callback=self.log,
            log_level=log_level,
        )


def text_of(result: types.CallToolResult) -> str:
    """Return the text of a tool result's single text block."""
    [block] = result.content
    assert isinstance(block, types.TextContent)
    return block.text


async def test_connect_reports_era(target_url: str, era: str) -> None:
    """Legacy negotiates 2025-11-25 and learns the server's name; 2026-07-28 is simply adopted."""
    async with Peer().client(target_url, era) as client:
        if era == LEGACY:
            assert client.protocol_version == "2025-11-25"
            assert client.server_info is not None
            assert client.server_info.name == SERVER_NAME
        else:
            assert client.protocol_version == MODERN
            assert client.server_info is None


async def test_list_tools(target_url: str, era: str) -> None:
    """tools/list returns every tool, with the widget tool's `_meta` intact."""
    async with Peer().client(target_url, era) as client:
        result = await client.list_tools()
    tools = {tool.name: tool for tool in result.tools}
    assert sorted(tools) == [
        "chatty",
        "echo",
        "fail",
        "greet",
        "greet_direct",
        "haiku",
        "hold",
        "hold_report",
        "locate",
        "set_extra_tool",
        "show_map",
        "slow_count",
    ]
    assert tools["echo"].input_schema["required"] == ["text"]
    assert tools["show_map"].meta == {
        "ui": {"resourceUri": MAP_URI},
        "openai/outputTemplate": MAP_URI,
    }


async def test_call_echo(target_url: str, era: str) -> None:
    """A plain tool call returns its text and structured content."""
    async with Peer().client(target_url, era) as client:
        result = await client.call_tool("echo", {"text": "héllo ✓"})
    assert result.is_error is False
    assert text_of(result) == "héllo ✓"
    assert result.structured_content == {"result": "héllo ✓"}


async def test_progress_arrives_in_order_before_result(target_url: str, era: str) -> None:
    """Every progress notification reaches the callback, in order, before the result returns."""
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with Peer().client(target_url, era) as client:
        # The server sleeps `delay` after each report, so each notification is its own SSE event.
        result = await client.call_tool(
            "slow_count", {"n": 3, "delay": 0.03}, progress_callback=on_progress
        )
        seen_at_result = list(seen)
    assert seen_at_result == [
        (1.0, 3.0, "step 1/3"),
        (2.0, 3.0, "step 2/3"),
        (3.0, 3.0, "step 3/3"),
    ]
    assert text_of(result) == "counted to 3"


async def test_logging_callback_receives_messages(target_url: str, era: str) -> None:
    """Log messages sent during a tool call reach the logging callback."""
    peer = Peer()
    async with peer.client(target_url, era) as client:
        result = await client.call_tool("chatty", {"text": "x"})
        # The SDK hands each notification to its callback in a task of its own, so the
        # callbacks may still be pending when the result is returned.
        with anyio.fail_after(NOTIFY_TIMEOUT):
            await peer.logs_done.wait()
    assert text_of(result) == "logged x"
    assert sorted(peer.logs) == [("info", "info: x"), ("warning", "warning: x")]


async def test_logging_needs_opt_in_only_in_modern_era(target_url: str, era: str) -> None:
    """Without a log level, legacy still gets every message; 2026-07-28 gets none."""
    peer = Peer()
    async with peer.client(target_url, era, log_level=None) as client:
        result = await client.call_tool("chatty", {"text": "y"})
        if era == LEGACY:
            with anyio.fail_after(NOTIFY_TIMEOUT):
                await peer.logs_done.wait()
        else:
            await anyio.wait_all_tasks_blocked()
    assert text_of(result) == "logged y"
    if era == LEGACY:
        assert sorted(peer.logs) == [("info", "info: y"), ("warning", "warning: y")]
    else:
        assert peer.logs == []


async def test_failing_tool_is_an_error_result(target_url: str, era: str) -> None:
    """A tool that raises gives a result with isError, not a JSON-RPC error."""
    async with Peer().client(target_url, era) as client:
        result = await client.call_tool("fail", {"reason": "boom"})
    assert result.is_error is True
    assert text_of(result) == "Error executing tool fail: failed: boom"
    assert result.structured_content is None


async def test_elicitation_is_answered_by_the_client(target_url: str, era: str) -> None:
    """A `Resolve(Elicit)` tool gets its answer from the client's callback, in either era."""
    peer = Peer()
    async with peer.client(target_url, era) as client:
        result = await client.call_tool("greet", {})
    assert text_of(result) == "Hello, Ada!"
    [asked] = peer.elicitations
    assert isinstance(asked, types.ElicitRequestFormParams)
    assert asked.message == "What is your name?"
    assert asked.requested_schema["required"] == ["name"]


async def test_sampling_is_answered_by_the_client(target_url: str, era: str) -> None:
    """A `Resolve(Sample)` tool asks the client's model and returns its answer."""
    peer = Peer()
    async with peer.client(target_url, era) as client:
        result = await client.call_tool("haiku", {"topic": "frogs"})
    assert text_of(result) == "fake-1: old pond"
    [asked] = peer.samplings
    assert asked.max_tokens == 64
    [message] = asked.messages
    assert message.role == "user"
    assert message.content == types.TextContent(type="text", text="Write a haiku about frogs.")


async def test_ctx_elicit_works_only_in_legacy_era(target_url: str, era: str) -> None:
    """`ctx.elicit` works in a legacy session; on 2026-07-28 the call fails with INVALID_REQUEST."""
    peer = Peer()
    async with peer.client(target_url, era) as client:
        if era == LEGACY:
            result = await client.call_tool("greet_direct", {})
            assert text_of(result) == "Hello, Ada!"
            assert len(peer.elicitations) == 1
        else:
            with pytest.raises(mcp.MCPError) as caught:
                await client.call_tool("greet_direct", {})
            assert caught.value.code == types.INVALID_REQUEST
            assert caught.value.message == (
                "Cannot send 'elicitation/create': this transport context has no back-channel "
                "for server-initiated requests."
            )
            assert peer.elicitations == []


async def test_read_text_resource(target_url: str, era: str) -> None:
    """resources/read of a static resource returns its text and mime type."""
    async with Peer().client(target_url, era) as client:
        result = await client.read_resource(GREETING_URI)
    [content] = result.contents
    assert isinstance(content, types.TextResourceContents)
    assert (content.uri, content.mime_type, content.text) == (
        GREETING_URI,
        "text/plain",
        GREETING_TEXT,
    )
    assert content.meta is None


async def test_ui_resource_meta_in_list_and_read(target_url: str, era: str) -> None:
    """The widget's `_meta` (ui.csp and openai/widgetCSP) is on its list entry and its content."""
    async with Peer().client(target_url, era) as client:
        listed = await client.list_resources()
        read = await client.read_resource(MAP_URI)
    entries = {str(resource.uri): resource for resource in listed.resources}
    assert sorted(entries) == [GREETING_URI, MAP_URI]
    assert entries[MAP_URI].mime_type == MAP_MIME
    assert entries[MAP_URI].meta == MAP_META
    [content] = read.contents
    assert isinstance(content, types.TextResourceContents)
    assert (content.mime_type, content.text) == (MAP_MIME, MAP_HTML)
    assert content.meta == {
        "ui": {
            "csp": {
                "connectDomains": ["http://localhost:9000"],
                "resourceDomains": ["http://localhost:9000"],
            }
        },
        "openai/widgetCSP": {
            "connect_domains": ["http://localhost:9000"],
            "resource_domains": ["http://localhost:9000"],
        },
    }


async def test_resource_template_list_and_read(target_url: str, era: str) -> None:
    """resources/templates/list shows the template, and a URI matching it can be read."""
    async with Peer().client(target_url, era) as client:
        listed = await client.list_resource_templates()
        read = await client.read_resource("resource://users/42/profile")
    [template] = listed.resource_templates
    assert (template.name, template.uri_template, template.mime_type) == (
        "profile",
        "resource://users/{user_id}/profile",
        "application/json",
    )
    [content] = read.contents
    assert isinstance(content, types.TextResourceContents)
    assert content.text == '{"id": "42"}'


async def test_list_prompts(target_url: str, era: str) -> None:
    """prompts/list shows the prompt with one required and one optional argument."""
    async with Peer().client(target_url, era) as client:
        result = await client.list_prompts()
    [prompt] = result.prompts
    assert prompt.name == "review"
    assert prompt.arguments is not None
    assert [(arg.name, arg.required) for arg in prompt.arguments] == [
        ("code", True),
        ("language", False),
    ]


async def test_get_prompt(target_url: str, era: str) -> None:
    """prompts/get renders the prompt's messages from its arguments."""
    async with Peer().client(target_url, era) as client:
        result = await client.get_prompt("review", {"code": "x = 1", "language": "rust"})
    assert result.description == "Ask for a code review."
    assert [(m.role, m.content) for m in result.messages] == [
        ("user", types.TextContent(type="text", text="Review this rust code:\nx = 1")),
        ("assistant", types.TextContent(type="text", text="Looking at it.")),
    ]


async def test_unknown_tool_is_an_error_result(target_url: str, era: str) -> None:
    """Calling a tool that does not exist gives an isError result, not a JSON-RPC error."""
    async with Peer().client(target_url, era) as client:
        result = await client.call_tool("nope", {})
    assert result.is_error is True
    assert text_of(result) == "Unknown tool: nope"


async def test_unknown_resource_is_invalid_params(target_url: str, era: str) -> None:
    """Reading an unknown resource is a JSON-RPC error -32602 carrying the URI, in both eras."""
    async with Peer().client(target_url, era) as client:
        with pytest.raises(mcp.MCPError) as caught:
            await client.read_resource("resource://nope")
    assert caught.value.code == types.INVALID_PARAMS
    assert caught.value.message == "Unknown resource: resource://nope"
    assert caught.value.data == {"uri": "resource://nope"}


async def test_unknown_prompt_error_differs_per_era(target_url: str, era: str) -> None:
    """An unknown prompt is error code 0 with the reason in legacy, a bare -32603 in 2026-07-28."""
    async with Peer().client(target_url, era) as client:
        with pytest.raises(mcp.MCPError) as caught:
            await client.get_prompt("nope", {})
    if era == LEGACY:
        assert (caught.value.code, caught.value.message) == (0, "Unknown prompt: nope")
    else:
        assert (caught.value.code, caught.value.message) == (
            types.INTERNAL_ERROR,
            "Internal server error",
        )


@dataclass(frozen=True)
class Exchange:
    """What one HTTP exchange of the SDK transport looked like."""

    method: str
    status: int
    content_type: str | None
    request_session: str | None
    response_session: str | None


async def test_http_exchanges_per_era(target_url: str, era: str) -> None:
    """Legacy opens a session, a GET stream and DELETEs it on close; 2026-07-28 only POSTs."""
    exchanges: list[Exchange] = []

    async def record(response: httpx2.Response) -> None:
        exchanges.append(
            Exchange(
                method=response.request.method,
                status=response.status_code,
                content_type=response.headers.get("content-type"),
                request_session=response.request.headers.get("mcp-session-id"),
                response_session=response.headers.get("mcp-session-id"),
            )
        )

    async with httpx2.AsyncClient(event_hooks={"response": [record]}) as http:
        transport = streamable_http_client(target_url, http_client=http)
        async with mcp.Client(transport, mode=era) as client:
            assert text_of(await client.call_tool("echo", {"text": "x"})) == "x"

        if era == MODERN:
            assert {x.method for x in exchanges} == {"POST"}
            assert all(x.request_session is None and x.response_session is None for x in exchanges)
            assert all(x.status == 200 for x in exchanges)
            return

        opening, *rest = exchanges
        assert (opening.method, opening.status, opening.content_type) == (
            "POST",
            200,
            "text/event-stream",
        )
        session = opening.response_session
        assert session is not None
        assert all(x.request_session == session for x in rest)
        gets = [x for x in rest if x.method == "GET"]
        assert [(x.status, x.content_type) for x in gets] == [(200, "text/event-stream")]
        assert (rest[-1].method, rest[-1].status) == ("DELETE", 200)

        # The session is gone: the server answers 404 for its id from now on.
        after = await http.post(
            target_url,
            json={"jsonrpc": "2.0", "id": 99, "method": "tools/list"},
            headers={
                "accept": "application/json, text/event-stream",
                "mcp-session-id": session,
                "mcp-protocol-version": "2025-11-25",
            },
        )
    assert after.status_code == 404
    assert after.json() == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": types.INVALID_REQUEST, "message": "Session not found"},
    }


async def test_proxy_events_are_recorded_only_when_proxied(
    target: str, target_url: str, era: str, proxy_events: list[ProxyEvent]
) -> None:
    """`proxy_events` stays empty for `direct` and holds the tool call's event when `proxied`."""
    async with Peer().client(target_url, era) as client:
        assert text_of(await client.call_tool("echo", {"text": "x"})) == "x"
    # Let the proxy finish its exchanges (it emits once a response has been carried).
    await anyio.wait_all_tasks_blocked()
    if target == "direct":
        assert proxy_events == []
        return
    calls = [
        event
        for event in proxy_events
        if isinstance(event, RequestEvent) and event.mcp_method == "tools/call"
    ]
    assert [(e.method, e.status, e.tool) for e in calls] == [("POST", 200, "echo")]
