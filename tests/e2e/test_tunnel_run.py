"""`mcpr proxy run` with a `[tunnel]` table, as a child process, against an in-process relay.

The relay runs on the test's event loop; mcpr is a real process reading a real mcpr.toml,
with its admin listener on a free port so `/ready` and `/metrics` can be read.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
import mcp
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from mcpr_cli.relay.config import RelayConfig, TokenRule
from mcpr_cli.relay.server import serve_relay
from tests.e2e.processes import spawn_mcpr

RELAY = RelayConfig(
    domain="tunnel.test", tokens=(TokenRule("tok", ("demo",)),), port=0, scheme="http"
)
#: Bound on the child's start and on each condition waited for.
WITHIN = 20.0
#: Pause between two looks at the child's admin endpoints or stderr (nothing to wait on).
POLL = 0.05


@asynccontextmanager
async def mcpr_run(
    tmp_path: Path, mcp_server_url: str, port: int, admin: int, tunnel: str
) -> AsyncIterator[tuple[subprocess.Popen[bytes], Path]]:
    """`mcpr proxy run` with `tunnel` as its [tunnel] table; yields the process and its stderr."""
    config = tmp_path / "mcpr.toml"
    config.write_text(
        f'mcp = "{mcp_server_url}"\nport = {port}\nadmin = "127.0.0.1:{admin}"\n'
        f'events_format = "off"\n\n[tunnel]\n{tunnel}\n',
        encoding="utf-8",
    )
    stderr_path = tmp_path / "stderr.log"
    env = {**os.environ, "MCPR_DB": str(tmp_path / "store.db")}
    proc = spawn_mcpr("proxy", "run", str(config), stderr_path=stderr_path, env=env)
    try:
        yield proc, stderr_path
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            await anyio.to_thread.run_sync(proc.wait, 15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


async def eventually(check: Callable[[], object], what: str, stderr: Path) -> None:
    """Wait until `check()` is truthy (async checks are awaited); fail with mcpr's stderr."""
    with anyio.move_on_after(WITHIN):
        while True:
            outcome = check()
            if hasattr(outcome, "__await__"):
                outcome = await outcome
            if outcome:
                return
            await anyio.sleep(POLL)
    raise AssertionError(f"{what} within {WITHIN} s; mcpr's stderr:\n{_read(stderr)}")


async def _ready(http: httpx2.AsyncClient, admin: int, status: int) -> bool:
    try:
        response = await http.get(f"http://127.0.0.1:{admin}/ready")
    except httpx2.TransportError:
        return False
    return response.status_code == status and "tunnel" in response.json()


async def test_proxy_run_exposes_the_proxy_through_the_tunnel(
    mcp_server_url: str, tmp_path: Path, free_tcp_port_factory: Callable[[], int]
) -> None:
    """The tunnel connects, /ready and /metrics say so, and the SDK client gets through."""
    port, admin = free_tcp_port_factory(), free_tcp_port_factory()
    async with serve_relay(RELAY) as relay, httpx2.AsyncClient() as http:
        table = f'relay_url = "{relay.url}"\ntoken = "tok"\nsubdomain = "demo"'
        async with mcpr_run(tmp_path, mcp_server_url, port, admin, table) as (proc, stderr):
            await eventually(lambda: _ready(http, admin, 200), "/ready 200", stderr)
            ready = (await http.get(f"http://127.0.0.1:{admin}/ready")).json()
            public = f"http://demo.tunnel.test:{relay.port}"
            assert ready["tunnel"] == {"status": "connected", "url": public, "error": None}
            metrics = (await http.get(f"http://127.0.0.1:{admin}/metrics")).text
            assert 'mcpr_tunnel_status{status="connected"} 1' in metrics
            assert 'mcpr_tunnel_status{status="evicted"} 0' in metrics
            headers = {"Host": f"demo.tunnel.test:{relay.port}"}
            async with create_mcp_http_client(headers=headers) as public_http:
                transport = streamable_http_client(f"{relay.url}/mcp", http_client=public_http)
                async with mcp.Client(transport, mode="2026-07-28") as client:
                    tools = await client.list_tools()
            assert "echo" in {tool.name for tool in tools.tools}
            proc.send_signal(signal.SIGTERM)
            assert await anyio.to_thread.run_sync(proc.wait, 15) == 0
        assert "tunnel_connected" in _read(stderr)


