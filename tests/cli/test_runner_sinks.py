"""Tests of the sinks `mcpr proxy run` sets up: stderr lines and the store, if it opens."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from mcpr_cli.runner import open_sinks
from mcpr_core.config import ProxyConfig
from mcpr_integrations.sqlite import SqliteSink
from mcpr_integrations.stderr import StderrSink

UPSTREAM = "http://127.0.0.1:9/mcp"


def test_stderr_and_store_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """By default events go to stderr lines and to the store named by MCPR_DB."""
    monkeypatch.setenv("MCPR_DB", str(tmp_path / "a" / "store.db"))
    sinks = open_sinks(ProxyConfig(mcp=UPSTREAM))
    try:
        assert [type(sink) for sink in sinks] == [StderrSink, SqliteSink]
        assert (tmp_path / "a" / "store.db").exists()
    finally:
        for sink in sinks:
            sink.close()


def test_events_off_leaves_only_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`events_format = "off"` silences stderr lines; the store still records."""
    monkeypatch.setenv("MCPR_DB", str(tmp_path / "store.db"))
    sinks = open_sinks(ProxyConfig(mcp=UPSTREAM, events_format="off"))
    try:
        assert [sink.name for sink in sinks] == ["sqlite"]
    finally:
        for sink in sinks:
            sink.close()


def test_unopenable_store_is_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store that cannot be opened is logged as a warning; the proxy keeps its stderr sink."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MCPR_DB", str(blocker / "store.db"))
    with capture_logs() as logs:
        sinks = open_sinks(ProxyConfig(mcp=UPSTREAM))
    assert [sink.name for sink in sinks] == ["stderr"]
    [entry] = logs
    assert entry["event"] == "store_unavailable"
    assert entry["log_level"] == "warning"
    assert "cannot create" in entry["error"]


def test_store_disabled_with_mcpr_db_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`MCPR_DB=none` runs without a store, says so once, and creates no file."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MCPR_DB", "none")
    with capture_logs() as logs:
        sinks = open_sinks(ProxyConfig(mcp=UPSTREAM))
    assert [sink.name for sink in sinks] == ["stderr"]
    assert [(e["event"], e["log_level"]) for e in logs] == [("store_disabled", "info")]
    assert list(tmp_path.iterdir()) == []
