"""Proxied throughput and latency with different event sinks behind the bus, in one run.

Run from the workspace root: `uv run python -m benchmarks.event_sinks [--seconds 5]`.

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
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.sinkbench import compare, figures, measure, run_upstream, serve_until_sigterm

MODULE = "benchmarks.event_sinks"
SETUPS = ("none", "sqlite", "sleepy")


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
    from mcpr_cli.bus import EventBus
    from mcpr_core.events import EventSink
    from mcpr_integrations.sqlite import SqliteSink

    sinks: list[EventSink] = []
    if setup == "sqlite":
        sinks.append(SqliteSink.open({"MCPR_DB": str(store)}, mcpr_version="bench"))
    elif setup == "sleepy":
        sinks.append(_Sleepy())  # type: ignore[arg-type]
    bus = EventBus(sinks, shutdown_timeout=2.0)
    await serve_until_sigterm(bus, port, upstream)
    stats = bus.statistics()
    lanes = {s.name: {"delivered": s.delivered, "dropped": s.dropped} for s in stats.sinks}
    print(json.dumps({"emitted": stats.emitted, "sinks": lanes}), flush=True)


# -- orchestration -----------------------------------------------------------------------------


def _measure(setup: str, upstream: int, seconds: float, folder: Path) -> dict[str, object]:
    store = folder / f"{setup}-{time.monotonic_ns()}.db"
    ms, bus = measure(MODULE, [setup, str(upstream), str(store)], seconds)
    return {**figures(ms, seconds), "bus": bus}


def main(argv: Sequence[str]) -> None:
    """Run the comparison (default) or one of the helper processes."""
    if argv and argv[0] == "upstream":
        asyncio.run(run_upstream(int(argv[1])))
        return
    if argv and argv[0] == "proxy":
        import anyio

        port, setup, upstream, store = argv[1:5]
        anyio.run(_run_proxy, setup, int(port), int(upstream), Path(store))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="load per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="passes over the setups")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        compare(
            MODULE,
            SETUPS,
            args.rounds,
            lambda setup, upstream: _measure(setup, upstream, args.seconds, Path(tmp)),
        )


if __name__ == "__main__":
    main(sys.argv[1:])
