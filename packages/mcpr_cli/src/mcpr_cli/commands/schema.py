"""`mcpr proxy schema`: what the upstream exposes, how it changed, which tools nobody calls.

Reads the `server_schema` and `schema_changes` tables the proxy fills from captured
`initialize`, `server/discover` and listing results (STORE.md). Three views:

* default: the latest snapshot of each method, a table of its items (or of the server's
  identity for `initialize` / `server/discover`);
* `--changes`: the recorded changes, newest first;
* `--unused`: tools of the latest `tools/list` not called in the `--since` window (7 days
  unless given).

`--json` prints one JSON object per line (snapshots with their payload parsed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import rich_click as click
from rich.table import Table
from rich.text import Text

from mcpr_cli.commands.common import (
    console,
    echo_json_lines,
    json_option,
    name_argument,
    open_store,
    since_cutoff,
    since_option,
)
from mcpr_cli.commands.render import format_time
from mcpr_core.schema import CAPTURED_METHODS
from mcpr_integrations.store import parse_duration
from mcpr_integrations.store.server_schema import (
    SchemaChangeRow,
    SchemaRow,
    UnusedToolRow,
    schema_changes,
    schema_snapshots,
    unused_tools,
)

__all__ = ["schema"]

#: The window of `--unused` when `--since` is not given.
UNUSED_WINDOW = "7d"
#: Characters of a hash shown in tables (`--json` has them whole).
_HASH_CHARS = 12
#: Characters of a description shown in tables.
_DESCRIPTION_CHARS = 60
_SERVER_INFO = "io.modelcontextprotocol/serverInfo"

# Listing method -> (payload key, title of the detail column, how to show an item's detail).
_LISTINGS: dict[str, tuple[str, str, str]] = {
    "tools/list": ("tools", "arguments", "inputSchema"),
    "prompts/list": ("prompts", "arguments", "arguments"),
    "resources/list": ("resources", "uri", "uri"),
    "resources/templates/list": ("resourceTemplates", "uri template", "uriTemplate"),
}


def _window(us: int) -> str:
    """A duration in the largest whole unit: `7d`, `36h`, `90m`, `45s`."""
    seconds = us // 1_000_000
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _title(what: str, name: str | None) -> str:
    return f"{what} of proxy {name}" if name else what


def _short(text: str | None) -> str:
    return text[:_HASH_CHARS] if text else "-"


def _line(value: Any, width: int = _DESCRIPTION_CHARS) -> str:
    """The first line of a text, cut to `width` characters with an ellipsis."""
    if not isinstance(value, str) or not value.strip():
        return ""
    first = value.strip().splitlines()[0]
    return first if len(first) <= width else first[: width - 1] + "…"


def _arguments(item: dict[str, Any], field: str) -> str:
    """Argument names, required ones marked `*`: from a tool's inputSchema or a prompt's list."""
    value = item.get(field)
    if field == "inputSchema":
        props = value.get("properties") if isinstance(value, dict) else None
        required = value.get("required") if isinstance(value, dict) else None
        names = list(props) if isinstance(props, dict) else []
        needed = set(required) if isinstance(required, list) else set()
        needed = {n for n in needed if isinstance(n, str)}
    else:
        args = [a for a in value if isinstance(a, dict)] if isinstance(value, list) else []
        names = [a["name"] for a in args if isinstance(a.get("name"), str)]
        needed = {a["name"] for a in args if a.get("required") is True and a.get("name") in names}
    return ", ".join(f"{n}*" if n in needed else n for n in names)


def _detail(item: dict[str, Any], field: str) -> str:
    if field in ("inputSchema", "arguments"):
        return _arguments(item, field)
    value = item.get(field)
    return value if isinstance(value, str) else ""


def _payload(row: SchemaRow) -> Any:
    return row.to_dict()["payload"]


def heading(row: SchemaRow) -> Text:
    """The line above a snapshot: method, proxy, upstream, capture time, short hash."""
    out = Text(f"{row.method}", style="bold")
    out.append(f" of proxy {row.proxy} at {row.upstream_url}")
    out.append(
        f"  captured {format_time(row.captured_at)}, hash {_short(row.schema_hash)}", style="dim"
    )
    return out


def listing_table(row: SchemaRow) -> Table:
    """The items of a listing: name, detail (arguments, uri, template), description."""
    key, heading, field = _LISTINGS[row.method]
    payload = _payload(row)
    listed = payload.get(key) if isinstance(payload, dict) else None
    items = [i for i in listed if isinstance(i, dict)] if isinstance(listed, list) else []
    table = Table()
    for column in ("name", heading, "description"):
        table.add_column(column)
    for item in sorted(items, key=lambda i: str(i.get("name"))):
        name = item.get("name")
        table.add_row(
            name if isinstance(name, str) else str(name),
            _detail(item, field),
            _line(item.get("description")),
        )
    return table


def _server(result: dict[str, Any]) -> str:
    info = result.get("serverInfo")
    meta = result.get("_meta")
    if not isinstance(info, dict) and isinstance(meta, dict):
        info = meta.get(_SERVER_INFO)
    if not isinstance(info, dict):
        return "-"
    parts = (info.get("name"), info.get("version"))
    return " ".join(p for p in parts if isinstance(p, str)) or "-"


def server_table(row: SchemaRow) -> Table:
    """The server's identity from `initialize` / `server/discover`, one field per line."""
    payload = _payload(row)
    result: dict[str, Any] = payload if isinstance(payload, dict) else {}
    versions = result.get("supportedVersions")
    if isinstance(versions, list):
        protocol = ", ".join(v for v in versions if isinstance(v, str))
    else:
        protocol = result.get("protocolVersion") or "-"
    capabilities = result.get("capabilities")
    table = Table(show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for field, value in (
        ("server", _server(result)),
        ("protocol", str(protocol)),
        (
            "capabilities",
            ", ".join(sorted(capabilities)) if isinstance(capabilities, dict) else "-",
        ),
        ("instructions", _line(result.get("instructions"), 100) or "-"),
    ):
        table.add_row(field, value)
    return table


def changes_table(rows: Sequence[SchemaChangeRow], *, title: str) -> Table:
    """Changes: detected, proxy, method, change, item, old and new hash (shortened)."""
    table = Table(title=title, title_justify="left")
    for name in ("detected", "proxy", "method", "change", "item", "old", "new"):
        table.add_column(name)
    for row in rows:
        table.add_row(
            format_time(row.detected_at),
            row.proxy,
            row.method,
            row.change_type,
            row.item_name or "",
            _short(row.old_hash),
            _short(row.new_hash),
        )
    return table


def unused_table(rows: Sequence[UnusedToolRow]) -> Table:
    """Unused tools: proxy, tool, when it was last called (or never)."""
    table = Table()
    for name in ("proxy", "tool", "last called"):
        table.add_column(name)
    for row in rows:
        last = format_time(row.last_called) if row.last_called is not None else "never"
        table.add_row(row.proxy, row.tool, last)
    return table


@click.command()
@name_argument
@click.option(
    "--method", type=click.Choice(sorted(CAPTURED_METHODS)), help="Only this captured method."
)
@click.option(
    "--changes", "show_changes", is_flag=True, help="How the schema changed, newest first."
)
@click.option("--unused", is_flag=True, help="Tools not called in the --since window (default 7d).")
@since_option
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Changes at most."
)
@json_option
def schema(
    name: str | None,
    method: str | None,
    show_changes: bool,
    unused: bool,
    since: int | None,
    limit: int,
    as_json: bool,
) -> None:
    """What the upstream exposes (tools, resources, prompts, server), and how it changed."""
    if show_changes and unused:
        raise click.UsageError("--changes and --unused are separate views; give one of them")
    if unused:
        _unused(name, since, as_json=as_json)
    elif show_changes:
        _changes(name, method, since, limit=limit, as_json=as_json)
    else:
        _snapshots(name, method, since, as_json=as_json)


