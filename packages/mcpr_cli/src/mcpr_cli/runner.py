"""`mcpr proxy run`: the process around a proxy (event loop, signals, banner, exit code)."""

from __future__ import annotations

import importlib.util
import signal
import sys
from typing import Any

import anyio
import structlog

from mcpr_cli.log import configure_logging
from mcpr_cli.proxy import RunningProxy, serve
from mcpr_core.config import ProxyConfig
from mcpr_integrations.stderr import StderrSink

__all__ = ["run_proxy"]

_log = structlog.get_logger("mcpr")


def run_proxy(config: ProxyConfig) -> int:
    """Run until SIGTERM/SIGINT; return the process exit code."""
    configure_logging(config.log_format)
    options: dict[str, Any] = {}
    if config.backend == "asyncio" and importlib.util.find_spec("uvloop") is not None:
        options["use_uvloop"] = True
    try:
        return anyio.run(_main, config, backend=config.backend, backend_options=options)
    except OSError as exc:
        print(
            f"mcpr: cannot listen on {config.bind}:{config.port}: {exc.strerror}", file=sys.stderr
        )
        return 1


async def _main(config: ProxyConfig) -> int:
    sink = StderrSink("json" if config.events_format == "json" else "pretty")
    emit = sink.on_event if config.events_format != "off" else _discard
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with serve(config, emit=emit) as running:
            _banner(running)
            async for signum in signals:
                _log.info("draining", signal=signal.Signals(signum).name)
                break
    sink.flush()
    _log.info("stopped")
    return 0


def _discard(event: object) -> None:
    """Drop events (`events_format = "off"`)."""


def _banner(running: RunningProxy) -> None:
    config = running.config
    print(f"mcpr proxy '{config.name}' listening on {running.url}", file=sys.stderr)
    print(f"  upstream  {config.mcp}", file=sys.stderr)
    if config.public_url:
        print(f"  public    {config.public_url}", file=sys.stderr)
    sys.stderr.flush()
