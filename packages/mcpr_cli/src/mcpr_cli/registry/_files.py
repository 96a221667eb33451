"""The registry's files: claiming a name under its lock, writing and reading entries."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import structlog

from mcpr_cli.registry._entry import (
    ProxyEntry,
    ProxyState,
    ProxyStatus,
    ReloadOutcome,
    ReloadRecord,
)
from mcpr_core.config import ProxyConfig

__all__ = [
    "ACQUIRE_PATIENCE",
    "LOCK_NAME",
    "ProxyAlreadyRunning",
    "ProxyNotFound",
    "Registration",
    "Registry",
    "RegistryError",
    "lock_held",
    "pid_alive",
]

#: The file in a proxy's folder that is both its lock and its entry.
LOCK_NAME: Final = "proxy.lock"
#: How long a starting proxy retries a lock held by something other than a live proxy (a
#: `mcpr proxy list` probing it, or a proxy in its last instant), before calling it a clash.
ACQUIRE_PATIENCE: Final = 1.0
#: Reads of an entry that a concurrent write tore, before the entry counts as unreadable.
_READ_ATTEMPTS: Final = 20

_log = structlog.get_logger("mcpr")


class RegistryError(Exception):
    """A registry operation that cannot be done; the message is written for users."""


class ProxyAlreadyRunning(RegistryError):
    """Another live process holds the lock of this name."""

    def __init__(self, name: str, pid: int | None, path: Path) -> None:
        who = f"pid {pid}" if pid is not None else "another process"
        super().__init__(f"a proxy named '{name}' is already running ({who}; {path})")
        self.name = name
        self.pid = pid


class ProxyNotFound(RegistryError):
    """No folder of this name in the registry."""

    def __init__(self, name: str, root: Path) -> None:
        super().__init__(f"no proxy named '{name}' in {root}")
        self.name = name


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (possibly another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _check_name(name: str) -> None:
    # Config validation allows [A-Za-z0-9._-]{1,64}; "." and ".." would not name a folder.
    if not name or name in (".", "..") or any(not (c.isalnum() or c in "._-") for c in name):
        raise RegistryError(f"'{name}' cannot name a registry folder")


def lock_held(path: Path) -> bool:
    """Whether another open file description holds a lock on `path` (False if it is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the shared lock, if taken
    return False


def _lock_exclusive(fd: int, path: Path) -> tuple[bool, ProxyEntry | None]:
    """Lock `fd` exclusively: `(True, None)`, or `(False, entry of the process holding it)`.

    A holder that does not look like a live proxy (a stopped entry, a dead pid, no entry) is
    someone probing the lock, or a proxy in its last instant: it lets go within
    microseconds, so the lock is tried again for up to ACQUIRE_PATIENCE.
    """
    deadline = time.monotonic() + ACQUIRE_PATIENCE
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            entry = _read_entry(path)
            if entry is not None and (
                entry.state is ProxyState.STOPPED or not pid_alive(entry.pid)
            ):
                entry = None  # not the holder: its pid would mislead
            if entry is not None or time.monotonic() > deadline:
                return False, entry
            time.sleep(0.01)
        else:
            return True, None


def _read_entry(path: Path) -> ProxyEntry | None:
    """The entry in `path`, or None when it is missing, empty or unreadable."""
    for attempt in range(_READ_ATTEMPTS):
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        if not text.strip():
            return None
        try:
            return ProxyEntry.from_dict(json.loads(text))
        except ValueError:  # a torn read (retry), or a file that is not an entry
            if attempt + 1 < _READ_ATTEMPTS:
                time.sleep(0.005)
    return None


class Registry:
    """The proxies folder: look at entries, claim one, delete one."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Registry:
        """`$MCPR_HOME/proxies`, else `$HOME/.mcpr/proxies` (the home of the user otherwise)."""
        env = os.environ if environ is None else environ
        home = env.get("MCPR_HOME", "")
        if home:
            return cls(Path(home).expanduser() / "proxies")
        user = env.get("HOME", "")
        return cls((Path(user) if user else Path.home()) / ".mcpr" / "proxies")

    def lock_path(self, name: str) -> Path:
        """The lock file (and entry) of the proxy `name`."""
        _check_name(name)
        return self.root / name / LOCK_NAME

    def status(self, name: str) -> ProxyStatus:
        """The observed state of `name`; ProxyNotFound when it has no folder."""
        path = self.lock_path(name)
        if not path.parent.is_dir():
            raise ProxyNotFound(name, self.root)
        held = lock_held(path)
        entry = _read_entry(path)
        if not held and (entry is None or entry.state is not ProxyState.STOPPED):
            # A proxy may have claimed the name between the look at the lock and the read.
            held = lock_held(path)
        if entry is not None and entry.state is ProxyState.STOPPED:
            state = ProxyState.STOPPED
        elif held:
            state = entry.state if entry is not None else ProxyState.STARTING
        else:
            state = ProxyState.STALE
        return ProxyStatus(name, state, path, entry)

    def list(self) -> list[ProxyStatus]:
        """Every folder of the registry, by name."""
        try:
            names = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        except FileNotFoundError:
            return []
        statuses = []
        for name in names:
            try:
                statuses.append(self.status(name))
            except RegistryError:  # a folder someone else made, or deleted meanwhile
                continue
        return statuses

    def delete(self, name: str) -> ProxyStatus:
        """Remove the folder of `name` unless a process holds its lock; return what it was."""
        status = self.status(name)
        try:
            fd = os.open(status.path, os.O_RDONLY)
        except FileNotFoundError:  # a folder without a lock file: nothing can hold it
            shutil.rmtree(status.path.parent, ignore_errors=True)
            return status
        try:
            locked, holder = _lock_exclusive(fd, status.path)
            if not locked:
                pid = holder.pid if holder is not None else "unknown"
                raise RegistryError(
                    f"proxy '{name}' is running (pid {pid}); stop it first: mcpr proxy stop {name}"
                )
            # A proxy starting now finds its file unlinked after it locks, and makes a new one.
            shutil.rmtree(status.path.parent)
        finally:
            os.close(fd)
        return status

    def acquire(self, config: ProxyConfig, *, config_path: Path | None = None) -> Registration:
        """Claim `config.name` for this process, or raise ProxyAlreadyRunning.

        The entry says `starting` until `Registration.publish`.
        """
        path = self.lock_path(config.name)
        while True:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            locked, holder = _lock_exclusive(fd, path)
            if not locked:
                os.close(fd)
                pid = holder.pid if holder is not None else None
                raise ProxyAlreadyRunning(config.name, pid, path.parent)
            if _same_file(fd, path):
                break
            os.close(fd)  # deleted between open and lock: start over with a new file
        previous = _read_entry(path)
        if previous is not None and previous.state is not ProxyState.STOPPED:
            _log.warning("registry_stale_reclaimed", proxy=config.name, pid=previous.pid)
        entry = ProxyEntry(
            name=config.name,
            pid=os.getpid(),
            state=ProxyState.STARTING,
            started_ms=_now_ms(),
            upstream_url=config.mcp,
            port=config.port or None,
            public_url=config.public_url,
            config_path=str(config_path.resolve()) if config_path is not None else None,
            drain_timeout=config.drain_timeout,
        )
        registration = Registration(fd, path, entry)
        registration.write()
        return registration


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == path.stat().st_ino
    except FileNotFoundError:
        return False


@dataclass(eq=False)
class Registration:
    """This process's claim on its name: the locked file and the entry it writes there.

    A failure to write the entry is logged and the proxy keeps running: only the lock
    matters for exclusion. `release` (or leaving the `with` block) marks it stopped.
    """

    fd: int
    path: Path
    entry: ProxyEntry
    exit_code: int | None = None

    def __enter__(self) -> Registration:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release(self.exit_code)

    def write(self) -> None:
        """Write the entry over the file's content, in place (the lock stays on this inode)."""
        data = (json.dumps(self.entry.to_dict(), separators=(",", ":")) + "\n").encode()
        try:
            os.pwrite(self.fd, data, 0)
            os.ftruncate(self.fd, len(data))
        except OSError as exc:
            _log.warning("registry_write_failed", path=str(self.path), error=str(exc))

    def _update(self, **changes: Any) -> None:
        if self.fd >= 0:
            self.entry = replace(self.entry, **changes)
            self.write()

    def publish(self, *, port: int, local_url: str, admin_url: str | None) -> None:
        """The proxy listens: record where, and mark it running."""
        self._update(state=ProxyState.RUNNING, port=port, local_url=local_url, admin_url=admin_url)

    def set_public_url(self, url: str | None) -> None:
        """Record the URL clients outside reach the proxy by (a tunnel's, for instance)."""
        self._update(public_url=url)

    def draining(self) -> None:
        """A stop signal arrived: the proxy drains."""
        self._update(state=ProxyState.DRAINING)

    def record_reload(self, outcome: ReloadOutcome) -> ReloadRecord:
        """Record a reload's outcome under the next sequence number, for `mcpr proxy reload`."""
        last = self.entry.last_reload
        record = ReloadRecord(seq=(last.seq if last else 0) + 1, at_ms=_now_ms(), outcome=outcome)
        self._update(last_reload=record)
        return record

    def release(self, exit_code: int | None = None) -> None:
        """Mark the entry stopped, then unlock (once; later calls do nothing)."""
        if self.fd < 0:
            return
        self._update(state=ProxyState.STOPPED, stopped_ms=_now_ms(), exit_code=exit_code)
        fd, self.fd = self.fd, -1
        os.close(fd)  # drops the lock
