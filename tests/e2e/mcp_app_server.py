"""A real MCP server for the end-to-end tests, built with the official SDK (`mcp` 2.3.0).

Run it as `python tests/e2e/mcp_app_server.py --port N`: Streamable HTTP at
`http://127.0.0.1:N/mcp`, dual-era (legacy `initialize` sessions and stateless `2026-07-28`
requests on the same path, routed by the SDK on the `MCP-Protocol-Version` header).

What each piece exercises on the wire (pinned byte by byte in test_http_wire.py):

- `echo`: the smallest request/response. Legacy: `text/event-stream` with one `event: message`.
  Modern: `application/json` (the modern entry only commits to SSE once the handler emits).
- `slow_count`: `notifications/progress` events on the request's SSE stream, then the result.
- `chatty`: `notifications/message` log events on the request's stream (modern: only when the
  request opts in with `_meta["io.modelcontextprotocol/logLevel"]`).
- `fail`: a tool error, i.e. a *successful* JSON-RPC result with `isError: true`.
- `greet` / `haiku`: a question to the client through `Resolve(...)` dependencies. Legacy: an
  `elicitation/create` / `sampling/createMessage` request on the POST's SSE stream, answered by
  a client POST. Modern: an `input_required` result that the client retries with
  `inputResponses` + `requestState`.
- `greet_direct`: the same question through `ctx.elicit(...)`, which has no modern equivalent:
  on 2026-07-28 the SDK answers with a JSON-RPC error (no back-channel).
- `show_map` + `ui://widget/map.html`: an MCP Apps widget with a CSP in both `_meta.ui.csp` and
  the OpenAI `openai/widgetCSP` shape, for the CSP rewrite tests.
- `set_extra_tool`: adds or removes the tool `extra` and publishes the change, which
  2026-07-28 clients receive as `notifications/tools/list_changed` on their
  `subscriptions/listen` streams.
- `hold` + `hold_report`: a slow call whose cancellation the server records (its
  `time.monotonic()`, comparable with the tests' own on one machine), and a call that
  reports it, to see how soon a client's hang-up reaches the server.
- `locate`: an argument mirrored into the `Mcp-Param-Region` header (`x-mcp-header`), which
  the SDK checks against the body, so a header changed on the way is refused.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import Annotated, Literal

import anyio
from mcp.server.mcpserver import (
    AssistantMessage,
    Context,
    Elicit,
    MCPServer,
    Message,
    Resolve,
    Sample,
    UserMessage,
)
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import CreateMessageResult, SamplingMessage, TextContent
from pydantic import BaseModel, Field

__all__ = [
    "EXTRA_TOOL",
    "GREETING_TEXT",
    "GREETING_URI",
    "MAP_HTML",
    "MAP_META",
    "MAP_MIME",
    "MAP_URI",
    "SERVER_NAME",
    "WIDGET_ORIGIN",
    "build_server",
]

SERVER_NAME = "mcpr-e2e"
EXTRA_TOOL = "extra"
GREETING_URI = "resource://greeting"
GREETING_TEXT = "Hello from the mcpr end-to-end server."
MAP_URI = "ui://widget/map.html"
MAP_MIME = "text/html;profile=mcp-app"
MAP_HTML = '<!doctype html><html><body><div id="map">map</div></body></html>'
WIDGET_ORIGIN = "http://localhost:9000"
MAP_META = {
    "ui": {"csp": {"connectDomains": [WIDGET_ORIGIN], "resourceDomains": [WIDGET_ORIGIN]}},
    "openai/widgetCSP": {"connect_domains": [WIDGET_ORIGIN], "resource_domains": [WIDGET_ORIGIN]},
}


class Name(BaseModel):
    """The answer the `greet` tools elicit from the user."""

    name: str


def ask_name() -> Elicit[Name]:
    """Ask the client for a name (elicitation)."""
    return Elicit("What is your name?", Name)


def ask_haiku(topic: str) -> Sample:
    """Ask the client's model for a haiku (sampling)."""
    prompt = TextContent(type="text", text=f"Write a haiku about {topic}.")
    return Sample([SamplingMessage(role="user", content=prompt)], max_tokens=64)


@dataclass
class Hold:
    """What the server saw of the `hold` call made under one token."""

    started: anyio.Event = field(default_factory=anyio.Event)
    cancelled: anyio.Event = field(default_factory=anyio.Event)
    #: Server-side `time.monotonic()` of each, once it happened.
    started_at: float = 0.0
    cancelled_at: float = 0.0


