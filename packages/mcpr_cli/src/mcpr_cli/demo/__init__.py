"""`mcpr demo`: the proxy's main job on an embedded sample app, in one command.

One process runs the sample weather app (`demo.app`), the real proxy in front of it with a
`[csp]` domain, the stderr and SQLite sinks on the real event bus, and a scripted client
session through the proxy. The user sees the request lines as they happen, then the widget
CSP as the app sent it and as mcpr delivered it, then the stats the store recorded. Every
step is checked, so the demo doubles as a smoke test (exit status 1 on any failure).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import anyio
from rich.console import Console
from rich.table import Table

from mcpr_cli import __version__
from mcpr_cli.bus import EventBus
from mcpr_cli.commands.render import stats_table
from mcpr_cli.demo.app import WIDGET_URI, demo_app
from mcpr_cli.demo.client import DemoClient, Reply
from mcpr_cli.proxy import serve
from mcpr_core.config import CspConfig, ProxyConfig
from mcpr_integrations.sqlite import SqliteSink
from mcpr_integrations.stderr import StderrSink
from mcpr_integrations.store import RequestFilter, Store, StoreReader

__all__ = ["PUBLIC_URL", "run_demo"]

#: The public address the demo pretends to be deployed at.
PUBLIC_URL: Final = "https://weather.example.com/mcp"


@dataclass(slots=True)
class _Run:
    """What the scripted session saw."""

    failures: list[str] = field(default_factory=list)
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)

    def expect(self, label: str, reply: Reply, status: int, *, error: bool = False) -> None:
        if reply.status != status:
            self.failures.append(f"{label}: HTTP {reply.status}, expected {status}")
        elif (reply.error() is not None) != error:
            self.failures.append(f"{label}: unexpected answer {reply.body[:200]!r}")


async def run_demo(*, db: Path | None, serve_forever: bool, port: int, console: Console) -> int:
    """Run the demo; return the exit status (0 when every step did what it should)."""
    with tempfile.TemporaryDirectory(prefix="mcpr-demo-") as tmp:
        path = db if db is not None else Path(tmp) / "store.db"
        run = await _traffic(path, serve_forever=serve_forever, port=port, console=console)
        if run.failures:
            console.print("[bold red]The demo failed:[/]")
            for failure in run.failures:
                console.print(f"  - {failure}")
            return 1
        console.print(_csp_table(run.before, run.after))
        with StoreReader(path, now_ms=time.time_ns() // 1_000_000) as reader:
            report = reader.stats(RequestFilter(proxy="demo"))
        console.print(stats_table(report, title=f"mcpr proxy stats demo   (store: {path})"))
        return 0


async def _traffic(path: Path, *, serve_forever: bool, port: int, console: Console) -> _Run:
    bus = EventBus([StderrSink("pretty"), SqliteSink(Store(path, mcpr_version=__version__))])
    run = _Run()
    async with anyio.create_task_group() as tasks, demo_app() as upstream:
        await tasks.start(bus.run)
        config = ProxyConfig(
            mcp=upstream,
            name="demo",
            port=port,
            admin="none",
            public_url=PUBLIC_URL,
            csp=CspConfig(domain="weather.example.com"),
        )
        try:
            async with serve(config, emit=bus.emit) as running:
                console.print(
                    f"[bold]mcpr demo[/]: sample app at {upstream}, proxy at {running.url}/mcp\n"
                )
                async with DemoClient(upstream) as direct:
                    run.before = _widget_meta(
                        await direct.request("resources/read", {"uri": WIDGET_URI})
                    )
                async with DemoClient(running.url + "/mcp") as client:
                    await _session(client, run)
                if serve_forever and not run.failures:
                    where = f"[bold]{running.url}/mcp[/]"
                    console.print(f"\nServing: point an MCP client at {where} (Ctrl-C stops).\n")
                    await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await bus.aclose()
    return run


async def _session(client: DemoClient, run: _Run) -> None:
    init = await client.request(
        "initialize",
        {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "mcpr-demo-client", "version": __version__},
        },
    )
    run.expect("initialize", init, 200)
    if client.session_id is None:
        run.failures.append("initialize: no Mcp-Session-Id came back")
    run.expect("notifications/initialized", await client.notify("notifications/initialized"), 202)
    run.expect("tools/list", await client.request("tools/list"), 200)
    count = await client.request(
        "tools/call", {"name": "count_down", "arguments": {"n": 3}, "_meta": {"progressToken": 1}}
    )
    run.expect("tools/call count_down", count, 200)
    if sum(m.get("method") == "notifications/progress" for m in count.messages) != 3:
        run.failures.append("tools/call count_down: three progress notifications expected")
    read = await client.request("resources/read", {"uri": WIDGET_URI})
    run.expect("resources/read", read, 200)
    run.after = _widget_meta(read)
    forecast = await client.request(
        "tools/call", {"name": "get_forecast", "arguments": {"city": "Lyon"}}
    )
    run.expect("tools/call get_forecast", forecast, 200)
    prompt = await client.request(
        "prompts/get", {"name": "weather_summary", "arguments": {"city": "Lyon"}}
    )
    run.expect("prompts/get", prompt, 200)
    run.expect(
        "tools/call flaky_lookup",
        await client.request("tools/call", {"name": "flaky_lookup"}),
        200,
        error=True,
    )
    run.expect("DELETE", await client.delete(), 200)
    connect = _dict(_dict(run.after.get("ui")).get("csp")).get("connectDomains") or []
    if not connect or connect[0] != "https://weather.example.com":
        run.failures.append(f"resources/read: CSP not rewritten ({connect!r})")


def _widget_meta(reply: Reply) -> dict[str, Any]:
    try:
        contents = reply.result().get("contents") or [{}]
    except ValueError:
        return {}
    meta = contents[0].get("_meta")
    return meta if isinstance(meta, dict) else {}


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _csp_rows(meta: dict[str, Any]) -> dict[str, str]:
    csp = _dict(_dict(meta.get("ui")).get("csp"))
    openai = _dict(meta.get("openai/widgetCSP"))

    def lines(value: object) -> str:
        if not isinstance(value, list):
            return "-"
        return "\n".join(str(v) for v in value) if value else "(none)"

    return {
        "ui.csp.connectDomains": lines(csp.get("connectDomains")),
        "ui.csp.resourceDomains": lines(csp.get("resourceDomains")),
        "ui.csp.frameDomains": lines(csp.get("frameDomains")),
        "openai/widgetCSP.connect_domains": lines(openai.get("connect_domains")),
        "openai/widgetCSP.resource_domains": lines(openai.get("resource_domains")),
        "openai/widgetDomain": str(meta.get("openai/widgetDomain", "-")),
    }


def _csp_table(before: dict[str, Any], after: dict[str, Any]) -> Table:
    table = Table(title=f"Widget CSP of {WIDGET_URI}", show_lines=True)
    table.add_column("field")
    table.add_column("as the app sent it")
    table.add_column("as mcpr delivered it", style="green")
    old, new = _csp_rows(before), _csp_rows(after)
    for key in old:
        table.add_row(key, old[key], new[key])
    return table
