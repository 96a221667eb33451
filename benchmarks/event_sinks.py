"""Proxied throughput and latency with different event sinks behind the bus, in one run.

Run from the workspace root: `uv run python benchmarks/event_sinks.py [--seconds 5]`.

Three processes share the machine: a minimal keep-alive upstream answering a fixed JSON-RPC
result, mcpr (`serve` plus an `EventBus`) in front of it, and this script's load generator
(8 keep-alive connections posting a JSON-RPC `ping`, as PERFORMANCE.md measures). Each sink
setup gets a fresh proxy process; the setups alternate over the rounds, so drift between
them shows (`--rounds` for more). Setups:

- `none`: a bus without sinks (events are built and emitted, then nothing);
- `sqlite`: the SqliteSink writing to a fresh store file;
- `sleepy`: a sink that sleeps 1 s per batch (it falls behind at once and drops).

A measurement, not a test: nothing is asserted about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

SETUPS = ("none", "sqlite", "sleepy")
BODY = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
ANSWER = b'{"jsonrpc":"2.0","id":1,"result":{}}'
CONNECTIONS = 8


# -- the upstream ------------------------------------------------------------------------------


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
            head = self.buffer[:end].lower()
            length = 0
            for line in head.split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            assert self.transport is not None
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER)
            )


async def _run_upstream(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Upstream, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


# -- the proxy ---------------------------------------------------------------------------------


class _Sleepy:
    """A sink that takes one second per batch."""

    name = "sleepy"

    def on_event(self, event: object) -> None:
        time.sleep(1)

    def on_batch(self, events: Sequence[object]) -> None:
        time.sleep(1)

    def flush(self) -> None:
        """Nothing buffered."""

    def close(self) -> None:
        """Nothing to release."""


async def _run_proxy(setup: str, port: int, upstream: int, store: Path) -> None:
    import anyio

    from mcpr_cli.bus import EventBus
    from mcpr_cli.proxy import serve
    from mcpr_core.config import ProxyConfig
    from mcpr_core.events import EventSink
    from mcpr_integrations.sqlite import SqliteSink

    sinks: list[EventSink] = []
    if setup == "sqlite":
        sinks.append(SqliteSink.open({"MCPR_DB": str(store)}, mcpr_version="bench"))
    elif setup == "sleepy":
        sinks.append(_Sleepy())  # type: ignore[arg-type]
    bus = EventBus(sinks, shutdown_timeout=2.0)
    config = ProxyConfig(mcp=f"http://127.0.0.1:{upstream}/mcp", port=port, admin="none")
    async with anyio.create_task_group() as tasks:
        await tasks.start(bus.run)
        with anyio.open_signal_receiver(signal.SIGTERM) as signals:
            async with serve(config, emit=bus.emit):
                print("ready", flush=True)
                async for _ in signals:
                    break
        await bus.aclose()
    stats = bus.statistics()
    lanes = {s.name: {"delivered": s.delivered, "dropped": s.dropped} for s in stats.sinks}
    print(json.dumps({"emitted": stats.emitted, "sinks": lanes}), flush=True)


# -- the load generator ------------------------------------------------------------------------


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
        length = 0
        for line in head.lower().split(b"\r\n"):
            if line.startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - start)
    writer.close()
    await writer.wait_closed()


async def _load(port: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    until = time.perf_counter() + seconds
    await asyncio.gather(*(_client(port, until, latencies) for _ in range(CONNECTIONS)))
    return latencies


# -- orchestration -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start(*args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, env=os.environ
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit(f"{args[0]} did not start")
    return proc


def _measure(setup: str, upstream: int, seconds: float, folder: Path) -> dict[str, object]:
    port = _free_port()
    store = folder / f"{setup}-{port}.db"
    proxy = _start("proxy", setup, str(port), str(upstream), str(store))
    try:
        asyncio.run(_load(port, 0.5))  # warm-up: connections, imports, first store batch
        latencies = asyncio.run(_load(port, seconds))
    finally:
        proxy.send_signal(signal.SIGTERM)
        out, _ = proxy.communicate(timeout=60)
    ms = sorted(x * 1000 for x in latencies)
    return {
        "setup": setup,
        "req/s": round(len(ms) / seconds),
        "p50 ms": round(statistics.median(ms), 3),
        "p99 ms": round(ms[int(len(ms) * 0.99)], 3),
        "bus": json.loads(out.strip().splitlines()[-1]),
    }


def main(argv: Sequence[str]) -> None:
    """Run the comparison (default) or one of the helper processes."""
    if argv and argv[0] == "upstream":
        asyncio.run(_run_upstream(int(argv[1])))
        return
    if argv and argv[0] == "proxy":
        import anyio

        setup, port, upstream, store = argv[1:5]
        anyio.run(_run_proxy, setup, int(port), int(upstream), Path(store))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="load per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="passes over the setups")
    args = parser.parse_args(argv)
    upstream_port = _free_port()
    upstream = _start("upstream", str(upstream_port))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for round_ in range(1, args.rounds + 1):
                for setup in SETUPS:
                    result = _measure(setup, upstream_port, args.seconds, Path(tmp))
                    print(json.dumps({"round": round_, **result}), flush=True)
    finally:
        upstream.terminate()
        upstream.wait()


if __name__ == "__main__":
    main(sys.argv[1:])
