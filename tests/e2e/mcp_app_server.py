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
"""

from __future__ import annotations

import argparse
import logging
import warnings
from typing import Annotated

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
from pydantic import BaseModel

__all__ = [
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
