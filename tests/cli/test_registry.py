"""The registry's files: claiming a name, the entry's life, stale locks, reading, deleting.

A lock held through another open file is held against this process too (`flock` locks
belong to open files, not processes), so one test process can play two proxies; closing a
registration's file without `release` is what the kernel does when a proxy dies.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from mcpr_cli.registry import (
    LOCK_NAME,
    ProxyAlreadyRunning,
    ProxyEntry,
    ProxyNotFound,
    ProxyState,
    ProxyStatus,
    Registration,
    Registry,
    RegistryError,
    ReloadOutcome,
    _files,
    lock_held,
)
from mcpr_core.config import ProxyConfig

UPSTREAM = "http://127.0.0.1:9/mcp"


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    """An empty registry in the test's folder."""
    return Registry(tmp_path / "proxies")


@pytest.fixture
def alpha(registry: Registry) -> Iterator[Registration]:
    """Proxy `alpha` claimed by this process, released at the end."""
    with registry.acquire(ProxyConfig(mcp=UPSTREAM, name="alpha", port=0)) as registration:
        yield registration


def _die(registration: Registration) -> None:
    """What the kernel does when the proxy is killed: the lock goes, the entry stays."""
    os.close(registration.fd)
    registration.fd = -1


def test_root_from_environment(tmp_path: Path) -> None:
    """`MCPR_HOME` wins; else `$HOME/.mcpr`; an empty `MCPR_HOME` counts as unset."""
    home = {"HOME": str(tmp_path / "me")}
    assert Registry.from_environ(home).root == tmp_path / "me" / ".mcpr" / "proxies"
    env = {**home, "MCPR_HOME": str(tmp_path / "elsewhere")}
    assert Registry.from_environ(env).root == tmp_path / "elsewhere" / "proxies"
    assert Registry.from_environ({**home, "MCPR_HOME": ""}).root.parent == tmp_path / "me" / ".mcpr"


def test_acquire_then_publish(registry: Registry, tmp_path: Path) -> None:
    """The entry says starting with the pid and config path, then running with the port."""
    config_path = tmp_path / "mcpr.toml"
    config = ProxyConfig(mcp=UPSTREAM, name="alpha", port=0, public_url="https://a.example")
    with registry.acquire(config, config_path=config_path) as registration:
        starting = registry.status("alpha")
        assert starting.state is ProxyState.STARTING
        assert starting.entry is not None
        assert (starting.entry.pid, starting.entry.port) == (os.getpid(), None)
        assert starting.entry.config_path == str(config_path.resolve())
        assert starting.entry.public_url == "https://a.example"
        registration.publish(port=4242, local_url="http://127.0.0.1:4242", admin_url=None)
        running = registry.status("alpha")
        assert running.state is ProxyState.RUNNING
        assert running.running
        assert running.entry is not None
        assert (running.entry.port, running.entry.local_url) == (4242, "http://127.0.0.1:4242")
        assert running.entry.upstream_url == UPSTREAM


def test_lock_file_carries_the_entry_as_json(
    registry: Registry, alpha: Registration, tmp_path: Path
) -> None:
    """The lock file holds one JSON object with a version, and it reads back the same."""
    data = json.loads((registry.root / "alpha" / LOCK_NAME).read_text())
    assert data["version"] == 1
    assert data["state"] == "starting"
    assert ProxyEntry.from_dict(data) == alpha.entry


def test_same_name_is_refused_with_the_pid(registry: Registry, alpha: Registration) -> None:
    """A second claim of a live name fails at once, naming the holder's pid."""
    with pytest.raises(
        ProxyAlreadyRunning, match=f"'alpha' is already running \\(pid {os.getpid()};"
    ):
        registry.acquire(ProxyConfig(mcp=UPSTREAM, name="alpha"))
    assert registry.status("alpha").entry == alpha.entry


def test_other_names_run_side_by_side(registry: Registry, alpha: Registration) -> None:
    """Different names are independent, and list sorts them by name."""
    with registry.acquire(ProxyConfig(mcp=UPSTREAM, name="Beta.1")):
        assert [s.name for s in registry.list()] == ["Beta.1", "alpha"]
        assert all(s.running for s in registry.list())


def test_release_marks_stopped_and_unlocks(registry: Registry) -> None:
    """Release writes stopped with the exit code; the name can be claimed again."""
    registration = registry.acquire(ProxyConfig(mcp=UPSTREAM, name="alpha"))
    registration.release(exit_code=0)
    registration.release(exit_code=3)  # a second release changes nothing
    status = registry.status("alpha")
    assert status.state is ProxyState.STOPPED
    assert status.entry is not None
    assert status.entry.exit_code == 0
    assert status.entry.stopped_ms is not None
    assert not lock_held(status.path)
    with registry.acquire(ProxyConfig(mcp=UPSTREAM, name="alpha")) as again:
        assert again.entry.state is ProxyState.STARTING
        assert again.entry.exit_code is None


def test_with_block_records_the_exit_code(registry: Registry) -> None:
    """Leaving the `with` block releases with the exit code set on the registration."""
    with registry.acquire(ProxyConfig(mcp=UPSTREAM, name="alpha")) as registration:
        registration.exit_code = 1
    entry = registry.status("alpha").entry
    assert entry is not None
    assert (entry.state, entry.exit_code) == (ProxyState.STOPPED, 1)


