"""`mcpr relay run [CONFIG]`: the self-hostable tunnel relay."""

from __future__ import annotations

import sys
from pathlib import Path

import rich_click as click

from mcpr_cli.configfile import find_config

__all__ = ["relay"]


@click.group()
def relay() -> None:
    """Run a tunnel relay: public URLs for proxies on other machines."""


@relay.command("run")
@click.argument("config", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--port", type=int, help="Port to listen on (overrides [relay] port).")
def run(config: Path | None, port: int | None) -> None:
    """Serve tunnels and route `Host: <subdomain>.<domain>` requests through them.

    CONFIG (else the nearest mcpr.toml) needs a [relay] table with `domain` and
    [[relay.tokens]]; every problem is printed with its key path.
    """
    from dataclasses import replace

    from mcpr_cli.relay.run import load_relay_file, run_relay

    path = config if config is not None else find_config(Path.cwd())
    if path is None:
        click.echo("error: no mcpr.toml found here or in a parent folder; pass CONFIG", err=True)
        sys.exit(1)
    loaded, problems = load_relay_file(path)
    for problem in problems:
        click.echo(f"{problem.severity}: {problem.path}: {problem.message}", err=True)
    if loaded is None:
        sys.exit(1)
    if port is not None:
        loaded = replace(loaded, port=port)
    sys.exit(run_relay(loaded))
