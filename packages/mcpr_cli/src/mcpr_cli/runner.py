"""`mcpr proxy run`: the process around a proxy (event loop, signals, sinks, banner, exit code).

Lifecycle (PRODUCT.md §8):

* Start: the TLS CA file is read, the `[otel]` and `[[sinks]]` sinks are built (a plugin
  refusing its configuration is a startup failure), the proxy's name is claimed in the
  local registry (`mcpr_cli.registry`; another live proxy of that name is a startup
  failure), the built-in sinks open, the proxy and then the admin listener bind, the banner
  lists the sinks, the upstream probe starts, and the registry entry says `running`, with
  the port and URLs. A failure to start (port in use, unreadable CA file; a bad
  configuration is caught earlier, by the command) prints one line and exits 1.
* The first SIGTERM or SIGINT starts the drain: the listener closes, `/healthz` and `/ready`
  answer 503, in-flight exchanges get `drain_timeout` to finish (each emits its events on
  the way out), streamed responses still open at the deadline are ended cleanly, the rest is
  cancelled. Only then is the event bus closed, so every event the bus accepted reaches the
  stderr line and the store before the process exits 0.
* A second SIGTERM or SIGINT during the drain exits at once with `FORCED_EXIT` (130),
  without waiting for exchanges or sinks.
* SIGHUP re-reads the configuration and applies `[csp]` (anything else is refused); the
  outcome goes into the registry entry too, for `mcpr proxy reload`.
* Once the drain is over and the bus closed, the entry is marked `stopped` and unlocked.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import ssl
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Final, NoReturn

import anyio
import structlog

from mcpr_cli import __version__
from mcpr_cli.admin import AdminServer, Health, serve_admin
from mcpr_cli.bus import EventBus
from mcpr_cli.log import configure_logging
from mcpr_cli.metrics import Metrics
from mcpr_cli.probe import UpstreamProbe
from mcpr_cli.proxy import RunningProxy, serve
from mcpr_cli.registry import Registration, Registry, RegistryError, ReloadOutcome
from mcpr_cli.sinks import OptionalSinks, build_optional_sinks
from mcpr_cli.tunnel import TunnelConfig, start_tunnel
from mcpr_core.config import LoadResult, ProxyConfig
from mcpr_core.events import EventSink
from mcpr_core.schema import SchemaCapture
from mcpr_core.tracecontext import TraceIds
from mcpr_integrations.cloud.config import CloudConfig
from mcpr_integrations.cloud.sink import CloudSink
from mcpr_integrations.otel.config import OtelConfig
from mcpr_integrations.plugins import SinkBuildError, SinkConfig
from mcpr_integrations.sqlite import SqliteSink
from mcpr_integrations.stderr import StderrSink
from mcpr_integrations.store import StoreError
from mcpr_integrations.store.server_schema import load_snapshots

__all__ = ["FORCED_EXIT", "open_sinks", "run_proxy", "seeded_capture"]

#: Exit status when a second SIGTERM/SIGINT cuts the drain short. 130 is what shells report
#: for a process ended by Ctrl-C (128 + SIGINT), the usual way to insist; and it is not 1,
#: which means "could not start", so a supervisor can tell a forced stop from a failed start.
FORCED_EXIT: Final = 130

_log = structlog.get_logger("mcpr")


#: Re-reads the configuration (file, environment, flags) for a SIGHUP reload.
Reloader = Callable[[], LoadResult]


def run_proxy(
    config: ProxyConfig,
    reload: Reloader | None = None,
    *,
    cloud: CloudConfig | None = None,
    config_path: Path | None = None,
    tunnel: TunnelConfig | None = None,
    sinks: Sequence[SinkConfig] = (),
    otel: OtelConfig | None = None,
) -> int:
    """Run until SIGTERM/SIGINT, reloading `[csp]` on SIGHUP; return the exit code.

    With `cloud`, events are also uploaded to the mcpr cloud; with `tunnel`, a tunnel
    client gives the proxy a public URL through a relay. `config_path` is recorded in
    the registry entry. `sinks` (`[[sinks]]`) and `otel` (`[otel]`) add sinks; a plugin
    whose factory fails keeps the proxy from starting.
    """
    configure_logging(config.log_format)
    problem = _startup_problem(config)
    if problem is not None:
        return _fail(problem)
    try:
        optional = build_optional_sinks(proxy_name=config.name, plugins=sinks, otel=otel)
    except SinkBuildError as exc:
        return _fail(str(exc))
    options: dict[str, Any] = {}
    if config.backend == "asyncio" and importlib.util.find_spec("uvloop") is not None:
        options["use_uvloop"] = True
    registry = Registry.from_environ()
    try:
        registration = registry.acquire(config, config_path=config_path)
    except RegistryError as exc:
        optional.close()
        return _fail(str(exc))
    except OSError as exc:
        optional.close()
        return _fail(f"cannot register the proxy in {registry.root}: {_reason(exc)}")
    with registration:
        code = anyio.run(
            _main,
            config,
            reload,
            cloud,
            registration,
            tunnel,
            optional,
            backend=config.backend,
            backend_options=options,
        )
        registration.exit_code = code
    return code


def _store_error(message: str, exc: BaseException) -> None:
    _log.warning("store_error", message=message, error=str(exc))


def _cloud_log(level: int, event: str, fields: Mapping[str, object]) -> None:
    _log.log(level, event, **fields)


def open_sinks(config: ProxyConfig, cloud: CloudConfig | None = None) -> list[EventSink]:
    """The sinks of `mcpr proxy run`: stderr (unless off), the store if it opens (and unless
    `MCPR_DB=none`, for a fleet that reports elsewhere), the cloud."""
    sinks: list[EventSink] = []
    if config.events_format != "off":
        sinks.append(StderrSink(config.events_format))
    if os.environ.get("MCPR_DB", "").strip().lower() == "none":
        _log.info("store_disabled", reason="MCPR_DB=none")
    else:
        try:
            sinks.append(
                SqliteSink.open(os.environ, mcpr_version=__version__, on_error=_store_error)
            )
        except StoreError as exc:
            _log.warning("store_unavailable", error=str(exc), hint="the proxy runs without a store")
    if cloud is not None:
        sinks.append(CloudSink(cloud, log=_cloud_log))
    return sinks


def _fail(message: str) -> int:
    """Report a startup failure in one line; the exit status is 1."""
    print(f"mcpr: {message}", file=sys.stderr, flush=True)
    return 1


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _startup_problem(config: ProxyConfig) -> str | None:
    """What keeps the proxy from starting, found before anything else opens."""
    if config.ca_file is not None:
        try:
            ssl.create_default_context(cafile=config.ca_file)
        except OSError as exc:  # missing, unreadable, or no certificate in it (ssl.SSLError)
            return f"cannot read the TLS CA file {config.ca_file}: {_reason(exc)}"
    return None


def seeded_capture(config: ProxyConfig, store: Path | None) -> SchemaCapture:
    """Schema capture primed with the last stored snapshots: an unchanged upstream makes no
    new version after a restart. A store that cannot be read only costs that priming."""
    capture = SchemaCapture(config.name, config.mcp)
    if store is None:
        return capture
    try:
        rows = load_snapshots(
            store, proxy=config.name, upstream_url=config.mcp, now_ms=time.time_ns() // 1_000_000
        )
    except StoreError as exc:
        _log.warning("schema_snapshots_unavailable", error=str(exc))
        return capture
    for row in rows:
        capture.load(row.method, row.payload, row.schema_hash)
    return capture


async def _main(
    config: ProxyConfig,
    reload: Reloader | None,
    cloud: CloudConfig | None,
    registration: Registration,
    tunnel: TunnelConfig | None,
    optional: OptionalSinks,
) -> int:
    sinks = await anyio.to_thread.run_sync(open_sinks, config, cloud)
    store = next((sink.store.path for sink in sinks if isinstance(sink, SqliteSink)), None)
    capture = await anyio.to_thread.run_sync(seeded_capture, config, store)
    bus = EventBus([*sinks, *optional.specs])
    metrics = Metrics()
    metrics.watch_bus(bus.statistics)
    for sink in sinks:
        if isinstance(sink, SqliteSink):
            metrics.watch_store(sink.statistics)
    tools = capture.snapshot("tools/list")
    if tools is not None:  # stored before a restart: label calls before the next listing
        metrics.know_tools(name for name, _ in tools.items)
    async with anyio.create_task_group() as tasks:
        await tasks.start(bus.run)
        try:
            code = await _serve_until_signal(
                config,
                bus,
                metrics,
                store,
                reload,
                capture,
                registration,
                tunnel,
                optional.trace_ids,
            )
        finally:
            with anyio.CancelScope(shield=True):
                await bus.aclose()
        if code == 0:
            stats = bus.statistics()
            _log.info("stopped", events=stats.emitted, events_dropped=stats.dropped)
    return code


async def _serve_until_signal(
    config: ProxyConfig,
    bus: EventBus,
    metrics: Metrics,
    store: Path | None,
    reload: Reloader | None,
    capture: SchemaCapture,
    registration: Registration,
    tunnel: TunnelConfig | None,
    trace_ids: Callable[[], TraceIds] | None,
) -> int:
    emit = metrics.observe_then(bus.emit)
    health = Health()
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async with AsyncExitStack() as stack:
            try:
                running = await stack.enter_async_context(
                    serve(config, emit=emit, capture=capture, trace_ids=trace_ids)
                )
            except OSError as exc:
                return _fail(
                    f"cannot listen on {_address(config.bind, config.port)}: {_reason(exc)}"
                )
            metrics.watch_proxy(running.statistics)
            metrics.watch_sessions(running.sessions.__len__)
            admin: AdminServer | None = None
            if config.admin_address is not None:
                host, port = config.admin_address
                try:
                    admin = await stack.enter_async_context(
                        serve_admin(host, port, metrics=metrics, health=health)
                    )
                except OSError as exc:
                    return _fail(f"cannot listen on {_address(host, port)} (admin): {_reason(exc)}")
            link = None
            if tunnel is not None:
                link = start_tunnel(tunnel, running, on_connected=registration.set_public_url)
                health.tunnel = link
                metrics.watch_tunnel(lambda: link.status.value)
            probe = UpstreamProbe(
                config,
                emit=emit,
                requests_total=lambda: running.statistics().handler.exchanges_total,
                events_dropped=lambda: bus.statistics().dropped,
                tunnel_status=lambda: link.status.value if link is not None else None,
            )
            health.probe = probe
            metrics.watch_upstream(lambda: probe.status)
            tasks = await stack.enter_async_context(anyio.create_task_group())
            _banner(running, store, admin, [sink.name for sink in bus.statistics().sinks])
            admin_url = admin.url if admin is not None else None
            registration.publish(port=running.port, local_url=running.url, admin_url=admin_url)
            if link is not None:
                await tasks.start(link.run)
            await tasks.start(probe.run)
            tasks.start_soon(_handle_signals, signals, running, health, reload, registration)
            # Returns once a signal stopped the proxy and the drain is over; the admin
            # listener keeps answering (503) all along, and closes right after.
            await running.wait_stopped()
            tasks.cancel_scope.cancel()
    return 0


async def _handle_signals(
    signals: AsyncIterator[int],
    running: RunningProxy,
    health: Health,
    reload: Reloader | None,
    registration: Registration,
) -> None:
    """SIGHUP reloads; the first SIGTERM/SIGINT drains; a second one exits at once."""
    async for signum in signals:
        if signum == signal.SIGHUP:
            registration.record_reload(await _reload(running, reload))
            continue
        name = signal.Signals(signum).name
        if not health.draining:
            _log.info("draining", signal=name, drain_timeout=running.config.drain_timeout)
            health.begin_drain()
            registration.draining()
            running.stop()
            continue
        _log.warning("forced_exit", signal=name, reason="second signal while draining")
        _exit_now(FORCED_EXIT)


def _exit_now(code: int) -> NoReturn:
    """Leave the process without waiting for anything: exchanges, sinks, worker threads.

    Events still queued in the bus are lost; the store stays consistent (each batch is one
    SQLite transaction). This is what the operator asked for by signalling twice.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


