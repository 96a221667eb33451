"""`mcpr relay run`: the relay process (event loop, signals, banner, exit code)."""

from __future__ import annotations

import signal
import sys
import tomllib
from pathlib import Path

import anyio
import structlog

from mcpr_cli.log import configure_logging
from mcpr_cli.relay.config import RelayConfig, load_relay_config
from mcpr_cli.relay.server import serve_relay
from mcpr_core.config import Problem

__all__ = ["load_relay_file", "run_relay"]

_log = structlog.get_logger("mcpr.relay")


def load_relay_file(path: Path) -> tuple[RelayConfig | None, tuple[Problem, ...]]:
    """Read `path` and validate its `[relay]` table; problems carry key paths."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return None, (Problem(str(path), f"cannot read: {exc.strerror}", "error"),)
    except tomllib.TOMLDecodeError as exc:
        return None, (Problem(str(path), f"invalid TOML: {exc}", "error"),)
    return load_relay_config(data)


def run_relay(config: RelayConfig) -> int:
    """Serve until SIGTERM or SIGINT; return the exit code (1 when it cannot listen)."""
    configure_logging()
    return anyio.run(_main, config)


async def _main(config: RelayConfig) -> int:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        try:
            async with serve_relay(config) as relay:
                print(f"mcpr relay listening on {relay.url}", file=sys.stderr)
                print(f"  tunnels   {relay.url}/_tunnel/register", file=sys.stderr)
                example = config.public_url("<subdomain>", relay.port)
                print(f"  public    {example}", file=sys.stderr, flush=True)
                async for signum in signals:
                    _log.info("stopping", signal=signal.Signals(signum).name)
                    break
        except OSError as exc:
            reason = exc.strerror or str(exc)
            print(f"mcpr: cannot listen on {config.bind}:{config.port}: {reason}", file=sys.stderr)
            return 1
    return 0
