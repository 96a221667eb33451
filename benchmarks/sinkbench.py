"""What the sink benchmarks (event_sinks.py, cloud_outage.py) share: processes, load, figures.

Each of those scripts runs three kinds of process from its own module: a minimal keep-alive
upstream answering a fixed JSON-RPC result (`run_upstream`), mcpr (`serve` plus an
`EventBus`, `serve_until_sigterm`) with the sinks of one setup, and the load generator of
the script itself (`measure`: 8 keep-alive connections posting a JSON-RPC `ping`, as
PERFORMANCE.md measures). `compare` starts the upstream and measures every setup once a
round, so drift between the setups shows.
"""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from benchmarks.procs import free_port

if TYPE_CHECKING:
    from mcpr_cli.bus import EventBus

BODY = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
ANSWER = b'{"jsonrpc":"2.0","id":1,"result":{}}'
CONNECTIONS = 8


# -- the upstream (its own process) ------------------------------------------------------------


class _Upstream(asyncio.Protocol):
    """Answer every HTTP/1.1 request with the same small JSON body, keeping the connection."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) != -1:
            length = _content_length(self.buffer[:end])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            assert self.transport is not None
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER)
            )


def _content_length(head: bytes) -> int:
    length = 0
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return length


async def run_upstream(port: int) -> None:
    """Serve the fixed answer on 127.0.0.1:`port`; print `ready` once listening."""
    server = await asyncio.get_running_loop().create_server(_Upstream, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


# -- the proxy (its own process) ---------------------------------------------------------------


async def serve_until_sigterm(
    bus: EventBus, port: int, upstream: int, before_close: Callable[[], None] = lambda: None
) -> None:
    """Run mcpr on `port` in front of `upstream`, emitting to `bus`, until SIGTERM.

    Prints `ready` once listening. After the proxy stops, `before_close` runs, then the bus
    closes (its sinks' last flush).
    """
    import anyio

    from mcpr_cli.proxy import serve
    from mcpr_core.config import ProxyConfig

    config = ProxyConfig(mcp=f"http://127.0.0.1:{upstream}/mcp", port=port, admin="none")
    async with anyio.create_task_group() as tasks:
        await tasks.start(bus.run)
        with anyio.open_signal_receiver(signal.SIGTERM) as signals:
            async with serve(config, emit=bus.emit):
                print("ready", flush=True)
                async for _ in signals:
                    break
        before_close()
        await bus.aclose()


# -- the load and the orchestration ------------------------------------------------------------


async def _client(port: int, until: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"accept: application/json, text/event-stream\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(BODY), BODY)
    )
    while (start := time.perf_counter()) < until:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(_content_length(head))
        latencies.append(time.perf_counter() - start)
    writer.close()
    await writer.wait_closed()


async def _load(port: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    until = time.perf_counter() + seconds
    await asyncio.gather(*(_client(port, until, latencies) for _ in range(CONNECTIONS)))
    return latencies


def start(module: str, *args: str) -> subprocess.Popen[str]:
    """Run `python -m module *args` and wait for its `ready` line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit(f"{args[0]} did not start")
    return proc


def measure(module: str, proxy_args: Sequence[str], seconds: float) -> tuple[list[float], object]:
    """Load a fresh `module proxy *proxy_args` for `seconds` after a warm-up, then stop it.

    Returns the latencies in milliseconds, sorted, and the JSON of the proxy's last line.
    """
    port = free_port()
    proxy = start(module, "proxy", str(port), *proxy_args)
    try:
        asyncio.run(_load(port, 0.5))  # warm-up: connections, imports, first batches
        latencies = asyncio.run(_load(port, seconds))
    finally:
        proxy.send_signal(signal.SIGTERM)
        out, _ = proxy.communicate(timeout=60)
    return sorted(x * 1000 for x in latencies), json.loads(out.strip().splitlines()[-1])


def figures(ms: Sequence[float], seconds: float) -> dict[str, float]:
    """Requests per second, median and 99th percentile of sorted latencies in milliseconds."""
    return {
        "req/s": round(len(ms) / seconds),
        "p50 ms": round(statistics.median(ms), 3),
        "p99 ms": round(ms[int(len(ms) * 0.99)], 3),
    }


def compare(
    module: str, setups: Sequence[str], rounds: int, run: Callable[[str, int], dict[str, object]]
) -> None:
    """Start the upstream; `rounds` times, print `run(setup, upstream_port)` of every setup."""
    upstream_port = free_port()
    upstream = start(module, "upstream", str(upstream_port))
    try:
        for round_ in range(1, rounds + 1):
            for setup in setups:
                result = run(setup, upstream_port)
                print(json.dumps({"round": round_, "setup": setup, **result}), flush=True)
    finally:
        upstream.terminate()
        upstream.wait()
