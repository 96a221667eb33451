"""Waiting for the upstream while the client may hang up: `unless_client_leaves`.

A client that hangs up while mcpr still waits for the upstream's head, or for more of a
sized body, no longer wants the answer; for a 2026-07-28 request that is the cancellation
itself (PROTOCOL.md §1.5), and the upstream learns of it when its connection is closed.

Most answers come fast, so a wait first runs alone for `_HEAD_GRACE`, with no watcher.
Only past the grace does a watcher task read the client, and a second timer stand for
the request timeout. Both are armed on the handler's `Watchdog`, not as cancel scopes,
and either one ends the wait from outside by closing the upstream connection; the `_Wait`
record says which, so the waiter can tell a client gone from a timeout from a failing
upstream. Bytes the watcher reads that are not EOF are the start of the client's next
request, and are kept for it.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import anyio
import structlog

from mcpr_cli.transport.client import CLIENT_GONE, Client, watch_for_eof
from mcpr_cli.transport.upstream import UpstreamConnection
from mcpr_cli.transport.watchdog import Timer, Watchdog
from mcpr_core.errors import RemoteProtocolError
from mcpr_core.http1 import ParsedResponse

__all__ = ["UPSTREAM_FAILED", "receive_head", "unless_client_leaves"]

_log = structlog.get_logger("mcpr.transport")

#: What a failing upstream raises while its response is read.
UPSTREAM_FAILED: Final = (RemoteProtocolError, *CLIENT_GONE)
#: Seconds to wait for an upstream's response head before watching the client as well.
_HEAD_GRACE: Final = 0.02

_T = TypeVar("_T")


async def unless_client_leaves(
    watchdog: Watchdog,
    receive: Callable[[], Awaitable[_T]],
    client: Client,
    upstream: UpstreamConnection,
    within: float = math.inf,
) -> _T | None:
    """`receive()` from the upstream; None when the client hangs up first.

    What comes within `_HEAD_GRACE` is read without watching the client. After that a
    watcher task reads the client: EOF there closes the upstream, which ends `receive`.
    `TimeoutError` when nothing came `within` seconds (the upstream is closed then too).
    """
    wait = _Wait(watchdog, client, upstream, within)
    timer = watchdog.arm(min(_HEAD_GRACE, within), wait.grace_over)
    failure: Exception | None = None
    result: _T | None = None
    try:
        result = await receive()
    except UPSTREAM_FAILED as exc:
        failure = exc
    finally:
        timer.cancel()
        await wait.finish()
    if wait.timed_out:
        raise TimeoutError
    if wait.client_gone:
        return None
    if failure is not None:
        raise failure
    return result


async def receive_head(upstream: UpstreamConnection) -> ParsedResponse:
    event = await upstream.receive()
    if isinstance(event, ParsedResponse):
        return event
    raise RemoteProtocolError("upstream sent no response head", status_hint=502)


class _Wait:
    """One wait for the upstream under `unless_client_leaves`: what the watchdog did to it.

    Past the grace, a watcher task reads the client and a second timer stands for the
    request timeout; either one closes the upstream to end the wait, and says why here.
    """

    __slots__ = (
        "_client",
        "_finished",
        "_scope",
        "_timer",
        "_upstream",
        "_watchdog",
        "_within",
        "client_gone",
        "done",
        "timed_out",
    )

    def __init__(
        self, watchdog: Watchdog, client: Client, upstream: UpstreamConnection, within: float
    ) -> None:
        self._watchdog = watchdog
        self._client = client
        self._upstream = upstream
        self._within = within
        self._timer: Timer | None = None
        self._scope: anyio.CancelScope | None = None
        self._finished: anyio.Event | None = None
        self.client_gone = False
        self.timed_out = False
        self.done = False

    async def grace_over(self) -> None:
        """The grace passed: time out now, or watch the client until the request timeout."""
        if self._within <= _HEAD_GRACE:
            await self.time_out()
            return
        if self._within < math.inf:
            self._timer = self._watchdog.arm(self._within - _HEAD_GRACE, self.time_out)
        self._finished = anyio.Event()
        self._watchdog.spawn(self._watch)

    async def time_out(self) -> None:
        """The request timeout passed: end the wait."""
        self.timed_out = True
        await self._upstream.aclose()

    async def _watch(self) -> None:
        assert self._finished is not None
        try:
            with anyio.CancelScope() as self._scope:
                if not self.done and await watch_for_eof(self._client):
                    self.client_gone = True
                    await self._upstream.aclose()
        except Exception:
            _log.exception("client watcher failed")
        finally:
            self._finished.set()

    async def finish(self) -> None:
        """The wait ended: stop the request timer and the watcher (and wait for it)."""
        self.done = True
        if self._timer is not None:
            self._timer.cancel()
        if self._finished is not None:
            if self._scope is not None:
                self._scope.cancel()
            with anyio.CancelScope(shield=True):
                await self._finished.wait()
