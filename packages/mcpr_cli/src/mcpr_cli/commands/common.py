"""What the store commands share: opening the store, durations, `--json` output, options."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import rich_click as click
from rich.console import Console

from mcpr_integrations.store import (
    StoreError,
    StoreReader,
    default_store_path,
    parse_duration,
)

__all__ = [
    "Duration",
    "console",
    "echo_json",
    "echo_json_lines",
    "json_option",
    "name_argument",
    "now_ms",
    "open_store",
    "since_cutoff",
    "since_option",
]

F = TypeVar("F", bound=Callable[..., Any])


class Duration(click.ParamType[int, Any]):
    """An integer and one unit (`30m`, `7d`; with `sub_second`, also `500ms`, `250us`).

    Converts to microseconds; anything else is a usage error naming the accepted units.
    """

    name = "duration"

    def __init__(self, *, sub_second: bool = False) -> None:
        self.sub_second = sub_second

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        """Parse the command-line text (ints pass through, as click's defaults may be)."""
        if isinstance(value, int):
            return value
        try:
            return parse_duration(str(value), sub_second=self.sub_second)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def now_ms() -> int:
    """The wall clock in unix milliseconds (the unit of the store's timestamps)."""
    return time.time_ns() // 1_000_000


def since_cutoff(since_us: int | None) -> int | None:
    """The unix-ms timestamp `--since` points at, or None when it was not given."""
    return None if since_us is None else now_ms() - since_us // 1000


def open_store() -> StoreReader:
    """Open the store at `MCPR_DB` or `~/.mcpr/store.db`; a clear error when there is none."""
    try:
        return StoreReader(default_store_path(os.environ), now_ms=now_ms())
    except StoreError as exc:  # StoreMissingError included: "no store at ... yet"
        raise click.ClickException(str(exc)) from exc


#: Width of tables written to a file or a pipe, where nobody's terminal would wrap them.
_PIPE_WIDTH = 200


def console() -> Console:
    """A console on the current stdout; off a terminal, wide and without colour."""
    out = Console(highlight=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = _PIPE_WIDTH
    return out


def echo_json(value: Any) -> None:
    """Print one JSON document."""
    click.echo(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def echo_json_lines(rows: Iterable[Any]) -> None:
    """Print rows (objects with `to_dict()`) as one JSON object per line."""
    for row in rows:
        echo_json(row.to_dict())


def json_option(func: F) -> F:
    """`--json`: machine-readable output."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(func)


def since_option(func: F) -> F:
    """`--since DUR`: only what happened in the last DUR."""
    return click.option(
        "--since",
        "since",
        type=Duration(),
        help="Only the last DUR (30m, 2h, 7d; units s m h d w).",
    )(func)


def name_argument(func: F) -> F:
    """`[NAME]`: restrict to one proxy."""
    return click.argument("name", required=False)(func)
