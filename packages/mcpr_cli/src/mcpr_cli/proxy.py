"""Run a proxy inside the current event loop: `async with serve(config, emit=...) as running`.

Structured as the drain rule requires (STYLE.md §5.3): the handler task group outlives
the accept loop, so on shutdown the listener closes first, in-flight exchanges get up to
`drain_timeout` to finish, and only what is left after that is cancelled.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

from mcpr_cli.transport.server import ConnectionHandler, HandlerStatistics
from mcpr_cli.transport.upstream import PoolStatistics, UpstreamPool
from mcpr_core.config import ProxyConfig, restart_fields
from mcpr_core.events import ProxyEvent
from mcpr_core.pipeline import ResultRewriter, Settings

__all__ = ["ProxyStatistics", "RunningProxy", "serve"]


@dataclass(frozen=True, slots=True)
class ProxyStatistics:
    """Client-side and upstream-side counters of a running proxy."""

    handler: HandlerStatistics
    pool: PoolStatistics


class RunningProxy:
    """A proxy listening on a socket; `url` is where clients reach it."""

    def __init__(
        self,
        config: ProxyConfig,
        listener: anyio.abc.Listener[anyio.abc.SocketStream],
        handler: ConnectionHandler,
        pool: UpstreamPool,
        rewriter: ResultRewriter | None = None,
    ) -> None:
        self.config = config
        self._rewriter = rewriter
        self._listener = listener
        self._handler = handler
        self._pool = pool
        self._stop = anyio.Event()
        self._stopped = anyio.Event()
        self.port: int = listener.extra(SocketAttribute.local_port)
        host = config.bind
        if ":" in host:
            host = f"[{host}]"
        if host in ("0.0.0.0", "[::]"):
            host = "127.0.0.1"
        self.url = f"http://{host}:{self.port}"

    def statistics(self) -> ProxyStatistics:
        """A snapshot of connections, exchanges and the upstream pool."""
        return ProxyStatistics(self._handler.statistics(), self._pool.statistics())

    def reload(self, config: ProxyConfig) -> tuple[str, ...]:
        """Apply a reloaded configuration; return the settings that would need a restart.

        Only `[csp]` can change in place (RELOADABLE): when anything else differs, nothing
        is applied and the differing names come back. Connections stay open either way;
        exchanges already in flight finish with the rules they started with.
        """
        refused = restart_fields(self.config, config)
        if refused:
            return refused
        self._handler.update_settings(Settings.from_config(config, self._rewriter))
        self.config = config
        return ()

    def stop(self) -> None:
        """Ask the proxy to stop accepting and drain (returns at once)."""
        self._stop.set()

    async def wait_stopped(self) -> None:
        """Wait until the drain finished and every connection is closed."""
        await self._stopped.wait()

    async def _run(self) -> None:
        try:
            async with anyio.create_task_group() as handlers:
                async with anyio.create_task_group() as accept:
                    accept.start_soon(self._listener.serve, self._handler.handle, handlers)
                    await self._stop.wait()
                    accept.cancel_scope.cancel()
                with anyio.CancelScope(shield=True):
                    await self._listener.aclose()
                self._handler.begin_drain()
                with anyio.move_on_after(self.config.drain_timeout):
                    await self._handler.wait_quiet()
                handlers.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._pool.aclose()
            self._stopped.set()


@asynccontextmanager
async def serve(
    config: ProxyConfig,
    *,
    emit: Callable[[ProxyEvent], None],
    rewriter: ResultRewriter | None = None,
) -> AsyncIterator[RunningProxy]:
    """Listen on `config.bind`:`config.port` (0 picks a free port) and proxy until exit.

    Leaving the block stops accepting, drains in-flight exchanges for up to
    `config.drain_timeout` seconds and closes everything.
    """
    settings = Settings.from_config(config, rewriter)
    pool = UpstreamPool(
        upstream=settings.upstream,
        connect_timeout=config.connect_timeout,
        max_concurrent=config.max_concurrent_upstream,
        ca_file=config.ca_file,
    )
    handler = ConnectionHandler(config, settings, pool, emit)
    listener = await anyio.create_tcp_listener(local_host=config.bind, local_port=config.port)
    running = RunningProxy(config, listener, handler, pool, rewriter)
    async with anyio.create_task_group() as group:
        group.start_soon(running._run)
        try:
            yield running
        finally:
            running.stop()
            await running.wait_stopped()