async def test_bad_token_is_refused_with_a_clear_message(
    mcp_server_url: str, tmp_path: Path, free_tcp_port_factory: Callable[[], int]
) -> None:
    """A token the relay does not know is logged once, clearly, and /ready says why."""
    port, admin = free_tcp_port_factory(), free_tcp_port_factory()
    async with serve_relay(RELAY) as relay, httpx2.AsyncClient() as http:
        table = f'relay_url = "{relay.url}"\ntoken = "wrong"'
        async with mcpr_run(tmp_path, mcp_server_url, port, admin, table) as (proc, stderr):
            message = "the relay refused the tunnel: invalid token"
            await eventually(lambda: message in _read(stderr), "the refusal", stderr)
            reason = f"tunnel disconnected: {message}"

            async def refused() -> bool:
                response = await http.get(f"http://127.0.0.1:{admin}/ready")
                body = response.json()
                return response.status_code == 503 and body.get("reason") == reason

            # Until the first upstream probe finishes, /ready gives that as its reason.
            await eventually(refused, "/ready 503 naming the refusal", stderr)
            ready = (await http.get(f"http://127.0.0.1:{admin}/ready")).json()
            assert ready["tunnel"]["status"] == "disconnected"
            assert proc.poll() is None  # the proxy keeps serving locally
            local = await http.post(
                f"http://127.0.0.1:{port}/mcp",
                headers={"accept": "application/json, text/event-stream"},
                json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            )
            assert local.status_code != 502
        assert _read(stderr).count(message) == 1


async def _listening(port: int) -> bool:
    try:
        stream = await anyio.connect_tcp("127.0.0.1", port)
    except OSError:
        return False
    await stream.aclose()
    return True


async def test_relay_and_proxy_processes_stream_sse_to_an_outside_client(
    mcp_server_url: str, tmp_path: Path, free_tcp_port_factory: Callable[[], int]
) -> None:
    """`mcpr relay run` and `mcpr proxy run` as processes: the SDK client streams progress."""
    relay_port, port, admin = (free_tcp_port_factory() for _ in range(3))
    relay_config = tmp_path / "relay.toml"
    relay_config.write_text(
        f'[relay]\ndomain = "tunnel.test"\nport = {relay_port}\nscheme = "http"\n'
        '[[relay.tokens]]\ntoken = "tok"\nsubdomains = ["demo"]\n',
        encoding="utf-8",
    )
    relay_stderr = tmp_path / "relay.log"
    relay = spawn_mcpr("relay", "run", str(relay_config), stderr_path=relay_stderr)
    try:
        await eventually(lambda: _listening(relay_port), "the relay listening", relay_stderr)
        relay_url = f"http://127.0.0.1:{relay_port}"
        table = f'relay_url = "{relay_url}"\ntoken = "tok"\nsubdomain = "demo"'
        proxy_dir = tmp_path / "proxy"
        proxy_dir.mkdir()
        async with (
            httpx2.AsyncClient() as http,
            mcpr_run(proxy_dir, mcp_server_url, port, admin, table) as (_, stderr),
        ):
            await eventually(lambda: _ready(http, admin, 200), "/ready 200", stderr)
            seen: list[float] = []

            async def on_progress(
                progress: float, total: float | None, message: str | None
            ) -> None:
                seen.append(progress)

            headers = {"Host": f"demo.tunnel.test:{relay_port}"}
            async with create_mcp_http_client(headers=headers) as public_http:
                transport = streamable_http_client(f"{relay_url}/mcp", http_client=public_http)
                async with mcp.Client(transport, mode="legacy") as client:
                    result = await client.call_tool(
                        "slow_count", {"n": 3, "delay": 0.01}, progress_callback=on_progress
                    )
            assert not result.is_error
            assert seen == [1, 2, 3]
    finally:
        relay.send_signal(signal.SIGTERM)
        assert await anyio.to_thread.run_sync(relay.wait, 15) == 0
    assert "mcpr relay listening on" in _read(relay_stderr)
