"""The [relay] table: defaults, every problem with its key path, tokens kept out of messages."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from mcpr_cli.cli import cli
from mcpr_cli.relay.config import RelayConfig, TokenRule, load_relay_config
from mcpr_cli.relay.run import load_relay_file


def test_minimal_table_gets_defaults() -> None:
    """A domain and one token are enough; subdomains default to any."""
    config, problems = load_relay_config(
        {"relay": {"domain": "Tunnel.Example.com.", "tokens": [{"token": "s3cret"}]}}
    )
    assert problems == ()
    assert config == RelayConfig("tunnel.example.com", (TokenRule("s3cret", ("*",)),))
    assert (config.bind, config.port, config.scheme, config.streaming) == (
        "127.0.0.1",
        8080,
        "https",
        True,
    )
    assert "s3cret" not in repr(config)


def test_every_problem_is_reported_with_its_path() -> None:
    """All problems come at once; unknown keys are warnings, the rest errors."""
    config, problems = load_relay_config(
        {
            "relay": {
                "domain": "not a domain",
                "port": 70000,
                "scheme": "ftp",
                "request_timeout": "0s",
                "streaming": "yes",
                "colour": "blue",
                "tokens": [
                    {"token": "has space", "subdomains": ["ok"]},
                    {"token": "t", "subdomains": ["Bad_Glob!"]},
                    "nope",
                    {"token": "t", "subdomains": [], "extra": 1},
                ],
            }
        }
    )
    assert config is None
    found = {(p.path, p.severity) for p in problems}
    assert found == {
        ("relay.domain", "error"),
        ("relay.port", "error"),
        ("relay.scheme", "error"),
        ("relay.request_timeout", "error"),
        ("relay.streaming", "error"),
        ("relay.colour", "warning"),
        ("relay.tokens[0].token", "error"),
        ("relay.tokens[1].subdomains", "error"),
        ("relay.tokens[2]", "error"),
        ("relay.tokens[3].subdomains", "error"),
        ("relay.tokens[3].extra", "warning"),
    }
    assert not any("has space" in p.message for p in problems)


def test_missing_table_and_tokens() -> None:
    """No [relay] table, or one without domain and tokens, is an error naming what is missing."""
    assert load_relay_config({})[1][0].path == "relay"
    _, problems = load_relay_config({"relay": {}})
    assert {p.path for p in problems} == {"relay.domain", "relay.tokens"}


def test_relay_run_reports_problems_and_exits_1(tmp_path: Path) -> None:
    """`mcpr relay run` prints each problem with its key path and exits 1 on errors."""
    path = tmp_path / "relay.toml"
    path.write_text('[relay]\ndomain = "t.example"\nport = "x"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["relay", "run", str(path)])
    assert result.exit_code == 1
    assert "error: relay.port: expected an integer from 0 to 65535" in result.output
    assert "error: relay.tokens: required" in result.output


def test_unreadable_file(tmp_path: Path) -> None:
    """A missing file and invalid TOML are one error each, naming the file."""
    _, problems = load_relay_file(tmp_path / "absent.toml")
    assert "cannot read" in problems[0].message
    bad = tmp_path / "bad.toml"
    bad.write_text("[relay", encoding="utf-8")
    _, problems = load_relay_file(bad)
    assert "invalid TOML" in problems[0].message
