"""Proxied latency with no cloud sink, a healthy cloud, and a cloud that never answers.

Run from the workspace root: `uv run python -m benchmarks.cloud_outage [--seconds 5]`.

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
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from benchmarks.sinkbench import compare, figures, measure, run_upstream, serve_until_sigterm

MODULE = "benchmarks.cloud_outage"
SETUPS = ("none", "cloud-ok", "cloud-silent")


# -- the proxy (its own process) ---------------------------------------------------------------


async def _run_proxy(setup: str, port: int, upstream: int, cloud: str) -> None:
    from mcpr_cli.bus import EventBus
    from mcpr_core.events import EventSink
    from mcpr_integrations.cloud.config import CloudConfig
    from mcpr_integrations.cloud.sink import CloudSink

    sinks: list[EventSink] = []
    sink: CloudSink | None = None
    if setup != "none":
        sink = CloudSink(CloudConfig(token="bench-token", endpoint=cloud), close_timeout=1.0)
        sinks.append(sink)
    bus = EventBus(sinks, shutdown_timeout=5.0)
    counters: dict[str, int] = {}

    def count() -> None:  # before close's last flush
        if sink is not None:
            stats = sink.statistics()
            counters.update(
                delivered=stats.delivered, dropped=stats.dropped, retried=stats.retried,
                buffered=stats.buffered,
            )  # fmt: skip

    await serve_until_sigterm(bus, port, upstream, before_close=count)
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


# -- the orchestration -----------------------------------------------------------------------


def _measure(setup: str, upstream: int, cloud: str, seconds: float) -> dict[str, object]:
    ms, proxy = measure(MODULE, [setup, str(upstream), cloud], seconds)
    return {**figures(ms, seconds), "max ms": round(ms[-1], 3), "proxy": proxy}


def main(argv: Sequence[str]) -> None:
    """Run the comparison (default) or one of the helper processes."""
    if argv and argv[0] == "upstream":
        asyncio.run(run_upstream(int(argv[1])))
        return
    if argv and argv[0] == "proxy":
        import anyio

        port, setup, upstream_arg, cloud = argv[1:5]
        anyio.run(_run_proxy, setup, int(port), int(upstream_arg), cloud)
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="load per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="passes over the setups")
    args = parser.parse_args(argv)
    with _healthy_cloud() as healthy, _silent_cloud() as silent:
        clouds = {"none": "", "cloud-ok": healthy, "cloud-silent": silent}
        compare(
            MODULE,
            SETUPS,
            args.rounds,
            lambda setup, upstream: _measure(setup, upstream, clouds[setup], args.seconds),
        )


if __name__ == "__main__":
    main(sys.argv[1:])
