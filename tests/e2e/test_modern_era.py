"""Both eras at once through mcpr, with the SDK's own clients against the dual-era server.

A 2026-07-28 client (`mcp.Client(mode="2026-07-28")`, which calls itself `mcp`) and a
legacy one (`mode="legacy"`, named `legacy-e2e` here) work through one proxy at the same
time, while the same work is done directly; every result must be the same either way, and
every request must be recorded with its client, era and protocol version, in the events
and in the store as `mcpr proxy logs / clients / stats` show it.

The 2026-07-28 specifics covered with real software: `input_required` round trips
(elicitation and sampling) linked by one correlation key, `Mcp-Param-*` and base64 header
values the server checks against the body, a `subscriptions/listen` stream that outlives
short timeouts and carries `notifications/tools/list_changed`, and a client's cancel (it
closes its response) that the server sees within 100 ms.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import mcp
import pytest
from click.testing import CliRunner
from mcp import types
from mcp.client.session import ClientRequestContext
from mcp.client.subscriptions import ToolsListChanged

from mcpr_cli.cli import cli
from mcpr_cli.proxy import RunningProxy, serve
from mcpr_cli.transport.server import HandlerStatistics
from mcpr_core.config import ProxyConfig
from mcpr_core.events import ProxyEvent, RequestEvent, SchemaVersionCreated
from mcpr_core.schema import SchemaCapture
from mcpr_integrations.store import Store
from tests.e2e.mcp_app_server import EXTRA_TOOL, GREETING_URI

MODERN = "2026-07-28"
LEGACY = "legacy"
LEGACY_VERSION = "2025-11-25"
LEGACY_CLIENT = types.Implementation(name="legacy-e2e", version="9.1")
#: `request_timeout` and `idle_timeout` of the listen test: a listen stream outlives both.
SHORT_TIMEOUT = 0.3
#: Upper bound of every wait for something the test itself triggered.
WAIT = 5.0
#: How soon the server must see a client's cancel through mcpr (the issue's bound).
CANCEL_BOUND = 0.1


async def elicit(
    context: ClientRequestContext, params: types.ElicitRequestParams
) -> types.ElicitResult:
    """Answer every elicitation with the name Ada."""
    return types.ElicitResult(action="accept", content={"name": "Ada"})


async def sample(
    context: ClientRequestContext, params: types.CreateMessageRequestParams
) -> types.CreateMessageResult:
    """Answer every sampling request with two words from a fake model."""
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text="old pond"), model="fake-1"
    )


def client(url: str, era: str) -> mcp.Client:
    """An unentered client of `era`; the legacy one introduces itself as LEGACY_CLIENT."""
    return mcp.Client(
        url,
        mode=era,
        client_info=LEGACY_CLIENT if era == LEGACY else None,
        elicitation_callback=elicit,
        sampling_callback=sample,
    )


@dataclass
class Proxied:
    """mcpr running in front of the SDK server, what it emitted, and its schema capture."""

    running: RunningProxy
    events: list[ProxyEvent]
    capture: SchemaCapture

    @property
    def url(self) -> str:
        """The proxy's MCP endpoint."""
        return f"{self.running.url}/mcp"

    def requests(self) -> list[RequestEvent]:
        """The request events so far."""
        return [e for e in self.events if isinstance(e, RequestEvent)]

    def handler(self) -> HandlerStatistics:
        """The client side's counters now."""
        return self.running.statistics().handler

    async def wait_for(self, predicate: Callable[[HandlerStatistics], bool]) -> None:
        """Wait until `predicate(handler counters)` holds."""
        with anyio.fail_after(WAIT):
            # The handler's counters have no change event to wait on, so this polls.
            while not predicate(self.handler()):  # noqa: ASYNC110
                await anyio.sleep(0.005)

    async def wait_idle(self) -> None:
        """Wait until no exchange is in flight (their events are out then)."""
        await self.wait_for(lambda handler: handler.exchanges_in_flight == 0)


