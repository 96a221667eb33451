"""The local SQLite store: schema and migrations, the writer, the query engine (STORE.md)."""

from mcpr_integrations.store.durations import parse_duration
from mcpr_integrations.store.maintenance import (
    StoreStats,
    VacuumCounts,
    plan_vacuum,
    store_stats,
    vacuum,
)
from mcpr_integrations.store.query import RequestFilter, SessionLookupError, StoreReader
from mcpr_integrations.store.rows import (
    HISTOGRAM_BOUNDS_US,
    ClientRow,
    RequestRow,
    SessionDetail,
    SessionRow,
    StatsReport,
    ToolStats,
)
from mcpr_integrations.store.schema import (
    SCHEMA_VERSION,
    StoreError,
    StoreMissingError,
    default_store_path,
)
from mcpr_integrations.store.writer import Store, StoreStatistics, request_status

__all__ = [
    "HISTOGRAM_BOUNDS_US",
    "SCHEMA_VERSION",
    "ClientRow",
    "RequestFilter",
    "RequestRow",
    "SessionDetail",
    "SessionLookupError",
    "SessionRow",
    "StatsReport",
    "Store",
    "StoreError",
    "StoreMissingError",
    "StoreReader",
    "StoreStatistics",
    "StoreStats",
    "ToolStats",
    "VacuumCounts",
    "default_store_path",
    "parse_duration",
    "plan_vacuum",
    "request_status",
    "store_stats",
    "vacuum",
]