def build_server() -> MCPServer:
    """Return the test server with every tool, resource, template and prompt registered."""
    mcp = MCPServer(SERVER_NAME, version="1.0.0", log_level="WARNING")

    @mcp.tool()
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    @mcp.tool()
    async def slow_count(n: int, delay: float, ctx: Context) -> str:
        """Report progress n times, `delay` seconds apart, then return."""
        for i in range(1, n + 1):
            await ctx.report_progress(i, n, f"step {i}/{n}")
            await anyio.sleep(delay)
        return f"counted to {n}"

    @mcp.tool()
    async def chatty(text: str, ctx: Context) -> str:
        """Send two log messages, then return."""
        # Logging is deprecated in 2026-07-28 (SEP-2577) but still served; the warning is noise.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await ctx.info(f"info: {text}")
            await ctx.warning(f"warning: {text}")
        return f"logged {text}"

    @mcp.tool()
    def fail(reason: str) -> str:
        """Always fail with a tool error."""
        raise ToolError(f"failed: {reason}")

    @mcp.tool()
    def greet(who: Annotated[Name, Resolve(ask_name)]) -> str:
        """Greet the user, asking the client for the name (elicitation, both eras)."""
        return f"Hello, {who.name}!"

    @mcp.tool()
    async def greet_direct(ctx: Context) -> str:
        """Greet the user, asking through `ctx.elicit` (a legacy-only server→client request)."""
        answer = await ctx.elicit("What is your name?", Name)
        if answer.action != "accept":
            return f"no name ({answer.action})"
        return f"Hello, {answer.data.name}!"

    @mcp.tool()
    def haiku(topic: str, poem: Annotated[CreateMessageResult, Resolve(ask_haiku)]) -> str:
        """Return a haiku written by the client's model (sampling, both eras)."""
        content = poem.content
        text = content.text if isinstance(content, TextContent) else "?"
        return f"{poem.model}: {text}"

    @mcp.tool(meta={"ui": {"resourceUri": MAP_URI}, "openai/outputTemplate": MAP_URI})
    def show_map(place: str) -> str:
        """Show a place on the map widget."""
        return f"map of {place}"

    def extra() -> str:
        """A tool that exists only between two `set_extra_tool` calls."""
        return "extra"

    @mcp.tool()
    async def set_extra_tool(present: bool, ctx: Context) -> list[str]:
        """Add or remove the tool `extra`, announce a change, and return the tool names."""
        names = {tool.name for tool in await mcp.list_tools()}
        if present and EXTRA_TOOL not in names:
            mcp.add_tool(extra, name=EXTRA_TOOL)
        elif not present and EXTRA_TOOL in names:
            mcp.remove_tool(EXTRA_TOOL)
        else:
            return sorted(names)
        await ctx.notify_tools_changed()
        return sorted(tool.name for tool in await mcp.list_tools())

    holds: dict[str, Hold] = {}

    @mcp.tool()
    async def hold(token: str, seconds: float, ctx: Context) -> str:
        """Report progress (if asked to), wait `seconds`; record a cancellation under `token`."""
        state = holds.setdefault(token, Hold())
        state.started_at = time.monotonic()
        state.started.set()
        await ctx.report_progress(0, seconds, "holding")
        try:
            await anyio.sleep(seconds)
        except anyio.get_cancelled_exc_class():
            state.cancelled_at = time.monotonic()
            state.cancelled.set()
            raise
        return f"held {seconds} s"

    @mcp.tool()
    async def hold_report(token: str, until: Literal["started", "cancelled"]) -> float:
        """Wait until the `hold` call under `token` started (or was cancelled); return when."""
        state = holds.setdefault(token, Hold())
        with anyio.move_on_after(10):
            if until == "started":
                await state.started.wait()
                return state.started_at
            await state.cancelled.wait()
            return state.cancelled_at
        raise ToolError(f"hold {token!r} not {until} within 10 s")

    @mcp.tool()
    def locate(
        region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})],
    ) -> str:
        """Name the region, which 2026-07-28 clients also send as `Mcp-Param-Region`."""
        return f"located in {region}"

    @mcp.resource(GREETING_URI, name="greeting", mime_type="text/plain")
    def greeting() -> str:
        """A plain text resource."""
        return GREETING_TEXT

    @mcp.resource(MAP_URI, name="map", mime_type=MAP_MIME, meta=MAP_META)
    def map_widget() -> str:
        """An MCP Apps widget with a declared CSP."""
        return MAP_HTML

    @mcp.resource(
        "resource://users/{user_id}/profile", name="profile", mime_type="application/json"
    )
    def profile(user_id: str) -> str:
        """A resource template: one profile per user id."""
        return f'{{"id": "{user_id}"}}'

    @mcp.prompt()
    def review(code: str, language: str = "python") -> list[Message]:
        """Ask for a code review."""
        return [
            UserMessage(f"Review this {language} code:\n{code}"),
            AssistantMessage("Looking at it."),
        ]

    return mcp


def main() -> None:
    """Parse `--port` and serve Streamable HTTP on 127.0.0.1 until terminated."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = build_server()
    # MCPServer installs a rich handler; its rendered tracebacks cost ~0.3 s per logged error
    # (the tests provoke some on purpose), so plain lines it is.
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", force=True
    )
    server.run("streamable-http", host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
