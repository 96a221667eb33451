"""mcpr's `/metrics`, verified by Prometheus itself: `promtool` lints it, a server scrapes it.

One `mcpr proxy run` (admin listener on a free port) in front of the SDK test server, and a
real Prometheus server on loopback scraping that admin port every second, with its data in
a temporary folder. Real MCP traffic (legacy and 2026-07-28 SDK clients) goes through mcpr;
then `promtool check metrics` must find nothing to say about the exposition, and
`mcpr_requests_total` must come back through Prometheus's HTTP query API with the value
mcpr itself reports.

The SDK clients run on asyncio only: what is under test is the text mcpr serves, and how
Prometheus reads it.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import anyio
import mcp
import pytest

from tests.children import Child, free_port, mcpr_proxy, sdk_server, system_binary

pytestmark = pytest.mark.parametrize("anyio_backend", ["asyncio"])

#: Bound for Prometheus to scrape (every second) and answer with the expected value.
SCRAPE_TIMEOUT: Final = 20.0
ECHO_CALLS: Final = 20


@dataclass
class Scraped:
    """mcpr's endpoint and admin URL, and the Prometheus server scraping it."""

    mcp_url: str
    admin_url: str
    prometheus_url: str


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    """The SDK server, mcpr with its admin listener, and Prometheus scraping it every 1 s."""
    prometheus = system_binary("prometheus")
    tmp = tmp_path_factory.mktemp("prometheus")
    upstream_port, proxy_port, admin_port, prom_port = (free_port() for _ in range(4))
    config = tmp / "mcpr.toml"
    config.write_text(
        f'name = "prom"\nmcp = "http://127.0.0.1:{upstream_port}/mcp"\nport = {proxy_port}\n'
        f'admin = "127.0.0.1:{admin_port}"\nevents_format = "off"\n'
    )
    prom_config = tmp / "prometheus.yml"
    prom_config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: mcpr\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{admin_port}']\n"
    )
    children: list[Child] = []
    try:
        server = sdk_server(upstream_port, tmp / "server.log")
        env = {"MCPR_DB": "none", "MCPR_HOME": str(tmp / "home")}
        proxy = mcpr_proxy(config, tmp / "mcpr.log", env)
        prom = Child(
            [
                prometheus,
                f"--config.file={prom_config}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--log.level=warn",
            ],
            tmp / "prometheus.log",
        )
        children += [server, proxy, prom]
        server.wait_listening(upstream_port)
        proxy.wait_listening(proxy_port)
        proxy.wait_listening(admin_port)
        prom.wait_http_ok(f"http://127.0.0.1:{prom_port}/-/ready")
        yield Scraped(
            f"http://127.0.0.1:{proxy_port}/mcp",
            f"http://127.0.0.1:{admin_port}",
            f"http://127.0.0.1:{prom_port}",
        )
    finally:
        for child in reversed(children):
            child.stop()


def http_get(url: str) -> bytes:
    """The body of a GET that must answer 200."""
    with urllib.request.urlopen(url, timeout=5.0) as response:
        assert response.status == 200, url
        body: bytes = response.read()
        return body


def metrics_text(scraped: Scraped) -> str:
    """mcpr's current `/metrics` exposition."""
    return http_get(scraped.admin_url + "/metrics").decode()


def sample_sum(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`, read from `text`."""
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")) and all(w in line for w in wanted):
            total += float(line.rsplit(" ", 1)[1])
    return total


def query(scraped: Scraped, expr: str) -> list[dict[str, Any]]:
    """The result vector of an instant query through Prometheus's HTTP API."""
    url = scraped.prometheus_url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    answer = json.loads(http_get(url))
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


async def wait_for_value(scraped: Scraped, expr: str, expected: float) -> list[dict[str, Any]]:
    """Query `expr` until its single sample equals `expected` (Prometheus scrapes each 1 s)."""
    result: list[dict[str, Any]] = []
    with anyio.move_on_after(SCRAPE_TIMEOUT):
        while True:
            result = await anyio.to_thread.run_sync(query, scraped, expr)
            if len(result) == 1 and float(result[0]["value"][1]) == expected:
                return result
            await anyio.sleep(0.2)
    pytest.fail(f"Prometheus answered {result} to {expr}, expected {expected}", pytrace=False)


async def real_traffic(url: str) -> None:
    """Legacy calls (a listing, echo, a tool error), then 2026-07-28 calls, through mcpr."""
    async with mcp.Client(url, mode="legacy") as client:
        tools = await client.list_tools()
        assert "echo" in {tool.name for tool in tools.tools}
        for n in range(ECHO_CALLS):
            await client.call_tool("echo", {"text": f"call {n}"})
        failed = await client.call_tool("fail", {})
        assert failed.is_error
    async with mcp.Client(url, mode="2026-07-28") as client:
        for n in range(3):
            await client.call_tool("echo", {"text": f"modern {n}"})


async def test_promtool_finds_nothing_to_lint(scraped: Scraped) -> None:
    """`promtool check metrics` accepts mcpr's real exposition without a single remark."""
    promtool = system_binary("promtool")
    await real_traffic(scraped.mcp_url)
    text = await anyio.to_thread.run_sync(metrics_text, scraped)
    for family in ("mcpr_requests_total", "mcpr_tool_calls_total", "mcpr_upstream_up"):
        assert f"# TYPE {family} " in text
    assert sample_sum(text, "mcpr_tool_calls_total", tool="echo", outcome="ok") >= ECHO_CALLS
    checked = await anyio.run_process(
        [promtool, "check", "metrics"], input=text.encode(), check=False
    )
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, b"", b"")


async def test_prometheus_reads_requests_total_back(scraped: Scraped) -> None:
    """After real traffic, Prometheus's query API returns the tools/call count mcpr reports."""
    await real_traffic(scraped.mcp_url)
    text = await anyio.to_thread.run_sync(metrics_text, scraped)
    calls = sample_sum(text, "mcpr_requests_total", method="tools/call")
    assert calls >= ECHO_CALLS + 4
    expr = 'sum(mcpr_requests_total{job="mcpr",method="tools/call"})'
    await wait_for_value(scraped, expr, calls)
    (series,) = await wait_for_value(
        scraped,
        'mcpr_tool_calls_total{tool="fail",outcome="error"}',
        sample_sum(text, "mcpr_tool_calls_total", tool="fail", outcome="error"),
    )
    assert series["metric"]["instance"] == scraped.admin_url.removeprefix("http://")
    (up,) = await anyio.to_thread.run_sync(query, scraped, 'up{job="mcpr"}')
    assert up["value"][1] == "1"