@asynccontextmanager
async def proxied(upstream: str, **overrides: Any) -> AsyncIterator[Proxied]:
    """Run mcpr in front of `upstream` on a free loopback port; `overrides` set config fields."""
    config = ProxyConfig(mcp=upstream, port=0, admin="none", name="e2e", **overrides)
    events: list[ProxyEvent] = []
    capture = SchemaCapture(config.name, config.mcp)
    async with serve(config, emit=events.append, capture=capture) as running:
        yield Proxied(running, events, capture)


async def work(session: mcp.Client) -> dict[str, Any]:
    """Everything a client does for the comparison; the results as plain data."""
    results: dict[str, Any] = {
        "tools": await session.list_tools(),
        "echo": await session.call_tool("echo", {"text": "héllo ✓"}),
        # 2026-07-28: mirrored as `Mcp-Param-Region`, base64 since it is not ASCII.
        "locate": await session.call_tool("locate", {"region": "Zürich ✓"}),
        "greet": await session.call_tool("greet", {}),  # elicitation
        "haiku": await session.call_tool("haiku", {"topic": "frogs"}),  # sampling
        "resources": await session.list_resources(),
        "templates": await session.list_resource_templates(),
        "greeting": await session.read_resource(GREETING_URI),
        # 2026-07-28: `Mcp-Name` carries the URI, base64 since it is not ASCII.
        "profile": await session.read_resource("resource://users/Zoë/profile"),
        "prompts": await session.list_prompts(),
        "review": await session.get_prompt("review", {"code": "x = 1"}),
    }
    return {key: value.model_dump(mode="json") for key, value in results.items()}


async def test_both_eras_at_once_see_what_they_see_directly(
    mcp_server_url: str, tmp_path: Path
) -> None:
    """Modern and legacy clients work through mcpr at the same time and get the direct results."""
    results: dict[tuple[str, str], dict[str, Any]] = {}
    async with proxied(mcp_server_url) as proxy:
        runs = [(target, era) for target in ("direct", "proxied") for era in (MODERN, LEGACY)]
        connected = anyio.Event()
        entered = 0

        async def run(target: str, era: str) -> None:
            nonlocal entered
            async with client(proxy.url if target == "proxied" else mcp_server_url, era) as c:
                # Every client is connected before any starts working: they overlap.
                entered += 1
                if entered == len(runs):
                    connected.set()
                await connected.wait()
                results[target, era] = await work(c)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                for target, era in runs:
                    group.start_soon(run, target, era)
        await proxy.wait_idle()

    for era in (MODERN, LEGACY):
        assert results["proxied", era] == results["direct", era]
    assert results["proxied", MODERN]["greet"]["content"][0]["text"] == "Hello, Ada!"
    assert results["proxied", MODERN]["locate"]["content"][0]["text"] == "located in Zürich ✓"
    assert results["proxied", MODERN]["profile"]["contents"][0]["text"] == '{"id": "Zoë"}'

    requests = proxy.requests()
    check_identities(requests)
    check_rounds(requests)
    check_store(proxy.events, tmp_path / "store.db", requests)


def check_identities(requests: list[RequestEvent]) -> None:
    """Modern requests say who they are themselves; legacy ones carry their session's client."""
    modern = [e for e in requests if e.era == "modern"]
    legacy = [e for e in requests if e.era == "legacy"]
    assert len(modern) + len(legacy) == len(requests)
    assert {(e.client_name, e.protocol_version, e.session_id) for e in modern} == {
        ("mcp", MODERN, None)
    }
    assert {(e.client_name, e.client_version, e.protocol_version) for e in legacy} == {
        (LEGACY_CLIENT.name, LEGACY_CLIENT.version, LEGACY_VERSION)
    }
    assert len({e.session_id for e in legacy}) == 1
    assert not any(e.header_mismatch for e in requests)
    assert {e.note for e in requests if e.method != "GET"} == {"ok", "input_required"}
    # The GET stream ends when the server ends it after the DELETE, or when the client
    # drops it first: either is a normal end of a legacy stream, not a cancellation.
    assert {e.note for e in requests if e.method == "GET"} <= {"ok", "client_closed"}
    # The legacy client also opened its GET stream, answered on POSTs and DELETEd its session.
    assert {e.method for e in legacy} == {"POST", "GET", "DELETE"}
    assert {e.mcp_method for e in modern} >= {"tools/list", "tools/call", "resources/read"}


