"""Run a proxy inside the current event loop: `async with serve(config, emit=...) as running`.

Structured as the drain rule requires (STYLE.md §5.3): the handler task group outlives
the accept loop, so on shutdown the listener closes first, in-flight exchanges get up to
`drain_timeout` to finish, and only what is left after that is cancelled. At the deadline,
streamed responses (SSE) are ended cleanly first, with their last chunk, and get
`STREAM_CLOSE_GRACE` seconds to go out before the rest is cancelled.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

from mcpr_cli.capture import CaptureStatistics, CaptureWorker
from mcpr_cli.transport.server import ConnectionHandler, HandlerStatistics
from mcpr_cli.transport.upstream import PoolStatistics, UpstreamPool
from mcpr_core.config import ProxyConfig, restart_fields
from mcpr_core.events import ProxyEvent
from mcpr_core.pipeline import ResultRewriter, Settings
from mcpr_core.schema import SchemaCapture
from mcpr_core.sessions import SessionStatistics, SessionTracker
from mcpr_core.tracecontext import TraceIds

__all__ = ["STREAM_CLOSE_GRACE", "ProxyStatistics", "RunningProxy", "serve"]

#: Seconds after the drain deadline for streamed responses to send their last chunk.
STREAM_CLOSE_GRACE = 0.3


@dataclass(frozen=True, slots=True)
class ProxyStatistics:
    """Client-side and upstream-side counters of a running proxy."""

    handler: HandlerStatistics
    pool: PoolStatistics
    sessions: SessionStatistics
    capture: CaptureStatistics


class RunningProxy:
    """A proxy listening on a socket; `url` is where clients reach it."""

    def __init__(
        self,
        config: ProxyConfig,
        listener: anyio.abc.Listener[anyio.abc.SocketStream],
        *,
        emit: Callable[[ProxyEvent], None],
        rewriter: ResultRewriter | None,
        capture: SchemaCapture,
        trace_ids: Callable[[], TraceIds] | None = None,
    ) -> None:
        self.config = config
        self._emit = emit
        self._rewriter = rewriter
        self._trace_ids = trace_ids
        self._public_url: str | None = None
        self.sessions = SessionTracker(config.name, ttl=config.session_ttl)
        settings = Settings.from_config(config, rewriter, self.sessions, trace_ids)
        self._pool = UpstreamPool(
            upstream=settings.upstream,
            connect_timeout=config.connect_timeout,
            max_concurrent=config.max_concurrent_upstream,
            ca_file=config.ca_file,
        )
        self._capture = CaptureWorker(capture, emit)
        self._handler = ConnectionHandler(config, settings, self._pool, emit, self._capture)
        self._listener = listener
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
        """A snapshot of connections, exchanges, the upstream pool, sessions and capture."""
        return ProxyStatistics(
            self._handler.statistics(),
            self._pool.statistics(),
            self.sessions.statistics(),
            self._capture.statistics(),
        )

    def reload(self, config: ProxyConfig) -> tuple[str, ...]:
        """Apply a reloaded configuration; return the settings that would need a restart.

        Only `[csp]` can change in place (RELOADABLE): when anything else differs, nothing
        is applied and the differing names come back. Connections stay open either way;
        exchanges already in flight finish with the rules they started with.
        """
        refused = restart_fields(self.config, config)
        if refused:
            return refused
        self._handler.update_settings(self._settings(config))
        self.config = config
        return ()

    def set_public_url(self, url: str | None) -> None:
        """Rewrite CSP and OAuth for `url` from the next exchange on (the tunnel's URL).

        It stays in force across `reload()`; None goes back to the configured `public_url`.
        """
        self._public_url = url
        self._handler.update_settings(self._settings(self.config))

    def _settings(self, config: ProxyConfig) -> Settings:
        if self._public_url is not None:
            config = dataclasses.replace(config, public_url=self._public_url)
        return Settings.from_config(config, self._rewriter, self.sessions, self._trace_ids)

    def stop(self) -> None:
        """Ask the proxy to stop accepting and drain (returns at once)."""
        self._stop.set()

    async def wait_stopped(self) -> None:
        """Wait until the drain finished and every connection is closed."""
        await self._stopped.wait()

    async def _expire_sessions(self) -> None:
        """End idle legacy sessions; checked a few times per TTL, at least once a minute."""
        interval = min(60.0, max(0.05, self.config.session_ttl / 4))
        while True:
            await anyio.sleep(interval)
            for event in self.sessions.expire(_now_ms()):
                self._emit(event)

    async def _run(self) -> None:
        try:
            async with anyio.create_task_group() as background:
                await background.start(self._capture.run)
                background.start_soon(self._expire_sessions)
                await self._serve_and_drain()
                self._capture.close()
                background.cancel_scope.deadline = anyio.current_time() + 5.0
                for event in self.sessions.close_all(_now_ms()):
                    self._emit(event)
                await self._capture_finished(background)
        finally:
            with anyio.CancelScope(shield=True):
                await self._pool.aclose()
            self._stopped.set()

    async def _capture_finished(self, background: anyio.abc.TaskGroup) -> None:
        """Let queued captures finish (bounded by the group's deadline), then stop the rest."""
        await self._capture.wait_finished()
        background.cancel_scope.cancel()

    async def _serve_and_drain(self) -> None:
        async with anyio.create_task_group() as handlers:
            handlers.start_soon(self._handler.run)
            async with anyio.create_task_group() as accept:
                accept.start_soon(self._listener.serve, self._handler.handle, handlers)
                await self._stop.wait()
                accept.cancel_scope.cancel()
            with anyio.CancelScope(shield=True):
                await self._listener.aclose()
            self._handler.begin_drain()
            with anyio.move_on_after(self.config.drain_timeout):
                await self._handler.wait_quiet()
            await self._handler.close_streams()
            with anyio.move_on_after(STREAM_CLOSE_GRACE):
                await self._handler.wait_quiet()
            handlers.cancel_scope.cancel()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@asynccontextmanager
async def serve(
    config: ProxyConfig,
    *,
    emit: Callable[[ProxyEvent], None],
    rewriter: ResultRewriter | None = None,
    capture: SchemaCapture | None = None,
    trace_ids: Callable[[], TraceIds] | None = None,
) -> AsyncIterator[RunningProxy]:
    """Listen on `config.bind`:`config.port` (0 picks a free port) and proxy until exit.

    `capture` may come seeded with the last stored schema snapshots, so an unchanged
    upstream creates no new version. Leaving the block stops accepting, drains in-flight
    exchanges for up to `config.drain_timeout` seconds, ends the open legacy sessions
    (reason "shutdown"), and closes everything. With `trace_ids` (the OpenTelemetry sink's,
    under `[otel] propagate`), every forwarded request carries a `traceparent` naming
    mcpr's span.
    """
    if capture is None:
        capture = SchemaCapture(config.name, config.mcp)
    listener = await anyio.create_tcp_listener(local_host=config.bind, local_port=config.port)
    running = RunningProxy(
        config, listener, emit=emit, rewriter=rewriter, capture=capture, trace_ids=trace_ids
    )
    async with anyio.create_task_group() as group:
        group.start_soon(running._run)
        try:
            yield running
        finally:
            running.stop()
            await running.wait_stopped()
