"""Turn the per-round measurements into rows, ratios and the printed tables.

Every ratio is taken round by round between two paths measured in the same round against
the same upstream, then summarised as the median with the min-max over rounds: the
spread is the noise of this machine, and absolute numbers mean little across machines.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "RATIOS",
    "Ratio",
    "compute_ratios",
    "print_extras",
    "print_ratios",
    "print_table",
    "rows",
]

Record = dict[str, Any]


def spread(values: Sequence[float]) -> dict[str, float] | None:
    """Median, min and max of the values; None when there are none."""
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _by_round(records: Iterable[Record], **match: Any) -> dict[int, Record]:
    return {
        r["round"]: r
        for r in records
        if all(r.get(k) == v for k, v in match.items()) and "failed" not in r
    }


def _paired(
    records: Sequence[Record],
    base: dict[str, Any],
    a: str,
    b: str,
    value: Callable[[Record, Record], float | None],
) -> list[float]:
    left = _by_round(records, route=a, **base)
    right = _by_round(records, route=b, **base)
    out = []
    for rnd in sorted(left.keys() & right.keys()):
        v = value(left[rnd], right[rnd])
        if v is not None:
            out.append(v)
    return out


def _rps_ratio(x: Record, y: Record) -> float | None:
    return x["rps"] / y["rps"] if y.get("rps") else None


def _added_p50(x: Record, y: Record) -> float | None:
    if x.get("p50_ms") is None or y.get("p50_ms") is None:
        return None
    return float(x["p50_ms"] - y["p50_ms"])


def rows(records: Sequence[Record], peaks: dict[tuple[str, str], float]) -> list[Record]:
    """One row per (section, workload, route, connections), in the order first measured."""
    keys: list[tuple[str, str, str, int]] = []
    for r in records:
        key = (r["section"], r["workload"], r["route"], r["connections"])
        if key not in keys:
            keys.append(key)
    out = []
    for section, workload, route, conns in keys:
        mine = [
            r
            for r in records
            if (r["section"], r["workload"], r["route"], r["connections"])
            == (section, workload, route, conns)
            and "failed" not in r
        ]
        base = {"section": section, "workload": workload, "connections": conns}
        cpu = [r["cpu_us_per_req"] for r in mine if r.get("cpu_us_per_req") is not None]
        writes = [r["writes_per_req"] for r in mine if r.get("writes_per_req") is not None]
        reads = [r["reads_per_req"] for r in mine if r.get("reads_per_req") is not None]
        out.append(
            {
                **base,
                "route": route,
                "rounds": len(mine),
                "rps": spread([r["rps"] for r in mine]),
                "ratio_to_direct": spread(_paired(records, base, route, "direct", _rps_ratio)),
                "p50_ms": spread([r["p50_ms"] for r in mine if r.get("p50_ms") is not None]),
                "p99_ms": spread([r["p99_ms"] for r in mine if r.get("p99_ms") is not None]),
                "added_p50_ms": spread(_paired(records, base, route, "direct", _added_p50)),
                "cpu_us_per_req": spread(cpu),
                "reads_per_req": spread(reads),
                "writes_per_req": spread(writes),
                "errors": sum(r.get("errors", 0) for r in mine),
                "failed": [
                    r["failed"]
                    for r in records
                    if r.get("failed") and r["route"] == route and r["section"] == section
                ],
                "peak_rss_mb": peaks.get((section, route)),
            }
        )
    return out


@dataclass(frozen=True, slots=True)
class Ratio:
    """A headline ratio: `a` over `b` (throughput, or added p50 latency), with its target."""

    label: str
    section: str
    workload: str
    connections: int
    a: str
    b: str
    kind: str = "rps"  # or "added_p50"
    target: float | None = None
    higher_is_better: bool = True


RATIOS: tuple[Ratio, ...] = (
    Ratio(
        "mcpr/direct, fast upstream, 16 conns",
        "fast",
        "tools/call",
        16,
        "mcpr",
        "direct",
        target=0.60,
    ),
    Ratio("mcpr/direct, fast upstream, 1 conn", "fast", "tools/call", 1, "mcpr", "direct"),
    Ratio(
        "mcpr/direct, 10 ms upstream, 16 conns",
        "slow",
        "tools/call",
        16,
        "mcpr",
        "direct",
        target=0.97,
    ),
    Ratio(
        "mcpr/direct, 10 ms upstream, 1 conn",
        "slow",
        "tools/call",
        1,
        "mcpr",
        "direct",
        target=0.97,
    ),
    Ratio(
        "mcpr/direct, SDK upstream, 16 conns",
        "sdk",
        "tools/call",
        16,
        "mcpr",
        "direct",
        target=0.90,
    ),
    Ratio(
        "mcpr added p50 / nginx added p50, fast, 1 conn",
        "fast",
        "tools/call",
        1,
        "mcpr",
        "nginx",
        kind="added_p50",
        target=2.0,
        higher_is_better=False,
    ),
    Ratio(
        "mcpr/nginx, fast upstream, 16 conns",
        "fast",
        "tools/call",
        16,
        "mcpr",
        "nginx",
        target=0.25,
    ),
    Ratio(
        "store on/store off, fast upstream, 16 conns",
        "fast",
        "tools/call",
        16,
        "mcpr+store",
        "mcpr",
        target=0.90,
    ),
    Ratio("mcpr/FastMCP, fast upstream, 16 conns", "fast", "tools/call", 16, "mcpr", "fastmcp"),
    Ratio("mcpr/FastMCP, SDK upstream, 16 conns", "sdk", "tools/call", 16, "mcpr", "fastmcp"),
    Ratio(
        "mcpr uvloop/stock asyncio, fast, 16 conns",
        "fast",
        "tools/call",
        16,
        "mcpr",
        "mcpr[asyncio]",
    ),
    Ratio("mcpr trio/uvloop, fast, 16 conns", "fast", "tools/call", 16, "mcpr[trio]", "mcpr"),
)


def compute_ratios(records: Sequence[Record]) -> list[Record]:
    """Each headline ratio that both of its paths were measured for."""
    out = []
    for spec in RATIOS:
        base = {"section": spec.section, "workload": spec.workload, "connections": spec.connections}
        if spec.kind == "rps":
            values = _paired(records, base, spec.a, spec.b, _rps_ratio)
        else:
            added_a = _by_round(_with_added(records, base, spec.a), route=spec.a, **base)
            added_b = _by_round(_with_added(records, base, spec.b), route=spec.b, **base)
            values = [
                added_a[r]["added"] / added_b[r]["added"]
                for r in sorted(added_a.keys() & added_b.keys())
                if added_b[r]["added"] > 0
            ]
        s = spread(values)
        if s is None:
            continue
        met = None
        if spec.target is not None:
            met = (
                s["median"] >= spec.target if spec.higher_is_better else s["median"] <= spec.target
            )
        out.append(
            {"label": spec.label, **s, "target": spec.target, "met": met, "rounds": len(values)}
        )
    return out


def _with_added(records: Sequence[Record], base: dict[str, Any], route: str) -> list[Record]:
    direct = _by_round(records, route="direct", **base)
    mine = _by_round(records, route=route, **base)
    return [
        {**r, "added": r["p50_ms"] - direct[n]["p50_ms"]}
        for n, r in mine.items()
        if n in direct and r.get("p50_ms") is not None and direct[n].get("p50_ms") is not None
    ]


def _fmt(s: dict[str, float] | None, spec: str = ".0f", ranged: bool = True) -> str:
    if s is None:
        return "-"
    text = format(s["median"], spec)
    if ranged:
        text += f" ({format(s['min'], spec)}-{format(s['max'], spec)})"
    return text


def _syscalls(row: Record) -> str:
    reads, writes = row["reads_per_req"], row["writes_per_req"]
    if reads is None or writes is None or reads["median"] == writes["median"] == 0:
        return "-"  # no proxy, or one that uses recv/send, which /proc/PID/io does not count
    return f"{reads['median']:.1f}/{writes['median']:.1f}"


def print_table(title: str, table: Sequence[Record]) -> None:
    """The rows of one section, as aligned text."""
    print(f"\n## {title}")
    header = (
        f"{'workload':<26}{'path':<15}{'conns':>5}  {'req/s (min-max)':<22}"
        f"{'÷direct (min-max)':<21}"
        f"{'p50 ms':>8}{'p99 ms':>8}  {'+p50 ms':>8}{'CPU µs/req':>11}{'r/w per req':>12}"
        f"{'peak MB':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in table:
        note = f"  errors: {row['errors']}" if row["errors"] else ""
        if row["failed"]:
            note += f"  failed: {row['failed'][0][:60]}"
        rss = f"{row['peak_rss_mb']:.0f}" if row["peak_rss_mb"] is not None else "-"
        print(
            f"{row['workload']:<26}{row['route']:<15}{row['connections']:>5}  "
            f"{_fmt(row['rps']):<22}{_fmt(row['ratio_to_direct'], '.2f'):<21}"
            f"{_fmt(row['p50_ms'], '.2f', False):>8}{_fmt(row['p99_ms'], '.2f', False):>8}  "
            f"{_fmt(row['added_p50_ms'], '+.3f', False):>8}"
            f"{_fmt(row['cpu_us_per_req'], '.0f', False):>11}{_syscalls(row):>12}{rss:>8}{note}"
        )


def print_extras(results: Record) -> None:
    """The rewrite timing, the SSE delivery times and the memory soak."""
    rw = results.get("rewrite")
    if rw:
        print(f"\n## Widget rewrite, in process ({rw['body_bytes']:,} bytes, ms per exchange)")
        for framing in ("json", "sse"):
            f = rw[framing]
            print(
                f"{framing:<5} observe only {f['observe_ms']:.2f}"
                f"   with CSP rewrite {f['rewrite_ms']:.2f}   added {f['added_ms']:.2f}"
            )
    if results.get("sse"):
        print("\n## SSE: upstream writes an event → client reads it (20 events, 10 ms apart)")
        for row in results["sse"]:
            if "failed" in row:
                print(f"{row['route']:<15} failed: {row['failed']}")
                continue
            p50 = "-" if row["p50_ms"] is None else f"{row['p50_ms']:.2f}"
            top = "-" if row["max_ms"] is None else f"{row['max_ms']:.2f}"
            print(
                f"{row['route']:<15} events {row['events']:>4}  p50 {p50:>6} ms  max {top:>6} ms"
                f"  (whole stream {row['stream_ms']:.0f} ms)"
            )
    soak = results.get("memory")
    if soak:
        print(
            f"\n## Memory of mcpr+store (RSS MB) over {soak['requests']:,} requests"
            f" and {soak['sessions']:,} sessions"
        )
        marks = "  ".join(f"{m['after']}: {m['rss_mb']:.1f}" for m in soak["marks"])
        print(marks)
        flat = "flat" if soak["flat"] else "NOT flat"
        growth = soak["growth_mb"]
        print(
            f"growth: last 3/4 of the requests {growth['requests']:+.1f} MB, second half of the"
            f" sessions {growth['sessions']:+.1f} MB ({flat}); errors {soak['errors']}"
        )
        print(f"store: {soak['stored']:,} rows for {soak['sent']:,} exchanges sent")


def print_ratios(ratios: Sequence[Record]) -> None:
    """The headline ratios, printed last."""
    print("\n## Ratios (median over rounds, min-max)")
    for r in ratios:
        target = ""
        if r["target"] is not None:
            sign = "≥" if not r["label"].startswith("mcpr added") else "≤"
            target = f"   target {sign} {r['target']:.2f}: {'met' if r['met'] else 'NOT met'}"
        print(f"{r['label']:<50} {r['median']:6.2f} ({r['min']:.2f}-{r['max']:.2f}){target}")
