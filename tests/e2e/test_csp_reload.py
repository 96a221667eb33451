"""Widget CSP through `mcpr proxy run`, and its SIGHUP reload under load."""

from __future__ import annotations

import json
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp
import pytest

from tests.e2e.processes import spawn_mcpr, wait_listening

MAP_URI = "ui://widget/map.html"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(upstream: str, port: int, domain: str, **extra: Any) -> str:
    lines = [f'mcp = "{upstream}"', f"port = {port}", 'events_format = "off"']
    lines += [f"{k} = {v!r}" for k, v in extra.items()]
    lines += ["[csp]", f'domain = "{domain}"', "[csp.connectDomains]"]
    lines += ['domains = ["https://api.example.com"]']
    return "\n".join(lines) + "\n"


class ProxyProcess:
    """`mcpr proxy run CONFIG` as a child process, with its stderr in a file."""

    def __init__(self, config: Path, stderr: Path) -> None:
        # No admin listener: its default port (9901) may be taken by another run.
        env = {**os.environ, "MCPR_DB": str(config.parent / "store.db"), "MCPR_ADMIN": "none"}
        self.stderr_path = stderr
        self.proc = spawn_mcpr("proxy", "run", str(config), stderr_path=stderr, env=env)

    def wait_listening(self, port: int) -> None:
        wait_listening(self.proc, port, self.stderr_path)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(params=["asyncio", "trio"])
def proxy_setup(
    request: pytest.FixtureRequest, mcp_server_url: str, tmp_path: Path
) -> Iterator[tuple[ProxyProcess, Path, int, str]]:
    """`mcpr proxy run` on each event loop, configured through a file that tests rewrite."""
    port = _free_port()
    config = tmp_path / "mcpr.toml"
    backend = request.param
    config.write_text(_config(mcp_server_url, port, "widgets.example.com", backend=backend))
    proxy = ProxyProcess(config, tmp_path / "stderr.log")
    try:
        proxy.wait_listening(port)
        yield proxy, config, port, backend
    finally:
        proxy.stop()


async def _connect_domains(url: str) -> list[str]:
    async with mcp.Client(url, mode="2026-07-28") as client:
        result = await client.read_resource(MAP_URI)
    meta = result.contents[0].meta
    assert meta is not None
    domains: list[str] = meta["ui"]["csp"]["connectDomains"]
    assert meta["openai/widgetCSP"]["connect_domains"] == domains
    return domains


async def _first_domain_is(url: str, domain: str) -> bool:
    return (await _connect_domains(url))[0] == domain


async def _at_least(count: Callable[[], int], minimum: int) -> bool:
    return count() >= minimum


async def _logged(proxy: ProxyProcess, text: str) -> bool:
    return text in proxy.stderr_path.read_text()


async def _eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Poll an outside process's observable state until `check` holds."""
    for _ in range(int(within / 0.05)):
        if await check():
            return
        await anyio.sleep(0.05)
    pytest.fail("condition not reached in time")


# The subprocess proxy is backend-independent; the SDK client drives it from asyncio.
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_widget_csp_is_rewritten_and_reloaded_under_load(
    proxy_setup: tuple[ProxyProcess, Path, int, str], mcp_server_url: str
) -> None:
    """The widget's CSP names the public domain; SIGHUP swaps it with no failed request."""
    proxy, config, port, backend = proxy_setup
    url = f"http://127.0.0.1:{port}/mcp"
    assert await _connect_domains(url) == [
        "https://widgets.example.com",
        "https://api.example.com",
    ]
    async with mcp.Client(url, mode="legacy") as legacy:
        html = (await legacy.read_resource(MAP_URI)).contents[0]
    async with mcp.Client(mcp_server_url, mode="legacy") as direct:
        original = (await direct.read_resource(MAP_URI)).contents[0]
    assert getattr(html, "text", None) == getattr(original, "text", None)

    failures: list[BaseException] = []
    done = anyio.Event()
    calls = 0

    async def load() -> None:
        nonlocal calls
        async with mcp.Client(url, mode="2026-07-28") as client:
            while not done.is_set():
                try:
                    await client.read_resource(MAP_URI)
                    await client.list_tools()
                    calls += 2
                except Exception as exc:
                    failures.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(load)
        group.start_soon(load)
        await _eventually(lambda: _at_least(lambda: calls, 4))
        config.write_text(_config(mcp_server_url, port, "cdn.example.org", backend=backend))
        proxy.proc.send_signal(signal.SIGHUP)
        await _eventually(lambda: _first_domain_is(url, "https://cdn.example.org"))
        reloaded_at = calls
        # the load must go on across the reload, not only before it
        await _eventually(lambda: _at_least(lambda: calls, reloaded_at + 4))
        done.set()
    assert not failures

    config.write_text(_config(mcp_server_url, port + 1, "other.example.net", backend=backend))
    proxy.proc.send_signal(signal.SIGHUP)
    await _eventually(lambda: _logged(proxy, "reload_rejected"))
    assert (await _connect_domains(url))[0] == "https://cdn.example.org"
    assert proxy.stop() == 0
    log = proxy.stderr_path.read_text()
    assert "reloaded" in log
    [rejected] = [line for line in log.splitlines() if "reload_rejected" in line]
    assert json.loads(rejected)["fields"] == ["port"]
