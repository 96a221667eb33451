"""The local SQLite store: schema and migrations, the writer, the query engine (STORE.md)."""

from mcpr_integrations.store.schema import (
    SCHEMA_VERSION,
    StoreError,
    StoreMissingError,
    default_store_path,
)
from mcpr_integrations.store.writer import Store, StoreStatistics, request_status

__all__ = [
    "SCHEMA_VERSION",
    "Store",
    "StoreError",
    "StoreMissingError",
    "StoreStatistics",
    "default_store_path",
    "request_status",
]
