"""Load with `wrk` (when installed): one thread, N connections, a Lua script per workload.

The script posts the workload's body with a fresh JSON-RPC id per request and the session
header of a handshake the harness made beforehand, and prints one JSON line from wrk's
`done` hook with the counts and latency percentiles (microseconds). wrk takes whole
seconds for `-d`, so a measurement lasts at least one second.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Final

from benchmarks.payloads import PROTOCOL_VERSION, Workload

__all__ = ["run_wrk"]

_SCRIPT: Final = """
local head = [==[{head}]==]
local tail = [==[{tail}]==]
local n = 0
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["accept"] = "application/json, text/event-stream"
wrk.headers["mcp-protocol-version"] = "{version}"
{headers}
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, head .. n .. tail)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {{"requests":%d,"duration_us":%d,"errors":%d,"p50_us":%d,"p99_us":%d}}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal here


def run_wrk(
    binary: str,
    folder: Path,
    *,
    port: int,
    session: str | None,
    workload: Workload,
    connections: int,
    seconds: float,
) -> dict[str, Any]:
    """Run wrk against 127.0.0.1:port/mcp; return requests, rps, p50/p99 (ms), errors."""
    head, tail = workload.body.decode().split("%d")
    headers = list(workload.headers)
    if session is not None:
        headers.append(("mcp-session-id", session))
    lines = "\n".join(f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers)
    script = folder / f"wrk-{workload.name.replace('/', '_').replace(' ', '_')}.lua"
    script.write_text(_SCRIPT.format(head=head, tail=tail, version=PROTOCOL_VERSION, headers=lines))
    whole = max(1, round(seconds))
    argv = [binary, "-t1", f"-c{connections}", f"-d{whole}s", "--timeout", "30s", "-s", str(script)]
    done = subprocess.run(
        [*argv, f"http://127.0.0.1:{port}/mcp"],
        capture_output=True,
        text=True,
        timeout=whole + 60,
        check=False,
    )
    for line in done.stdout.splitlines():
        if line.startswith("BENCH "):
            data = json.loads(line[6:])
            duration = data["duration_us"] / 1e6
            done_any = data["requests"] > 0
            return {
                "requests": data["requests"],
                "rps": data["requests"] / duration if duration else 0.0,
                "p50_ms": data["p50_us"] / 1000 if done_any else None,
                "p99_ms": data["p99_us"] / 1000 if done_any else None,
                "errors": data["errors"],
            }
    return {"failed": f"wrk exited {done.returncode}: {done.stderr.strip()[-500:]}"}
