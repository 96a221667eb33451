"""The admin listener: `/healthz`, `/ready`, `/version` and `/metrics` for supervisors.

What a Kubernetes pod (or systemd, or Docker) needs from a sidecar proxy (PRODUCT.md §8):

* `GET /healthz`: 200 `ok` while serving, 503 `draining` from the first SIGTERM on. The
  process is alive either way; 503 tells a load balancer to stop sending new work.
* `GET /ready`: 200 when the proxy serves and the last upstream probe found an MCP server
  (with or without a token, see `mcpr_cli.probe`), and the tunnel, when `[tunnel]` runs
  one, is connected; 503 while draining, before the first probe, while the upstream is
  down or not MCP, or the tunnel is not connected. The body is JSON with the reason.
* `GET /version`: the versions of the four distributions, as JSON.
* `GET /metrics`: the Prometheus text format (`mcpr_cli.metrics`).

The server is tiny on purpose: anyio + h11, GET only, one request per connection answered
with `Connection: close` (scrapers and probes open a connection per request anyway), the
request head read within `READ_TIMEOUT`, on its own address (default `127.0.0.1:9901`,
`admin = "none"` turns it off), never on the proxy's port.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from typing import Any, Final

import anyio
import anyio.abc
import h11
from anyio.abc import SocketAttribute

from mcp_tunnel_client import TunnelClient, TunnelStatus
from mcpr_cli.metrics import CONTENT_TYPE, Metrics
from mcpr_cli.probe import UpstreamProbe
from mcpr_cli.transport.h11io import receive_event, send_event

__all__ = [
    "DISTRIBUTIONS",
    "READ_TIMEOUT",
    "AdminServer",
    "Health",
    "distribution_versions",
    "serve_admin",
]

#: The distributions `/version` reports.
DISTRIBUTIONS: Final = ("mcpr-cli", "mcpr-core", "mcpr-integrations", "mcp-tunnel-client")
#: Seconds a client has to send its request head.
READ_TIMEOUT: Final = 5.0
#: Largest request head accepted (admin requests are a line and a few headers).
_MAX_HEAD: Final = 16 * 1024


_CLOSED: Final = (
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    OSError,
    h11.LocalProtocolError,
)
_TEXT: Final = b"text/plain; charset=utf-8"
_JSON: Final = b"application/json"


def distribution_versions() -> dict[str, str]:
    """The installed version of each mcpr distribution ("unknown" when not installed)."""
    versions: dict[str, str] = {}
    for name in DISTRIBUTIONS:
        try:
            versions[name] = dist_version(name)
        except PackageNotFoundError:
            versions[name] = "unknown"
    return versions


class Health:
    """What `/healthz` and `/ready` report: whether the proxy drains, and the upstream probe.

    Without a probe, readiness depends on draining alone.
    """

    def __init__(self, probe: UpstreamProbe | None = None) -> None:
        self.probe = probe
        #: The tunnel client, when `[tunnel]` runs one.
        self.tunnel: TunnelClient | None = None
        self._draining = False

    def __repr__(self) -> str:
        return f"<Health draining={self._draining} probe={self.probe!r}>"

    @property
    def draining(self) -> bool:
        """True once `begin_drain()` was called."""
        return self._draining

    def begin_drain(self) -> None:
        """The proxy stopped accepting: from now on `/healthz` and `/ready` answer 503."""
        self._draining = True

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether the proxy is ready, and the JSON body that says why (or why not)."""
        if self._draining:
            return False, {"ready": False, "reason": "draining"}
        ready, body = self._upstream_readiness()
        if self.tunnel is None:
            return ready, body
        tunnel = self.tunnel
        body["tunnel"] = {"status": tunnel.status.value, "url": tunnel.url, "error": tunnel.error}
        if ready and tunnel.status is not TunnelStatus.CONNECTED:
            reason = f"tunnel {tunnel.status.value}" + (f": {tunnel.error}" if tunnel.error else "")
            body.update(ready=False, reason=reason)
            return False, body
        return ready, body

    def _upstream_readiness(self) -> tuple[bool, dict[str, Any]]:
        if self.probe is None:
            return True, {"ready": True}
        last = self.probe.last
        if last is None:
            return False, {"ready": False, "reason": "the upstream has not been probed yet"}
        upstream = {
            "status": last.status.value,
            "detail": last.detail,
            "http_status": last.http_status,
        }
        if not last.status.up:
            reason = f"upstream {last.status.value}: {last.detail}"
            return False, {"ready": False, "reason": reason, "upstream": upstream}
        return True, {"ready": True, "upstream": upstream}


