"""`mcpr proxy setup`: write a working `mcpr.toml` from nothing, cloud onboarding included.

Interactive by default (rich prompts): the upstream MCP URL, the port, and whether to send
metrics to the mcpr cloud; on yes it logs in by email code, picks or creates a project and
a server, creates an ingest token and writes the `[cloud]` section. Each flag answers its
question in advance; `--yes` asks nothing (flags and defaults only, `--mcp` required) and
overwrites an existing file. Without `--yes` an existing file is never replaced unasked.

The file holds a secret once it has a token, so it is written 0600, through a temporary
file and a rename: a reader never sees half a file, and the mode is right from the start.
"""

from __future__ import annotations

import json
import os
import re
import socket
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import rich_click as click
from rich.console import Console
from rich.prompt import Confirm, IntPrompt, Prompt

from mcpr_cli.configfile import CONFIG_NAME
from mcpr_core.config import load_config
from mcpr_core.routing import parse_upstream_url
from mcpr_integrations.cloud.config import (
    DEFAULT_ENDPOINT,
    CloudConfig,
    load_cloud_config,
    parse_endpoint,
    valid_slug,
)

__all__ = ["render_config", "setup", "write_private"]

#: Wrong login codes accepted before giving up.
CODE_ATTEMPTS = 3

T = TypeVar("T")


