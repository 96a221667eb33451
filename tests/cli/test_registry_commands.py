"""`mcpr proxy list / stop / reload / delete / status` against registry entries made here.

The running proxy of these tests is this test process holding a registration (it is never
sent a signal); stopped and stale entries are made the way a proxy leaves them. Stopping and
reloading real proxies is in tests/e2e/test_registry.py; here a helper process that ignores
both signals shows the time bounds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest
from click.testing import CliRunner, Result

from mcpr_cli.cli import cli
from mcpr_cli.registry import Registration, Registry
from mcpr_core.config import ProxyConfig

UPSTREAM = "http://127.0.0.1:9/mcp"


class Mcpr(Protocol):
    """Runs one `mcpr` command line."""

    def __call__(self, *args: str, stdin: str | None = None) -> Result: ...


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The `MCPR_HOME` of the commands under test."""
    return tmp_path / "home"


@pytest.fixture
def registry(home: Path) -> Registry:
    """The registry the commands read."""
    return Registry(home / "proxies")


@pytest.fixture
def mcpr(home: Path, tmp_path: Path) -> Mcpr:
    """`mcpr ARGS` with the test's registry and a store that does not exist."""

    def call(*args: str, stdin: str | None = None) -> Result:
        env = {"MCPR_HOME": str(home), "MCPR_DB": str(tmp_path / "store.db")}
        return CliRunner().invoke(cli, list(args), env=env, input=stdin)

    return call


def _claim(registry: Registry, name: str) -> Registration:
    registration = registry.acquire(ProxyConfig(mcp=UPSTREAM, name=name, port=0))
    registration.publish(port=4000, local_url="http://127.0.0.1:4000", admin_url=None)
    return registration


@pytest.fixture
def fleet(registry: Registry) -> Iterator[Registration]:
    """`live` held by this process, `done` stopped (exit 1), `lost` stale (its holder died)."""
    _claim(registry, "done").release(exit_code=1)
    lost = _claim(registry, "lost")
    os.close(lost.fd)  # what the kernel does when the process is killed
    lost.fd = -1
    with _claim(registry, "live") as live:
        yield live


def test_list_without_proxies(mcpr: Mcpr, home: Path) -> None:
    """An empty registry says so and where it looked."""
    result = mcpr("proxy", "list")
    assert result.exit_code == 0
    assert result.stdout == f"No proxies registered in {home / 'proxies'}.\n"


def test_list_shows_every_state(mcpr: Mcpr, fleet: Registration) -> None:
    """The table and the JSON lines show running, stale and stopped with their ports."""
    table = mcpr("proxy", "list")
    assert table.exit_code == 0, table.output
    rows = {line.split()[1]: line for line in table.stdout.splitlines() if "127.0.0.1" in line}
    assert "running" in rows["live"]
    assert "stale" in rows["lost"]
    assert "stopped (exit 1)" in rows["done"]
    listed = [json.loads(line) for line in mcpr("proxy", "list", "--json").stdout.splitlines()]
    assert [(r["name"], r["state"], r["port"]) for r in listed] == [
        ("done", "stopped", 4000),
        ("live", "running", 4000),
        ("lost", "stale", 4000),
    ]
    assert listed[1]["pid"] == os.getpid()
    assert listed[1]["local_url"] == "http://127.0.0.1:4000"
    assert listed[0]["exit_code"] == 1


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ((), 2, "give a proxy NAME or --all (not both)"),
        (("live", "--all"), 2, "give a proxy NAME or --all (not both)"),
        (("nobody",), 1, "no proxy named 'nobody' in"),
        (("done",), 1, "proxy 'done' is not running (stopped)"),
        (("lost",), 1, "proxy 'lost' is not running (stale)"),
    ],
)
def test_stop_refusals(
    mcpr: Mcpr, fleet: Registration, args: tuple[str, ...], code: int, message: str
) -> None:
    """Stop needs one running proxy or --all, and says what is wrong otherwise."""
    result = mcpr("proxy", "stop", *args)
    assert result.exit_code == code
    assert message in " ".join(result.stderr.split())


def test_stop_all_without_running_proxies(mcpr: Mcpr, registry: Registry) -> None:
    """`stop --all` with nothing running says so and succeeds."""
    _claim(registry, "done").release(exit_code=0)
    result = mcpr("proxy", "stop", "--all")
    assert (result.exit_code, result.stdout) == (0, "No running proxies.\n")


