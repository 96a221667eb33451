"""Proxy CPU per exchange of another revision (A) against the working tree (B), interleaved.

`uv run python -m benchmarks.ab REV [--rounds R] [--requests N] [--connections C]
[--workload W] [--delay S]` checks REV out into a temporary git worktree, starts the fast
upstream (answering after S seconds with --delay) and two proxies, `mcpr proxy run
--events off` (no store) from REV's sources (put first on PYTHONPATH) and from the working
tree, and sends both the same load from the built-in load generator, round by round in
alternating order (A B, B A, …) so that whatever else the machine does weighs on both
alike. It prints each side's CPU µs per exchange (/proc) and the median of the paired
differences B - A: on a busy 2-core machine, a change of 10 µs (3 %) shows there, where
throughput figures would drown it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
from pathlib import Path

from benchmarks.procs import ROOT, Loadgen, Proc, start_mcpr, start_upstream

__all__ = ["main"]

_PACKAGES = ("mcpr_core", "mcpr_integrations", "mcpr_cli", "mcp_tunnel_client")


def main() -> None:
    """Measure and print CPU µs per exchange of REV and of the working tree, side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the git revision to compare with (A)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workload", default="tools/call")
    parser.add_argument("--delay", type=float, default=0.0, help="upstream delay, seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mcpr-ab-") as tmp:
        folder = Path(tmp)
        tree = folder / "a"
        git = ["git", "-C", str(ROOT)]
        added = subprocess.run(
            [*git, "worktree", "add", "--detach", str(tree), args.rev],
            capture_output=True,
            text=True,
        )
        if added.returncode:
            raise SystemExit(f"cannot check out {args.rev!r}: {added.stderr.strip()}")
        try:
            _compare(args, folder, tree)
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(tree)], check=True)


def _compare(args: argparse.Namespace, folder: Path, tree: Path) -> None:
    upstream = start_upstream(folder, delay=args.delay)
    pythonpath = ":".join(str(tree / "packages" / name / "src") for name in _PACKAGES)
    proxies = {
        "A": start_mcpr(folder, upstream.url, name="A", pythonpath=pythonpath),
        "B": start_mcpr(folder, upstream.url, name="B"),
    }
    loadgen = Loadgen()
    try:
        sessions = {
            name: loadgen.call(op="handshake", port=proxy.port)["session"]
            for name, proxy in proxies.items()
        }
        common = {"op": "count", "workload": args.workload, "connections": args.connections}
        for name, proxy in proxies.items():  # warm-up
            loadgen.call(**common, port=proxy.port, session=sessions[name], requests=1000)
        figures: dict[str, list[float]] = {"A": [], "B": []}
        for n in range(args.rounds):
            for name in ("A", "B") if n % 2 == 0 else ("B", "A"):
                figures[name].append(
                    _round(loadgen, proxies[name], common, sessions[name], args.requests)
                )
        for name, label in (("A", args.rev), ("B", "working tree")):
            values = figures[name]
            print(
                f"{name} ({label}): median {statistics.median(values):.1f} µs/exchange"
                f"  (min {min(values):.1f}, max {max(values):.1f})"
            )
        pairs = [b - a for a, b in zip(figures["A"], figures["B"], strict=True)]
        print(
            f"B - A: median {statistics.median(pairs):+.1f} µs"
            f"  (pairs: {' '.join(f'{d:+.0f}' for d in pairs)})"
        )
    finally:
        loadgen.close()
        for proxy in proxies.values():
            proxy.stop()
        upstream.stop()


def _round(
    loadgen: Loadgen, proxy: Proc, common: dict[str, object], session: str, requests: int
) -> float:
    before = proxy.cpu_seconds()
    answer = loadgen.call(**common, port=proxy.port, session=session, requests=requests)
    if answer.get("errors") or "failed" in answer:
        raise SystemExit(f"{proxy.name} failed: {answer}")
    done: int = answer["requests"]
    return (proxy.cpu_seconds() - before) / done * 1e6


if __name__ == "__main__":
    main()
