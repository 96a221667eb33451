"""`mcpr proxy run` as a process, with the store: SDK traffic lands in `mcpr proxy logs`.

The proxy runs as the real console script (a subprocess) in front of the SDK test server,
with `MCPR_DB` in the test's temporary folder; the store is read back through the CLI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp
import pytest
from click.testing import CliRunner
from mcp import types

from mcpr_cli.cli import cli
from tests.e2e.processes import wait_listening

MCPR = Path(sys.executable).with_name("mcpr")
#: How long the proxy may take to listen, and to exit after SIGTERM.
STARTUP_TIMEOUT = 20.0
EXIT_TIMEOUT = 30.0
CLIENT = types.Implementation(name="claude-e2e", version="9.9")
MODERN = "2026-07-28"


@dataclass
class ProxyProcess:
    """A running `mcpr proxy run` and where it records."""

    proc: subprocess.Popen[bytes]
    url: str
    store: Path
    stderr: Path

    def stop(self) -> int:
        """SIGTERM, then wait for the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=EXIT_TIMEOUT)


@pytest.fixture
def proxy(
    mcp_server_url: str, tmp_path: Path, free_tcp_port_factory: Callable[[], int]
) -> Iterator[ProxyProcess]:
    """`mcpr proxy run` in front of the SDK server, recording into a fresh store."""
    port = free_tcp_port_factory()
    store = tmp_path / "store.db"
    stderr_path = tmp_path / "mcpr.stderr"
    env = {**os.environ, "MCPR_DB": str(store), "MCPR_ADMIN": "none"}
    args = ["proxy", "run", "--mcp", mcp_server_url, "--port", str(port), "--name", "e2e"]
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [str(MCPR), *args, "--events", "json"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        wait_listening(proc, port, stderr_path)
        yield ProxyProcess(proc, f"http://127.0.0.1:{port}/mcp", store, stderr_path)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def mcpr_json(store: Path, *args: str) -> list[dict[str, Any]]:
    """Run `mcpr ARGS --json` against `store`; one object per output line."""
    result = CliRunner().invoke(cli, [*args, "--json"], env={"MCPR_DB": str(store)})
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


async def test_sdk_calls_show_up_in_proxy_logs(proxy: ProxyProcess) -> None:
    """Tool calls of both eras are stored with tool, latency, session and client identity."""
    for era in ("legacy", MODERN):
        async with mcp.Client(proxy.url, mode=era, client_info=CLIENT) as client:
            echoed = await client.call_tool("echo", {"text": era})
            failed = await client.call_tool("fail", {"reason": "on purpose"})
        assert echoed.is_error is False
        assert failed.is_error is True
    assert proxy.stop() == 0

    rows = mcpr_json(proxy.store, "proxy", "logs", "e2e", "--tail", "100")
    calls = [row for row in rows if row["method"] == "tools/call"]
    by_era = {(row["era"], row["tool"]): row for row in calls}
    assert sorted(by_era) == [
        ("legacy", "echo"),
        ("legacy", "fail"),
        ("modern", "echo"),
        ("modern", "fail"),
    ]
    for row in calls:
        assert row["proxy"] == "e2e"
        assert row["latency_us"] > 0
        assert row["client_name"] == "claude-e2e"
        assert row["client_platform"] == "claude"
    legacy_session = by_era["legacy", "echo"]["session_id"]
    assert legacy_session
    assert by_era["legacy", "fail"]["session_id"] == legacy_session
    assert by_era["modern", "echo"]["session_id"] is None
    assert by_era["legacy", "echo"]["status"] == by_era["modern", "echo"]["status"] == "ok"
    assert by_era["legacy", "fail"]["status"] == by_era["modern", "fail"]["status"] == "error"
    assert any(row["method"] == "initialize" for row in rows)

    [session] = mcpr_json(proxy.store, "proxy", "sessions", "e2e")
    assert session["session_id"] == legacy_session
    assert session["client_name"] == "claude-e2e"
    clients = mcpr_json(proxy.store, "proxy", "clients", "e2e")
    assert [(c["client_name"], c["client_version"]) for c in clients] == [("claude-e2e", "9.9")]

    # The same calls were printed as JSON event lines on stderr (after the banner).
    lines = [
        json.loads(line) for line in proxy.stderr.read_text().splitlines() if line.startswith("{")
    ]
    events = [line for line in lines if line.get("type") == "request"]
    assert len(events) == len(rows)


def _slow_call(n: int) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": n,
        "method": "tools/call",
        "params": {
            "name": "slow_count",
            "arguments": {"n": 3, "delay": 0.2},
            "_meta": {
                "progressToken": n,
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientInfo": {"name": "drain-test", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    }


async def test_sigterm_with_requests_in_flight_loses_no_event(proxy: ProxyProcess) -> None:
    """Calls in flight at SIGTERM are answered during the drain, and every one is stored."""
    in_flight = 8
    headers = {
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": MODERN,
        "mcp-method": "tools/call",
        "mcp-name": "slow_count",
    }
    answered: list[int] = []
    heads = 0
    all_started = anyio.Event()

    async def call(http: httpx2.AsyncClient, n: int) -> None:
        nonlocal heads
        async with http.stream("POST", proxy.url, headers=headers, json=_slow_call(n)) as resp:
            assert resp.status_code == 200
            heads += 1
            if heads == in_flight:
                all_started.set()
            body = b"".join([chunk async for chunk in resp.aiter_bytes()])
        assert b'"counted to 3"' in body
        answered.append(n)

    async with httpx2.AsyncClient(timeout=EXIT_TIMEOUT) as http, anyio.create_task_group() as tg:
        for n in range(in_flight):
            tg.start_soon(call, http, n)
        with anyio.fail_after(STARTUP_TIMEOUT):
            await all_started.wait()
        proxy.proc.send_signal(signal.SIGTERM)
    assert await anyio.to_thread.run_sync(lambda: proxy.proc.wait(timeout=EXIT_TIMEOUT)) == 0

    rows = mcpr_json(proxy.store, "proxy", "logs", "e2e", "--tail", "100")
    assert len(answered) == in_flight
    assert len(rows) == len(answered)
    assert {row["tool"] for row in rows} == {"slow_count"}
    assert {row["status"] for row in rows} == {"ok"}
    assert {row["client_name"] for row in rows} == {"drain-test"}
