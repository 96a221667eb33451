"""Where a tunnel client connects: the relay's registration endpoint, derived from its URL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

__all__ = ["REGISTER_PATH", "Endpoint", "register_endpoint"]

#: Where a relay accepts tunnels, under its base URL.
REGISTER_PATH: Final = "/_tunnel/register"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where to open the tunnel's WebSocket."""

    tls: bool
    host: str
    port: int
    target: str

    @property
    def url(self) -> str:
        """The endpoint as a ws:// or wss:// URL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'wss' if self.tls else 'ws'}://{host}:{self.port}{self.target}"


def register_endpoint(relay_url: str) -> Endpoint:
    """The registration endpoint of a relay: `<relay>/_tunnel/register`, https→wss, http→ws.

    Raises ValueError for a URL that is not http(s) or ws(s), or has no host.
    """
    try:
        parts = urlsplit(relay_url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid relay URL {relay_url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise ValueError(f"expected an http(s):// or ws(s):// relay URL, got {relay_url!r}")
    tls = scheme in ("https", "wss")
    target = parts.path.rstrip("/") + REGISTER_PATH
    return Endpoint(tls, parts.hostname, port if port is not None else (443 if tls else 80), target)
