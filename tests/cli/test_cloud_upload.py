"""The cloud sink behind `mcpr proxy run`: config loading, the sink list, and real traffic.

Traffic tests put the proxy, the event bus and a CloudSink in one process, with the fake
cloud of `tests.integrations.fake_cloud` on 127.0.0.1 (a thread-based server, so waits on
it run in a worker thread).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner

from mcpr_cli.bus import EventBus
from mcpr_cli.cli import cli
from mcpr_cli.configfile import load
from mcpr_cli.proxy import serve
from mcpr_cli.runner import open_sinks
from mcpr_core.config import ProxyConfig
from mcpr_integrations.cloud.config import CloudConfig
from mcpr_integrations.cloud.sink import CloudSink
from tests.cli.stub_upstream import reply_with, stub_upstream
from tests.cli.wire import JSON, Proxy, connect, rpc
from tests.integrations.fake_cloud import FakeCloud, fake_cloud

TOKEN = "mcpr_tok_runner"
UPSTREAM = "http://127.0.0.1:9/mcp"
_RESULT = b'{"jsonrpc":"2.0","id":1,"result":{}}'
_JSON_REPLY = reply_with(200, [(b"content-type", b"application/json")], [_RESULT])


@pytest.fixture
def cloud() -> Iterator[FakeCloud]:
    """A fake cloud, shut down (threads joined) after the test."""
    with fake_cloud() as running:
        yield running


def test_cloud_table_is_loaded_with_the_file(tmp_path: Path) -> None:
    """`load` returns the validated `[cloud]` table next to the proxy config."""
    path = tmp_path / "mcpr.toml"
    path.write_text(f'mcp = "{UPSTREAM}"\n[cloud]\ntoken = "{TOKEN}"\nserver = "w"\n')
    loaded = load(path, {}, environ={})
    assert loaded.result.problems == ()
    assert loaded.cloud == CloudConfig(token=TOKEN, server="w")


def test_cloud_problems_fail_the_whole_config(tmp_path: Path) -> None:
    """An error in `[cloud]` is reported with its path and means no config at all."""
    path = tmp_path / "mcpr.toml"
    path.write_text(f'mcp = "{UPSTREAM}"\n[cloud]\ntoken = "{TOKEN}"\nbatch_size = 0\n')
    loaded = load(path, {}, environ={})
    assert (loaded.result.config, loaded.cloud) == (None, None)
    assert [p.path for p in loaded.result.errors] == ["cloud.batch_size"]
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 1
    assert "error: cloud.batch_size: must be between 1 and 10000" in result.output


def test_open_sinks_adds_the_cloud_sink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a cloud config `mcpr proxy run` uploads too; without one it does not."""
    monkeypatch.setenv("MCPR_DB", str(tmp_path / "store.db"))
    config = ProxyConfig(mcp=UPSTREAM, events_format="off")
    without = open_sinks(config)
    with_cloud = open_sinks(config, CloudConfig(token=TOKEN, endpoint="http://127.0.0.1:9"))
    try:
        assert [sink.name for sink in without] == ["sqlite"]
        assert [sink.name for sink in with_cloud] == ["sqlite", "cloud"]
        assert isinstance(with_cloud[-1], CloudSink)
    finally:
        for sink in (*without, *with_cloud):
            sink.close()


@asynccontextmanager
async def proxy_with_cloud(cloud: FakeCloud, **options: Any) -> AsyncIterator[Proxy]:
    """The proxy in front of a stub upstream, emitting through a bus to a CloudSink."""
    config = CloudConfig(token=TOKEN, endpoint=cloud.url, server="weather", batch_size=5)
    sink = CloudSink(config, **options)
    bus = EventBus([sink], shutdown_timeout=5.0)
    async with anyio.create_task_group() as tasks, stub_upstream(_JSON_REPLY) as stub:
        await tasks.start(bus.run)
        try:
            settings = ProxyConfig(mcp=stub.url, port=0, admin="none", drain_timeout=2.0)
            async with serve(settings, emit=bus.emit) as running:
                yield Proxy(running, [])
        finally:
            with anyio.CancelScope(shield=True):
                await bus.aclose()


async def test_proxied_requests_reach_the_cloud(cloud: FakeCloud) -> None:
    """Ten proxied calls arrive at the cloud as request events, in batches of five."""
    async with proxy_with_cloud(cloud) as proxy, connect(proxy) as client:
        for i in range(10):
            reply = await client.request(b"POST", b"/mcp", JSON, rpc("tools/call", i, name="t"))
            assert reply.status == 200
        await anyio.to_thread.run_sync(lambda: cloud.wait_for(lambda: len(cloud.uploads()) == 2))
    batches = cloud.ingested()
    assert [len(batch) for batch in batches] == [5, 5]
    events = [event for batch in batches for event in batch]
    assert {(e["type"], e["tool"], e["server"]) for e in events} == {("request", "t", "weather")}
    assert sorted(e["jsonrpc_id"] for e in events) == list(range(10))


async def test_silent_cloud_does_not_hold_up_requests(cloud: FakeCloud) -> None:
    """While the cloud holds an upload unanswered, every proxied call is still answered."""
    cloud.hang()
    options = {"request_timeout": 0.3, "close_timeout": 0.5}
    async with proxy_with_cloud(cloud, **options) as proxy, connect(proxy) as client:
        for i in range(5):  # one batch: the sink's worker is now waiting on the cloud
            await client.request(b"POST", b"/mcp", JSON, rpc("ping", i))
        await anyio.to_thread.run_sync(lambda: cloud.wait_for(lambda: len(cloud.uploads()) >= 1))
        for i in range(5, 55):
            reply = await client.request(b"POST", b"/mcp", JSON, rpc("ping", i))
            assert reply.status == 200
        assert cloud.answered == 0
