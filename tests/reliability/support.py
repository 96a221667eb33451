"""What the reliability tests share: the long switch, a census of the proxy's resources, and
the proxy under test, in-process or as `python -m mcpr_cli proxy run`.

* `LONG` is set by `MCPR_LONG_TESTS=1`; `scaled(short, long)` picks a size by it.
* `Census` counts what a running proxy holds: traced Python memory (`tracemalloc`), tasks
  of the event loop, client connections, exchanges, upstream connections. Tests take one
  before and one after a hostile scenario and compare.
* `live_proxy` is `serve()` on a free loopback port whose events are counted, not kept, so
  that thousands of exchanges do not show up as memory growth.
* `ProxyProcess` runs `mcpr proxy run` with a store in the test's folder, its stderr
  collected by a thread (a pipe, so a file-size limit on the child cannot touch it).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import tracemalloc
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest
import sniffio

from mcpr_cli.proxy import RunningProxy, serve
from mcpr_core.config import ProxyConfig
from mcpr_core.events import ProxyEvent, RequestEvent

__all__ = [
    "LONG",
    "Census",
    "Live",
    "ProxyProcess",
    "census",
    "live_proxy",
    "raise_fd_limit",
    "scaled",
    "store_rows",
    "task_count",
    "traced",
]

LONG: Final = os.environ.get("MCPR_LONG_TESTS", "") == "1"
#: How long a child proxy may take to listen, and to exit after SIGTERM.
STARTUP_TIMEOUT: Final = 20.0
EXIT_TIMEOUT: Final = 30.0


def scaled(short: int, long: int) -> int:
    """`long` under MCPR_LONG_TESTS=1, else `short`."""
    return long if LONG else short


def task_count() -> int:
    """Tasks alive in the current event loop (asyncio or trio)."""
    if sniffio.current_async_library() == "trio":
        import trio.lowlevel

        root = trio.lowlevel.current_root_task()
        assert root is not None
        count = 0
        pending = [root]
        while pending:
            task = pending.pop()
            count += 1
            for nursery in task.child_nurseries:
                pending.extend(nursery.child_tasks)
        return count
    return len(asyncio.all_tasks())


@contextmanager
def traced() -> Iterator[None]:
    """Trace Python allocations for the block (`tracemalloc`), unless already tracing."""
    if tracemalloc.is_tracing():
        yield
        return
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


@dataclass(frozen=True, slots=True)
class Census:
    """What the process and the proxy held at one moment."""

    memory: int  # bytes traced by tracemalloc, after a collection
    tasks: int
    connections: int
    in_flight: int
    upstream: int  # upstream connections in use or idle

    def settled(self, baseline: Census, *, memory_slack: int) -> bool:
        """Back to `baseline`: same counts, memory grown by at most `memory_slack`."""
        return (
            self.tasks <= baseline.tasks
            and self.connections <= baseline.connections
            and self.in_flight <= baseline.in_flight
            and self.upstream <= baseline.upstream
            and self.memory - baseline.memory <= memory_slack
        )


def census(running: RunningProxy) -> Census:
    """Take a census now (collects garbage first, so memory counts what is still held)."""
    gc.collect()
    stats = running.statistics()
    memory = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
    return Census(
        memory=memory,
        tasks=task_count(),
        connections=stats.handler.connections_open,
        in_flight=stats.handler.exchanges_in_flight,
        upstream=stats.pool.in_use + stats.pool.idle,
    )


@dataclass(slots=True)
class Live:
    """A proxy running in this event loop; its request events counted by (status, note)."""

    running: RunningProxy
    outcomes: Counter[tuple[int, str]] = field(default_factory=Counter)
    recent: deque[RequestEvent] = field(default_factory=lambda: deque(maxlen=64))

    def emit(self, event: ProxyEvent) -> None:
        """The proxy's `emit`: count request events, keep the last few."""
        if isinstance(event, RequestEvent):
            self.outcomes[event.status, event.note] += 1
            self.recent.append(event)

    @property
    def port(self) -> int:
        """The port the proxy listens on."""
        return self.running.port

    @property
    def events(self) -> int:
        """Request events emitted so far."""
        return sum(self.outcomes.values())

    def census(self) -> Census:
        """A census of this proxy now."""
        return census(self.running)


@asynccontextmanager
async def live_proxy(upstream: str, **overrides: Any) -> AsyncIterator[Live]:
    """Run mcpr in front of `upstream` on a free loopback port; `overrides` set config fields."""
    settings: dict[str, Any] = {"port": 0, "admin": "none", "drain_timeout": 2.0, **overrides}
    live: Live | None = None

    def emit(event: ProxyEvent) -> None:
        assert live is not None
        live.emit(event)

    async with serve(ProxyConfig(mcp=upstream, **settings), emit=emit) as running:
        live = Live(running)
        yield live


def raise_fd_limit(needed: int) -> None:
    """Raise the soft limit of open files to at least `needed` (skip if the hard one is lower)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"needs {needed} open files, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ProxyProcess:
    """`python -m mcpr_cli proxy run CONFIG` with its store and registry in `folder`."""

    def __init__(
        self,
        folder: Path,
        upstream: str,
        *,
        env: dict[str, str] | None = None,
        tables: str = "",
        **settings: Any,
    ) -> None:
        """Start it; `settings` are top-level keys of mcpr.toml (strings, numbers), `tables`
        is TOML text appended after them (`[cloud]`, …)."""
        self.port = free_port()
        self.store = folder / "store.db"
        settings = {"mcp": upstream, "port": self.port, "admin": "none", **settings}
        self.config = folder / "mcpr.toml"
        keys = "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items())
        self.config.write_text(keys + tables)
        environ = {**os.environ, "MCPR_DB": str(self.store), "MCPR_HOME": str(folder / "home")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mcpr_cli", "proxy", "run", str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**environ, **(env or {})},
        )
        self._stderr: list[bytes] = []
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        """What the proxy wrote on stderr so far."""
        return b"".join(self._stderr).decode("utf-8", "replace")

    def wait_listening(self) -> None:
        """Return once the proxy accepts connections; fail if it exits first."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"mcpr exited with {self.proc.returncode}:\n{self.stderr}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"mcpr did not listen within {STARTUP_TIMEOUT} s:\n{self.stderr}")
                time.sleep(0.05)

    def terminate(self) -> None:
        """Send SIGTERM (the drain starts)."""
        self.proc.send_signal(signal.SIGTERM)

    def wait(self) -> int:
        """Wait for the exit status (after `terminate`); kill after `EXIT_TIMEOUT`."""
        try:
            return self.proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"mcpr did not exit within {EXIT_TIMEOUT} s:\n{self.stderr}")

    def close(self) -> None:
        """Kill the proxy if it still runs; join the stderr reader."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join()
        assert self.proc.stderr is not None
        self.proc.stderr.close()


def store_rows(path: Path, sql: str = "SELECT COUNT(*) FROM requests") -> Any:
    """The first column of the first row of `sql` over the store at `path` (read-only)."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        row = db.execute(sql).fetchone()
    return row[0]
