"""`mcpr proxy run`: the process around a proxy (event loop, signals, sinks, banner, exit code).

Shutdown order: the signal stops the proxy, which drains its in-flight exchanges (each emits
its events on the way out); only then is the event bus closed, so every event the bus
accepted reaches the stderr line and the store before the process exits.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import structlog

from mcpr_cli import __version__
from mcpr_cli.bus import EventBus
from mcpr_cli.log import configure_logging
from mcpr_cli.proxy import RunningProxy, serve
from mcpr_core.config import LoadResult, ProxyConfig
from mcpr_core.events import EventSink
from mcpr_integrations.cloud.config import CloudConfig
from mcpr_integrations.cloud.sink import CloudSink
from mcpr_integrations.sqlite import SqliteSink
from mcpr_integrations.stderr import StderrSink
from mcpr_integrations.store import StoreError

__all__ = ["open_sinks", "run_proxy"]

_log = structlog.get_logger("mcpr")


#: Re-reads the configuration (file, environment, flags) for a SIGHUP reload.
Reloader = Callable[[], LoadResult]


def run_proxy(
    config: ProxyConfig, reload: Reloader | None = None, *, cloud: CloudConfig | None = None
) -> int:
    """Run until SIGTERM/SIGINT, reloading `[csp]` on SIGHUP; return the exit code.

    With `cloud`, events are also uploaded to the mcpr cloud.
    """
    configure_logging(config.log_format)
    options: dict[str, Any] = {}
    if config.backend == "asyncio" and importlib.util.find_spec("uvloop") is not None:
        options["use_uvloop"] = True
    return anyio.run(_main, config, reload, cloud, backend=config.backend, backend_options=options)


def _store_error(message: str, exc: BaseException) -> None:
    _log.warning("store_error", message=message, error=str(exc))


def _cloud_log(level: int, event: str, fields: Mapping[str, object]) -> None:
    _log.log(level, event, **fields)


def open_sinks(config: ProxyConfig, cloud: CloudConfig | None = None) -> list[EventSink]:
    """The sinks of `mcpr proxy run`: stderr (unless off), the store if it opens, the cloud."""
    sinks: list[EventSink] = []
    if config.events_format != "off":
        sinks.append(StderrSink(config.events_format))
    try:
        sinks.append(SqliteSink.open(os.environ, mcpr_version=__version__, on_error=_store_error))
    except StoreError as exc:
        _log.warning("store_unavailable", error=str(exc), hint="the proxy runs without a store")
    if cloud is not None:
        sinks.append(CloudSink(cloud, log=_cloud_log))
    return sinks


async def _main(config: ProxyConfig, reload: Reloader | None, cloud: CloudConfig | None) -> int:
    sinks = await anyio.to_thread.run_sync(open_sinks, config, cloud)
    store = next((sink.store.path for sink in sinks if isinstance(sink, SqliteSink)), None)
    bus = EventBus(sinks)
    async with anyio.create_task_group() as tasks:
        await tasks.start(bus.run)
        try:
            code = await _serve_until_signal(config, bus, store, reload)
        finally:
            with anyio.CancelScope(shield=True):
                await bus.aclose()
            stats = bus.statistics()
            _log.info("stopped", events=stats.emitted, events_dropped=stats.dropped)
    return code


async def _serve_until_signal(
    config: ProxyConfig, bus: EventBus, store: Path | None, reload: Reloader | None
) -> int:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        try:
            async with serve(config, emit=bus.emit) as running:
                _banner(running, store)
                async for signum in signals:
                    if signum == signal.SIGHUP:
                        await _reload(running, reload)
                        continue
                    _log.info("draining", signal=signal.Signals(signum).name)
                    break
        except OSError as exc:
            print(
                f"mcpr: cannot listen on {config.bind}:{config.port}: {exc.strerror}",
                file=sys.stderr,
            )
            return 1
    return 0


async def _reload(running: RunningProxy, reload: Reloader | None) -> None:
    """SIGHUP: re-read the configuration and apply `[csp]`; refuse anything else, loudly."""
    if reload is None:
        _log.warning("reload_ignored", reason="no configuration source to re-read")
        return
    result = await anyio.to_thread.run_sync(reload)
    if result.config is None:
        problems = [f"{p.path}: {p.message}" for p in result.problems if p.severity == "error"]
        _log.error("reload_rejected", reason="invalid configuration", problems=problems)
        return
    refused = running.reload(result.config)
    if refused:
        _log.error("reload_rejected", reason="these settings need a restart", fields=list(refused))
        return
    _log.info("reloaded", csp_domain=result.config.csp.domain)


def _banner(running: RunningProxy, store: Path | None) -> None:
    config = running.config
    print(f"mcpr proxy '{config.name}' listening on {running.url}", file=sys.stderr)
    print(f"  upstream  {config.mcp}", file=sys.stderr)
    if config.public_url:
        print(f"  public    {config.public_url}", file=sys.stderr)
    print(f"  store     {store if store is not None else '(none)'}", file=sys.stderr)
    sys.stderr.flush()
