"""Child processes for the integration tests that run real programs side by side.

`tests/fleet` (nginx in front of two mcpr replicas) and `tests/prometheus` (a Prometheus
server scraping mcpr) start the SDK test server of `tests/e2e/mcp_app_server.py`,
`mcpr proxy run`, and system binaries, each with its output in a log file that a failure
message quotes. `system_binary` finds a binary installed by `.ci/run`: absent, the test is
skipped on a developer machine and fails under CI (the `CI` variable set), so a CI run can
never pass by skipping it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Final

import pytest

__all__ = ["SDK_SERVER", "Child", "free_port", "mcpr_proxy", "sdk_server", "system_binary"]

SDK_SERVER: Final = Path(__file__).parent / "e2e" / "mcp_app_server.py"
#: How long a child may take to listen (Python imports dominate: about a second).
STARTUP_TIMEOUT: Final = 20.0
#: How long a child may take to exit after SIGTERM before it is killed.
STOP_TIMEOUT: Final = 15.0
_SBIN: Final = "/usr/local/sbin:/usr/sbin:/sbin"


def system_binary(name: str) -> str:
    """The path of `name` (sbin folders included); skip without it, or fail under CI."""
    path = shutil.which(name, path=os.environ.get("PATH", "") + os.pathsep + _SBIN)
    if path is not None:
        return path
    message = f"{name} is not installed (.ci/run installs it with apt-get)"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Child:
    """A child process with stdout and stderr in `log`; `stop()` ends it with SIGTERM."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self.argv = argv
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )

    def __repr__(self) -> str:
        return f"<Child pid={self.proc.pid} {Path(self.argv[0]).name} log={self.log}>"

    def output(self) -> str:
        """What the child wrote so far."""
        return self.log.read_text(errors="replace")

    def _fail(self, message: str) -> None:
        pytest.fail(f"{self.argv[0]}: {message}; output:\n{self.output()}", pytrace=False)

    def wait_listening(self, port: int) -> None:
        """Return once 127.0.0.1:`port` accepts connections; fail if the child exits first."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                self._fail(f"exited with {self.proc.returncode} before listening on {port}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self._fail(f"did not listen on {port} within {STARTUP_TIMEOUT} s")
                time.sleep(0.05)

    def wait_http_ok(self, url: str) -> None:
        """Return once `url` answers 200; fail if the child exits first."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                self._fail(f"exited with {self.proc.returncode} before {url} answered")
            try:
                with urllib.request.urlopen(url, timeout=1.0) as response:
                    if response.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                self._fail(f"{url} did not answer 200 within {STARTUP_TIMEOUT} s")
            time.sleep(0.1)

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after `STOP_TIMEOUT`; return the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def sdk_server(port: int, log: Path) -> Child:
    """The dual-era SDK test server at http://127.0.0.1:`port`/mcp (not yet listening)."""
    return Child([sys.executable, str(SDK_SERVER), "--port", str(port)], log)


def mcpr_proxy(config: Path, log: Path, env: dict[str, str]) -> Child:
    """`mcpr proxy run CONFIG` (not yet listening); `env` adds MCPR_DB, MCPR_HOME, …."""
    return Child([sys.executable, "-m", "mcpr_cli", "proxy", "run", str(config)], log, env)