class _Asker:
    """Rich prompts on one console; EOF on stdin becomes a clear usage error."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def _guard(self, ask: Callable[[], T]) -> T:
        try:
            return ask()
        except EOFError:
            raise click.UsageError(
                "no answer on stdin: pass --yes with flags (--mcp, --port, --token) to run "
                "without prompts"
            ) from None

    def text(self, question: str, default: str | None = None) -> str:
        if default is None:
            return self._guard(lambda: Prompt.ask(question, console=self.console)).strip()
        return self._guard(
            lambda: Prompt.ask(question, console=self.console, default=default)
        ).strip()

    def choice(self, question: str, choices: list[str], default: str) -> str:
        return self._guard(
            lambda: Prompt.ask(question, console=self.console, choices=choices, default=default)
        )

    def integer(self, question: str, default: int) -> int:
        return self._guard(lambda: IntPrompt.ask(question, console=self.console, default=default))

    def confirm(self, question: str, default: bool) -> bool:
        return self._guard(lambda: Confirm.ask(question, console=self.console, default=default))


def _toml_string(value: str) -> str:
    # JSON escapes (\" \\ \n \uXXXX, no surrogates with ensure_ascii=False) are TOML escapes.
    return json.dumps(value, ensure_ascii=False)


def render_config(mcp: str, port: int, cloud: CloudConfig | None) -> str:
    """The text of a new `mcpr.toml`; `[cloud]` only when there is a token."""
    lines = [
        "# mcpr configuration, written by `mcpr proxy setup`.",
        "# Check it with `mcpr validate`; run the proxy with `mcpr proxy run`.",
        f"mcp = {_toml_string(mcp)}",
        f"port = {port}",
    ]
    if cloud is not None:
        lines += ["", "[cloud]", "# A secret: keep this file readable by its owner only."]
        lines.append(f"token = {_toml_string(cloud.token)}")
        if cloud.server is not None:
            lines.append(f"server = {_toml_string(cloud.server)}")
        if cloud.endpoint != DEFAULT_ENDPOINT:
            lines.append(f"endpoint = {_toml_string(cloud.endpoint)}")
    return "\n".join(lines) + "\n"


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600, atomically (a temporary file, then a rename)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o600)  # exactly 0600, whatever the umask took away
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64] or "server"


def _check_url(value: str) -> str:
    parse_upstream_url(value)  # its ValueError messages are written for users
    return value


def _ask_url(ask: _Asker) -> str:
    while True:
        answer = ask.text("Upstream MCP server URL (e.g. http://127.0.0.1:8000/mcp)")
        try:
            return _check_url(answer)
        except ValueError as exc:
            ask.console.print(f"[red]{exc}[/]")


def _numbered(ask: _Asker, what: str, labels: list[str]) -> int | None:
    """Show `labels` numbered from 1 plus `n) new`; the index picked, None for a new one."""
    if not labels:
        return None
    for number, label in enumerate(labels, 1):
        ask.console.print(f"  {number}) {label}")
    ask.console.print(f"  n) a new {what}")
    choices = [str(number) for number in range(1, len(labels) + 1)] + ["n"]
    answer = ask.choice(what.capitalize(), choices, default="1")
    return None if answer == "n" else int(answer) - 1


def _onboard(ask: _Asker, endpoint: str, slug: str | None, default_name: str) -> CloudConfig:
    """Log in, pick or create a project and a server, create a token."""
    from mcpr_integrations.cloud.api import CloudAPIError, CloudClient

    try:
        with CloudClient(endpoint) as api:
            email = ask.text("Email address for the mcpr cloud")
            api.request_code(email)
            ask.console.print(f"A login code was sent to {email}.")
            for attempt in range(1, CODE_ATTEMPTS + 1):
                try:
                    api.verify_code(email, ask.text("Code from the email"))
                    break
                except CloudAPIError as exc:
                    if exc.status not in (400, 401) or attempt == CODE_ATTEMPTS:
                        raise
                    ask.console.print(f"[red]{exc.message or 'That code did not work.'}[/]")

            projects = api.list_projects()
            picked = _numbered(ask, "project", [f"{p.name} ({p.slug})" for p in projects])
            if picked is not None:
                project = projects[picked]
            else:
                project = api.create_project(ask.text("Name of the new project", "My project"))

            servers = api.list_servers(project.id)
            known = next((s for s in servers if s.slug == slug), None)
            if known is not None:
                server = known
            elif slug is not None:
                server = api.create_server(project.id, slug, slug)
            else:
                picked = _numbered(ask, "server", [f"{s.name} ({s.slug})" for s in servers])
                if picked is not None:
                    server = servers[picked]
                else:
                    name = ask.text("Name of the new server", default_name)
                    new_slug = ask.text("Its slug, stamped on every event", _slugify(name))
                    while not valid_slug(new_slug):
                        ask.console.print("[red]1-64 characters from A-Z a-z 0-9 . _ -[/]")
                        new_slug = ask.text("Its slug, stamped on every event", _slugify(name))
                    server = api.create_server(project.id, name, new_slug)

            token = api.create_token(server.id, f"mcpr on {socket.gethostname()}")
    except CloudAPIError as exc:
        raise click.ClickException(f"mcpr cloud: {exc}") from None
    ask.console.print(f"Created an ingest token for server {server.slug} ({project.name}).")
    return CloudConfig(token=token.token, server=token.server, endpoint=endpoint)


def _check_flags(mcp: str | None, endpoint: str, token: str | None, server: str | None) -> str:
    """Usage errors for malformed flags; the endpoint, normalised."""
    if mcp is not None:
        try:
            _check_url(mcp)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--mcp") from None
    try:
        endpoint = parse_endpoint(endpoint)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--endpoint") from None
    if token is not None:
        _, problems = load_cloud_config({"cloud": {"token": token}})
        if problems:
            raise click.BadParameter(problems[0].message, param_hint="--token")
    if server is not None and not valid_slug(server):
        message = "1-64 characters from A-Z a-z 0-9 . _ -"
        raise click.BadParameter(message, param_hint="--server")
    return endpoint


def _check_rendered(text: str) -> None:
    """The file about to be written must load; say why not (e.g. the admin port) if it fails."""
    data = tomllib.loads(text)
    problems = [*load_config(data).problems, *load_cloud_config(data)[1]]
    errors = [f"{p.path}: {p.message}" for p in problems if p.severity == "error"]
    if errors:
        raise click.ClickException("the configuration would not load: " + "; ".join(errors))


@click.command("setup")
@click.argument("config", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--mcp", help="Upstream MCP server URL, e.g. http://127.0.0.1:8000/mcp.")
@click.option("--port", type=click.IntRange(0, 65535), help="Port to listen on (default 3000).")
@click.option("--token", help="A cloud ingest token, used as is (no login).")
@click.option("--server", help="Server slug stamped on uploaded events.")
@click.option("--endpoint", default=DEFAULT_ENDPOINT, show_default=True, help="The cloud API.")
@click.option(
    "--yes", "-y", is_flag=True, help="Ask nothing: flags and defaults; replace an existing file."
)
def setup(
    config: Path | None,
    mcp: str | None,
    port: int | None,
    token: str | None,
    server: str | None,
    endpoint: str,
    yes: bool,
) -> None:
    """Write mcpr.toml (CONFIG, else ./mcpr.toml): upstream, port and the mcpr cloud."""
    endpoint = _check_flags(mcp, endpoint, token, server)
    if yes and mcp is None:
        raise click.UsageError("--yes asks nothing, so --mcp is required")
    path = config if config is not None else Path(CONFIG_NAME)
    ask = _Asker(Console(highlight=False, soft_wrap=True))
    if path.exists() and not yes and not ask.confirm(f"{path} exists. Replace it?", False):
        ask.console.print(f"Left {path} as it was.")
        raise SystemExit(1)
    if mcp is None:
        mcp = _ask_url(ask)
    if port is None:
        port = 3000 if yes else ask.integer("Port to listen on", 3000)
    cloud: CloudConfig | None = None
    if token is not None:
        cloud = CloudConfig(token=token, server=server, endpoint=endpoint)
    elif not yes and ask.confirm("Send metrics to the mcpr cloud?", False):
        cloud = _onboard(ask, endpoint, server, parse_upstream_url(mcp).host)
    text = render_config(mcp, port, cloud)
    _check_rendered(text)
    write_private(path, text)
    ask.console.print(f"Wrote {path} (mode 0600). Start the proxy with: mcpr proxy run")