class AdminServer:
    """The admin listener; `url` is where it answers."""

    def __init__(
        self,
        listener: anyio.abc.Listener[anyio.abc.SocketStream],
        *,
        metrics: Metrics,
        health: Health,
        versions: dict[str, str],
    ) -> None:
        self._listener = listener
        self.metrics = metrics
        self.health = health
        self._versions = json.dumps(versions).encode()
        self.port: int = listener.extra(SocketAttribute.local_port)
        host = str(listener.extra(SocketAttribute.local_address)[0])
        if ":" in host:
            host = f"[{host}]"
        self.url = f"http://{host}:{self.port}"

    def __repr__(self) -> str:
        return f"<AdminServer {self.url}>"

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        """Answer one request on `stream`, then close it (the listener callback)."""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
        try:
            request: h11.Request | None = None
            with anyio.move_on_after(READ_TIMEOUT):
                try:
                    event = await receive_event(conn, stream)
                except h11.RemoteProtocolError as exc:
                    await self._send(conn, stream, exc.error_status_hint, _TEXT, b"bad request\n")
                    return
                if isinstance(event, h11.Request):
                    request = event
            if request is not None:
                status, content_type, body = self.route(request.method, request.target)
                await self._send(conn, stream, status, content_type, body)
        except _CLOSED:
            pass  # the client went away; nothing to answer
        finally:
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    def route(self, method: bytes, target: bytes) -> tuple[int, bytes, bytes]:
        """The status, content type and body for a request."""
        path = target.split(b"?", 1)[0]
        if method != b"GET":
            return 405, _TEXT, b"method not allowed: the admin endpoints answer GET\n"
        if path == b"/healthz":
            if self.health.draining:
                return 503, _TEXT, b"draining\n"
            return 200, _TEXT, b"ok\n"
        if path == b"/ready":
            ready, body = self.health.readiness()
            return (200 if ready else 503), _JSON, json.dumps(body).encode()
        if path == b"/version":
            return 200, _JSON, self._versions
        if path == b"/metrics":
            return 200, CONTENT_TYPE.encode(), self.metrics.render().encode()
        return 404, _TEXT, b"not found: try /healthz, /ready, /version or /metrics\n"

    @staticmethod
    async def _send(
        conn: h11.Connection,
        stream: anyio.abc.SocketStream,
        status: int,
        content_type: bytes,
        body: bytes,
    ) -> None:
        headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
            (b"connection", b"close"),
        ]
        if status == 405:
            headers.append((b"allow", b"GET"))
        await send_event(conn, stream, h11.Response(status_code=status, headers=headers))
        await send_event(conn, stream, h11.Data(data=body))
        await send_event(conn, stream, h11.EndOfMessage())


@asynccontextmanager
async def serve_admin(
    host: str, port: int, *, metrics: Metrics, health: Health
) -> AsyncIterator[AdminServer]:
    """Listen on `host`:`port` (0 picks a free port) until the block exits.

    Binding happens before the block is entered, so a port in use raises `OSError` here.
    """
    versions = await anyio.to_thread.run_sync(distribution_versions)
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    server = AdminServer(listener, metrics=metrics, health=health, versions=versions)
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, server.handle, group)
        try:
            yield server
        finally:
            group.cancel_scope.cancel()
