"""A registry entry: what a proxy writes about itself, and what others observe of it."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

__all__ = [
    "ENTRY_VERSION",
    "ProxyEntry",
    "ProxyState",
    "ProxyStatus",
    "ReloadOutcome",
    "ReloadRecord",
]

#: Version of the entry's JSON shape, written as `version`.
ENTRY_VERSION: Final = 1


class ProxyState(enum.StrEnum):
    """Where a proxy is in its life; `stale` is never written, only observed."""

    STARTING = "starting"
    RUNNING = "running"
    DRAINING = "draining"
    STOPPED = "stopped"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """What a SIGHUP did: applied, or rejected for `reason` (with the problems or fields)."""

    applied: bool
    reason: str = ""
    details: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReloadRecord:
    """The last reload of a proxy; `seq` counts the reloads of this process from 1."""

    seq: int
    at_ms: int
    outcome: ReloadOutcome


@dataclass(frozen=True, slots=True)
class ProxyEntry:
    """What a proxy wrote about itself (timestamps in unix milliseconds)."""

    name: str
    pid: int
    state: ProxyState
    started_ms: int
    upstream_url: str
    port: int | None = None
    local_url: str | None = None
    public_url: str | None = None
    admin_url: str | None = None
    config_path: str | None = None
    drain_timeout: float | None = None
    stopped_ms: int | None = None
    exit_code: int | None = None
    last_reload: ReloadRecord | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object stored in the lock file."""
        data = asdict(self)
        data["state"] = self.state.value
        return {"version": ENTRY_VERSION, **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProxyEntry:
        """Parse a stored object; ValueError when it is not an entry this version can read."""
        try:
            reload = data.get("last_reload")
            record = None
            if reload is not None:
                outcome = reload["outcome"]
                record = ReloadRecord(
                    seq=int(reload["seq"]),
                    at_ms=int(reload["at_ms"]),
                    outcome=ReloadOutcome(
                        applied=bool(outcome["applied"]),
                        reason=str(outcome["reason"]),
                        details=tuple(str(d) for d in outcome["details"]),
                    ),
                )
            return cls(
                name=str(data["name"]),
                pid=int(data["pid"]),
                state=ProxyState(data["state"]),
                started_ms=int(data["started_ms"]),
                upstream_url=str(data["upstream_url"]),
                port=_opt_int(data.get("port")),
                local_url=_opt_str(data.get("local_url")),
                public_url=_opt_str(data.get("public_url")),
                admin_url=_opt_str(data.get("admin_url")),
                config_path=_opt_str(data.get("config_path")),
                drain_timeout=_opt_float(data.get("drain_timeout")),
                stopped_ms=_opt_int(data.get("stopped_ms")),
                exit_code=_opt_int(data.get("exit_code")),
                last_reload=record,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a proxy entry: {exc!r}") from exc


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class ProxyStatus:
    """A registry folder as seen from outside: the observed state, and the entry if readable."""

    name: str
    state: ProxyState
    path: Path
    entry: ProxyEntry | None = None

    @property
    def running(self) -> bool:
        """A live process holds the lock (starting, running or draining)."""
        return self.state in (ProxyState.STARTING, ProxyState.RUNNING, ProxyState.DRAINING)

    def to_dict(self) -> dict[str, Any]:
        """`name`, the observed `state` and the entry's fields (null when unreadable)."""
        fields: dict[str, Any] = {}
        if self.entry is not None:
            fields = self.entry.to_dict()
            del fields["version"]
        return {**fields, "name": self.name, "state": self.state.value, "path": str(self.path)}
