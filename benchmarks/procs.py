"""The processes of a benchmark run: upstreams, proxies and the load generator.

Every server runs in its own process, bound to 127.0.0.1, with its output in the run's
temporary folder. CPU time and memory are read from /proc (Linux), so they cover exactly
the proxy's process (and nginx's worker), not the harness.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

__all__ = [
    "Loadgen",
    "Proc",
    "Tools",
    "free_port",
    "start_fastmcp",
    "start_mcpr",
    "start_nginx",
    "start_sdk_upstream",
    "start_upstream",
]

ROOT: Final = Path(__file__).resolve().parents[1]
_TICK: Final = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Tools:
    """What this machine has; each missing tool skips its part of the run with a message."""

    nginx: str | None
    wrk: str | None
    fastmcp: bool
    uvloop: bool
    sdk: bool

    @classmethod
    def detect(cls) -> Tools:
        return cls(
            nginx=shutil.which("nginx") or _sbin("nginx"),
            wrk=shutil.which("wrk"),
            fastmcp=importlib.util.find_spec("fastmcp") is not None,
            uvloop=importlib.util.find_spec("uvloop") is not None,
            sdk=importlib.util.find_spec("mcp") is not None,
        )


def _sbin(name: str) -> str | None:
    for folder in ("/usr/sbin", "/usr/local/sbin"):
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(slots=True)
class Proc:
    """A started server: its port and the process ids whose CPU and memory count."""

    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log: Path
    workers: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def _pids(self) -> list[int]:
        return self.workers or [self.popen.pid]

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process (all its threads, live and gone)."""
        total = 0
        for pid in self._pids():
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / _TICK

    def syscalls(self) -> tuple[int, int]:
        """Read and write syscalls made so far (/proc/PID/io `syscr`, `syscw`)."""
        reads = writes = 0
        for pid in self._pids():
            for line in Path(f"/proc/{pid}/io").read_text().splitlines():
                key, _, value = line.partition(": ")
                if key == "syscr":
                    reads += int(value)
                elif key == "syscw":
                    writes += int(value)
        return reads, writes

    def _status_kb(self, key: str) -> int:
        total = 0
        for pid in self._pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    total += int(line.split()[1])
        return total

    def rss_mb(self) -> float:
        return self._status_kb("VmRSS") / 1024

    def peak_rss_mb(self) -> float:
        return self._status_kb("VmHWM") / 1024

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def _wait_listening(proc: Proc, timeout: float = 60.0) -> Proc:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            tail = proc.log.read_text(errors="replace")[-2000:]
            raise SystemExit(f"{proc.name} exited with {proc.popen.returncode}:\n{tail}")
        try:
            with socket.create_connection(("127.0.0.1", proc.port), timeout=1):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.stop()
    raise SystemExit(f"{proc.name} did not listen on {proc.port} within {timeout:.0f} s")


def _spawn(
    name: str, argv: list[str], folder: Path, port: int, *, cwd: Path = ROOT, **env: str
) -> Proc:
    log = folder / f"{name.replace('/', '_').replace(' ', '_')}-{port}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={**os.environ, **env},
        )
    return _wait_listening(Proc(name, popen, port, log))


def start_upstream(folder: Path, *, delay: float = 0.0) -> Proc:
    """The fast h11 + anyio upstream (with a fixed delay per answer when `delay` > 0)."""
    port = free_port()
    name = "upstream" if not delay else f"upstream+{delay * 1000:.0f}ms"
    argv = [sys.executable, "-m", "benchmarks.upstream", "--port", str(port)]
    return _spawn(name, [*argv, "--delay", str(delay)], folder, port)


def start_sdk_upstream(folder: Path) -> Proc:
    """The end-to-end tests' server, built with the official MCP SDK (uvicorn + Starlette)."""
    port = free_port()
    argv = [sys.executable, "tests/e2e/mcp_app_server.py", "--port", str(port)]
    return _spawn("sdk", argv, folder, port)


#: Runs the real `mcpr` command with uvloop hidden, so `--backend asyncio` gets the stock loop.
_NO_UVLOOP: Final = (
    "import sys; sys.modules['uvloop'] = None; "
    "from mcpr_cli.cli import main; sys.argv[0] = 'mcpr'; main()"
)


def start_mcpr(
    folder: Path,
    upstream: str,
    *,
    name: str,
    loop: str = "asyncio",
    store: bool = False,
    csp_domain: str | None = None,
    pythonpath: str | None = None,
) -> Proc:
    """`mcpr proxy run --events off` on a free port.

    `loop` is `asyncio` (uvloop when installed, as `mcpr proxy run` does by itself),
    `asyncio-stock` (uvloop hidden) or `trio`. Without `store`, `MCPR_DB=none`; with it, a
    fresh store file in the run's folder. The admin listener is off; the process runs in the
    run's folder, so that no `mcpr.toml` is picked up, and keeps its registry entry there
    (MCPR_HOME) under a name of its own. `pythonpath` puts other sources of the packages
    first (another checkout's `packages/*/src`: see `benchmarks.ab`).
    """
    port = free_port()
    if loop == "asyncio-stock":
        argv = [sys.executable, "-c", _NO_UVLOOP]
    else:
        argv = [str(Path(sys.executable).with_name("mcpr"))]
    argv += ["proxy", "run", "--mcp", upstream, "--port", str(port), "--name", f"bench-{port}"]
    argv += ["--events", "off"]
    argv += ["--backend", "trio" if loop == "trio" else "asyncio"]
    if csp_domain:
        argv += ["--csp-domain", csp_domain]
    db = str(folder / f"store-{port}.db") if store else "none"
    env = {"MCPR_DB": db, "MCPR_ADMIN": "none", "MCPR_HOME": str(folder)}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    return _spawn(name, argv, folder, port, cwd=folder, **env)


_NGINX_CONF: Final = """
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream mcp {{ server 127.0.0.1:{upstream}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://mcp;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 60s;
        }}
    }}
}}
"""


def start_nginx(folder: Path, binary: str, upstream_port: int) -> Proc:
    """nginx as a blind reverse proxy: one worker, keep-alive upstream, no buffering."""
    port = free_port()
    tmp = folder / f"nginx-{port}"
    tmp.mkdir()
    conf = tmp / "nginx.conf"
    conf.write_text(_NGINX_CONF.format(tmp=tmp, upstream=upstream_port, port=port))
    argv = [binary, "-p", str(tmp), "-c", str(conf), "-g", "daemon off;"]
    proc = _spawn("nginx", argv, folder, port)
    children = Path(f"/proc/{proc.popen.pid}/task/{proc.popen.pid}/children")
    proc.workers = [int(pid) for pid in children.read_text().split()]
    return proc


def start_fastmcp(folder: Path, upstream: str) -> Proc:
    """The FastMCP proxy server (`fastmcp.server.create_proxy`) in front of `upstream`."""
    port = free_port()
    argv = [sys.executable, "-m", "benchmarks.fastmcp_proxy", upstream, str(port)]
    return _spawn("fastmcp", argv, folder, port)


class Loadgen:
    """The built-in load generator process, one JSON command and answer per line."""

    def __init__(self) -> None:
        self._popen = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.loadgen"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            text=True,
        )

    def call(self, **cmd: Any) -> dict[str, Any]:
        assert self._popen.stdin is not None
        assert self._popen.stdout is not None
        self._popen.stdin.write(json.dumps(cmd) + "\n")
        self._popen.stdin.flush()
        line = self._popen.stdout.readline()
        if not line:
            raise SystemExit("the load generator died")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        assert self._popen.stdin is not None
        self._popen.stdin.close()
        self._popen.wait(timeout=10)
