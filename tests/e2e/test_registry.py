"""The local proxy registry with real processes: `mcpr proxy run` in front of the SDK server.

Each proxy is `python -m mcpr_cli proxy run CONFIG` with `port = 0`, so the registry is how
the test learns its port, as a developer would with `mcpr proxy list`. `MCPR_HOME` (the
conftest's `registry_home`) and `MCPR_DB` point into the test's own folders; the management
commands run through click's CliRunner in the test process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from click.testing import CliRunner, Result

from mcpr_cli.cli import cli
from mcpr_cli.registry import ProxyEntry, ProxyState, Registry
from tests.e2e.processes import spawn_mcpr

#: How long mcpr may take to register as running (imports dominate), and any single wait.
STARTUP_TIMEOUT = 20.0
MODERN = "2026-07-28"


@dataclass
class Mcpr:
    """A `mcpr proxy run` process and the entry it registered."""

    proc: subprocess.Popen[bytes]
    name: str
    config: Path
    stderr_path: Path
    #: What it registered once running (None when not waited for).
    entry: ProxyEntry | None

    @property
    def url(self) -> str:
        """The proxy's MCP endpoint."""
        assert self.entry is not None
        return f"{self.entry.local_url}/mcp"

    def stderr(self) -> str:
        """Everything the process wrote to stderr so far."""
        return self.stderr_path.read_text(errors="replace")


def _config_text(upstream: str, name: str, backend: str, **extra: Any) -> str:
    settings = {"mcp": upstream, "name": name, "port": 0, "admin": "none", **extra}
    settings |= {"backend": backend, "events_format": "off", "log_format": "json"}
    lines = [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    return "\n".join(lines) + '\n[csp]\ndomain = "widgets.example.com"\n'


def _spawn(config: Path, stderr_path: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCPR_")}
    env |= {"MCPR_HOME": os.environ["MCPR_HOME"], "MCPR_DB": os.environ["MCPR_DB"]}
    return spawn_mcpr("proxy", "run", str(config), stderr_path=stderr_path, env=env)


def _wait_running(proc: subprocess.Popen[bytes], name: str, stderr: Path) -> ProxyEntry:
    """The entry of `proc` once it says running (polled: another process's file)."""
    registry = Registry.from_environ()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mcpr exited with {proc.returncode}:\n{stderr.read_text()}")
        if (registry.root / name).is_dir():
            status = registry.status(name)
            entry = status.entry
            if status.state is ProxyState.RUNNING and entry is not None and entry.pid == proc.pid:
                return entry
        time.sleep(0.05)
    pytest.fail(f"mcpr did not register as running:\n{stderr.read_text()}")


@pytest.fixture
def start_mcpr(
    mcp_server_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., list[Mcpr]]]:
    """Start named proxies in front of the SDK server; any still running is killed at the end."""
    monkeypatch.setenv("MCPR_DB", str(tmp_path / "store.db"))
    procs: list[subprocess.Popen[bytes]] = []

    def start(*names: str, backend: str = "asyncio", wait: bool = True) -> list[Mcpr]:
        started = []
        for name in names:
            config = tmp_path / f"{name}.toml"
            config.write_text(_config_text(mcp_server_url, name, backend))
            stderr = tmp_path / f"{name}-{len(procs)}.stderr"
            proc = _spawn(config, stderr)
            procs.append(proc)
            started.append((proc, name, config, stderr))
        return [
            Mcpr(proc, name, config, stderr, _wait_running(proc, name, stderr) if wait else None)
            for proc, name, config, stderr in started
        ]

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def mcpr_cli(*args: str) -> Result:
    """Run one `mcpr` command line in this process."""
    return CliRunner().invoke(cli, list(args))


def _listed() -> dict[str, dict[str, Any]]:
    result = mcpr_cli("proxy", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    return {row["name"]: row for row in rows}


def _slow_call(n: int, delay: float) -> dict[str, Any]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "registry-test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
        "progressToken": "p1",
    }
    arguments = {"n": n, "delay": delay}
    params = {"name": "slow_count", "arguments": arguments, "_meta": meta}
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}


_HEADERS = {
    "accept": "application/json, text/event-stream",
    "mcp-protocol-version": MODERN,
    "mcp-method": "tools/call",
    "mcp-name": "slow_count",
}


async def _read_until(chunks: AsyncIterator[bytes], marker: bytes) -> bytes:
    body = b""
    async for chunk in chunks:
        body += chunk
        if marker in body:
            return body
    pytest.fail(f"the stream ended before {marker!r}: {body!r}")


