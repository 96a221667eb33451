"""`mcpr demo`: the sample app behind the real proxy, checked step by step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mcpr_cli.cli import cli
from mcpr_cli.demo.app import DemoApp


def test_demo_shows_traffic_csp_rewrite_and_stats(tmp_path: Path) -> None:
    """The demo exits 0 after showing the request lines, the CSP before/after and the stats."""
    db = tmp_path / "demo.db"
    result = CliRunner().invoke(cli, ["demo", "--db", str(db)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "tools/call -> count_down /mcp" in out
    assert "[-32000 Upstream weather service unavailable]" in out
    assert "as mcpr delivered it" in out
    assert "https://weather.example.com" in out
    assert "http://localhost:5173" in out
    assert "flaky_lookup" in out
    assert db.is_file()


def test_demo_store_holds_every_step(tmp_path: Path) -> None:
    """Every scripted request is a row of the store the demo was given."""
    db = tmp_path / "demo.db"
    assert CliRunner().invoke(cli, ["demo", "--db", str(db)]).exit_code == 0
    runner = CliRunner(env={"MCPR_DB": str(db)})
    logs = runner.invoke(cli, ["proxy", "logs", "demo", "--json"])
    rows = [json.loads(line) for line in logs.output.splitlines()]
    methods = sorted(row["method"] for row in rows)
    assert methods == sorted(
        [
            "DELETE",
            "initialize",
            "notifications/initialized",
            "prompts/get",
            "resources/read",
            "tools/call",
            "tools/call",
            "tools/call",
            "tools/list",
        ]
    )


def test_demo_fails_loudly_when_a_step_misbehaves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step that does not answer as expected makes the demo exit 1 naming the step."""
    original = DemoApp._call

    def broken(self: DemoApp, rid: Any, params: dict[str, Any]) -> Any:
        if params.get("name") == "get_forecast":
            return original(self, rid, {"name": "flaky_lookup"})
        return original(self, rid, params)

    monkeypatch.setattr(DemoApp, "_call", broken)
    result = CliRunner().invoke(cli, ["demo", "--db", str(tmp_path / "demo.db")])
    assert result.exit_code == 1
    assert "The demo failed" in result.output
    assert "tools/call get_forecast" in result.output