def _snapshots(name: str | None, method: str | None, since: int | None, *, as_json: bool) -> None:
    with open_store() as reader:
        rows = schema_snapshots(reader.connection, proxy=name, method=method)
    cutoff = since_cutoff(since)
    if cutoff is not None:
        rows = [row for row in rows if row.captured_at >= cutoff]
    if as_json:
        echo_json_lines(rows)
    elif rows:
        out = console()
        for row in rows:
            out.print(heading(row))
            out.print(listing_table(row) if row.method in _LISTINGS else server_table(row))
    else:
        click.echo("No captured schema.")


def _changes(
    name: str | None, method: str | None, since: int | None, *, limit: int, as_json: bool
) -> None:
    with open_store() as reader:
        rows = schema_changes(
            reader.connection, proxy=name, method=method, since_ms=since_cutoff(since), limit=limit
        )
    if as_json:
        echo_json_lines(rows)
    elif rows:
        console().print(changes_table(rows, title=_title("schema changes", name)))
    else:
        click.echo("No schema changes.")


def _unused(name: str | None, since: int | None, *, as_json: bool) -> None:
    window = since if since is not None else parse_duration(UNUSED_WINDOW)
    cutoff = since_cutoff(window)
    assert cutoff is not None
    with open_store() as reader:
        offered = schema_snapshots(reader.connection, proxy=name, method="tools/list")
        rows = unused_tools(reader.connection, proxy=name, since_ms=cutoff)
    if as_json:
        echo_json_lines(rows)
    elif not offered:
        click.echo("No tools/list captured yet.")
    elif rows:
        out = console()
        what = f"tools not called in the last {_window(window)}"
        out.print(Text(_title(what, name), style="italic"))
        out.print(unused_table(rows))
    else:
        click.echo("Every offered tool was called.")
