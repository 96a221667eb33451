"""The `mcpr` console script (rich-click commands, kept thin)."""

from __future__ import annotations

import json
from importlib.metadata import version as dist_version

import rich_click as click

__all__ = ["cli", "main"]

_DISTRIBUTIONS = ("mcpr-cli", "mcpr-core", "mcpr-integrations")


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


def main() -> None:
    """Entry point of the `mcpr` console script."""
    cli()
