"""`mcpr validate`: every problem with its key path, exit status 1 on errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mcpr_cli.cli import cli


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in ("MCPR_MCP", "MCPR_PORT", "MCPR_BIND", "MCPR_NAME", "MCPR_CSP_DOMAIN"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def test_valid_file_is_ok(runner: CliRunner, tmp_path: Path) -> None:
    """A correct file is reported ok with its upstream, exit 0."""
    path = tmp_path / "mcpr.toml"
    path.write_text('mcp = "http://127.0.0.1:8000/mcp"\n[csp]\ndomain = "w.example.com"\n')
    result = runner.invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{path}: ok (0 warning(s)); upstream http://127.0.0.1:8000/mcp" in result.output


def test_every_problem_is_listed_with_its_key_path(runner: CliRunner, tmp_path: Path) -> None:
    """Errors and warnings are all printed with key paths, and the exit status is 1."""
    path = tmp_path / "mcpr.toml"
    path.write_text(
        'mcp = "ftp://x"\nprot = 3\n[csp]\ndomain = 5\n[[csp.widget]]\nconnectDomains = []\n'
    )
    result = runner.invoke(cli, ["validate", str(path)])
    assert result.exit_code == 1
    assert "warning: prot: unknown key; did you mean 'port'?" in result.output
    assert "error: csp.domain: expected a string, got an integer" in result.output
    assert "error: mcp:" in result.output
    assert "csp.widget[0].match" in result.output


def test_invalid_toml_is_an_error(runner: CliRunner, tmp_path: Path) -> None:
    """A file that is not TOML is reported as such."""
    path = tmp_path / "mcpr.toml"
    path.write_text("mcp = \n")
    result = runner.invoke(cli, ["validate", str(path)])
    assert result.exit_code == 1
    assert "invalid TOML" in result.output


def test_environment_is_checked_too(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad MCPR_* variable is a problem named after the variable."""
    path = tmp_path / "mcpr.toml"
    path.write_text('mcp = "http://127.0.0.1:8000/mcp"\n')
    monkeypatch.setenv("MCPR_PORT", "eighty")
    result = runner.invoke(cli, ["validate", str(path)])
    assert result.exit_code == 1
    assert "MCPR_PORT" in result.output


def test_nearest_file_is_found_from_a_subfolder(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an argument the nearest mcpr.toml in the folder or its parents is used."""
    (tmp_path / "mcpr.toml").write_text('mcp = "http://127.0.0.1:8000/mcp"\n')
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    result = runner.invoke(cli, ["validate"])
    assert result.exit_code == 0, result.output
    assert str(tmp_path / "mcpr.toml") in result.output