async def _reload(running: RunningProxy, reload: Reloader | None) -> ReloadOutcome:
    """SIGHUP: re-read the configuration and apply `[csp]`; refuse anything else, loudly."""
    if reload is None:
        reason = "no configuration source to re-read"
        _log.warning("reload_ignored", reason=reason)
        return ReloadOutcome(applied=False, reason=reason)
    result = await anyio.to_thread.run_sync(reload)
    if result.config is None:
        problems = [f"{p.path}: {p.message}" for p in result.problems if p.severity == "error"]
        _log.error("reload_rejected", reason="invalid configuration", problems=problems)
        return ReloadOutcome(False, "invalid configuration", tuple(problems))
    refused = running.reload(result.config)
    if refused:
        reason = "these settings need a restart"
        _log.error("reload_rejected", reason=reason, fields=list(refused))
        return ReloadOutcome(False, reason, refused)
    _log.info("reloaded", csp_domain=result.config.csp.domain)
    return ReloadOutcome(applied=True)


def _banner(
    running: RunningProxy, store: Path | None, admin: AdminServer | None, sinks: Sequence[str]
) -> None:
    config = running.config
    print(f"mcpr proxy '{config.name}' listening on {running.url}", file=sys.stderr)
    print(f"  upstream  {config.mcp}", file=sys.stderr)
    if config.public_url:
        print(f"  public    {config.public_url}", file=sys.stderr)
    print(f"  store     {store if store is not None else '(none)'}", file=sys.stderr)
    print(f"  admin     {admin.url if admin is not None else '(off)'}", file=sys.stderr)
    print(f"  sinks     {', '.join(sinks) if sinks else '(none)'}", file=sys.stderr)
    sys.stderr.flush()
