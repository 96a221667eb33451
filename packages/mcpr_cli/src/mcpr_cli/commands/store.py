"""`mcpr store stats` and `mcpr store vacuum`: look after the local store file."""

from __future__ import annotations

import rich_click as click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from mcpr_cli.commands.common import Duration, console, echo_json, json_option, now_ms, open_store
from mcpr_cli.commands.render import store_table
from mcpr_integrations.store import plan_vacuum, store_stats, vacuum

__all__ = ["store"]

_PHASES = {"requests": "deleting requests", "sessions": "deleting sessions", "vacuum": "vacuum"}


@click.group()
def store() -> None:
    """Inspect and trim the local store (MCPR_DB or ~/.mcpr/store.db)."""


@store.command("stats")
@json_option
def stats_command(as_json: bool) -> None:
    """Row counts, oldest and newest request, file and WAL sizes."""
    with open_store() as reader:
        figures = store_stats(reader.connection, reader.path)
    if as_json:
        echo_json(figures.to_dict())
    else:
        console().print(store_table(figures))


@store.command("vacuum")
@click.option(
    "--before",
    type=Duration(),
    required=True,
    help="Delete requests older than DUR (units s m h d w, e.g. 7d).",
)
@click.option("--proxy", help="Only rows of this proxy.")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@json_option
def vacuum_command(before: int, proxy: str | None, dry_run: bool, as_json: bool) -> None:
    """Delete old requests and ended orphan sessions, then compact the file."""
    cutoff = now_ms() - before // 1000
    with open_store() as reader:
        if dry_run:
            counts = plan_vacuum(reader.connection, cutoff_ms=cutoff, proxy=proxy)
        else:
            out = console()
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                console=out,
                disable=as_json or not out.is_terminal,
                transient=True,
            ) as progress:
                tasks: dict[str, TaskID] = {}

                def report(phase: str, done: int, total: int) -> None:
                    if phase not in tasks:
                        tasks[phase] = progress.add_task(_PHASES[phase], total=total)
                    progress.update(tasks[phase], completed=done, total=total)

                counts = vacuum(reader.connection, cutoff_ms=cutoff, proxy=proxy, progress=report)
    if as_json:
        echo_json({"dry_run": dry_run, "before_ts": cutoff, **counts.to_dict()})
        return
    verb = "Would delete" if dry_run else "Deleted"
    click.echo(f"{verb} {counts.requests} requests and {counts.sessions} sessions.")
