"""The `[tunnel]` table of `mcpr.toml`, and the tunnel client run beside `mcpr proxy run`.

    [tunnel]
    enabled = true                          # default true once the table is there
    relay_url = "https://relay.example.com" # where `mcpr relay run` (or another relay) listens
    token = "…"                             # the relay's static token for this developer
    subdomain = "weather"                   # asked for; the relay may offer another one

When the tunnel connects, the URL the relay hands out becomes the proxy's public URL, the
one widget CSP and OAuth metadata are rewritten for (`RunningProxy.set_public_url`); the
status shows on `/ready`, `/metrics` and in heartbeats. Problems carry key paths
(`tunnel.relay_url`); the token never appears in one, nor in a repr.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import structlog

from mcp_tunnel_client import TunnelClient, TunnelStatus, register_endpoint
from mcpr_core.config import Problem

if TYPE_CHECKING:
    from mcpr_cli.proxy import RunningProxy

__all__ = ["TunnelConfig", "load_tunnel_config", "start_tunnel"]

_KEYS: Final = ("enabled", "relay_url", "token", "subdomain")

_log = structlog.get_logger("mcpr")


@dataclass(frozen=True, slots=True)
class TunnelConfig:
    """A validated, enabled `[tunnel]` table (build it with `load_tunnel_config`)."""

    relay_url: str
    token: str = field(repr=False)
    subdomain: str | None = None


def _describe(value: object) -> str:
    return "a table" if isinstance(value, Mapping) else type(value).__name__


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_tunnel_config(data: Mapping[str, Any]) -> tuple[TunnelConfig | None, tuple[Problem, ...]]:
    """Validate the `[tunnel]` table of a parsed `mcpr.toml` (the whole file's mapping).

    (None, ()) without a table or with `enabled = false`; None with problems when invalid.
    """
    table = data.get("tunnel")
    if table is None:
        return None, ()
    if not isinstance(table, Mapping):
        return None, (Problem("tunnel", f"expected a table, got {_describe(table)}", "error"),)
    problems = [
        Problem(f"tunnel.{key}", "unknown key", "warning") for key in table if key not in _KEYS
    ]
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(Problem("tunnel.enabled", "expected true or false", "error"))
    relay_url = table.get("relay_url")
    if not isinstance(relay_url, str):
        problems.append(
            Problem("tunnel.relay_url", 'required, e.g. "https://relay.example.com"', "error")
        )
    else:
        try:
            endpoint = register_endpoint(relay_url)
        except ValueError as exc:
            problems.append(Problem("tunnel.relay_url", str(exc), "error"))
        else:
            if not endpoint.tls and not _loopback(endpoint.host):
                message = "not https: the token and all traffic travel in clear text"
                problems.append(Problem("tunnel.relay_url", message, "warning"))
    token = table.get("token")
    if not isinstance(token, str) or not token or any(c.isspace() for c in token):
        problems.append(
            Problem("tunnel.token", "required: the relay's token, without spaces", "error")
        )
    subdomain = table.get("subdomain")
    if subdomain is not None and (not isinstance(subdomain, str) or not _label(subdomain)):
        message = "expected one DNS label: a-z, 0-9 and inner hyphens, at most 63 characters"
        problems.append(Problem("tunnel.subdomain", message, "error"))
    if any(p.severity == "error" for p in problems) or enabled is False:
        return None, tuple(problems)
    assert isinstance(relay_url, str)
    assert isinstance(token, str)
    return TunnelConfig(relay_url, token, subdomain), tuple(problems)


def _label(text: str) -> bool:
    return (
        0 < len(text) <= 63
        and text == text.lower()
        and all(c.isalnum() or c == "-" for c in text)
        and text.isascii()
        and not text.startswith("-")
        and not text.endswith("-")
    )


def start_tunnel(
    config: TunnelConfig,
    running: RunningProxy,
    *,
    on_connected: Callable[[str], None] | None = None,
) -> TunnelClient:
    """A tunnel client for `running` (start it with `task_group.start(client.run)`).

    Each change of status is logged; on every (re)connection the relay's URL becomes the
    proxy's public URL.
    """

    def changed(client: TunnelClient) -> None:
        status = client.status
        if status is TunnelStatus.CONNECTED and client.url is not None:
            running.set_public_url(client.url)
            _log.info("tunnel_connected", url=client.url, relay=config.relay_url)
            if on_connected is not None:
                on_connected(client.url)
        elif status is TunnelStatus.CONNECTING:
            return  # each attempt; a failure is logged below, a success above
        elif client.refused or status is TunnelStatus.EVICTED:
            _log.error("tunnel_stopped", status=status.value, error=client.error)
        else:
            _log.warning("tunnel_disconnected", error=client.error, retrying=True)

    return TunnelClient(
        config.relay_url, config.token, running.url, subdomain=config.subdomain, on_change=changed
    )
