"""The local registry of proxies: one folder per name under `~/.mcpr/proxies/`.

Rules of this package:

* Every `mcpr proxy run` owns `proxies/<name>/proxy.lock` for its whole life: the file is
  opened and locked (`flock`, exclusive) before anything binds, and stays locked until the
  process ends, however it ends, since the kernel drops the lock of a dead process. The lock,
  not the file's content, says whether a proxy of that name runs; a second one is refused
  with the first one's pid.
* The same file carries the proxy's entry as one JSON object (pid, state, port, URLs, config
  path, start time, the last reload's outcome). Only the lock holder writes it, and in place,
  because a rename would swap the inode under the lock: the new text first, then a truncate,
  so a reader that races a write sees invalid JSON at worst, and reads again.
* A clean exit marks the entry `stopped` (with the exit code), then unlocks. The folder stays,
  for `mcpr proxy list`, until `mcpr proxy delete` removes it.
* An entry that is not `stopped` while nobody holds its lock was left by a process that died
  (SIGKILL, a crash, a forced exit). It is *stale*: listed as such, and reclaimed by the next
  proxy of that name.

The folder is `$MCPR_HOME/proxies` when `MCPR_HOME` is set, else `$HOME/.mcpr/proxies`.
"""

from mcpr_cli.registry._entry import (
    ProxyEntry,
    ProxyState,
    ProxyStatus,
    ReloadOutcome,
    ReloadRecord,
)
from mcpr_cli.registry._files import (
    LOCK_NAME,
    ProxyAlreadyRunning,
    ProxyNotFound,
    Registration,
    Registry,
    RegistryError,
    lock_held,
    pid_alive,
)

__all__ = [
    "LOCK_NAME",
    "ProxyAlreadyRunning",
    "ProxyEntry",
    "ProxyNotFound",
    "ProxyState",
    "ProxyStatus",
    "Registration",
    "Registry",
    "RegistryError",
    "ReloadOutcome",
    "ReloadRecord",
    "lock_held",
    "pid_alive",
]