def test_dead_holder_leaves_a_stale_entry_that_is_reclaimed(registry: Registry) -> None:
    """A lock gone with the entry still running is stale; the next claim logs and takes it."""
    registration = registry.acquire(ProxyConfig(mcp=UPSTREAM, name="alpha"))
    registration.publish(port=1, local_url="http://127.0.0.1:1", admin_url=None)
    _die(registration)
    stale = registry.status("alpha")
    assert stale.state is ProxyState.STALE
    assert not stale.running
    with capture_logs() as logs, registry.acquire(ProxyConfig(mcp=UPSTREAM, name="alpha")):
        assert registry.status("alpha").state is ProxyState.STARTING
    assert logs == [
        {
            "event": "registry_stale_reclaimed",
            "log_level": "warning",
            "proxy": "alpha",
            "pid": os.getpid(),
        }
    ]


class _Clock:
    """Stands in for `time` in the registry module: each sleep runs `on_sleep` instead."""

    def __init__(self, on_sleep: Callable[[], object]) -> None:
        self.on_sleep = on_sleep
        self.sleeps = 0

    def monotonic(self) -> float:
        return time.monotonic()

    def time_ns(self) -> int:
        return time.time_ns()

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.on_sleep()


def test_lock_held_by_a_prober_is_waited_for(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lock held by something that is not a live proxy is retried until it lets go."""
    registry.acquire(ProxyConfig(mcp=UPSTREAM, name="alpha")).release(0)
    fd = os.open(registry.lock_path("alpha"), os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)
    clock = _Clock(lambda: os.close(fd))
    monkeypatch.setattr(_files, "time", clock)
    with registry.acquire(ProxyConfig(mcp=UPSTREAM, name="alpha")) as registration:
        assert registration.entry.state is ProxyState.STARTING
    assert clock.sleeps == 1


def test_lock_held_too_long_is_a_clash(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock that stays held past the patience is a clash with an unknown holder."""
    registry.acquire(ProxyConfig(mcp=UPSTREAM, name="alpha")).release(0)
    fd = os.open(registry.lock_path("alpha"), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        monkeypatch.setattr(_files, "ACQUIRE_PATIENCE", 0.0)
        with pytest.raises(ProxyAlreadyRunning, match=r"\(another process;"):
            registry.acquire(ProxyConfig(mcp=UPSTREAM, name="alpha"))
    finally:
        os.close(fd)


def test_reload_outcomes_are_numbered(registry: Registry, alpha: Registration) -> None:
    """Each recorded reload gets the next sequence number; readers see the last one."""
    first = alpha.record_reload(ReloadOutcome(applied=True))
    second = alpha.record_reload(ReloadOutcome(False, "invalid configuration", ("mcp: bad",)))
    assert (first.seq, second.seq) == (1, 2)
    entry = registry.status("alpha").entry
    assert entry is not None
    assert entry.last_reload == second


def test_public_url_and_draining_are_written(registry: Registry, alpha: Registration) -> None:
    """A public URL handed over later, and the drain, show in the entry."""
    alpha.set_public_url("https://alpha.tunnel.example")
    alpha.draining()
    status = registry.status("alpha")
    assert status.state is ProxyState.DRAINING
    assert status.running
    assert status.entry is not None
    assert status.entry.public_url == "https://alpha.tunnel.example"


def test_a_failed_write_is_logged(
    registry: Registry, alpha: Registration, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails (disk full) is a warning; the registration carries on."""

    def full(fd: int, data: bytes, offset: int) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    with capture_logs() as logs:
        alpha.draining()
    [entry] = logs
    assert entry["event"] == "registry_write_failed"
    assert "No space left" in entry["error"]
    assert alpha.entry.state is ProxyState.DRAINING


@pytest.mark.parametrize("text", ["", "{not json", '{"name": "alpha"}'])
def test_unreadable_entries(registry: Registry, text: str) -> None:
    """An empty or unreadable file is stale when unlocked and starting when locked."""
    path = registry.lock_path("alpha")
    path.parent.mkdir(parents=True)
    path.write_text(text)
    assert registry.status("alpha") == ProxyStatus("alpha", ProxyState.STALE, path, None)
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert registry.status("alpha").state is ProxyState.STARTING
    finally:
        os.close(fd)


def test_a_torn_read_is_read_again(
    registry: Registry, alpha: Registration, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New text over a longer old one (before the truncate) is invalid JSON, then re-read."""
    path = registry.lock_path("alpha")
    good = path.read_bytes()
    path.write_bytes(good + b"x" * 10)
    clock = _Clock(lambda: path.write_bytes(good))
    monkeypatch.setattr(_files, "time", clock)
    assert registry.status("alpha").entry == alpha.entry
    assert clock.sleeps == 1


def test_delete(registry: Registry, alpha: Registration) -> None:
    """Delete refuses a held lock, removes a stopped folder, and knows no unknown name."""
    with pytest.raises(RegistryError, match=f"'alpha' is running \\(pid {os.getpid()}\\)"):
        registry.delete("alpha")
    alpha.release(0)
    assert registry.delete("alpha").state is ProxyState.STOPPED
    assert registry.list() == []
    with pytest.raises(ProxyNotFound, match="no proxy named 'alpha'"):
        registry.delete("alpha")


def test_list_of_a_missing_root_is_empty(tmp_path: Path) -> None:
    """No folder yet means no proxies; stray files in the root are ignored."""
    assert Registry(tmp_path / "nothing").list() == []
    (tmp_path / "stray").write_text("")
    assert Registry(tmp_path).list() == []


@pytest.mark.parametrize("name", ["..", ".", "a/b", ""])
def test_names_that_are_not_folders_are_refused(registry: Registry, name: str) -> None:
    """Names that would escape or not name a folder are an error."""
    with pytest.raises(RegistryError, match="cannot name a registry folder"):
        registry.status(name)
