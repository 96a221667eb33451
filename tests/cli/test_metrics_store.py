"""`mcpr_store_events_total`: what the store's writer did with the events it was handed."""

from __future__ import annotations

from mcpr_cli.metrics import Metrics
from mcpr_integrations.store.writer import StoreStatistics


def test_store_counters_are_exposed_by_outcome() -> None:
    """Stored, skipped and failed (lost to a write error) events each have their sample."""
    metrics = Metrics()
    metrics.watch_store(
        lambda: StoreStatistics(accepted=10, stored=7, skipped=1, failed=2, queued=0)
    )
    lines = metrics.render().splitlines()
    assert "# TYPE mcpr_store_events_total counter" in lines
    assert 'mcpr_store_events_total{outcome="stored"} 7' in lines
    assert 'mcpr_store_events_total{outcome="skipped"} 1' in lines
    assert 'mcpr_store_events_total{outcome="failed"} 2' in lines


def test_no_store_no_family() -> None:
    """A proxy running without a store declares no store family."""
    assert "mcpr_store_events_total" not in Metrics().render()
