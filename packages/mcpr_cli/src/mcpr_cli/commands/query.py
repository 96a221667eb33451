"""`mcpr proxy logs / slow / stats / sessions / session / clients`: answers from the store.

Each command reads through `mcpr_integrations.store.StoreReader`, prints rich tables for
people and, with `--json`, one JSON object per line for row lists (one document for `stats`
and `session`) for scripts. `[NAME]` restricts to one proxy.
"""

from __future__ import annotations

from time import sleep

import rich_click as click

from mcpr_cli.commands.common import (
    Duration,
    console,
    echo_json,
    echo_json_lines,
    json_option,
    name_argument,
    open_store,
    since_cutoff,
    since_option,
)
from mcpr_cli.commands.render import (
    clients_table,
    histogram,
    request_line,
    requests_table,
    session_table,
    sessions_table,
    stats_table,
)
from mcpr_integrations.store import RequestFilter, RequestRow, SessionLookupError, StoreReader

__all__ = ["QUERY_COMMANDS"]

#: Seconds between two looks at the store under `logs --follow`.
FOLLOW_INTERVAL = 0.5

_limit = click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Rows at most."
)


def _title(what: str, name: str | None) -> str:
    return f"{what} of proxy {name}" if name else what


def _print_rows(rows: list[RequestRow], *, as_json: bool, title: str, empty: str) -> None:
    if as_json:
        echo_json_lines(rows)
    elif rows:
        console().print(requests_table(rows, title=title))
    else:
        click.echo(empty)


@click.command()
@name_argument
@click.option(
    "--tail", type=click.IntRange(min=1), default=50, show_default=True, help="Newest rows."
)
@since_option
@click.option("--tool", help="Only calls of this tool.")
@click.option("--method", help="Only this MCP method (or HTTP verb).")
@click.option("--session", "session_prefix", help="Only sessions starting with this prefix.")
@click.option("--client", help="Only requests of this client name (either era).")
@click.option("--status", type=click.Choice(["ok", "error", "timeout"]), help="Only this status.")
@click.option("--error-code", help="Only this JSON-RPC error code or proxy HTTP status.")
@json_option
@click.option("--follow", "-f", is_flag=True, help="Keep printing new requests as they land.")
def logs(
    name: str | None,
    tail: int,
    since: int | None,
    tool: str | None,
    method: str | None,
    session_prefix: str | None,
    client: str | None,
    status: str | None,
    error_code: str | None,
    as_json: bool,
    follow: bool,
) -> None:
    """Recorded requests, newest first (with --follow: in arrival order, until Ctrl-C).

    Each row names its era (legacy or modern, i.e. 2026-07-28) and its client.
    """
    where = RequestFilter(
        proxy=name,
        tool=tool,
        method=method,
        session_prefix=session_prefix,
        status=status,
        error_code=error_code,
        client=client,
        since_ms=since_cutoff(since),
    )
    with open_store() as reader:
        if follow:
            _follow(reader, where, tail=tail, as_json=as_json)
            return
        rows = reader.logs(where, limit=tail)
        _print_rows(rows, as_json=as_json, title=_title("requests", name), empty="No requests.")


def _follow(reader: StoreReader, where: RequestFilter, *, tail: int, as_json: bool) -> None:
    """Print the last `tail` rows, then every new row once, oldest first, until Ctrl-C."""
    out = console()

    def show(rows: list[RequestRow]) -> None:
        for row in rows:
            if as_json:
                echo_json(row.to_dict())
            else:
                out.print(request_line(row))

    last = reader.last_id(where)
    # Rows written between the two queries are above `last`: they come with the next poll.
    show([row for row in reversed(reader.logs(where, limit=tail)) if row.id <= last])
    try:
        while True:
            sleep(FOLLOW_INTERVAL)
            rows = reader.logs_after(where, last)
            if rows:
                show(rows)
                last = rows[-1].id
    except KeyboardInterrupt:
        return


@click.command()
@name_argument
@click.option(
    "--threshold",
    type=Duration(sub_second=True),
    default="500ms",
    show_default=True,
    help="Shortest latency to show (units us ms s m h d w).",
)
@since_option
@click.option("--tool", help="Only calls of this tool.")
@_limit
@json_option
def slow(
    name: str | None, threshold: int, since: int | None, tool: str | None, limit: int, as_json: bool
) -> None:
    """Requests that took at least --threshold, slowest first."""
    where = RequestFilter(proxy=name, tool=tool, since_ms=since_cutoff(since))
    with open_store() as reader:
        rows = reader.slow(where, threshold_us=threshold, limit=limit)
    _print_rows(
        rows, as_json=as_json, title=_title("slow requests", name), empty="No slow requests."
    )


@click.command()
@name_argument
@since_option
@click.option("--tool", help="Only calls of this tool.")
@click.option("--client", help="Only requests of this client name.")
@json_option
def stats(
    name: str | None, since: int | None, tool: str | None, client: str | None, as_json: bool
) -> None:
    """Per tool (or <method>): calls, avg, p50, p95, p99, max, errors, bytes; and histograms."""
    where = RequestFilter(proxy=name, tool=tool, client=client, since_ms=since_cutoff(since))
    with open_store() as reader:
        report = reader.stats(where)
    if as_json:
        echo_json(report.to_dict())
        return
    if not report.rows:
        click.echo("No requests.")
        return
    out = console()
    out.print(stats_table(report, title=_title("latency per tool", name)))
    for key, counts in report.histograms.items():
        out.print(histogram(key, counts))


@click.command()
@name_argument
@click.option("--active", is_flag=True, help="Only sessions that have not ended.")
@click.option("--client", help="Only sessions of this client name.")
@since_option
@_limit
@json_option
def sessions(
    name: str | None,
    active: bool,
    client: str | None,
    since: int | None,
    limit: int,
    as_json: bool,
) -> None:
    """MCP sessions (legacy era), most recently started first."""
    with open_store() as reader:
        rows = reader.sessions(
            proxy=name, active=active, client=client, since_ms=since_cutoff(since), limit=limit
        )
    if as_json:
        echo_json_lines(rows)
    elif rows:
        console().print(sessions_table(rows, title=_title("sessions", name)))
    else:
        click.echo("No sessions.")


@click.command()
@click.argument("session_id")
@_limit
@json_option
def session(session_id: str, limit: int, as_json: bool) -> None:
    """One session (give any unique prefix of its id) and its latest requests."""
    with open_store() as reader:
        try:
            detail = reader.session(session_id, limit=limit)
        except SessionLookupError as exc:
            raise click.ClickException(str(exc)) from exc
    if as_json:
        echo_json(detail.to_dict())
        return
    out = console()
    out.print(session_table(detail))
    if detail.requests:
        out.print(requests_table(list(detail.requests), title="latest requests"))


@click.command()
@name_argument
@since_option
@json_option
def clients(name: str | None, since: int | None, as_json: bool) -> None:
    """Clients by name, version and platform (sessions and stateless requests alike)."""
    with open_store() as reader:
        rows = reader.clients(proxy=name, since_ms=since_cutoff(since))
    if as_json:
        echo_json_lines(rows)
    elif rows:
        console().print(clients_table(rows, title=_title("clients", name)))
    else:
        click.echo("No clients.")


#: The commands to register under `mcpr proxy`.
QUERY_COMMANDS = (logs, slow, stats, sessions, session, clients)
