"""Tests of `mcpr proxy schema`: snapshots, `--changes`, `--unused`, `--json`.

The command runs through click's CliRunner against a store holding the known schemas of
`tests.integrations.schema_data`, with the clock fixed at its `NOW` and local time in UTC.
Human output is compared line by line with trailing spaces removed.
"""

# The expected tables are compared whole, and some are wider than the line limit.
# ruff: noqa: E501

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from mcpr_cli.cli import cli
from mcpr_core.events import RequestEvent
from mcpr_core.schema import SchemaCapture
from mcpr_integrations.store import Store
from tests.integrations.schema_data import ALPHA_URL, DAY, MINUTE, NOW, fill, versions


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """MCPR_DB names a store path; the clock reads NOW; local time is UTC; tables are wide."""
    path = tmp_path / "store.db"
    monkeypatch.setenv("MCPR_DB", str(path))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setattr("mcpr_cli.commands.common.now_ms", lambda: NOW)
    yield path
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def filled(env: Path) -> Path:
    """The store holds the schema dataset."""
    fill(env)
    return env


def run(*args: str) -> Result:
    """Invoke `mcpr proxy schema ARGS`."""
    return CliRunner().invoke(cli, ["proxy", "schema", *args])


def lines(*args: str) -> list[str]:
    """Invoke, expect success, return the output's lines without trailing spaces."""
    result = run(*args)
    assert result.exit_code == 0, result.output
    return [line.rstrip() for line in result.stdout.splitlines()]


def json_lines(*args: str) -> list[dict[str, Any]]:
    """Invoke with --json, expect success, parse one object per line."""
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.usefixtures("filled")
def test_snapshots_of_every_proxy() -> None:
    """Without options each latest snapshot is shown: the server, then each listing's items."""
    assert lines() == [
        "initialize of proxy alpha at http://127.0.0.1:8000/mcp  captured 2025-12-31 21:00:00, hash 4a31e2081b0e",
        "┌──────────────┬──────────────────────┐",
        "│ server       │ demo 1.0             │",
        "│ protocol     │ 2025-11-25           │",
        "│ capabilities │ prompts, tools       │",
        "│ instructions │ Ask for the weather. │",
        "└──────────────┴──────────────────────┘",
        "prompts/list of proxy alpha at http://127.0.0.1:8000/mcp  captured 2025-12-31 21:00:00, hash a8a54cad244a",
        "┏━━━━━━━━━━━┳━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━┓",
        "┃ name      ┃ arguments    ┃ description       ┃",
        "┡━━━━━━━━━━━╇━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━┩",
        "│ summarize │ text*, style │ Summarize a text. │",
        "└───────────┴──────────────┴───────────────────┘",
        "tools/list of proxy alpha at http://127.0.0.1:8000/mcp  captured 2025-12-31 23:00:00, hash 8eaffdd093d6",
        "┏━━━━━━━━┳━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━┓",
        "┃ name   ┃ arguments ┃ description       ┃",
        "┡━━━━━━━━╇━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━┩",
        "│ fetch  │ url*      │ Fetch one page.   │",
        "│ report │           │ Write a report.   │",
        "│ search │ limit, q* │ Search the index. │",
        "└────────┴───────────┴───────────────────┘",
        "resources/templates/list of proxy beta at http://127.0.0.1:9000/mcp  captured 2025-12-30 00:00:00, hash 87df0c04e3ff",
        "┏━━━━━━┳━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━┓",
        "┃ name ┃ uri template   ┃ description ┃",
        "┡━━━━━━╇━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━┩",
        "│ file │ file:///{path} │ A file.     │",
        "└──────┴────────────────┴─────────────┘",
    ]  # fmt: skip


@pytest.mark.usefixtures("filled")
def test_snapshots_filtered_by_proxy_method_and_since() -> None:
    """NAME and --method pick snapshots; --since drops those captured before the window."""
    assert lines("beta", "--method", "resources/templates/list")[0].startswith(
        "resources/templates/list of proxy beta"
    )
    assert [line.split(" of ")[0] for line in lines("--since", "2h") if " of proxy " in line] == [
        "tools/list"
    ]
    assert lines("alpha", "--method", "server/discover") == ["No captured schema."]


@pytest.mark.usefixtures("filled")
def test_snapshots_as_json_carry_the_parsed_payload() -> None:
    """--json prints each snapshot's columns, the payload as JSON rather than text."""
    rows = json_lines("alpha", "--method", "initialize")
    first = versions()[0]
    assert rows == [
        {
            "proxy": "alpha",
            "upstream_url": ALPHA_URL,
            "method": "initialize",
            "payload": json.loads(first.payload),
            "captured_at": first.ts,
            "schema_hash": first.schema_hash,
        }
    ]


