"""Fixtures of the end-to-end tests: a real SDK server in a subprocess, and mcpr in front of it.

- `mcp_server_url` (session): `tests/e2e/mcp_app_server.py` started once per test session on a
  free loopback port; yields `http://127.0.0.1:PORT/mcp`.
- `target` (function): `direct` or `proxied`, the parameter of every test that uses
  `target_url`.
- `target_url` (function, async): the URL a client under test talks to: the server itself
  (`direct`), or mcpr started in-process in front of it (`proxied`), on the test's event loop,
  so on asyncio and on trio.
- `proxy_events` (function): the events mcpr emitted while the test ran; always empty for
  `direct`.
- `registry_home` (function, autouse): `MCPR_HOME` set to a fresh folder, so the proxies a
  test starts register there and not in `~/.mcpr`.

Run only the server half with `pytest tests/e2e -k direct`.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from mcpr_core.events import ProxyEvent
from tests.e2e.processes import wait_listening
from tests.otel_extra import otel_ignores

#: test_otel.py needs the `otel` extra; left out only where it is missing outside CI.
collect_ignore = otel_ignores("test_otel.py")

SERVER_SCRIPT = Path(__file__).with_name("mcp_app_server.py")

#: How long it may take to exit after SIGTERM before it is killed.
SHUTDOWN_TIMEOUT = 5.0


def pytest_configure(config: pytest.Config) -> None:
    """Silence one known ResourceWarning of the SDK client that trio reports and asyncio does not.

    `mcp.client.streamable_http` (2.3.0) returns from `async for sse in EventSource(response)`
    once the response arrives, closing the HTTP response but not the async generators under
    the loop (httpx2's `EventSource.__aiter__`, `Response.aiter_text`/`aiter_bytes`, httpcore2's
    `PoolByteStream.__aiter__`). Trio finalizes such generators itself and warns while doing
    so, at garbage-collection time, which may fall in a later test; asyncio finalizes them
    silently. The client works on trio otherwise, so the tests keep running there. The filter
    names those two packages only: mcpr itself uses neither.
    """
    config.addinivalue_line(
        "filterwarnings", r"ignore:Async generator 'http(x|core)2\.:ResourceWarning"
    )


@pytest.fixture(scope="session")
def mcp_server_url(
    free_tcp_port_factory: Callable[[], int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Run the SDK test server for the whole session and yield its MCP endpoint URL."""
    port = free_tcp_port_factory()
    # stderr goes to a file, not a pipe: nobody reads a pipe while tests run, and a full pipe
    # would block the server's logging.
    stderr_path = tmp_path_factory.mktemp("mcp-server") / "stderr.log"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(SERVER_SCRIPT), "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        wait_listening(proc, port, stderr_path, name="MCP test server")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(autouse=True)
def registry_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A registry folder of the test's own (`MCPR_HOME`), inherited by the mcpr it starts.

    `mcpr proxy run` claims its name in the registry: without this, tests would write into
    the real `~/.mcpr`, and two test runs at once would refuse each other's proxies.
    """
    home = tmp_path_factory.mktemp("mcpr-home")
    monkeypatch.setenv("MCPR_HOME", str(home))
    return home


@pytest.fixture
def proxy_events() -> list[ProxyEvent]:
    """The events mcpr emits during one test (stays empty when the target is `direct`)."""
    return []


@pytest.fixture(params=["direct", "proxied"])
def target(request: pytest.FixtureRequest) -> str:
    """Which way the client under test reaches the server: `direct` or `proxied` (via mcpr)."""
    param: str = request.param
    return param


@pytest.fixture
async def target_url(
    target: str, mcp_server_url: str, proxy_events: list[ProxyEvent]
) -> AsyncIterator[str]:
    """Yield the MCP endpoint a test talks to: the server itself, or mcpr in front of it."""
    if target == "direct":
        yield mcp_server_url
        return
    # Imported here so that the `direct` half runs even when the proxy cannot be imported.
    from mcpr_cli.proxy import serve
    from mcpr_core.config import ProxyConfig

    config = ProxyConfig(mcp=mcp_server_url, port=0, admin="none")
    async with serve(config, emit=proxy_events.append) as running:
        yield f"{running.url}/mcp"
