"""The `mcpr` console script (rich-click commands, kept thin)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

import rich_click as click

from mcpr_cli.commands.query import QUERY_COMMANDS
from mcpr_cli.commands.registry import REGISTRY_COMMANDS
from mcpr_cli.commands.relay import relay
from mcpr_cli.commands.schema import schema
from mcpr_cli.commands.setup import setup
from mcpr_cli.commands.store import store
from mcpr_cli.configfile import load
from mcpr_core.config import Problem
from mcpr_integrations.plugins import check_sinks

__all__ = ["cli", "main"]

_DISTRIBUTIONS = ("mcpr-cli", "mcpr-core", "mcpr-integrations", "mcp-tunnel-client")


@click.group()
def cli() -> None:
    """mcpr: the MCP-aware reverse proxy."""


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the versions as a JSON object.")
def version(as_json: bool) -> None:
    """Print the versions of the mcpr distributions."""
    versions = {name: dist_version(name) for name in _DISTRIBUTIONS}
    if as_json:
        click.echo(json.dumps(versions))
        return
    click.echo(f"mcpr {versions['mcpr-cli']}")
    for name in _DISTRIBUTIONS[1:]:
        click.echo(f"  {name} {versions[name]}")


@cli.group()
def proxy() -> None:
    """Run the proxy and look at what it recorded."""


def _print_problems(problems: Sequence[Problem]) -> None:
    for problem in problems:
        click.echo(f"{problem.severity}: {problem.path}: {problem.message}", err=True)


@proxy.command("run")
@click.argument("config", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--mcp", help="Upstream MCP server URL, e.g. http://127.0.0.1:8000/mcp.")
@click.option("--port", type=int, help="Port to listen on (default 3000; 0 picks a free one).")
@click.option("--bind", help="Address to listen on (default 127.0.0.1).")
@click.option("--name", help="Proxy name stamped on every event.")
@click.option("--public-url", help="The URL clients use to reach this proxy.")
@click.option("--csp-domain", help="Public domain for widget CSP rewriting.")
@click.option("--backend", type=click.Choice(["asyncio", "trio"]), help="Event loop.")
@click.option(
    "--events",
    "events_format",
    type=click.Choice(["pretty", "json", "off"]),
    help="Request lines on stderr.",
)
def proxy_run(config: Path | None, **flags: Any) -> None:
    """Run the proxy in front of one upstream MCP server until SIGTERM or Ctrl-C."""
    from mcpr_cli.runner import run_proxy

    loaded = load(config, flags)
    _print_problems(loaded.result.problems)
    if loaded.result.config is None:
        sys.exit(1)
    path = loaded.path
    sys.exit(
        run_proxy(
            loaded.result.config,
            reload=lambda: load(path, flags).result,
            cloud=loaded.cloud,
            tunnel=loaded.tunnel,
            config_path=path,
            sinks=loaded.sinks,
            otel=loaded.otel,
        )
    )


@cli.command()
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Keep the demo's store in this file (default: a temporary one).",
)
@click.option("--serve", "serve_forever", is_flag=True, help="Keep the proxy running afterwards.")
@click.option(
    "--port", type=int, default=0, show_default=True, help="Proxy port (0: any free one)."
)
def demo(db: Path | None, serve_forever: bool, port: int) -> None:
    """Run a sample MCP app behind mcpr with scripted traffic: logs, a CSP rewrite, stats."""
    import anyio

    from mcpr_cli.commands.common import console
    from mcpr_cli.demo import run_demo

    out = console()
    code = anyio.run(lambda: run_demo(db=db, serve_forever=serve_forever, port=port, console=out))
    sys.exit(code)


@cli.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False, path_type=Path))
def validate(config: Path | None) -> None:
    """Check a configuration (CONFIG, else the nearest mcpr.toml) and the MCPR_* environment.

    Every problem is printed with its key path; the exit status is 1 when any is an error.
    Each `[[sinks]]` plugin's factory is called (and its sink closed again), so a sink that
    refuses its keys is reported here rather than when the proxy starts.
    """
    loaded = load(config, {})
    if loaded.path is None and config is None:
        click.echo("no mcpr.toml found here or in a parent folder; checked the environment only")
    problems = (*loaded.result.problems, *check_sinks(loaded.sinks))
    _print_problems(problems)
    errors = sum(1 for p in problems if p.severity == "error")
    warnings = len(problems) - errors
    where = str(loaded.path) if loaded.path is not None else "environment"
    if loaded.result.config is None or errors:
        click.echo(f"{where}: {errors} error(s), {warnings} warning(s)", err=True)
        sys.exit(1)
    sinks = "".join(f"; sink {s.name} ({s.use})" for s in loaded.sinks)
    if loaded.otel is not None:
        sinks += "; sink otel"
    click.echo(f"{where}: ok ({warnings} warning(s)); upstream {loaded.result.config.mcp}{sinks}")


for _command in (*QUERY_COMMANDS, schema, *REGISTRY_COMMANDS):
    proxy.add_command(_command)
proxy.add_command(setup)
cli.add_command(store)
cli.add_command(relay)


def main() -> None:
    """Entry point of the `mcpr` console script."""
    cli()
