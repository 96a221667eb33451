"""The client-facing side: one task per accepted connection, driving `mcpr_core.pipeline`.

Each keep-alive cycle reads a request head (the first byte within `idle_timeout`, the rest
of the head within `header_timeout`, so a slow client cannot hold a task forever), asks
the `Exchange` what to do, and either answers locally or carries the exchange to the
upstream and streams the answer back chunk by chunk.

While a streamed response (no Content-Length: SSE, chunked) is being pumped, a second
task watches the client socket; EOF there cancels the pump and closes the upstream
connection, which for a 2026-07-28 request is the cancellation itself (PROTOCOL.md §1.5).
A client hanging up while mcpr still waits for the upstream's head, or for more of a sized
body, is noticed too, after a short grace that spares fast answers the watcher
(`transport.wait`). The connection itself, its reads and writes, is a `transport.client.Client`.
With `sse_keepalive` set, an event stream idle that long gets an SSE comment (`KEEPALIVE`),
only between whole events, so load balancers with idle timeouts keep it open.
Every exchange, whatever happens to it, emits its events exactly once from a `finally`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import anyio.abc
import h11
import structlog

from mcpr_cli.capture import CaptureWorker
from mcpr_cli.ids import new_event_id
from mcpr_cli.transport.client import (
    CLIENT_GONE,
    Body,
    BodyTooLarge,
    Client,
    ClientGone,
    HeadError,
    receive_or_eof,
    watch_for_eof,
)
from mcpr_cli.transport.h11io import receive_event
from mcpr_cli.transport.upstream import (
    ConnectFailed,
    UpstreamConnection,
    UpstreamPool,
)
from mcpr_cli.transport.wait import UPSTREAM_FAILED, receive_head, unless_client_leaves
from mcpr_cli.transport.watchdog import Timer, Watchdog
from mcpr_core.config import ProxyConfig
from mcpr_core.events import ProxyEvent
from mcpr_core.http1 import (
    LAST_CHUNK,
    ParsedResponse,
    ResponseWriter,
    Signal,
    chunk,
    encode_request_head,
)
from mcpr_core.pipeline import (
    Captured,
    Exchange,
    Failure,
    Forward,
    Headers,
    Outcome,
    ReadBody,
    Reject,
    RequestHead,
    ResponseHead,
    Settings,
)

__all__ = ["KEEPALIVE", "ConnectionHandler", "HandlerStatistics"]

_log = structlog.get_logger("mcpr.transport")

#: Seconds to write the last chunk of a stream ended by the drain deadline.
_END_STREAM_TIMEOUT = 0.25
#: The comment written on an idle event stream; clients ignore comment lines (WHATWG HTML
#: §9.2.6: "If the line starts with a U+003A COLON character (:) — Ignore the line").
KEEPALIVE = b": keepalive\n\n"


class _UpstreamBroken(Exception):
    """The upstream connection failed after the response head was sent to the client."""


@dataclass(frozen=True, slots=True)
class HandlerStatistics:
    """Counters of the client side (trio-style `statistics()` record)."""

    connections_open: int
    exchanges_in_flight: int
    exchanges_total: int
    #: Exchanges in flight whose request is `subscriptions/listen` (open listen streams).
    subscriptions_open: int = 0
    #: `notifications/*/list_changed` seen on response streams, counted as they pass.
    list_changed_total: int = 0


class ConnectionHandler:
    """Serves client connections for one proxy: the `listener.serve` callback."""

    def __init__(
        self,
        config: ProxyConfig,
        settings: Settings,
        pool: UpstreamPool,
        emit: Callable[[ProxyEvent], None],
        capture: CaptureWorker | None = None,
    ) -> None:
        self._config = config
        self._settings = settings
        self._pool = pool
        self._emit = emit
        self._capture = capture
        self._connections = 0
        self._in_flight = 0
        self._total = 0
        self._draining = False
        self._watchdog = Watchdog()
        self._idle: set[Timer] = set()
        self._quiet = anyio.Event()
        self._quiet.set()
        self._listening = 0
        self._list_changed = 0
        self._live: set[UpstreamConnection] = set()  # upstreams of streamed responses
        self._streams_closed = False

    def statistics(self) -> HandlerStatistics:
        """Open connections, exchanges in flight and handled, listen streams, list changes."""
        return HandlerStatistics(
            self._connections, self._in_flight, self._total, self._listening, self._list_changed
        )

    def update_settings(self, settings: Settings) -> None:
        """Use `settings` from the next exchange on; exchanges in flight keep theirs."""
        self._settings = settings

    def begin_drain(self) -> None:
        """Stop keep-alive: idle connections close now, busy ones after their exchange."""
        self._draining = True
        for timer in list(self._idle):
            timer.expire()

    async def run(self) -> None:
        """Fire the deadlines of every connection's waits; runs until cancelled."""
        await self._watchdog.run()

    async def wait_quiet(self) -> None:
        """Wait until no exchange is in flight."""
        while self._in_flight:
            await self._quiet.wait()

    async def close_streams(self) -> None:
        """The drain deadline passed: end every streamed response now, cleanly.

        Each one gets its terminating chunk, so the client sees a complete (if short) SSE
        stream rather than a cut connection, and reconnects or retries as it would after any
        stream end. Responses with a Content-Length cannot end early; they are cancelled.

        The upstream side is closed, not the pump cancelled: a pump in the middle of a write
        to the client finishes it (a cancelled write would leave half a chunk on the wire),
        then finds its upstream gone and the relay writes the last chunk.
        """
        self._streams_closed = True
        for upstream in list(self._live):
            await upstream.aclose()

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        """Serve one client connection until it closes; never raises (but cancellation)."""
        self._connections += 1
        try:
            client = Client(stream, self._config.max_header_size)
            while await self._cycle(client):
                client.next_cycle()
        except Exception:
            _log.exception("connection handler failed")
        finally:
            self._connections -= 1
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    # -- one request/response cycle ---------------------------------------------------

    async def _cycle(self, client: Client) -> bool:
        """Serve one exchange; return True to keep the connection for another."""
        request = await self._read_head(client)
        if request is None:
            return False
        ex = Exchange(
            self._settings,
            exchange_id=new_event_id(),
            ts_ms=time.time_ns() // 1_000_000,
            now=time.monotonic(),
        )
        if isinstance(request, HeadError):
            await self._send_plain(client, ex.client_error(request.status, request.message))
            self._total += 1
            for event in ex.finish(now=time.monotonic(), outcome=Outcome.REJECTED):
                self._emit(event)
            return False
        outcome = Outcome.CANCELLED
        self._in_flight += 1
        self._quiet = anyio.Event() if self._in_flight == 1 else self._quiet
        try:
            outcome = await self._exchange(ex, client, request)
        finally:
            self._in_flight -= 1
            self._total += 1
            if not self._in_flight:
                self._quiet.set()
            for event in ex.finish(now=time.monotonic(), outcome=outcome):
                self._emit(event)
            self._hand_over(ex.take_list_changed(), ex.captured)
        # Whatever the outcome, a response sent whole after a request read whole leaves the
        # connection reusable: a proxy-made 502/504 carries no `Connection: close`, so closing
        # here would fail the client's next request on it (RFC 9112 §9.6).
        return client.can_continue()

    async def _read_head(self, client: Client) -> RequestHead | HeadError | None:
        """The next request head; a `HeadError` to answer; None to close quietly.

        The client's response will be framed for the head returned (`Client.begin`).
        """
        conn = client.conn
        deadline: float | None = None
        # h11 bounds a head only while it is incomplete (max_incomplete_event_size); a head
        # that arrived whole in one read is measured here, as the bytes h11 consumed for it.
        size = len(conn.trailing_data[0])
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                return HeadError(exc.error_status_hint, str(exc))
            if isinstance(event, h11.Request):
                if size - len(conn.trailing_data[0]) > self._config.max_header_size:
                    return HeadError(431, "request header fields too large")
                # h11's `Headers` is a Sequence whose every item is a Python-level
                # __getitem__; everything after this reads the plain list made here once.
                headers = list(event.headers)
                if _has_both_framings(headers):
                    # RFC 9112 §6.3: "ought to be handled as an error"; forwarded, an upstream
                    # reading Content-Length would take the rest as a smuggled request.
                    return HeadError(400, "both Content-Length and Transfer-Encoding")
                head = RequestHead(
                    method=event.method,
                    target=event.target,
                    headers=headers,
                    client_host=client.host,
                )
                client.begin(head, event.http_version)
                return head
            if event is not h11.NEED_DATA:
                return None
            if self._draining and deadline is None:
                return None
            data = await self._receive_for_head(client, deadline)
            if data is None:
                if deadline is not None:
                    return HeadError(408, "request header timeout")
                return None
            if deadline is None:
                deadline = anyio.current_time() + self._config.header_timeout
            size += len(data)
            conn.receive_data(data)

    async def _receive_for_head(self, client: Client, deadline: float | None) -> bytes | None:
        """Read for a request head; None on timeout. EOF comes back as b''.

        Between requests the wait is bounded by `idle_timeout` (a watchdog timer that closes
        the connection, cheaper than a cancel scope per request); inside a head, by its
        `deadline`.
        """
        stream = client.stream
        if deadline is None:
            timer = self._watchdog.arm(self._config.idle_timeout, stream.aclose)
            self._idle.add(timer)
            try:
                data = await receive_or_eof(stream)
            finally:
                timer.cancel()
                self._idle.discard(timer)
            # Bytes that came as the timer fired are not taken: the connection is closed.
            return None if timer.fired else data
        with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
            return await receive_or_eof(stream)
        return None

    async def _exchange(self, ex: Exchange, client: Client, request: RequestHead) -> Outcome:
        step = ex.receive_request_head(request)
        if isinstance(step, ReadBody):
            try:
                body = await self._read_body(client, step.limit)
            except (TimeoutError, h11.RemoteProtocolError) as exc:
                return await self._body_failed(ex, client, exc)
            step = ex.body_too_large() if body is None else ex.receive_request_body(body)
        if isinstance(step, Reject):
            await self._send_reject(client, step)
            return Outcome.REJECTED
        assert isinstance(step, Forward)
        listening = int(ex.mcp_method == "subscriptions/listen")
        self._listening += listening
        try:
            return await self._forward(ex, step, client, request)
        finally:
            self._listening -= listening

    async def _body_failed(self, ex: Exchange, client: Client, exc: Exception) -> Outcome:
        """The request body did not come whole: 408 when too slow, 400 when malformed.

        A client that hung up inside its body gets no answer: it is recorded as gone.
        """
        if isinstance(exc, TimeoutError):
            reject = ex.client_error(408, "request body timeout")
        elif client.conn.trailing_data[1]:  # h11 saw the end of the stream
            return Outcome.CLIENT_CLOSED
        else:
            reject = ex.client_error(400, str(exc))
        await self._send_reject(client, reject)
        return Outcome.REJECTED

    async def _read_body(self, client: Client, limit: int) -> bytes | None:
        """The whole request body, or None when it exceeds `limit`."""
        conn = client.conn
        body = Body(limit)
        try:
            # What came with the head is taken first: no deadline (cancel scope) needed.
            while (event := conn.next_event()) is not h11.NEED_DATA:
                if body.add(event):
                    client.request_read = True
                    return body.joined()
            with anyio.fail_after(self._config.request_timeout):
                while not body.add(await receive_event(conn, client.stream)):
                    pass
            client.request_read = True
            return body.joined()
        except BodyTooLarge:
            return None

    # -- carrying the exchange to the upstream ----------------------------------------------

    async def _forward(
        self, ex: Exchange, fwd: Forward, client: Client, request: RequestHead
    ) -> Outcome:
        pool = self._pool
        limit = pool.limit
        try:
            # A free slot is taken without the checkpoint (one event-loop pass) of acquire().
            limit.acquire_nowait()
        except anyio.WouldBlock:
            await limit.acquire()
        try:
            try:
                upstream = await self._send_request(fwd, client, request)
            except BodyTooLarge:
                await self._send_reject(client, ex.body_too_large())
                return Outcome.REJECTED
            except ConnectFailed as exc:
                reject = ex.upstream_failed(Failure.UNREACHABLE, str(exc))
                await self._send_reject(client, reject)
                return Outcome.UPSTREAM_UNREACHABLE
            except (TimeoutError, h11.RemoteProtocolError) as exc:
                return await self._body_failed(ex, client, exc)
            try:
                outcome = await self._relay(ex, upstream, client)
            except BaseException:
                await pool.discard(upstream)
                raise
            if outcome is Outcome.COMPLETED:
                await pool.checkin(upstream)
            else:
                await pool.discard(upstream)
            return outcome
        finally:
            limit.release()

    async def _send_request(
        self, fwd: Forward, client: Client, request: RequestHead
    ) -> UpstreamConnection:
        """Write the request upstream; retry once on a fresh connection if a reused one is dead."""
        headers = fwd.headers
        chunked = False
        if fwd.body is not None:
            headers = [(k, v) for k, v in headers if k != b"content-length"]
            headers.append((b"content-length", b"%d" % len(fwd.body)))
        elif _is_chunked(request):
            headers = [*headers, (b"transfer-encoding", b"chunked")]
            chunked = True
        # A body read whole goes out with its head in one write (one syscall, one segment).
        first = encode_request_head(fwd.method, fwd.target, headers)
        if fwd.body:
            first += fwd.body
        upstream = await self._pool.checkout()
        try:
            await upstream.send_request(fwd.method, first)
        except CLIENT_GONE as exc:
            await self._pool.discard(upstream)
            if not upstream.reused:
                raise ConnectFailed(f"sending to the upstream failed: {exc}") from exc
            upstream = await self._pool.checkout(fresh=True)
            try:
                await upstream.send_request(fwd.method, first)
            except CLIENT_GONE as exc2:
                await self._pool.discard(upstream)
                raise ConnectFailed(f"sending to the upstream failed: {exc2}") from exc2
        if fwd.body is None:
            try:
                # Bounded like a body read whole: a trickling upload holds an upstream slot.
                with anyio.fail_after(self._config.request_timeout):
                    await self._stream_request_body(client, upstream, chunked=chunked)
            except BaseException:
                await self._pool.discard(upstream)
                raise
        return upstream

    async def _stream_request_body(
        self, client: Client, upstream: UpstreamConnection, *, chunked: bool
    ) -> None:
        """Copy a request body that is not read whole (uploads, GET, DELETE) to the upstream.

        The size cap holds here too: past `max_request_body_size` the copy stops and the
        upstream connection is dropped, so the upstream never sees a complete request.
        """
        limit = self._config.max_request_body_size
        size = 0
        while True:
            event = await receive_event(client.conn, client.stream)
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > limit:
                    raise BodyTooLarge
                data = event.data
                await upstream.send(chunk(data) if chunked else data)
            elif isinstance(event, h11.EndOfMessage):
                client.request_read = True
                if chunked:
                    await upstream.send(LAST_CHUNK)
                return
            else:
                raise h11.RemoteProtocolError("connection closed inside a request body")

    def _hand_over(self, list_changed: tuple[str, ...], captured: Captured | None = None) -> None:
        """Count `list_changed` notifications; hand them (and a listing) to schema capture."""
        self._list_changed += len(list_changed)
        if self._capture is not None:
            self._capture.submit(captured, list_changed, time.time_ns() // 1_000_000)

    async def _relay(self, ex: Exchange, upstream: UpstreamConnection, client: Client) -> Outcome:
        """Wait for the upstream's head, then stream its body to the client."""
        try:
            response = await self._await_head(upstream, client)
        except TimeoutError:
            await self._send_reject(client, ex.upstream_failed(Failure.TIMEOUT))
            return Outcome.UPSTREAM_TIMEOUT
        except UPSTREAM_FAILED as exc:
            reject = ex.upstream_failed(Failure.BAD_RESPONSE, str(exc))
            await self._send_reject(client, reject)
            return Outcome.UPSTREAM_ERROR
        if response is None:
            return Outcome.CLIENT_CLOSED
        resp_head = ResponseHead(
            status=response.status, headers=response.headers, reason=response.reason
        )
        client_head = ex.receive_response_head(resp_head, now=time.monotonic())
        # The head goes out with whatever of the body already arrived, in one write.
        first = [self._head_bytes(client, client_head)] if client_head is not None else []
        streamed = client_head is not None and not _has_length(client_head)
        if not streamed:
            sized = await self._pump(ex, upstream, client, watch=True, outbox=first)
            assert sized is not None  # only a `ready_only` pump stops short
            return sized
        # What already arrived is copied first: a short stream that came whole with its head
        # ends here without waiting, so it needs no watcher (starting and cancelling that
        # task costs about 70 us, a tenth of such an exchange).
        pumped = await self._pump(ex, upstream, client, ready_only=True, outbox=first)
        if pumped is None:
            async with anyio.create_task_group() as group:

                async def watch() -> None:
                    if await watch_for_eof(client):
                        group.cancel_scope.cancel()

                group.start_soon(watch)
                self._live.add(upstream)
                try:
                    if self._streams_closed:
                        await upstream.aclose()
                    pumped = await self._pump(
                        ex, upstream, client, keepalive=self._config.sse_keepalive
                    )
                finally:
                    self._live.discard(upstream)
                group.cancel_scope.cancel()
        if pumped is Outcome.TRUNCATED and self._streams_closed:
            await self._end_stream(client)
            return Outcome.CANCELLED
        # The pump's own outcome wins when it got to return: a client that hangs up right
        # after the last byte reached it must not turn a complete response into an abort.
        if pumped is not None and pumped is not Outcome.CLIENT_CLOSED:
            return pumped
        # A modern client closes its SSE response once the result is in: that is the
        # normal end of the exchange, not an abort (PROTOCOL.md §1.5).
        return Outcome.COMPLETED if ex.answered else Outcome.CLIENT_CLOSED

    async def _await_head(
        self, upstream: UpstreamConnection, client: Client
    ) -> ParsedResponse | None:
        """The upstream's response head; None when the client hung up while waiting for it.

        The request was sent whole, so the client can only bring the start of its next
        request (kept for later) or EOF: then nobody waits for this answer any more, and for
        a 2026-07-28 request that is its cancellation (PROTOCOL.md §1.5). The caller drops
        the upstream connection, which is how the upstream learns of it. Heads that come
        within the grace of `unless_client_leaves` are read without starting the watcher.
        `TimeoutError` after `request_timeout`.
        """
        receive = functools.partial(receive_head, upstream)
        return await unless_client_leaves(
            self._watchdog, receive, client, upstream, self._config.request_timeout
        )

    async def _pump(
        self,
        ex: Exchange,
        upstream: UpstreamConnection,
        client: Client,
        *,
        keepalive: float = 0.0,
        watch: bool = False,
        ready_only: bool = False,
        outbox: list[bytes] | None = None,
    ) -> Outcome | None:
        """Copy the upstream body to the client through the exchange.

        `keepalive` (seconds, 0 for never) is for streamed responses only: see `_next_event`.
        With `watch`, a client hanging up while the upstream is slow to send more ends the
        exchange (streamed responses have their own watcher). With `ready_only`, only what
        already arrived is copied, and None means the rest is still to come.
        What is to go to the client collects in `outbox` (which may start with the response
        head) and is written in one go before waiting for the upstream, before a local
        answer, and at the end: what arrived in one read leaves in one write.
        """
        out: list[bytes] = [] if outbox is None else outbox
        writer = client.writer
        parser = upstream.parser
        try:
            while True:
                try:
                    event: ParsedResponse | bytes | Signal | None = parser.next_event()
                    if event is Signal.NEED_DATA:
                        if out:
                            await client.write(*out)
                            out.clear()
                        if ready_only:
                            return None
                        event = await self._next_event(ex, upstream, client, keepalive, watch)
                except UPSTREAM_FAILED as exc:
                    raise _UpstreamBroken(str(exc)) from exc
                if event is None:
                    return Outcome.CLIENT_CLOSED
                if isinstance(event, bytes):
                    data = ex.receive_response_data(event)
                    changed = ex.take_list_changed()
                    if changed:  # a listen stream may last for hours: count them as they come
                        self._hand_over(changed)
                    if ex.response_too_large:
                        if out:
                            await client.write(*out)
                        reject = ex.upstream_failed(Failure.RESPONSE_TOO_LARGE)
                        await self._send_reject(client, reject)
                        return Outcome.UPSTREAM_ERROR
                    if data:
                        out.append(writer.data(data))
                elif event is Signal.END:
                    held, data = ex.receive_response_end()
                    if held is not None:
                        out.append(self._head_bytes(client, held))
                    if data:
                        out.append(writer.data(data))
                    out.append(writer.end())
                    await client.write(*out)
                    return Outcome.COMPLETED
                else:
                    raise _UpstreamBroken("upstream sent a second response head")
        except _UpstreamBroken as exc:
            _log.info("upstream stream ended early", reason=str(exc))
            if out:  # what came before the break still reaches the client
                try:
                    await client.write(*out)
                except ClientGone:
                    return Outcome.CLIENT_CLOSED
            return Outcome.TRUNCATED
        except ClientGone:
            return Outcome.CLIENT_CLOSED

    async def _next_event(
        self,
        ex: Exchange,
        upstream: UpstreamConnection,
        client: Client,
        keepalive: float,
        watch: bool,
    ) -> ParsedResponse | bytes | Signal | None:
        """The upstream's next event; meanwhile, `KEEPALIVE` after each `keepalive` seconds
        of silence while the client has been sent whole SSE events only. With `watch`, None
        when the client hung up while waiting for it."""
        if watch:
            return await unless_client_leaves(self._watchdog, upstream.receive, client, upstream)
        if not keepalive:
            return await upstream.receive()
        while True:
            # Cancelling a read loses nothing: no byte was taken from the socket.
            with anyio.move_on_after(keepalive):
                return await upstream.receive()
            if ex.between_events:
                await client.write(client.writer.data(KEEPALIVE))

    # -- writing to the client ------------------------------------------------------------

    async def _end_stream(self, client: Client) -> None:
        """Finish a streamed response early (drain deadline); give up fast on a stuck client."""
        with anyio.move_on_after(_END_STREAM_TIMEOUT, shield=True):
            try:
                await client.write(client.writer.end())
            except ClientGone:
                return

    def _head_bytes(self, client: Client, head: ResponseHead) -> bytes:
        """The response head for the wire, with `Connection: close` while draining."""
        return client.writer.head(head.status, head.reason, head.headers, close=self._draining)

    async def _send_reject(self, client: Client, reject: Reject) -> None:
        """Answer locally; if the response head already went out, just cut the connection."""
        writer = client.writer
        if writer.head_sent:
            writer.close = True
            return
        headers = [*reject.headers, (b"content-length", b"%d" % len(reject.body))]
        # A request not read to its end leaves unread bytes: the connection cannot go on.
        close = reject.status >= 400 and not client.request_read
        head = writer.head(reject.status, reject.reason, headers, close=close or self._draining)
        try:
            await client.write(head, writer.data(reject.body), writer.end())
        except ClientGone:
            return

    async def _send_plain(self, client: Client, reject: Reject) -> None:
        """Answer a malformed or too slow request head, then close."""
        writer = ResponseWriter(method=b"GET", minor=1, keep_alive=False)
        client.writer = writer
        headers = [*reject.headers, (b"content-length", b"%d" % len(reject.body))]
        head = writer.head(reject.status, reject.reason, headers)
        try:
            await client.write(head, reject.body)
        except ClientGone:
            return


def _has_length(head: ResponseHead) -> bool:
    return any(k == b"content-length" for k, _ in head.headers)


def _is_chunked(request: RequestHead) -> bool:
    return any(k == b"transfer-encoding" and b"chunked" in v.lower() for k, v in request.headers)


def _has_both_framings(headers: Headers) -> bool:
    names = {k for k, _ in headers}
    return b"transfer-encoding" in names and b"content-length" in names
