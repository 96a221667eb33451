"""Tests of the upstream health probe against stub upstreams on loopback."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from mcpr_cli.probe import (
    PROBE_PROTOCOL_VERSION,
    ProbeResult,
    UpstreamProbe,
    UpstreamStatus,
    probe_upstream,
)
from mcpr_core.config import ProxyConfig
from mcpr_core.events import Heartbeat, ProxyEvent
from tests.cli.stub_upstream import (
    Handler,
    ReceivedRequest,
    Responder,
    StubUpstream,
    reply_with,
    stub_upstream,
)

SESSION = "5f0e1a2b-probe-session"
_INIT_RESULT = {
    "protocolVersion": "2025-03-26",
    "capabilities": {},
    "serverInfo": {"name": "stub", "version": "1"},
}


def _answer(result: Any = None, error: Any = None, rid: Any = "mcpr-probe") -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": rid}
    if error is not None:
        message["error"] = error
    else:
        message["result"] = result if result is not None else _INIT_RESULT
    return json.dumps(message).encode()


def mcp_server(*, sse: bool, session: str | None = SESSION) -> Handler:
    """An MCP upstream: answers `initialize` (JSON or SSE), 200 to DELETE."""

    async def handler(request: ReceivedRequest, respond: Responder) -> None:
        if request.method == b"DELETE":
            await respond.reply(200)
            return
        headers = [(b"mcp-session-id", session.encode())] if session else []
        if sse:
            headers.append((b"content-type", b"text/event-stream"))
            await respond.head(200, headers)
            await respond.send(b": hello\n\nevent: message\ndata: ")
            await respond.send(_answer() + b"\n\n")
            await anyio.sleep_forever()  # the probe must not wait for the stream's end
        headers.append((b"content-type", b"application/json"))
        await respond.reply(200, headers, [_answer()])

    return handler


async def probe(stub: StubUpstream, within: float = 5.0) -> ProbeResult:
    """Probe the stub once."""
    config = ProxyConfig(mcp=stub.url)
    return await probe_upstream(config.upstream, within=within)


@pytest.mark.parametrize("sse", [False, True], ids=["json", "sse"])
async def test_mcp_upstream_is_connected_and_its_session_deleted(sse: bool) -> None:
    """An MCP answer is `connected`; the session it opened is ended with a DELETE."""
    async with stub_upstream(mcp_server(sse=sse)) as stub:
        result = await probe(stub)
        await stub.wait_until(lambda: len(stub.requests) == 2)
    assert result.status is UpstreamStatus.CONNECTED
    assert result.status.up
    assert result.http_status == 200
    assert (result.session_id, result.session_closed) == (SESSION, True)
    init, delete = stub.requests
    assert (init.method, init.target) == (b"POST", b"/mcp")
    assert init.header(b"mcp-protocol-version") is None
    assert init.header(b"accept") == b"application/json, text/event-stream"
    body = json.loads(init.body)
    assert body["method"] == "initialize"
    assert body["params"]["protocolVersion"] == PROBE_PROTOCOL_VERSION
    assert body["params"]["clientInfo"]["name"] == "mcpr-probe"
    assert (delete.method, delete.target) == (b"DELETE", b"/mcp")
    assert delete.header(b"mcp-session-id") == SESSION.encode()
    # The version the server chose in its answer, as a client would send it.
    assert delete.header(b"mcp-protocol-version") == b"2025-03-26"


async def test_no_session_no_delete() -> None:
    """A stateless answer (no Mcp-Session-Id) is not followed by a DELETE."""
    async with stub_upstream(mcp_server(sse=False, session=None)) as stub:
        result = await probe(stub)
    assert result.status is UpstreamStatus.CONNECTED
    assert (result.session_id, result.session_closed) == (None, False)
    assert [r.method for r in stub.requests] == [b"POST"]


async def test_refused_delete_is_reported() -> None:
    """A session the upstream will not end (405 to DELETE) is reported as not closed."""

    async def handler(request: ReceivedRequest, respond: Responder) -> None:
        if request.method == b"DELETE":
            await respond.reply(405)
            return
        headers = [(b"mcp-session-id", SESSION.encode()), (b"content-type", b"application/json")]
        await respond.reply(200, headers, [_answer()])

    async with stub_upstream(handler) as stub:
        result = await probe(stub)
    assert result.status is UpstreamStatus.CONNECTED
    assert (result.session_id, result.session_closed) == (SESSION, False)


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_required(status: int) -> None:
    """401 and 403 mean the upstream wants a token: `auth_required`, which still counts as up."""
    challenge = [(b"www-authenticate", b'Bearer resource_metadata="https://x/.well-known"')]
    async with stub_upstream(reply_with(status, challenge)) as stub:
        result = await probe(stub)
    assert result.status is UpstreamStatus.AUTH_REQUIRED
    assert result.status.up
    assert result.http_status == status


@pytest.mark.parametrize(
    ("status", "headers", "body", "detail"),
    [
        (200, [(b"content-type", b"text/html; charset=utf-8")], b"<html>hi</html>", "HTML"),
        (404, [(b"content-type", b"text/plain")], b"Not Found", "HTTP 404"),
        (404, [], b"", "HTTP 404"),
        (405, [(b"content-type", b"text/html")], b"<h1>405</h1>", "HTML"),
        (200, [(b"content-type", b"application/json")], b'{"status": "ok"}', "not JSON-RPC"),
        (200, [(b"content-type", b"application/json")], b"{broken", "not JSON-RPC"),
        (200, [(b"content-type", b"text/event-stream")], b"data: hi\n\n", "event stream"),
    ],
    ids=["html", "404-text", "404-empty", "405-html", "json", "bad-json", "sse"],
)
async def test_not_mcp(
    status: int, headers: list[tuple[bytes, bytes]], body: bytes, detail: str
) -> None:
    """An HTML page, a 404 or 405 without JSON-RPC, or JSON that is not JSON-RPC is `not_mcp`."""
    async with stub_upstream(reply_with(status, headers, [body])) as stub:
        result = await probe(stub)
    assert result.status is UpstreamStatus.NOT_MCP
    assert not result.status.up
    assert detail in result.detail


async def test_modern_only_server_answering_404_with_json_rpc_is_connected() -> None:
    """A 2026-07-28-only server refuses `initialize` with 404 and `-32601`: still MCP."""
    error = {"code": -32601, "message": "Method not found"}
    headers = [(b"content-type", b"application/json")]
    async with stub_upstream(reply_with(404, headers, [_answer(error=error)])) as stub:
        result = await probe(stub)
    assert result.status is UpstreamStatus.CONNECTED
    assert result.detail == "HTTP 404, JSON-RPC error"


async def test_gateway_error_is_disconnected() -> None:
    """A 502 (a gateway in front of a dead server) is `disconnected`."""
    async with stub_upstream(reply_with(502, [(b"content-type", b"text/html")], [b"bad"])) as s:
        result = await probe(s)
    assert result.status is UpstreamStatus.DISCONNECTED
    assert result.detail == "HTTP 502 from the upstream"


async def test_nothing_listening_is_disconnected(free_tcp_port_factory: Callable[[], int]) -> None:
    """A refused connection is `disconnected`, with the reason."""
    config = ProxyConfig(mcp=f"http://127.0.0.1:{free_tcp_port_factory()}/mcp")
    result = await probe_upstream(config.upstream, within=5.0)
    assert result.status is UpstreamStatus.DISCONNECTED
    assert result.http_status is None
    assert result.detail.startswith("cannot reach http://127.0.0.1:")


async def test_silent_upstream_is_disconnected_after_the_timeout() -> None:
    """An upstream that never answers is `disconnected` once the probe timeout passed."""

    async def handler(request: ReceivedRequest, respond: Responder) -> None:
        await anyio.sleep_forever()

    async with stub_upstream(handler) as stub:
        result = await probe(stub, within=0.2)
    assert result.status is UpstreamStatus.DISCONNECTED
    assert result.detail == "no answer within 0.2 s"


async def test_session_is_deleted_even_when_the_answer_never_comes() -> None:
    """A head with a session id and then silence: `disconnected`, and the session still ended."""

    async def handler(request: ReceivedRequest, respond: Responder) -> None:
        if request.method == b"DELETE":
            await respond.reply(204)
            return
        headers = [(b"mcp-session-id", SESSION.encode()), (b"content-type", b"text/event-stream")]
        await respond.head(200, headers)
        await anyio.sleep_forever()

    async with stub_upstream(handler) as stub:
        result = await probe(stub, within=0.3)
    assert result.status is UpstreamStatus.DISCONNECTED
    assert (result.session_id, result.session_closed) == (SESSION, True)
    assert [r.method for r in stub.requests] == [b"POST", b"DELETE"]


async def test_connection_cut_before_the_head_is_disconnected() -> None:
    """An upstream that hangs up without answering is `disconnected`."""

    async def handler(request: ReceivedRequest, respond: Responder) -> None:
        await respond.abort()

    async with stub_upstream(handler) as stub:
        result = await probe(stub)
    assert result.status is UpstreamStatus.DISCONNECTED
    assert "bad HTTP" in result.detail


async def test_each_probe_emits_a_heartbeat() -> None:
    """A probe emits a `Heartbeat` with the status, the uptime, requests and dropped events."""
    events: list[ProxyEvent] = []
    async with stub_upstream(mcp_server(sse=False)) as stub:
        config = ProxyConfig(mcp=stub.url, name="edge")
        prober = UpstreamProbe(
            config, emit=events.append, requests_total=lambda: 42, events_dropped=lambda: 3
        )
        assert prober.last is None
        result = await prober.probe()
    assert prober.last == result
    assert prober.status == "connected"
    [beat] = events
    assert isinstance(beat, Heartbeat)
    assert (beat.proxy, beat.upstream_status) == ("edge", "connected")
    assert (beat.requests_total, beat.events_dropped) == (42, 3)
    assert beat.uptime_s >= 0
    assert beat.ts > 1_600_000_000_000


async def test_run_probes_every_interval_and_logs_changes() -> None:
    """`run` probes at once and then every interval; only a change of status is logged."""
    events: list[ProxyEvent] = []
    healthy = True

    async def handler(request: ReceivedRequest, respond: Responder) -> None:
        if healthy:
            await mcp_server(sse=False, session=None)(request, respond)
        else:
            await respond.reply(503)

    async with stub_upstream(handler) as stub:
        config = ProxyConfig(mcp=stub.url, probe_interval=0.02)
        prober = UpstreamProbe(config, emit=events.append)
        with capture_logs() as logs:
            async with anyio.create_task_group() as group:
                await group.start(prober.run)
                await prober.wait_probed(3)
                healthy = False
                first_down = prober.probes + 1
                down = await prober.wait_probed(first_down + 1)
                group.cancel_scope.cancel()
    assert down.status is UpstreamStatus.DISCONNECTED
    assert len(events) == prober.probes
    statuses = [(entry["status"], entry["log_level"]) for entry in logs]
    assert statuses == [("connected", "info"), ("disconnected", "warning")]
