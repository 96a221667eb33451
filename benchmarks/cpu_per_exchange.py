"""The proxy's CPU time per exchange: a steadier figure than throughput on a busy machine.

`uv run python -m benchmarks.cpu_per_exchange [--requests N] [--rounds R] [--connections C]`
starts the fast upstream, `mcpr proxy run --events off` (no store) and the built-in load
generator, each in its own process. Each round sends N requests (after a warm-up) and reads
the proxy's user + system CPU time from /proc before and after; it prints the CPU
microseconds (and read/write syscalls, `/proc/PID/io`) per exchange of every round, then
min, median and max of the CPU time. Throughput depends on
what else the machine runs; CPU time per exchange hardly does.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from benchmarks.procs import Loadgen, start_mcpr, start_upstream

__all__ = ["main"]


def main() -> None:
    """Measure and print the proxy's CPU microseconds per exchange, round by round."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workload", default="tools/call")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mcpr-cpu-") as tmp:
        folder = Path(tmp)
        upstream = start_upstream(folder)
        proxy = start_mcpr(folder, upstream.url, name="mcpr")
        loadgen = Loadgen()
        try:
            session = loadgen.call(op="handshake", port=proxy.port)["session"]
            common = {
                "op": "count",
                "port": proxy.port,
                "session": session,
                "workload": args.workload,
                "connections": args.connections,
            }
            loadgen.call(**common, requests=args.requests // 5)  # warm-up
            figures: list[float] = []
            for n in range(args.rounds):
                before, (reads, writes) = proxy.cpu_seconds(), proxy.syscalls()
                answer = loadgen.call(**common, requests=args.requests)
                used = proxy.cpu_seconds() - before
                reads2, writes2 = proxy.syscalls()
                if answer.get("errors") or "failed" in answer:
                    raise SystemExit(f"round {n + 1} failed: {answer}")
                done = answer["requests"]
                per = used / done * 1e6
                figures.append(per)
                rate = done / answer["seconds"]
                r, w = (reads2 - reads) / done, (writes2 - writes) / done
                calls = f"syscr {r:.2f}  syscw {w:.2f}"
                print(f"round {n + 1}: {per:6.1f} µs/exchange  {calls}  ({rate:,.0f} req/s)")
            low, mid, high = min(figures), statistics.median(figures), max(figures)
            print(f"cpu µs/exchange: min {low:.1f}  median {mid:.1f}  max {high:.1f}")
        finally:
            loadgen.close()
            proxy.stop()
            upstream.stop()


if __name__ == "__main__":
    main()