@pytest.mark.usefixtures("filled")
def test_changes_newest_first() -> None:
    """--changes lists every change, newest first, with shortened hashes."""
    assert lines("--changes", "--since", "2d", "--limit", "4") == [
        "schema changes",
        "┏━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━┳━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┳━━━━━━━━┳━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━┓",
        "┃ detected            ┃ proxy ┃ method       ┃ change        ┃ item   ┃ old          ┃ new          ┃",
        "┡━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━╇━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━╇━━━━━━━━╇━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━┩",
        "│ 2025-12-31 23:00:00 │ alpha │ tools/list   │ tool_modified │ search │ 3334e668d716 │ 7c4804cae4c6 │",
        "│ 2025-12-31 23:00:00 │ alpha │ tools/list   │ tool_added    │ report │ -            │ 4c784b4299a4 │",
        "│ 2025-12-31 23:00:00 │ alpha │ tools/list   │ tool_removed  │ legacy │ 94fbf08eca8f │ -            │",
        "│ 2025-12-31 21:00:00 │ alpha │ prompts/list │ initial       │        │ -            │ a8a54cad244a │",
        "└─────────────────────┴───────┴──────────────┴───────────────┴────────┴──────────────┴──────────────┘",
    ]  # fmt: skip


@pytest.mark.usefixtures("filled")
def test_changes_filtered_and_as_json() -> None:
    """NAME, --method and --json: the matching change rows with full hashes."""
    assert json_lines("beta", "--changes", "--method", "resources/templates/list") == [
        {
            "id": 7,
            "proxy": "beta",
            "upstream_url": "http://127.0.0.1:9000/mcp",
            "method": "resources/templates/list",
            "change_type": "initial",
            "item_name": None,
            "old_hash": None,
            "new_hash": versions()[4].schema_hash,
            "detected_at": NOW - 2 * DAY,
        }
    ]
    assert lines("beta", "--changes", "--method", "tools/list") == ["No schema changes."]


@pytest.mark.usefixtures("filled")
def test_unused_tools_in_the_default_week() -> None:
    """--unused: tools of the latest listing without a call in 7 days, with their last call."""
    assert lines("--unused") == [
        "tools not called in the last 7d",
        "┏━━━━━━━┳━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━┓",
        "┃ proxy ┃ tool   ┃ last called         ┃",
        "┡━━━━━━━╇━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━┩",
        "│ alpha │ fetch  │ 2025-12-22 00:00:00 │",
        "│ alpha │ report │ never               │",
        "└───────┴────────┴─────────────────────┘",
    ]


@pytest.mark.usefixtures("filled")
def test_unused_tools_with_since_and_json() -> None:
    """--since widens the window; --json gives the rows; a proxy without tools/list says so."""
    assert json_lines("alpha", "--unused", "--since", "30d") == [
        {"proxy": "alpha", "upstream_url": ALPHA_URL, "tool": "report", "last_called": None}
    ]
    assert lines("alpha", "--unused", "--since", "36h")[0] == (
        "tools not called in the last 36h of proxy alpha"
    )
    assert lines("beta", "--unused") == ["No tools/list captured yet."]


def test_unused_when_every_tool_was_called(env: Path) -> None:
    """A listing whose every tool was called in the window has nothing to report."""
    capture = SchemaCapture("p", ALPHA_URL)
    version = capture.observe("tools/list", None, {"tools": [{"name": "t"}]}, NOW - DAY)
    assert version is not None
    call = RequestEvent(
        id="r", ts=NOW - MINUTE, proxy="p", method="POST", path="/mcp", status=200,
        latency_us=1, request_size=1, note="ok", mcp_method="tools/call", tool="t",
    )  # fmt: skip
    with Store(env, mcpr_version="test") as store:
        store.put([version, call])
    assert lines("--unused") == ["Every offered tool was called."]


def test_discover_snapshot_reads_the_server_from_meta(env: Path) -> None:
    """A 2026-07-28 server: identity from `_meta`, versions from supportedVersions."""
    capture = SchemaCapture("p", ALPHA_URL)
    result = {
        "supportedVersions": ["2025-11-25", "2026-07-28"],
        "capabilities": {"tools": {}},
        "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "modern", "version": "2.0"}},
    }
    version = capture.observe("server/discover", None, result, NOW)
    assert version is not None
    with Store(env, mcpr_version="test") as store:
        store.put([version])
    assert lines()[1:] == [
        "┌──────────────┬────────────────────────┐",
        "│ server       │ modern 2.0             │",
        "│ protocol     │ 2025-11-25, 2026-07-28 │",
        "│ capabilities │ tools                  │",
        "│ instructions │ -                      │",
        "└──────────────┴────────────────────────┘",
    ]


def test_empty_store(env: Path) -> None:
    """A store without captured schemas says so in each view."""
    Store(env, mcpr_version="test").close()
    assert lines() == ["No captured schema."]
    assert lines("--changes") == ["No schema changes."]
    assert lines("--unused") == ["No tools/list captured yet."]
    assert json_lines() == []


@pytest.mark.usefixtures("env")
def test_missing_store_and_conflicting_views() -> None:
    """No store is a clear error; --changes with --unused is a usage error."""
    missing = run()
    assert missing.exit_code == 1
    assert "no store at" in missing.output
    both = run("--changes", "--unused")
    assert both.exit_code == 2
    assert "separate views" in both.output