@pytest.mark.parametrize(("name", "state"), [("done", "stopped"), ("lost", "stale")])
def test_reload_needs_a_running_proxy(
    mcpr: Mcpr, fleet: Registration, name: str, state: str
) -> None:
    """Reload refuses a proxy that is not running, naming its state."""
    result = mcpr("proxy", "reload", name)
    assert result.exit_code == 1
    assert f"proxy '{name}' is not running ({state})" in result.stderr


def test_reload_waits_for_a_starting_proxy_to_listen(mcpr: Mcpr, registry: Registry) -> None:
    """A proxy still starting has no signal handler yet: reload refuses rather than kill it."""
    with registry.acquire(ProxyConfig(mcp=UPSTREAM, name="early")):
        result = mcpr("proxy", "reload", "early")
    assert result.exit_code == 1
    assert "proxy 'early' is not running (starting)" in result.stderr


def test_delete_refuses_a_running_proxy(
    mcpr: Mcpr, fleet: Registration, registry: Registry
) -> None:
    """Delete refuses while the lock is held, even with --yes, and keeps the entry."""
    result = mcpr("proxy", "delete", "live", "--yes")
    assert result.exit_code == 1
    assert f"proxy 'live' is running (pid {os.getpid()})" in " ".join(result.stderr.split())
    assert registry.status("live").running


def test_delete_asks_first(mcpr: Mcpr, fleet: Registration, registry: Registry) -> None:
    """Without --yes delete asks; no keeps the entry, yes removes it; --yes does not ask."""
    kept = mcpr("proxy", "delete", "done", stdin="n\n")
    assert kept.exit_code == 1
    assert [s.name for s in registry.list()] == ["done", "live", "lost"]
    removed = mcpr("proxy", "delete", "done", stdin="y\n")
    assert removed.exit_code == 0
    assert "deleted proxy 'done' (stopped)" in removed.stdout
    assert mcpr("proxy", "delete", "lost", "--yes").stdout == "deleted proxy 'lost' (stale)\n"
    assert [s.name for s in registry.list()] == ["live"]


def test_status_without_a_store(mcpr: Mcpr, fleet: Registration) -> None:
    """Status lists the running proxies only, and says why there is no traffic summary."""
    result = mcpr("proxy", "status")
    assert result.exit_code == 0, result.output
    proxies, summary = result.stdout.split("No traffic summary: ")
    assert "live" in proxies
    assert "lost" not in proxies
    assert "done" not in proxies
    assert "no store" in summary
    document = json.loads(mcpr("proxy", "status", "--json").stdout)
    assert [p["name"] for p in document["proxies"]] == ["live"]
    assert document["traffic"] is None


def test_status_of_one_proxy_shows_it_whatever_its_state(mcpr: Mcpr, fleet: Registration) -> None:
    """`status NAME` shows that proxy even when it is stopped."""
    document = json.loads(mcpr("proxy", "status", "done", "--json").stdout)
    assert [(p["name"], p["state"]) for p in document["proxies"]] == [("done", "stopped")]


_DEAF = textwrap.dedent(
    """
    import signal, sys
    from pathlib import Path
    from mcpr_cli.registry import Registry
    from mcpr_core.config import ProxyConfig

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    config = ProxyConfig(mcp="http://127.0.0.1:9/mcp", name="deaf")
    registration = Registry(Path(sys.argv[1])).acquire(config)
    registration.publish(port=1, local_url="http://127.0.0.1:1", admin_url=None)
    print("ready", flush=True)
    sys.stdin.read()
    """
)


@pytest.fixture
def deaf(registry: Registry) -> Iterator[subprocess.Popen[str]]:
    """A registered process that ignores SIGTERM and SIGHUP; it ends when stdin closes."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _DEAF, str(registry.root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline() == "ready\n"
        yield proc
    finally:
        proc.stdin.close()
        proc.stdout.close()
        proc.wait(timeout=10)


def test_stop_and_reload_are_bounded(mcpr: Mcpr, deaf: subprocess.Popen[str]) -> None:
    """A proxy that does not drain or report is left running after --timeout, exit 1."""
    stop = mcpr("proxy", "stop", "deaf", "--timeout", "0.2")
    assert stop.exit_code == 1
    assert stop.stderr == (
        f"proxy 'deaf' (pid {deaf.pid}) is still draining after 0.2 s; "
        f"a second signal ends it at once: kill -TERM {deaf.pid}\n"
    )
    reload = mcpr("proxy", "reload", "deaf", "--timeout", "0.2")
    assert reload.exit_code == 1
    assert "proxy 'deaf' reported no reload within 0.2 s" in reload.stderr
    assert deaf.poll() is None