async def test_two_proxies_listed_and_one_stopped_during_a_call(
    start_mcpr: Callable[..., list[Mcpr]], mcp_server_url: str, anyio_backend_name: str
) -> None:
    """Two proxies are listed; `stop` lets the in-flight call finish; the other keeps serving."""
    alpha, beta = start_mcpr("alpha", "beta", backend=anyio_backend_name)
    listed = _listed()
    assert set(listed) == {"alpha", "beta"}
    for mcpr in (alpha, beta):
        row = listed[mcpr.name]
        assert (row["state"], row["pid"], row["upstream_url"]) == (
            "running",
            mcpr.proc.pid,
            mcp_server_url,
        )
        assert row["local_url"] == f"http://127.0.0.1:{row['port']}"
        assert row["config_path"] == str(mcpr.config.resolve())
    assert listed["alpha"]["port"] != listed["beta"]["port"]

    stopped: list[Result] = []
    async with (
        httpx2.AsyncClient(timeout=STARTUP_TIMEOUT) as http,
        http.stream("POST", alpha.url, headers=_HEADERS, json=_slow_call(4, 0.3)) as resp,
    ):
        chunks = resp.aiter_bytes()
        body = await _read_until(chunks, b"notifications/progress")
        async with anyio.create_task_group() as group:

            async def stop_alpha() -> None:
                stopped.append(await anyio.to_thread.run_sync(mcpr_cli, "proxy", "stop", "alpha"))

            group.start_soon(stop_alpha)
            async for chunk in chunks:
                body += chunk
    assert b'"counted to 4"' in body
    [result] = stopped
    assert result.exit_code == 0, result.output
    assert f"proxy 'alpha' (pid {alpha.proc.pid}) stopped after" in result.stdout
    assert alpha.proc.wait(timeout=STARTUP_TIMEOUT) == 0

    listed = _listed()
    assert (listed["alpha"]["state"], listed["alpha"]["exit_code"]) == ("stopped", 0)
    assert listed["beta"]["state"] == "running"
    async with httpx2.AsyncClient(timeout=STARTUP_TIMEOUT) as http:
        answer = await http.post(beta.url, headers=_HEADERS, json=_slow_call(1, 0))
    assert b'"counted to 1"' in answer.content

    # The store writer commits in batches (every 200 ms): wait for the rows to be readable.
    for _ in range(100):
        status = mcpr_cli("proxy", "status")
        assert status.exit_code == 0, status.output
        if "traffic" in status.stdout and "slow_count" in status.stdout:
            break
        await anyio.sleep(0.1)
    proxies, traffic = status.stdout.split("traffic", 1)
    assert "beta" in proxies
    assert "alpha" not in proxies
    assert "slow_count" in traffic

    refused = mcpr_cli("proxy", "delete", "beta", "--yes")
    assert refused.exit_code == 1
    assert f"proxy 'beta' is running (pid {beta.proc.pid})" in refused.output
    assert mcpr_cli("proxy", "delete", "alpha", "--yes").exit_code == 0
    assert set(_listed()) == {"beta"}

    everything = mcpr_cli("proxy", "stop", "--all")
    assert everything.exit_code == 0, everything.output
    assert f"proxy 'beta' (pid {beta.proc.pid}) stopped after" in everything.stdout
    assert beta.proc.wait(timeout=STARTUP_TIMEOUT) == 0


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_reload_reports_applied_and_rejected(
    start_mcpr: Callable[..., list[Mcpr]], mcp_server_url: str, backend: str
) -> None:
    """`reload` says applied for a new `[csp]`, and rejected with the reason for the rest."""
    [gamma] = start_mcpr("gamma", backend=backend)
    text = _config_text(mcp_server_url, "gamma", backend)
    gamma.config.write_text(text.replace("widgets.example.com", "cdn.example.org"))
    applied = mcpr_cli("proxy", "reload", "gamma")
    assert applied.exit_code == 0, applied.output
    assert applied.stdout == f"proxy 'gamma' (pid {gamma.proc.pid}) reloaded: applied\n"

    gamma.config.write_text(text.replace("port = 0", "port = 1"))
    restart = mcpr_cli("proxy", "reload", "gamma")
    assert restart.exit_code == 1
    assert restart.stderr.splitlines() == [
        f"proxy 'gamma' (pid {gamma.proc.pid}) refused the reload: these settings need a restart",
        "  port",
    ]

    gamma.config.write_text(text.replace(f'mcp = "{mcp_server_url}"', 'mcp = "ftp://x"'))
    invalid = mcpr_cli("proxy", "reload", "gamma")
    assert invalid.exit_code == 1
    assert "refused the reload: invalid configuration" in invalid.stderr
    assert "  mcp: " in invalid.stderr

    entry = Registry.from_environ().status("gamma").entry
    assert entry is not None
    assert entry.last_reload is not None
    assert entry.last_reload.seq == 3
    log = [json.loads(line) for line in gamma.stderr().splitlines() if line.startswith("{")]
    assert [e["event"] for e in log if e["event"].startswith("reload")] == [
        "reloaded",
        "reload_rejected",
        "reload_rejected",
    ]
    assert mcpr_cli("proxy", "stop", "gamma").exit_code == 0


def test_name_clash_then_stale_lock_after_sigkill(
    start_mcpr: Callable[..., list[Mcpr]],
) -> None:
    """A second proxy of a name is refused with the first one's pid; after a SIGKILL the
    entry is stale, and the next proxy of that name reclaims it."""
    [first] = start_mcpr("delta")
    [clash] = start_mcpr("delta", wait=False)
    assert clash.proc.wait(timeout=STARTUP_TIMEOUT) == 1
    lines = clash.stderr().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        f"mcpr: a proxy named 'delta' is already running (pid {first.proc.pid};"
    )
    assert _listed()["delta"]["pid"] == first.proc.pid

    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=STARTUP_TIMEOUT)
    stale = _listed()["delta"]
    assert (stale["state"], stale["pid"]) == ("stale", first.proc.pid)
    refused = mcpr_cli("proxy", "stop", "delta")
    assert refused.exit_code == 1
    assert "is not running (stale)" in refused.output

    [second] = start_mcpr("delta")
    assert second.proc.pid != first.proc.pid
    assert _listed()["delta"]["state"] == "running"
    [reclaimed] = [
        json.loads(line) for line in second.stderr().splitlines() if "registry_stale" in line
    ]
    assert (reclaimed["event"], reclaimed["pid"]) == ("registry_stale_reclaimed", first.proc.pid)
    assert mcpr_cli("proxy", "stop", "delta").exit_code == 0
