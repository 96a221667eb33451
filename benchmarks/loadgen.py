"""The built-in load generator: keep-alive HTTP/1.1 clients on anyio, in their own process.

The harness starts `python -m benchmarks.loadgen` once and talks to it in JSON lines on
stdin/stdout, one command and one answer per line, so the load never shares a process (or
a GIL) with the proxy or the upstream. Commands (`op`):

- `handshake`: `initialize` + `notifications/initialized`; answers the `Mcp-Session-Id`;
- `load`: `connections` clients post `workload` for `warmup` + `seconds`; answers the
  completions inside the measured window, p50/p99 latency and errors;
- `count`: the same until `requests` answers arrived in total (the memory soak);
- `sessions`: `count` times a new session: `initialize`, one `tools/call`, `DELETE`;
- `stream`: `count` times the upstream's progress stream; answers, per event, the time from
  the upstream writing it to this process reading it.

The HTTP parsing is deliberately minimal (Content-Length or chunked bodies), enough for
every server in the benchmark and cheap enough not to be the bottleneck first.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import anyio.abc

from benchmarks.payloads import INITIALIZE, INITIALIZED, PROTOCOL_VERSION, WORKLOADS, Workload

__all__ = ["main"]

_READ: Final = 65536
_SENT_AT: Final = re.compile(rb'"sentAt":(\d+)')


class _Closed(Exception):
    """The server closed the connection."""


@dataclass(frozen=True, slots=True)
class _Target:
    host: str
    port: int
    path: str
    session: str | None
    headers: tuple[tuple[str, str], ...] = ()

    def request(
        self,
        body: bytes,
        *,
        session: str | None = None,
        extra: tuple[tuple[str, str], ...] = (),
        method: str = "POST",
    ) -> bytes:
        sid = session if session is not None else self.session
        lines = [
            f"{method} {self.path} HTTP/1.1",
            f"host: {self.host}:{self.port}",
            "content-type: application/json",
            "accept: application/json, text/event-stream",
            f"mcp-protocol-version: {PROTOCOL_VERSION}",
        ]
        if sid is not None:
            lines.append(f"mcp-session-id: {sid}")
        lines.extend(f"{k}: {v}" for k, v in (*self.headers, *extra))
        lines.append(f"content-length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class _Conn:
    """One keep-alive client connection with a read buffer."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.buf = bytearray()

    async def _fill(self) -> float:
        try:
            data = await self.stream.receive(_READ)
        except (anyio.EndOfStream, anyio.BrokenResourceError) as exc:
            raise _Closed from exc
        self.buf += data
        return time.perf_counter()

    async def _need(self, size: int) -> None:
        while len(self.buf) < size:
            await self._fill()

    async def head(self) -> tuple[int, bytes]:
        """Status and lower-cased head of the next response."""
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            await self._fill()
        head = bytes(self.buf[:end]).lower()
        del self.buf[: end + 4]
        return int(head[9:12]), head

    async def body(self, head: bytes, on_data: Callable[[bytes], None] | None = None) -> int:
        """Read the body of the response with this head; return its size."""
        at = head.find(b"\r\ncontent-length:")
        if at >= 0:
            stop = head.find(b"\r\n", at + 2)
            size = int(head[at + 17 : stop if stop >= 0 else len(head)])
            await self._need(size)
            if on_data is not None:
                on_data(bytes(self.buf[:size]))
            del self.buf[:size]
            return size
        if b"transfer-encoding: chunked" not in head:
            return 0  # a 1xx/204/304-like answer without a body
        total = 0
        while True:
            while (eol := self.buf.find(b"\r\n")) < 0:
                await self._fill()
            size = int(bytes(self.buf[:eol]).split(b";", 1)[0], 16)
            await self._need(eol + 2 + size + 2)
            if size == 0:
                del self.buf[: eol + 4]
                return total
            if on_data is not None:
                on_data(bytes(self.buf[eol + 2 : eol + 2 + size]))
            del self.buf[: eol + 2 + size + 2]
            total += size

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        await self.stream.send(request)
        status, head = await self.head()
        await self.body(head)
        return status, head


async def _connect(target: _Target) -> _Conn:
    return _Conn(await anyio.connect_tcp(target.host, target.port))


def _session_of(head: bytes) -> str | None:
    at = head.find(b"\r\nmcp-session-id:")
    if at < 0:
        return None
    stop = head.find(b"\r\n", at + 2)
    return head[at + 17 : stop if stop >= 0 else len(head)].strip().decode()


async def _handshake(target: _Target) -> str | None:
    conn = await _connect(target)
    async with conn.stream:
        status, head = await conn.exchange(target.request(INITIALIZE))
        if status != 200:
            raise RuntimeError(f"initialize answered {status}")
        sid = _session_of(head)
        await conn.exchange(target.request(INITIALIZED, session=sid))
        return sid


@dataclass(slots=True)
class _Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    done: int = 0


