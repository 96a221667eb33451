"""Proxied latency with no cloud sink, a healthy cloud, and a cloud that never answers.

Run from the workspace root: `uv run python benchmarks/cloud_outage.py [--seconds 5]`.

Processes: a minimal keep-alive upstream answering a fixed JSON-RPC result; mcpr (`serve`
plus an `EventBus`) in front of it, started afresh for each setup; and this script, which
runs the load (8 keep-alive connections posting a JSON-RPC `ping`) and two clouds on
127.0.0.1 in threads:

- `none`: a bus without sinks;
- `cloud-ok`: a CloudSink posting to a server that answers 202 at once;
- `cloud-silent`: a CloudSink posting to a server that accepts connections, reads the
  request and never answers (the sink's POST waits out its 10 s timeout, retries, and its
  buffer overflows: counted drops).

Setups alternate over the rounds, so drift between them shows (`--rounds` for more). Each
line also reports the sink's counters. A measurement, not a test: nothing is asserted.
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
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SETUPS = ("none", "cloud-ok", "cloud-silent")
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
            length = 0
            for line in self.buffer[:end].lower().split(b"\r\n"):
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
    server = await asyncio.get_running_loop().create_server(_Upstream, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


# -- the proxy (its own process) ---------------------------------------------------------------


async def _run_proxy(setup: str, port: int, upstream: int, cloud: str) -> None:
    import anyio

    from mcpr_cli.bus import EventBus
    from mcpr_cli.proxy import serve
    from mcpr_core.config import ProxyConfig
    from mcpr_core.events import EventSink
    from mcpr_integrations.cloud.config import CloudConfig
    from mcpr_integrations.cloud.sink import CloudSink

    sinks: list[EventSink] = []
    sink: CloudSink | None = None
    if setup != "none":
        sink = CloudSink(CloudConfig(token="bench-token", endpoint=cloud), close_timeout=1.0)
        sinks.append(sink)
    bus = EventBus(sinks, shutdown_timeout=5.0)
    config = ProxyConfig(mcp=f"http://127.0.0.1:{upstream}/mcp", port=port, admin="none")
    async with anyio.create_task_group() as tasks:
        await tasks.start(bus.run)
        with anyio.open_signal_receiver(signal.SIGTERM) as signals:
            async with serve(config, emit=bus.emit):
                print("ready", flush=True)
                async for _ in signals:
                    break
        stats = sink.statistics() if sink is not None else None  # before close's last flush
        await bus.aclose()
    counters = {} if stats is None else {
        "delivered": stats.delivered, "dropped": stats.dropped, "retried": stats.retried,
        "buffered": stats.buffered,
    }  # fmt: skip
    print(json.dumps({"emitted": bus.statistics().emitted, "cloud": counters}), flush=True)


# -- the clouds (threads of this process) ------------------------------------------------------


class _Accept(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(202)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@contextmanager
def _healthy_cloud() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Accept)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def _silent_cloud() -> Iterator[str]:
    """Accept and read every connection; never write a byte back."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)
            threading.Thread(target=_drain, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


def _drain(conn: socket.socket) -> None:
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass


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


def _measure(setup: str, upstream: int, cloud: str, seconds: float) -> dict[str, object]:
    port = _free_port()
    proxy = _start("proxy", setup, str(port), str(upstream), cloud)
    try:
        asyncio.run(_load(port, 0.5))  # warm-up
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
        "max ms": round(ms[-1], 3),
        "proxy": json.loads(out.strip().splitlines()[-1]),
    }


def main(argv: Sequence[str]) -> None:
    """Run the comparison (default) or one of the helper processes."""
    if argv and argv[0] == "upstream":
        asyncio.run(_run_upstream(int(argv[1])))
        return
    if argv and argv[0] == "proxy":
        import anyio

        setup, port, upstream_arg, cloud = argv[1:5]
        anyio.run(_run_proxy, setup, int(port), int(upstream_arg), cloud)
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="load per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="passes over the setups")
    args = parser.parse_args(argv)
    upstream_port = _free_port()
    upstream = _start("upstream", str(upstream_port))
    try:
        with _healthy_cloud() as healthy, _silent_cloud() as silent:
            clouds = {"none": "", "cloud-ok": healthy, "cloud-silent": silent}
            for round_ in range(1, args.rounds + 1):
                for setup in SETUPS:
                    result = _measure(setup, upstream_port, clouds[setup], args.seconds)
                    print(json.dumps({"round": round_, **result}), flush=True)
    finally:
        upstream.terminate()
        upstream.wait()


if __name__ == "__main__":
    main(sys.argv[1:])
