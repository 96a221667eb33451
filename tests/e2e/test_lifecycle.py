"""`mcpr proxy run` as a supervisor sees it: drain on SIGTERM, forced exit, startup failures.

The proxy runs as `python -m mcpr_cli proxy run CONFIG` in front of the SDK test server, on the
test's own event loop backend (`backend = "asyncio"` or `"trio"` in the file), with its store
(`MCPR_DB`) and its admin listener on a free port. The tool call under drain is `slow_count`
in the 2026-07-28 shape: it streams a progress event per step, so the test knows the call is
in flight before it sends the signal.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from click.testing import CliRunner

from mcpr_cli.cli import cli
from mcpr_cli.runner import FORCED_EXIT
from tests.e2e.processes import spawn_mcpr, wait_listening

#: How long mcpr may take to listen (imports dominate), and any single wait on it.
STARTUP_TIMEOUT = 20.0
MODERN = "2026-07-28"
HEADERS = {
    "accept": "application/json, text/event-stream",
    "mcp-protocol-version": MODERN,
    "mcp-method": "tools/call",
    "mcp-name": "slow_count",
}


@dataclass
class Mcpr:
    """A running `mcpr proxy run` process, its addresses and its files."""

    proc: subprocess.Popen[bytes]
    url: str
    admin: str
    store: Path
    stderr_path: Path

    def stderr(self) -> str:
        """Everything the process wrote to stderr so far."""
        return self.stderr_path.read_text(errors="replace")

    async def wait(self, within: float = STARTUP_TIMEOUT) -> int:
        """Wait for the exit status without blocking the event loop."""
        return await anyio.to_thread.run_sync(lambda: self.proc.wait(timeout=within))


def _write_config(tmp_path: Path, **settings: Any) -> Path:
    config = tmp_path / "mcpr.toml"
    lines = [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    config.write_text("\n".join(lines) + "\n")
    return config


def _run(config: Path, tmp_path: Path, stderr_path: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCPR_")}
    env["MCPR_DB"] = str(tmp_path / "store.db")
    env["MCPR_HOME"] = str(tmp_path / "mcpr-home")
    return spawn_mcpr("proxy", "run", str(config), stderr_path=stderr_path, env=env)


@pytest.fixture
def start_mcpr(
    mcp_server_url: str,
    tmp_path: Path,
    free_tcp_port_factory: Callable[[], int],
    anyio_backend_name: str,
) -> Iterator[Callable[..., Mcpr]]:
    """Start mcpr in front of the SDK server with the given settings; killed if still running."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(**settings: Any) -> Mcpr:
        port, admin_port = free_tcp_port_factory(), free_tcp_port_factory()
        config = _write_config(
            tmp_path,
            mcp=mcp_server_url,
            port=port,
            admin=f"127.0.0.1:{admin_port}",
            name="lifecycle",
            backend=anyio_backend_name,
            events_format="json",
            log_format="json",
            **settings,
        )
        stderr_path = tmp_path / "mcpr.stderr"
        proc = _run(config, tmp_path, stderr_path)
        procs.append(proc)
        wait_listening(proc, port, stderr_path)
        return Mcpr(
            proc,
            f"http://127.0.0.1:{port}/mcp",
            f"http://127.0.0.1:{admin_port}",
            tmp_path / "store.db",
            stderr_path,
        )

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _slow_call(n: int, delay: float) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": "slow_count",
            "arguments": {"n": n, "delay": delay},
            "_meta": {
                "progressToken": "p1",
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientInfo": {"name": "lifecycle-test", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    }


async def _eventually(
    check: Callable[[], Awaitable[bool]], within: float = STARTUP_TIMEOUT
) -> None:
    """Poll another process's observable state until `check()` is true."""
    with anyio.fail_after(within):
        # Another process's state has no change notification to wait on, so this polls.
        while not await check():  # noqa: ASYNC110
            await anyio.sleep(0.05)


async def _admin_status(http: httpx2.AsyncClient, url: str) -> int:
    try:
        return (await http.get(url)).status_code
    except httpx2.TransportError:
        return 0


def _store_rows(store: Path) -> list[dict[str, Any]]:
    result = CliRunner().invoke(
        cli, ["proxy", "logs", "lifecycle", "--json"], env={"MCPR_DB": str(store)}
    )
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


@dataclass
class Call:
    """A slow tool call streaming through the proxy."""

    chunks: AsyncIterator[bytes]
    body: bytes = b""

    async def read_until(self, marker: bytes) -> None:
        """Read until `marker` arrived."""
        async for chunk in self.chunks:
            self.body += chunk
            if marker in self.body:
                return
        pytest.fail(f"the stream ended before {marker!r}: {self.body!r}")

    async def read_rest(self) -> None:
        """Read to the end of the response."""
        async for chunk in self.chunks:
            self.body += chunk


async def test_sigterm_drains_an_in_flight_call(start_mcpr: Callable[..., Mcpr]) -> None:
    """A 2 s call in flight at SIGTERM gets its whole result; exit 0 well within the deadline."""
    mcpr = start_mcpr(drain_timeout=20)
    async with httpx2.AsyncClient(timeout=STARTUP_TIMEOUT) as http:
        # The probe found the SDK server: the pod would be put in service now.
        await _eventually(lambda: _is(200, _admin_status(http, f"{mcpr.admin}/ready")))
        async with http.stream("POST", mcpr.url, headers=HEADERS, json=_slow_call(4, 0.5)) as resp:
            call = Call(resp.aiter_bytes())
            await call.read_until(b"notifications/progress")
            signalled = time.monotonic()
            mcpr.proc.send_signal(signal.SIGTERM)
            healthz = f"{mcpr.admin}/healthz"
            await _eventually(lambda: _is(503, _admin_status(http, healthz)))
            await call.read_rest()
    assert await mcpr.wait() == 0
    assert time.monotonic() - signalled < 20
    assert b'"counted to 4"' in call.body
    [row] = [row for row in _store_rows(mcpr.store) if row["tool"] == "slow_count"]
    assert row["status"] == "ok"
    assert row["client_name"] == "lifecycle-test"
    assert '"event": "draining"' in mcpr.stderr()


async def _is(expected: int, status: Awaitable[int]) -> bool:
    return await status == expected


async def test_drain_deadline_cuts_the_call(start_mcpr: Callable[..., Mcpr]) -> None:
    """With `drain_timeout = 1` the same call is ended at the deadline and mcpr exits by ~1.5 s."""
    mcpr = start_mcpr(drain_timeout=1)
    async with (
        httpx2.AsyncClient(timeout=STARTUP_TIMEOUT) as http,
        http.stream("POST", mcpr.url, headers=HEADERS, json=_slow_call(20, 0.5)) as resp,
    ):
        call = Call(resp.aiter_bytes())
        await call.read_until(b"notifications/progress")
        signalled = time.monotonic()
        mcpr.proc.send_signal(signal.SIGTERM)
        # The SSE stream ends cleanly at the deadline (its last chunk): no transport error.
        await call.read_rest()
        ended = time.monotonic() - signalled
    code = await mcpr.wait()
    exited = time.monotonic() - signalled
    assert code == 0
    assert b"counted to" not in call.body
    assert 0.9 < ended < 2.0
    # ~1.5 s: the deadline, the last chunk (grace 0.3 s), the bus flushed. Wide for slow CI.
    assert exited < 3.0
    [row] = [row for row in _store_rows(mcpr.store) if row["tool"] == "slow_count"]
    assert row["latency_us"] < 2_000_000
    # The event says how the exchange ended; the store keeps the row (its HTTP status was 200).
    [event] = [
        json.loads(line)
        for line in mcpr.stderr().splitlines()
        if line.startswith('{"type":"request"')
    ]
    assert (event["tool"], event["note"]) == ("slow_count", "cancelled")


async def test_second_signal_exits_at_once(start_mcpr: Callable[..., Mcpr]) -> None:
    """A second SIGTERM during the drain exits at once with status 130."""
    mcpr = start_mcpr(drain_timeout=60)
    async with (
        httpx2.AsyncClient(timeout=STARTUP_TIMEOUT) as http,
        http.stream("POST", mcpr.url, headers=HEADERS, json=_slow_call(60, 0.5)) as resp,
    ):
        call = Call(resp.aiter_bytes())
        await call.read_until(b"notifications/progress")
        mcpr.proc.send_signal(signal.SIGTERM)
        healthz = f"{mcpr.admin}/healthz"
        await _eventually(lambda: _is(503, _admin_status(http, healthz)))
        signalled = time.monotonic()
        mcpr.proc.send_signal(signal.SIGTERM)
        assert await mcpr.wait() == FORCED_EXIT
    assert time.monotonic() - signalled < 5
    assert '"event": "forced_exit"' in mcpr.stderr()


# --- startup failures: one line, exit 1 ------------------------------------------------------


def _startup_failure(tmp_path: Path, **settings: Any) -> tuple[int, list[str]]:
    config = _write_config(tmp_path, **{"mcp": "http://127.0.0.1:9/mcp", **settings})
    stderr_path = tmp_path / "mcpr.stderr"
    proc = _run(config, tmp_path, stderr_path)
    try:
        code = proc.wait(timeout=STARTUP_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [line for line in stderr_path.read_text().splitlines() if line.strip()]
    return code, lines


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port something else is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_proxy_port_in_use(tmp_path: Path, busy_port: int, backend: str) -> None:
    """A proxy port in use: exit 1 with one line naming the address."""
    code, lines = _startup_failure(tmp_path, port=busy_port, admin="none", backend=backend)
    assert code == 1
    assert lines == [f"mcpr: cannot listen on 127.0.0.1:{busy_port}: Address already in use"]


def test_admin_port_in_use(
    tmp_path: Path, busy_port: int, free_tcp_port_factory: Callable[[], int]
) -> None:
    """An admin port in use: exit 1 with one line naming the admin address."""
    admin = f"127.0.0.1:{busy_port}"
    code, lines = _startup_failure(tmp_path, port=free_tcp_port_factory(), admin=admin)
    assert code == 1
    assert lines == [f"mcpr: cannot listen on {admin} (admin): Address already in use"]


@pytest.mark.parametrize("content", [None, "not a certificate\n"], ids=["missing", "garbage"])
def test_unreadable_ca_file(tmp_path: Path, content: str | None) -> None:
    """A TLS CA file that is missing or holds no certificate: exit 1 with one line."""
    ca = tmp_path / "ca.pem"
    if content is not None:
        ca.write_text(content)
    code, lines = _startup_failure(
        tmp_path, mcp="https://127.0.0.1:9/mcp", ca_file=str(ca), admin="none"
    )
    assert code == 1
    [line] = lines
    assert line.startswith(f"mcpr: cannot read the TLS CA file {ca}: ")


def test_bad_config(tmp_path: Path) -> None:
    """An invalid setting: exit 1 with one line naming the key."""
    code, lines = _startup_failure(tmp_path, port="eighty")
    assert code == 1
    assert lines == ["error: port: expected an integer, got the string 'eighty'"]
