"""The benchmark harness: mcpr against a direct connection, nginx and the FastMCP proxy.

`uv run nox -s bench` (or `python -m benchmarks` in an environment with the `bench` group).
Three upstreams, with the paths in front of each measured side by side in one run:

- `fast`: the h11 + anyio upstream of `benchmarks/upstream.py`, behind every path: `direct`,
  `mcpr` (`mcpr proxy run --events off`, no store, uvloop when installed), `mcpr+store`,
  `mcpr[asyncio]` (uvloop hidden), `mcpr[trio]`, `nginx` (when installed) and `fastmcp`
  (the FastMCP proxy). Then the payload rows (ping, the 230 KB widget in SSE framing, and
  in JSON through mcpr with and without the CSP rewrite), the SSE delivery times, and a
  memory soak of mcpr with the store on;
- `slow`: the same upstream holding each answer 10 ms, behind `mcpr` and `nginx`;
- `sdk`: the official MCP SDK server of the end-to-end tests, behind `mcpr`, `nginx` and
  `fastmcp`.

Rounds go over the paths in a rotating order; each measurement is a warm-up, then a
fixed-length window at 1 and at 16 connections.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import procs
from benchmarks.inprocess import rewrite_timings
from benchmarks.payloads import WORKLOADS
from benchmarks.procs import Loadgen, Proc, Tools
from benchmarks.report import compute_ratios, print_extras, print_ratios, print_table, rows
from benchmarks.wrk import run_wrk

__all__ = ["main"]

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


@dataclass(slots=True)
class Route:
    """One way to reach an upstream: directly, or through a proxy process."""

    name: str
    proc: Proc  # the server the load connects to
    proxy: Proc | None  # the process whose CPU and memory are reported (None: direct)
    session: str | None = None
    only: tuple[int, ...] | None = None  # measured at these connection counts only


@dataclass(slots=True)
class Run:
    args: argparse.Namespace
    tools: Tools
    folder: Path
    load: Loadgen
    records: list[dict[str, Any]]
    peaks: dict[tuple[str, str], float]
    skipped: list[str]

    def measure(
        self, section: str, route: Route, workload: str, connections: int, rnd: int
    ) -> None:
        port = route.proc.port
        common = {
            "port": port,
            "session": route.session,
            "workload": workload,
            "connections": connections,
        }
        warm = self.load.call(op="load", warmup=0, seconds=self.args.warmup, **common)
        record: dict[str, Any] = {
            "section": section,
            "route": route.name,
            "workload": workload,
            "connections": connections,
            "round": rnd,
        }
        if "failed" in warm:
            self.records.append({**record, "failed": warm["failed"]})
            return
        cpu0 = route.proxy.cpu_seconds() if route.proxy else 0.0
        io0 = route.proxy.syscalls() if route.proxy else (0, 0)
        if self.tools.wrk and self.args.load != "builtin":
            result = run_wrk(
                self.tools.wrk,
                self.folder,
                port=port,
                session=route.session,
                workload=WORKLOADS[workload],
                connections=connections,
                seconds=self.args.seconds,
            )
        else:
            result = self.load.call(op="load", warmup=0, seconds=self.args.seconds, **common)
        if route.proxy is not None and result.get("requests"):
            n = result["requests"]
            result["cpu_us_per_req"] = (route.proxy.cpu_seconds() - cpu0) / n * 1e6
            reads, writes = route.proxy.syscalls()
            result["reads_per_req"] = (reads - io0[0]) / n
            result["writes_per_req"] = (writes - io0[1]) / n
        self.records.append({**record, **result})

    def section(
        self,
        key: str,
        routes: Sequence[Route],
        workloads: Sequence[str],
        connections: Sequence[int],
    ) -> None:
        ready = []
        for route in routes:
            answer = self.load.call(op="handshake", port=route.proc.port)
            if "failed" not in answer:
                route.session = answer["session"]
                ready.append(route)
            elif route.name in ("direct", "mcpr"):
                raise SystemExit(f"{key}/{route.name}: handshake failed: {answer['failed']}")
            else:
                self.skipped.append(f"{key}/{route.name}: handshake failed ({answer['failed']})")
        routes = ready
        for rnd in range(self.args.rounds):
            order = [*routes[rnd % len(routes) :], *routes[: rnd % len(routes)]]
            for route in order:
                for workload in workloads:
                    for conns in connections:
                        if route.only is None or conns in route.only:
                            self.measure(key, route, workload, conns, rnd)
        for route in routes:
            if route.proxy is not None:
                self.peaks[(key, route.name)] = route.proxy.peak_rss_mb()

    def optional(self, name: str, start: Callable[[], Proc]) -> Proc | None:
        try:
            return start()
        except SystemExit as exc:
            self.skipped.append(f"{name}: could not start ({str(exc).splitlines()[0]})")
            return None


def _proxies(
    run: Run, stack: contextlib.ExitStack, upstream: Proc, kinds: Sequence[str]
) -> list[Route]:
    """Start the paths named in `kinds` in front of `upstream`; `direct` comes first."""
    routes = [Route("direct", upstream, None)]
    t, folder = run.tools, run.folder
    for kind in kinds:
        proc: Proc | None = None
        if kind == "mcpr":
            proc = procs.start_mcpr(folder, upstream.url, name=kind)
        elif kind == "mcpr+store":
            proc = procs.start_mcpr(folder, upstream.url, name=kind, store=True)
        elif kind == "mcpr[asyncio]" and t.uvloop:
            proc = procs.start_mcpr(folder, upstream.url, name=kind, loop="asyncio-stock")
        elif kind == "mcpr[trio]":
            proc = procs.start_mcpr(folder, upstream.url, name=kind, loop="trio")
        elif kind == "mcpr+csp":
            proc = procs.start_mcpr(
                folder, upstream.url, name=kind, csp_domain="widgets.example.com"
            )
        elif kind == "nginx" and t.nginx:
            proc = run.optional(
                kind, lambda: procs.start_nginx(folder, t.nginx or "", upstream.port)
            )
        elif kind == "fastmcp" and t.fastmcp:
            proc = run.optional(kind, lambda: procs.start_fastmcp(folder, upstream.url))
        if proc is not None:
            stack.callback(proc.stop)
            routes.append(Route(kind, proc, proc))
    return routes


def _sse(run: Run, routes: Sequence[Route]) -> list[dict[str, Any]]:
    out = []
    for route in routes:
        if route.name not in ("direct", "mcpr", "nginx", "fastmcp"):
            continue
        answer = run.load.call(op="stream", port=route.proc.port, session=route.session, count=5)
        out.append({"route": route.name, **answer})
    return out


def _soak(run: Run, upstream: Proc) -> dict[str, Any]:
    """RSS of a fresh mcpr+store after each quarter of the requests and each half of the sessions.

    Flat means the last three quarters of the requests added at most max(2 MB, 5 %) to what
    the first quarter left, and the second half of the sessions as little to the first
    half's: the first of each lets the store's SQLite page cache and the allocator settle.
    After the proxy stopped (a drain, which flushes the store), the rows of its store are
    counted against the exchanges sent: a store that falls behind drops events at the bus.
    """
    proxy = procs.start_mcpr(run.folder, upstream.url, name="mcpr+store soak", store=True)
    try:
        sid = run.load.call(op="handshake", port=proxy.port)["session"]
        common = {"port": proxy.port, "session": sid, "workload": "tools/call", "connections": 16}
        answer = run.load.call(op="count", requests=2000, **common)
        errors, sent = answer["errors"], 2 + answer["requests"]  # initialize, initialized
        marks: list[dict[str, Any]] = [{"after": "warm-up", "rss_mb": proxy.rss_mb()}]
        total, quarter = 0, run.args.soak_requests // 4
        for _ in range(4):
            answer = run.load.call(op="count", requests=quarter, **common)
            errors, sent = errors + answer["errors"], sent + answer["requests"]
            total += quarter
            marks.append({"after": f"{total:,} requests", "rss_mb": proxy.rss_mb()})
        half = run.args.soak_sessions // 2
        for n in (1, 2):
            answer = run.load.call(op="sessions", port=proxy.port, count=half, connections=16)
            errors, sent = errors + answer["errors"], sent + 3 * half  # initialize, call, DELETE
            marks.append({"after": f"+{n * half:,} sessions", "rss_mb": proxy.rss_mb()})
    finally:
        proxy.stop()
    with contextlib.closing(sqlite3.connect(run.folder / f"store-{proxy.port}.db")) as db:
        stored = db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
    rss = [float(m["rss_mb"]) for m in marks]
    by_requests, by_sessions = rss[4] - rss[1], rss[6] - rss[5]
    allowed = max(2.0, 0.05 * rss[1])
    return {
        "requests": total,
        "sessions": 2 * half,
        "marks": marks,
        "growth_mb": {"requests": by_requests, "sessions": by_sessions},
        "flat": by_requests <= allowed and by_sessions <= allowed,
        "errors": errors,
        "sent": sent,
        "stored": stored,
    }


def _progress(what: str, began: float) -> None:
    print(f"{time.monotonic() - began:5.0f} s  {what} ...", flush=True)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--seconds", type=float, default=1.0, help="measured window (wrk: whole s)")
    parser.add_argument("--warmup", type=float, default=0.25, help="warm-up before each window")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--soak-requests", type=int, default=100_000)
    parser.add_argument("--soak-sessions", type=int, default=10_000)
    parser.add_argument("--load", choices=("auto", "wrk", "builtin"), default="auto")
    parser.add_argument("--only", nargs="*", default=(), help="sections: fast slow sdk")
    parser.add_argument("--quick", action="store_true", help="2 rounds, 10^4 requests soak")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.soak_requests, args.soak_sessions = 2, 10_000, 1_000
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Run every section, print the tables and the ratios, write the JSON results."""
    args = _parse(argv)
    tools = Tools.detect()
    began = time.monotonic()
    skipped = []
    if not tools.nginx:
        skipped.append("nginx: not installed, its path is skipped (apt-get install nginx)")
    if not tools.wrk:
        skipped.append("wrk: not installed, the built-in anyio client generates the load")
    elif args.load == "builtin":
        skipped.append("wrk: installed but --load builtin asked for the built-in client")
    if not tools.fastmcp:
        skipped.append("fastmcp: not installed, the FastMCP proxy path is skipped")
    if not tools.uvloop:
        skipped.append("uvloop: not installed, mcpr runs on the stock asyncio loop only")
    if not tools.sdk:
        skipped.append("mcp: the SDK is not installed, the SDK upstream is skipped")
    for line in skipped:
        print(f"skip: {line}", flush=True)
    sections = set(args.only) or {"fast", "slow", "sdk"}
    results: dict[str, Any] = {"rewrite": rewrite_timings()}
    with tempfile.TemporaryDirectory(prefix="mcpr-bench-") as tmp, contextlib.ExitStack() as stack:
        load = Loadgen()
        stack.callback(load.close)
        run = Run(args, tools, Path(tmp), load, [], {}, skipped)
        conns = (1, 16)
        if "fast" in sections:
            with contextlib.ExitStack() as section:
                up = procs.start_upstream(run.folder)
                section.callback(up.stop)
                kinds = (
                    "mcpr",
                    "mcpr+store",
                    "mcpr[asyncio]",
                    "mcpr[trio]",
                    "nginx",
                    "fastmcp",
                    "mcpr+csp",
                )
                routes = _proxies(run, section, up, kinds)
                for r in routes:
                    if r.name in ("mcpr[asyncio]", "mcpr[trio]"):
                        r.only = (16,)  # the loops are compared at 16 connections only
                main_routes = [r for r in routes if r.name != "mcpr+csp"]
                _progress("fast upstream", began)
                run.section("fast", main_routes, ["tools/call"], conns)
                _progress("payloads", began)
                payload = [r for r in routes if r.name in ("direct", "mcpr")]
                run.section("payloads", payload, ["ping", "resources/read 230KB sse"], (16,))
                rewrite = [r for r in routes if r.name in ("direct", "mcpr", "mcpr+csp")]
                run.section("rewrite", rewrite, ["resources/read 230KB"], (16,))
                _progress("sse", began)
                results["sse"] = _sse(run, routes)
                for r in routes:
                    if r.proxy is not None:
                        r.proxy.stop()
                _progress("memory", began)
                results["memory"] = _soak(run, up)
        if "slow" in sections:
            with contextlib.ExitStack() as section:
                up = procs.start_upstream(run.folder, delay=0.010)
                section.callback(up.stop)
                routes = _proxies(run, section, up, ("mcpr", "nginx"))
                _progress("10 ms upstream", began)
                run.section("slow", routes, ["tools/call"], conns)
        if "sdk" in sections and tools.sdk:
            with contextlib.ExitStack() as section:
                up = procs.start_sdk_upstream(run.folder)
                section.callback(up.stop)
                routes = _proxies(run, section, up, ("mcpr", "nginx", "fastmcp"))
                _progress("SDK upstream", began)
                run.section("sdk", routes, ["tools/call"], conns)
    table = rows(run.records, run.peaks)
    ratios = compute_ratios(run.records)
    results = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load": "wrk" if tools.wrk and args.load != "builtin" else "builtin",
            "nginx": tools.nginx is not None,
            "fastmcp": tools.fastmcp,
            "uvloop": tools.uvloop,
        },
        "settings": {k: v for k, v in vars(args).items() if k != "output"},
        "skipped": skipped,
        "rows": table,
        "ratios": ratios,
        **results,
        "records": run.records,
        "seconds_total": time.monotonic() - began,
    }
    titles = {
        "fast": "Fast upstream (h11 + anyio), tools/call",
        "payloads": "Fast upstream, other payloads, 16 connections",
        "rewrite": "Fast upstream, 230 KB widget (JSON); mcpr+csp rewrites its CSP",
        "slow": "Upstream with a fixed 10 ms delay, tools/call",
        "sdk": "Official MCP SDK server (uvicorn), tools/call",
    }
    for key, title in titles.items():
        mine = [r for r in table if r["section"] == key]
        if mine:
            print_table(title, mine)
    print_extras(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1, default=str) + "\n")
    took = results["seconds_total"]
    print(f"\n{len(run.records)} measurements in {took:.0f} s; results in {args.output}")
    for line in skipped:
        print(f"skipped: {line}")
    print_ratios(ratios)
    sys.stdout.flush()