async def _client(
    target: _Target,
    workload: Workload,
    ids: itertools.count[int],
    keep_going: Callable[[], bool],
    window: tuple[float, float],
    tally: _Tally,
) -> None:
    start, stop = window
    conn = await _connect(target)
    try:
        while keep_going():
            t0 = time.perf_counter()
            try:
                status, _ = await conn.exchange(
                    target.request(workload.render(next(ids)), extra=workload.headers)
                )
            except _Closed:
                tally.errors += 1
                await conn.stream.aclose()
                conn = await _connect(target)
                continue
            t1 = time.perf_counter()
            tally.done += 1
            if status >= 300:
                tally.errors += 1
            if start <= t1 <= stop:
                tally.latencies.append(t1 - t0)
    finally:
        await conn.stream.aclose()


def _summary(latencies: list[float], seconds: float, errors: int) -> dict[str, Any]:
    ms = sorted(x * 1000 for x in latencies)
    n = len(ms)
    return {
        "requests": n,
        "rps": n / seconds if seconds > 0 else 0.0,
        "p50_ms": statistics.median(ms) if ms else None,
        "p99_ms": ms[min(n - 1, int(n * 0.99))] if ms else None,
        "errors": errors,
    }


async def _load(target: _Target, cmd: dict[str, Any]) -> dict[str, Any]:
    workload = WORKLOADS[cmd["workload"]]
    now = time.perf_counter()
    start = now + float(cmd["warmup"])
    stop = start + float(cmd["seconds"])
    tally = _Tally()
    ids = itertools.count(1)
    async with anyio.create_task_group() as group:
        for _ in range(int(cmd["connections"])):
            group.start_soon(
                _client,
                target,
                workload,
                ids,
                lambda: time.perf_counter() < stop,
                (start, stop),
                tally,
            )
    return _summary(tally.latencies, stop - start, tally.errors)


async def _count(target: _Target, cmd: dict[str, Any]) -> dict[str, Any]:
    workload = WORKLOADS[cmd["workload"]]
    wanted = int(cmd["requests"])
    tally = _Tally()
    ids = itertools.count(1)
    begun = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(int(cmd["connections"])):
            group.start_soon(
                _client,
                target,
                workload,
                ids,
                lambda: tally.done < wanted,
                (0.0, float("inf")),
                tally,
            )
    elapsed = time.perf_counter() - begun
    return {"requests": tally.done, "seconds": elapsed, "errors": tally.errors}


async def _sessions(target: _Target, cmd: dict[str, Any]) -> dict[str, Any]:
    wanted = int(cmd["count"])
    made = itertools.count()
    call = WORKLOADS["tools/call"]
    errors = 0

    async def worker() -> None:
        nonlocal errors
        conn = await _connect(target)
        async with conn.stream:
            while next(made) < wanted:
                status, head = await conn.exchange(target.request(INITIALIZE))
                sid = _session_of(head)
                status2, _ = await conn.exchange(target.request(call.render(1), session=sid))
                # A client ends its session with DELETE (MCP transports), so the proxy forgets it.
                status3, _ = await conn.exchange(target.request(b"", session=sid, method="DELETE"))
                errors += (status >= 300) + (status2 >= 300) + (status3 >= 300) + (sid is None)

    begun = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(int(cmd["connections"])):
            group.start_soon(worker)
    return {"sessions": wanted, "seconds": time.perf_counter() - begun, "errors": errors}


async def _stream(target: _Target, cmd: dict[str, Any]) -> dict[str, Any]:
    """Time each progress event from the upstream's write to our read, over `count` streams."""
    workload = WORKLOADS["sse stream"]
    delays: list[float] = []
    durations: list[float] = []
    pending = bytearray()  # the bytes of an SSE event not yet complete

    def on_data(data: bytes) -> None:
        now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        pending.extend(data)
        while (end := pending.find(b"\n\n")) >= 0:
            found = _SENT_AT.search(pending, 0, end)
            if found is not None:
                delays.append((now - int(found.group(1))) / 1e6)
            del pending[: end + 2]

    conn = await _connect(target)
    async with conn.stream:
        for n in range(int(cmd["count"])):
            pending.clear()
            t0 = time.perf_counter()
            await conn.stream.send(target.request(workload.render(n + 1), extra=workload.headers))
            _, head = await conn.head()
            await conn.body(head, on_data)
            durations.append((time.perf_counter() - t0) * 1000)
    ms = sorted(delays)
    return {
        "events": len(ms),
        "p50_ms": statistics.median(ms) if ms else None,
        "max_ms": ms[-1] if ms else None,
        "stream_ms": statistics.median(durations) if durations else None,
    }


async def _run(cmd: dict[str, Any]) -> dict[str, Any]:
    target = _Target(
        host=cmd.get("host", "127.0.0.1"),
        port=int(cmd["port"]),
        path=cmd.get("path", "/mcp"),
        session=cmd.get("session"),
    )
    op = cmd["op"]
    if op == "handshake":
        return {"session": await _handshake(target)}
    if op == "load":
        return await _load(target, cmd)
    if op == "count":
        return await _count(target, cmd)
    if op == "sessions":
        return await _sessions(target, cmd)
    if op == "stream":
        return await _stream(target, cmd)
    raise RuntimeError(f"unknown op {op!r}")


def main() -> None:
    """Serve commands from stdin until it closes."""
    options = {"use_uvloop": importlib.util.find_spec("uvloop") is not None}
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        try:
            answer = anyio.run(_run, cmd, backend="asyncio", backend_options=options)
        except Exception as exc:  # reported to the harness, which decides what it means
            answer = {"failed": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
