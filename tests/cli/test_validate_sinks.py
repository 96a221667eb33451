"""`mcpr validate` and `mcpr proxy run` with `[[sinks]]` and `[otel]`: problems with key paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mcpr_cli.cli import cli
from mcpr_integrations import plugins
from tests.integrations.sample_sinks import entry_point

UPSTREAM = 'mcp = "http://127.0.0.1:9/mcp"\n'


@pytest.fixture(autouse=True)
def installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The test sinks stand for the installed `mcpr.sinks` entry points."""
    available = {name: entry_point(name) for name in ("recording", "crashing", "refusing")}
    monkeypatch.setattr(plugins, "installed_sinks", lambda: available)
    for name in ("MCPR_MCP", "MCPR_PORT", "MCPR_NAME", "MCPR_ADMIN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MCPR_HOME", str(tmp_path / "home"))


def validate(tmp_path: Path, text: str) -> tuple[int, str]:
    path = tmp_path / "mcpr.toml"
    path.write_text(UPSTREAM + text)
    result = CliRunner().invoke(cli, ["validate", str(path)])
    return result.exit_code, result.output


def test_valid_sinks_are_listed(tmp_path: Path) -> None:
    """A good [[sinks]] table is built, closed, and named in the ok line."""
    code, output = validate(tmp_path, '[[sinks]]\nuse = "recording"\nname = "audit"\n')
    assert code == 0, output
    assert output.rstrip().endswith("upstream http://127.0.0.1:9/mcp; sink audit (recording)")


def test_unknown_sink_name(tmp_path: Path) -> None:
    """A sink that is not installed is an error at `sinks[N].use`."""
    code, output = validate(tmp_path, '[[sinks]]\nuse = "recordin"\n')
    assert code == 1
    assert "error: sinks[0].use: no sink named 'recordin' (installed: crashing, recording, " in (
        output
    )
    assert "did you mean 'recording'?" in output


def test_factory_problems_with_key_paths(tmp_path: Path) -> None:
    """Bad keys and a raising factory are reported together, each with its key path."""
    tables = (
        '[[sinks]]\nuse = "recording"\ncolour = "red"\n'
        '[[sinks]]\nuse = "crashing"\n'
        '[[sinks]]\nuse = "refusing"\n'
        '[[sinks]]\nuse = "recording"\nname = "r2"\nmax_failures = -1\n'
    )
    code, output = validate(tmp_path, tables)
    assert code == 1
    assert "error: sinks[3].max_failures: expected an integer >= 0" in output
    # Factories run although another table is invalid, so every problem shows at once.
    assert "error: sinks[0].colour: unknown key" in output
    assert "error: sinks[1]: the factory tests.integrations.sample_sinks:crashing raised " in (
        output
    )
    assert "error: sinks[2].path: required" in output
    assert "error: sinks[2]: cannot be used here" in output


def test_other_errors_still_report_sink_problems(tmp_path: Path) -> None:
    """A bad core key does not hide a sink factory's refusal."""
    code, output = validate(tmp_path, 'port = "x"\n[[sinks]]\nuse = "recording"\ncolour = 1\n')
    assert code == 1
    assert "error: port:" in output
    assert "error: sinks[0].colour: unknown key" in output


def test_otel_problems_have_key_paths(tmp_path: Path) -> None:
    """A bad [otel] key is reported at `otel.<key>`."""
    code, output = validate(tmp_path, "[otel]\nsample_ratio = 2\n")
    assert code == 1
    assert "error: otel.sample_ratio: must be from 0 to 1, got 2" in output


def test_proxy_run_refuses_to_start_with_a_failing_factory(tmp_path: Path) -> None:
    """`mcpr proxy run` exits 1 with one line naming the sink when its factory raises."""
    path = tmp_path / "mcpr.toml"
    path.write_text(UPSTREAM + 'port = 0\nadmin = "none"\n[[sinks]]\nuse = "crashing"\n')
    result = CliRunner().invoke(cli, ["proxy", "run", str(path)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "mcpr: sinks[0]: the factory tests.integrations.sample_sinks:crashing raised "
        "RuntimeError('disk on fire')"
    ]
