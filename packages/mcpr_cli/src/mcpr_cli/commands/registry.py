"""`mcpr proxy list / stop / reload / delete / status`: the proxies running on this machine.

They read the registry (`mcpr_cli.registry`: `$MCPR_HOME/proxies`, else `~/.mcpr/proxies`)
and talk to a proxy the way a supervisor would, with signals: SIGTERM to stop (the proxy
drains, then unlocks its entry), SIGHUP to reload (the proxy writes the outcome into its
entry under the next sequence number, which `reload` waits for).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Final

import rich_click as click
from rich.table import Table
from rich.text import Text

from mcpr_cli.commands.common import (
    console,
    echo_json,
    echo_json_lines,
    json_option,
    name_argument,
    open_store,
    since_cutoff,
    since_option,
)
from mcpr_cli.commands.render import format_time, stats_table
from mcpr_cli.registry import (
    ProxyState,
    ProxyStatus,
    Registry,
    RegistryError,
    ReloadRecord,
    lock_held,
)
from mcpr_integrations.store import RequestFilter, StatsReport

__all__ = ["REGISTRY_COMMANDS"]

#: Seconds `stop` waits beyond the proxy's own `drain_timeout` (the last chunks, the sinks).
STOP_MARGIN: Final = 5.0
#: Seconds `reload` waits for the outcome by default (re-reading a file takes milliseconds).
RELOAD_TIMEOUT: Final = 10.0
#: Seconds between two looks at another process's registry entry.
POLL_INTERVAL: Final = 0.05

_STATE_STYLE = {
    ProxyState.RUNNING: "green",
    ProxyState.STARTING: "yellow",
    ProxyState.DRAINING: "yellow",
    ProxyState.STALE: "red",
    ProxyState.STOPPED: "dim",
}


def _registry() -> Registry:
    return Registry.from_environ()


def _status(registry: Registry, name: str) -> ProxyStatus:
    try:
        return registry.status(name)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from exc


def _pid(status: ProxyStatus) -> int:
    """The pid to signal; a proxy that has not written its entry yet cannot be signalled."""
    if status.entry is None:
        raise click.ClickException(f"proxy '{status.name}' has no readable entry yet; try again")
    return status.entry.pid


def _state_text(status: ProxyStatus) -> Text:
    label = status.state.value
    entry = status.entry
    if status.state is ProxyState.STOPPED and entry is not None and entry.exit_code:
        label += f" (exit {entry.exit_code})"
    return Text(label, style=_STATE_STYLE[status.state])


def _proxies_table(statuses: Sequence[ProxyStatus], *, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("name", "state", "pid", "port", "local", "public", "upstream", "since"):
        table.add_column(column, justify="right" if column in ("pid", "port") else "left")
    for status in statuses:
        entry = status.entry
        if entry is None:
            table.add_row(status.name, _state_text(status), *["-"] * 6)
            continue
        since = entry.stopped_ms if status.state is ProxyState.STOPPED else entry.started_ms
        table.add_row(
            status.name,
            _state_text(status),
            str(entry.pid),
            str(entry.port) if entry.port is not None else "-",
            entry.local_url or "-",
            entry.public_url or "-",
            entry.upstream_url,
            format_time(since, year=False),
        )
    return table


@click.command("list")
@json_option
def list_command(as_json: bool) -> None:
    """Registered proxies: running, starting, draining, stale (died uncleanly) or stopped."""
    registry = _registry()
    statuses = registry.list()
    if as_json:
        echo_json_lines(statuses)
    elif statuses:
        console().print(_proxies_table(statuses, title=f"proxies ({registry.root})"))
    else:
        click.echo(f"No proxies registered in {registry.root}.")


def _wait_released(statuses: Sequence[ProxyStatus], timeouts: Sequence[float]) -> list[float]:
    """Seconds until each lock was released (`inf` for those still held at their deadline)."""
    start = time.monotonic()
    done = [float("inf")] * len(statuses)
    pending = set(range(len(statuses)))
    while pending:
        elapsed = time.monotonic() - start
        for i in list(pending):
            if not lock_held(statuses[i].path):
                done[i] = elapsed
                pending.discard(i)
            elif elapsed > timeouts[i]:
                pending.discard(i)
        if pending:
            time.sleep(POLL_INTERVAL)
    return done


@click.command()
@click.argument("name", required=False)
@click.option("--all", "stop_all", is_flag=True, help="Stop every running proxy.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    help="Seconds to wait for the drain [default: the proxy's drain_timeout + 5].",
)
def stop(name: str | None, stop_all: bool, timeout: float | None) -> None:
    """Stop a proxy (or --all) with SIGTERM, and wait until its drain is over."""
    if (name is None) == (not stop_all):
        raise click.UsageError("give a proxy NAME or --all (not both)")
    registry = _registry()
    if name is not None:
        targets = [_status(registry, name)]
        if not targets[0].running:
            raise click.ClickException(f"proxy '{name}' is not running ({targets[0].state})")
    else:
        targets = [status for status in registry.list() if status.running]
        if not targets:
            click.echo("No running proxies.")
            return
    pids = [_pid(status) for status in targets]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # gone already: its lock is released
            os.kill(pid, signal.SIGTERM)
    bounds = [
        timeout
        if timeout is not None
        else (s.entry.drain_timeout if s.entry and s.entry.drain_timeout else 0.0) + STOP_MARGIN
        for s in targets
    ]
    failed = False
    for status, pid, took, bound in zip(
        targets, pids, _wait_released(targets, bounds), bounds, strict=True
    ):
        if took == float("inf"):
            failed = True
            click.echo(
                f"proxy '{status.name}' (pid {pid}) is still draining after {bound:g} s; "
                f"a second signal ends it at once: kill -TERM {pid}",
                err=True,
            )
            continue
        after = registry.status(status.name).state
        how = "stopped" if after is ProxyState.STOPPED else "exited without a clean stop"
        click.echo(f"proxy '{status.name}' (pid {pid}) {how} after {took:.1f} s")
    if failed:
        sys.exit(1)


def _reload_message(name: str, pid: int, record: ReloadRecord) -> str:
    outcome = record.outcome
    if outcome.applied:
        return f"proxy '{name}' (pid {pid}) reloaded: applied"
    lines = [f"proxy '{name}' (pid {pid}) refused the reload: {outcome.reason}"]
    lines += [f"  {detail}" for detail in outcome.details]
    return "\n".join(lines)


@click.command("reload")
@click.argument("name")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=RELOAD_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the outcome.",
)
def reload_command(name: str, timeout: float) -> None:
    """Reload a proxy's configuration (SIGHUP) and report whether it was applied.

    Only `[csp]` changes in place; a file with errors, or with other changes, is refused
    with the reason and the proxy keeps its configuration. The exit status is 1 then.
    """
    registry = _registry()
    status = _status(registry, name)
    if status.state is not ProxyState.RUNNING:
        raise click.ClickException(f"proxy '{name}' is not running ({status.state})")
    pid = _pid(status)
    last = status.entry.last_reload if status.entry is not None else None
    before = last.seq if last is not None else 0
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while True:
        now = registry.status(name)
        record = now.entry.last_reload if now.entry is not None else None
        if record is not None and record.seq > before and now.entry and now.entry.pid == pid:
            break
        if not now.running:
            raise click.ClickException(f"proxy '{name}' exited before it reported the reload")
        if time.monotonic() > deadline:
            raise click.ClickException(f"proxy '{name}' reported no reload within {timeout:g} s")
        time.sleep(POLL_INTERVAL)
    message = _reload_message(name, pid, record)
    if not record.outcome.applied:
        click.echo(message, err=True)
        sys.exit(1)
    click.echo(message)


@click.command()
@click.argument("name")
@click.option("--yes", is_flag=True, help="Delete without asking.")
def delete(name: str, yes: bool) -> None:
    """Remove a stopped or stale proxy from the registry (its recorded traffic stays)."""
    registry = _registry()
    status = _status(registry, name)
    if not status.running and not yes:
        click.confirm(f"Delete proxy '{name}' ({status.state}) from the registry?", abort=True)
    try:
        registry.delete(name)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"deleted proxy '{name}' ({status.state})")


@click.command("status")
@name_argument
@since_option
@json_option
def status_command(name: str | None, since: int | None, as_json: bool) -> None:
    """The running proxies (or proxy NAME), then their traffic from the store."""
    registry = _registry()
    if name is not None:
        proxies = [_status(registry, name)]
    else:
        proxies = [s for s in registry.list() if s.running]
    report: StatsReport | None = None
    problem = None
    try:
        with open_store() as reader:
            report = reader.stats(RequestFilter(proxy=name, since_ms=since_cutoff(since)))
    except click.ClickException as exc:  # no store yet, or one that cannot be read
        problem = exc.message
    if as_json:
        traffic = report.to_dict() if report is not None else None
        echo_json({"proxies": [s.to_dict() for s in proxies], "traffic": traffic})
        return
    out = console()
    if proxies:
        title = f"proxy {name}" if name is not None else "running proxies"
        out.print(_proxies_table(proxies, title=title))
    else:
        click.echo("No running proxies.")
    if problem is not None:
        click.echo(f"No traffic summary: {problem}")
    elif report is not None and report.rows:
        title = f"traffic of proxy {name}" if name is not None else "traffic"
        out.print(stats_table(report, title=title))
    else:
        click.echo("No requests.")


#: The commands to register under `mcpr proxy`.
REGISTRY_COMMANDS = (list_command, stop, reload_command, delete, status_command)
