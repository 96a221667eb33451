"""Time the widget CSP rewrite of the ~230 KB map widget against parsing and encoding it.

Run from the workspace root: `uv run python benchmarks/csp_rewrite.py`. It prints the best
per-call time of each step of a buffered JSON rewrite (the pipeline's json.loads, the
rewrite itself, and json.dumps with the pipeline's settings), so the rewrite's own share
of the work is visible. A measurement, not a test: nothing is asserted about speed.
"""

from __future__ import annotations

import json
import timeit
from pathlib import Path
from typing import Any

from mcpr_core.config import CspConfig, CspDirective
from mcpr_core.csp import CspRewriter
from mcpr_core.routing import parse_upstream_url

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "mcp-apps-map.jsonl"


def _read_payload() -> bytes:
    """The JSON-RPC message of the fixture's resources/read answer, as upstream bytes."""
    for line in FIXTURE.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if json.loads(record["request"]["body"]).get("method") == "resources/read":
            body: str = record["response"]["body"]
            for data in body.split("\n"):
                if data.startswith("data: "):
                    return data[6:].encode("utf-8")
    raise SystemExit("no resources/read in the fixture")


def _best(stmt: Any, number: int) -> float:
    """Best mean seconds per call over five runs of `number` calls."""
    return min(timeit.repeat(stmt, number=number, repeat=5)) / number


def main() -> None:
    payload = _read_payload()
    config = CspConfig(
        domain="widgets.example.com",
        connect_domains=CspDirective(("https://api.widgets.example.com",)),
    )
    rewriter = CspRewriter(
        config,
        upstream=parse_upstream_url("http://127.0.0.1:8000/mcp"),
        public_url="https://widgets.example.com/mcp",
    )
    message = json.loads(payload)
    result = message["result"]
    rewritten = rewriter.rewrite("resources/read", result, "claude-ai")
    assert rewritten is not None
    assert rewritten["contents"][0]["text"] is result["contents"][0]["text"]
    out = {**message, "result": rewritten}

    def dumps() -> bytes:
        return json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode()

    steps = {
        "json.loads": (lambda: json.loads(payload), 200),
        "rewrite": (lambda: rewriter.rewrite("resources/read", result, "claude-ai"), 20_000),
        "rewrite (own output, None)": (
            lambda: rewriter.rewrite("resources/read", rewritten, "claude-ai"),
            20_000,
        ),
        "json.dumps + encode": (dumps, 200),
    }
    print(f"payload: {len(payload):,} bytes; rewritten body {len(dumps()):,} bytes")
    times = {name: _best(stmt, n) for name, (stmt, n) in steps.items()}
    for name, seconds in times.items():
        print(f"{name:28} {seconds * 1e6:10.1f} µs")
    codec = times["json.loads"] + times["json.dumps + encode"]
    print(f"{'parse + encode':28} {codec * 1e6:10.1f} µs")
    print(f"rewrite share of the total: {times['rewrite'] / (codec + times['rewrite']):.2%}")


if __name__ == "__main__":
    main()