def check_rounds(requests: list[RequestEvent]) -> None:
    """Each modern MRTR call is two events linked by a key; the legacy call is one."""
    for tool, asked in (("greet", "elicitation/create"), ("haiku", "sampling/createMessage")):
        modern = [e for e in requests if e.tool == tool and e.era == "modern"]
        first, retry = modern
        assert (first.note, first.result_type) == ("input_required", "input_required")
        [request] = first.input_requests
        assert request.endswith(f":{asked}")
        assert (retry.note, retry.result_type) == ("ok", "complete")
        assert first.correlation_key is not None
        assert retry.correlation_key == first.correlation_key
        [legacy] = [e for e in requests if e.tool == tool and e.era == "legacy"]
        assert (legacy.note, legacy.correlation_key) == ("ok", None)
    keys = {e.correlation_key for e in requests if e.era == "modern" and e.correlation_key}
    assert len(keys) == 2


def mcpr(store: Path, *args: str) -> str:
    """Run `mcpr ARGS` against `store`; return stdout."""
    result = CliRunner().invoke(cli, list(args), env={"MCPR_DB": str(store), "COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.stdout


def json_lines(output: str) -> list[dict[str, Any]]:
    """One JSON object per line."""
    return [json.loads(line) for line in output.splitlines()]


def check_store(events: list[ProxyEvent], path: Path, requests: list[RequestEvent]) -> None:
    """Stored, every request row has its client, era and version; both clients are listed."""
    store = Store(path, mcpr_version="test")
    try:
        store.put(events)
    finally:
        store.close()
    rows = json_lines(mcpr(path, "proxy", "logs", "e2e", "--tail", "1000", "--json"))
    assert len(rows) == len(requests)
    assert {(r["era"], r["client_name"], r["protocol_version"]) for r in rows} == {
        ("modern", "mcp", MODERN),
        ("legacy", LEGACY_CLIENT.name, LEGACY_VERSION),
    }
    clients = json_lines(mcpr(path, "proxy", "clients", "e2e", "--json"))
    modern_count = sum(1 for e in requests if e.era == "modern")
    assert {(c["client_name"], c["requests"], c["sessions"]) for c in clients} == {
        ("mcp", modern_count, 0),
        (LEGACY_CLIENT.name, len(requests) - modern_count, 1),
    }
    stats = json.loads(mcpr(path, "proxy", "stats", "e2e", "--client", "mcp", "--json"))
    assert stats["total"]["calls"] == modern_count
    per_key = {row["key"]: row["calls"] for row in stats["rows"]}
    # Two rounds each for greet and haiku, one call for the others.
    assert (per_key["greet"], per_key["haiku"], per_key["echo"], per_key["locate"]) == (2, 2, 1, 1)
    # The table shows the era and the client on every row, too.
    table = mcpr(path, "proxy", "logs", "e2e", "--tail", "1000")
    lines = [line for line in table.splitlines() if line.startswith("│")]
    assert len(lines) == len(requests)
    for line in lines:
        assert (" modern " in line and " mcp " in line) or (
            " legacy " in line and f" {LEGACY_CLIENT.name} " in line
        )


async def test_listen_stream_outlives_timeouts_and_carries_list_changed(
    mcp_server_url: str,
) -> None:
    """A listen stream lasts past request and idle timeouts and delivers each list change."""
    async with (
        proxied(mcp_server_url, request_timeout=SHORT_TIMEOUT, idle_timeout=SHORT_TIMEOUT) as proxy,
        client(proxy.url, MODERN) as modern,
        client(proxy.url, LEGACY) as legacy,
    ):
        before = {tool.name for tool in (await modern.list_tools()).tools}
        assert EXTRA_TOOL not in before
        async with modern.listen(tools_list_changed=True) as subscription:
            assert subscription.honored.tools_list_changed is True
            assert proxy.handler().subscriptions_open == 1
            # What is under test is time passing with nothing on the stream: three times
            # the request timeout and the idle timeout.
            await anyio.sleep(3 * SHORT_TIMEOUT)
            try:
                added = await legacy.call_tool("set_extra_tool", {"present": True})
                assert added.structured_content is not None
                assert EXTRA_TOOL in added.structured_content["result"]
                with anyio.fail_after(WAIT):
                    assert await anext(subscription) == ToolsListChanged()
                after = {tool.name for tool in (await modern.list_tools()).tools}
            finally:
                await legacy.call_tool("set_extra_tool", {"present": False})
            with anyio.fail_after(WAIT):
                assert await anext(subscription) == ToolsListChanged()
            assert after == before | {EXTRA_TOOL}
            assert {tool.name for tool in (await modern.list_tools()).tools} == before
            # mcpr observes each event before passing it on, so both were counted by now.
            assert proxy.handler().list_changed_total == 2
        # The legacy client's GET stream is still open; the listen stream is gone.
        await proxy.wait_for(lambda handler: handler.subscriptions_open == 0)

    [listen] = [e for e in proxy.requests() if e.mcp_method == "subscriptions/listen"]
    assert (listen.status, listen.era, listen.client_name) == (200, "modern", "mcp")
    # The client ended it by closing the response: a 2026-07-28 cancellation.
    assert listen.note == "cancelled"
    assert listen.latency_us > 3 * SHORT_TIMEOUT * 1_000_000
    changes = [
        (change.change_type, change.item_name)
        for event in proxy.events
        if isinstance(event, SchemaVersionCreated) and event.method == "tools/list"
        for change in event.changes
    ]
    assert changes[-2:] == [("tool_added", EXTRA_TOOL), ("tool_removed", EXTRA_TOOL)]
    # The notifications reached schema capture while the stream was open, before the
    # refetches, so the last listing is current, not stale.
    snapshot = proxy.capture.snapshot("tools/list")
    assert snapshot is not None
    assert snapshot.stale is False


@pytest.mark.parametrize("streaming", [True, False], ids=["after-head", "before-head"])
async def test_client_cancel_reaches_the_server_at_once(
    mcp_server_url: str, streaming: bool
) -> None:
    """A 2026-07-28 client abandoning a call is seen by the server within 100 ms via mcpr.

    `after-head`: the call reported progress, so its SSE response is open when the client
    closes it. `before-head`: nothing was emitted, and the SDK holds the response head back
    (up to 15 s), so the client hangs up while mcpr still waits for the upstream's head.
    """
    token = uuid.uuid4().hex
    async with (
        proxied(mcp_server_url) as proxy,
        client(proxy.url, MODERN) as modern,
        client(mcp_server_url, MODERN) as observer,
    ):
        progressed = anyio.Event()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            progressed.set()

        async with anyio.create_task_group() as group:
            call_scope = anyio.CancelScope()

            async def call() -> None:
                with call_scope:
                    await modern.call_tool(
                        "hold",
                        {"token": token, "seconds": 60},
                        progress_callback=on_progress if streaming else None,
                    )

            group.start_soon(call)
            with anyio.fail_after(WAIT):
                if streaming:
                    await progressed.wait()
                else:
                    await report(observer, token, "started")
            cancelled = time.monotonic()
            call_scope.cancel()
        # Both processes read CLOCK_MONOTONIC, one clock for the whole machine.
        seen = await report(observer, token, "cancelled")
        await proxy.wait_idle()
    assert 0 <= seen - cancelled < CANCEL_BOUND
    [event] = [e for e in proxy.requests() if e.tool == "hold"]
    assert (event.note, event.era, event.status) == ("cancelled", "modern", 200 if streaming else 0)


async def report(observer: mcp.Client, token: str, until: str) -> float:
    """When (server-side `time.monotonic()`) the `hold` call under `token` started/was cancelled."""
    result = await observer.call_tool("hold_report", {"token": token, "until": until})
    assert result.is_error is False, result.content
    assert result.structured_content is not None
    value = result.structured_content["result"]
    assert isinstance(value, float)
    return value
