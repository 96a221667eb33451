"""SqliteSink: the event sink that records into the local store (STORE.md).

The sink is a thin adapter: the `Store` owns the writer thread and the connection. Opening
happens in `SqliteSink.open`, so the caller decides what a file that cannot be opened means
(for `mcpr proxy run`: a warning, and the proxy runs without a store).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from mcpr_core.events import ProxyEvent
from mcpr_integrations.store.schema import default_store_path
from mcpr_integrations.store.writer import Store, StoreStatistics

__all__ = ["SqliteSink"]


class SqliteSink:
    """Hand events to a `Store`; `close()` returns once everything accepted is written."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @classmethod
    def open(
        cls,
        environ: Mapping[str, str],
        *,
        mcpr_version: str,
        on_error: Callable[[str, BaseException], None] | None = None,
    ) -> SqliteSink:
        """Open the store at `MCPR_DB` or `~/.mcpr/store.db`; raise `StoreError` if impossible."""
        path = default_store_path(environ)
        return cls(Store(path, mcpr_version=mcpr_version, on_error=on_error))

    @property
    def name(self) -> str:
        """The sink's name in logs and metrics."""
        return "sqlite"

    @property
    def store(self) -> Store:
        """The store this sink writes to."""
        return self._store

    def statistics(self) -> StoreStatistics:
        """The writer's counters."""
        return self._store.statistics()

    def on_event(self, event: ProxyEvent) -> None:
        """Queue one event."""
        self._store.put((event,))

    def on_batch(self, events: Sequence[ProxyEvent]) -> None:
        """Queue several events, in order."""
        self._store.put(events)

    def flush(self) -> None:
        """Wait until everything queued is committed."""
        self._store.flush()

    def close(self) -> None:
        """Drain the queue and close the store."""
        self._store.close()
