"""How mcpr uses the tunnel: the [tunnel] table, readiness, metrics, heartbeats, public URL."""

from __future__ import annotations

from pathlib import Path

from mcp_tunnel_client import TunnelClient, TunnelStatus
from mcpr_cli.admin import Health
from mcpr_cli.configfile import load
from mcpr_cli.metrics import TUNNEL_STATES, Metrics
from mcpr_cli.probe import UpstreamProbe
from mcpr_cli.proxy import serve
from mcpr_cli.tunnel import TunnelConfig, load_tunnel_config
from mcpr_core.config import ProxyConfig
from mcpr_core.events import Heartbeat, ProxyEvent
from tests.cli.stub_upstream import stub_upstream
from tests.cli.wire import JSON, Proxy, connect, rpc


def test_tunnel_table_is_read() -> None:
    """A valid table gives the config; the token stays out of its repr."""
    config, problems = load_tunnel_config(
        {"tunnel": {"relay_url": "https://relay.example", "token": "s3cret", "subdomain": "demo"}}
    )
    assert problems == ()
    assert config == TunnelConfig("https://relay.example", "s3cret", "demo")
    assert "s3cret" not in repr(config)


def test_no_table_or_disabled_means_no_tunnel() -> None:
    """Without [tunnel], or with enabled = false, there is no tunnel and no problem."""
    assert load_tunnel_config({}) == (None, ())
    table = {"enabled": False, "relay_url": "https://r.example", "token": "t"}
    assert load_tunnel_config({"tunnel": table}) == (None, ())


def test_every_tunnel_problem_has_its_path() -> None:
    """Bad values are errors at their key paths; unknown keys and clear-text relays warn."""
    _, problems = load_tunnel_config(
        {"tunnel": {"enabled": "yes", "relay_url": "ftp://x", "subdomain": "Not OK", "colour": 1}}
    )
    assert {(p.path, p.severity) for p in problems} == {
        ("tunnel.enabled", "error"),
        ("tunnel.relay_url", "error"),
        ("tunnel.token", "error"),
        ("tunnel.subdomain", "error"),
        ("tunnel.colour", "warning"),
    }
    config, problems = load_tunnel_config(
        {"tunnel": {"relay_url": "http://relay.example", "token": "t"}}
    )
    assert config is not None
    assert [(p.path, p.severity) for p in problems] == [("tunnel.relay_url", "warning")]
    assert (
        load_tunnel_config({"tunnel": {"relay_url": "http://127.0.0.1:1", "token": "t"}})[1] == ()
    )
    assert load_tunnel_config({"tunnel": "on"})[1][0].path == "tunnel"


def test_mcpr_toml_with_tunnel_loads_without_unknown_table_warnings(tmp_path: Path) -> None:
    """[tunnel] and [relay] tables are not unknown to the proxy's own loader."""
    path = tmp_path / "mcpr.toml"
    path.write_text(
        'mcp = "http://127.0.0.1:9/mcp"\n[tunnel]\nrelay_url = "http://127.0.0.1:2"\n'
        'token = "t"\n[relay]\ndomain = "x.example"\n',
        encoding="utf-8",
    )
    loaded = load(path, {}, environ={})
    assert loaded.result.problems == ()
    assert loaded.tunnel == TunnelConfig("http://127.0.0.1:2", "t")
    path.write_text('mcp = "http://127.0.0.1:9/mcp"\n[tunnel]\nrelay_url = 1\n', encoding="utf-8")
    broken = load(path, {}, environ={})
    assert broken.result.config is None
    assert broken.tunnel is None


def _client(status: TunnelStatus, error: str | None = None) -> TunnelClient:
    client = TunnelClient("http://127.0.0.1:1", "t", "http://127.0.0.1:2")
    client.status = status
    client.error = error
    client.url = "https://demo.example" if status is TunnelStatus.CONNECTED else None
    return client


def test_readiness_includes_the_tunnel() -> None:
    """Ready needs a connected tunnel when one runs; the body says which state it is in."""
    health = Health()
    health.tunnel = _client(TunnelStatus.CONNECTED)
    assert health.readiness() == (
        True,
        {
            "ready": True,
            "tunnel": {"status": "connected", "url": "https://demo.example", "error": None},
        },
    )
    health.tunnel = _client(TunnelStatus.EVICTED, "evicted by the relay: demo registered again")
    ready, body = health.readiness()
    assert not ready
    assert body["reason"] == "tunnel evicted: evicted by the relay: demo registered again"
    health.tunnel = _client(TunnelStatus.CONNECTING)
    assert health.readiness()[1]["reason"] == "tunnel connecting"


def test_tunnel_metric_family_follows_the_status() -> None:
    """mcpr_tunnel_status has one sample per state, 1 for the current one; absent unwatched."""
    metrics = Metrics()
    assert "mcpr_tunnel_status" not in metrics.render()
    metrics.watch_tunnel(lambda: "evicted")
    text = metrics.render()
    for state in TUNNEL_STATES:
        assert f'mcpr_tunnel_status{{status="{state}"}} {int(state == "evicted")}' in text
    assert set(TUNNEL_STATES) == {status.value for status in TunnelStatus}


async def test_heartbeat_carries_the_tunnel_status() -> None:
    """Each probe's heartbeat reports the tunnel's status when there is one."""
    events: list[ProxyEvent] = []
    async with stub_upstream() as stub:
        config = ProxyConfig(mcp=stub.url, name="p")
        probe = UpstreamProbe(config, emit=events.append, tunnel_status=lambda: "connected")
        await probe.probe()
    [beat] = [e for e in events if isinstance(e, Heartbeat)]
    assert beat.tunnel_status == "connected"
    assert beat.to_dict()["tunnel_status"] == "connected"


async def test_public_url_is_swapped_in_and_kept_across_reload() -> None:
    """set_public_url() changes the rewriting at once; a [csp] reload keeps it."""
    seen: list[ProxyEvent] = []
    async with stub_upstream() as stub:
        config = ProxyConfig(mcp=stub.url, port=0, admin="none")
        async with serve(config, emit=seen.append) as running:
            assert running._handler._settings.public_origin is None
            running.set_public_url("https://demo.tunnel.example")
            assert running._handler._settings.public_origin == "https://demo.tunnel.example"
            assert running.reload(config) == ()
            assert running._handler._settings.public_origin == "https://demo.tunnel.example"
            async with connect(Proxy(running, seen)) as client:
                reply = await client.request(b"POST", b"/mcp", JSON, rpc("ping"))
            assert reply.status == 200
            running.set_public_url(None)
            assert running._handler._settings.public_origin is None
