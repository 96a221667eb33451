"""Tests of the `[cloud]` table: defaults, validation with key paths, and a hidden token."""

from __future__ import annotations

from typing import Any

import pytest

from mcpr_core.config import Problem
from mcpr_integrations.cloud.config import CloudConfig, ingest_url, load_cloud_config

TOKEN = "mcpr_tok_5ecret-Value"


def errors(table: dict[str, Any]) -> dict[str, str]:
    """The error messages of loading `[cloud]` = `table`, by key path."""
    config, problems = load_cloud_config({"cloud": table})
    assert config is None
    return {p.path: p.message for p in problems if p.severity == "error"}


def test_no_cloud_table_means_no_cloud() -> None:
    """A file without `[cloud]` gives no config and no problem."""
    assert load_cloud_config({"mcp": "http://127.0.0.1:9000/mcp"}) == (None, ())


def test_token_alone_takes_the_defaults() -> None:
    """Only `token` is needed; the rest defaults to the documented values."""
    config, problems = load_cloud_config({"cloud": {"token": TOKEN}})
    assert problems == ()
    assert config == CloudConfig(token=TOKEN)
    assert (config.endpoint, config.batch_size, config.flush_interval_ms, config.max_buffer) == (
        "https://api.mcpr.app",
        100,
        5000,
        10_000,
    )
    assert config.server is None


def test_every_key_is_read() -> None:
    """Each key lands in its field; the endpoint loses its trailing slash."""
    table = {
        "token": TOKEN,
        "server": "weather-prod",
        "endpoint": "https://cloud.example.com/base/",
        "batch_size": 50,
        "flush_interval_ms": 250,
        "max_buffer": 500,
    }
    config, problems = load_cloud_config({"cloud": table})
    assert problems == ()
    assert config == CloudConfig(
        token=TOKEN,
        server="weather-prod",
        endpoint="https://cloud.example.com/base",
        batch_size=50,
        flush_interval_ms=250,
        max_buffer=500,
    )
    assert ingest_url(config.endpoint) == "https://cloud.example.com/base/api/ingest-events"


def test_every_problem_is_reported_with_its_path() -> None:
    """Bad values are errors at `cloud.<key>`, all reported in one pass."""
    found = errors(
        {
            "token": TOKEN,
            "server": "has space",
            "endpoint": "ftp://x",
            "batch_size": 0,
            "flush_interval_ms": "5s",
            "max_buffer": True,
        }
    )
    assert set(found) == {
        "cloud.server",
        "cloud.endpoint",
        "cloud.batch_size",
        "cloud.flush_interval_ms",
        "cloud.max_buffer",
    }
    assert "between 1 and 10000" in found["cloud.batch_size"]
    assert "expected an integer, got a string" in found["cloud.flush_interval_ms"]
    assert "got a boolean" in found["cloud.max_buffer"]


def test_plain_http_is_only_for_loopback() -> None:
    """The token must not travel in clear: http is refused unless the host is loopback."""
    assert (
        "must use https"
        in errors({"token": TOKEN, "endpoint": "http://cloud.example.com"})["cloud.endpoint"]
    )
    for local in ("http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:2"):
        config, _ = load_cloud_config({"cloud": {"token": TOKEN, "endpoint": local}})
        assert config is not None


def test_endpoint_with_a_query_is_refused() -> None:
    """The ingest path is appended to the endpoint, so a query cannot be part of it."""
    assert (
        "query" in errors({"token": TOKEN, "endpoint": "https://x.example?a=1"})["cloud.endpoint"]
    )


def test_buffer_smaller_than_a_batch_is_refused() -> None:
    """`max_buffer` must hold at least one full batch."""
    found = errors({"token": TOKEN, "batch_size": 200, "max_buffer": 100})
    assert found == {"cloud.max_buffer": "must be at least batch_size (200), got 100"}


@pytest.mark.parametrize("token", ["", "two words", 42])
def test_bad_tokens_are_refused_without_quoting_them(token: object) -> None:
    """A token that is empty, spaced or not a string is an error whose message omits it."""
    message = errors({"token": token})["cloud.token"]
    assert str(token) not in message or token == ""


def test_unknown_key_is_a_warning_with_a_suggestion() -> None:
    """A misspelt key warns and names the likely one; the config still loads."""
    config, problems = load_cloud_config({"cloud": {"token": TOKEN, "batchsize": 10}})
    assert config is not None
    message = "unknown key; did you mean 'batch_size'?"
    assert problems == (Problem("cloud.batchsize", message, "warning"),)


def test_table_without_token_sends_nothing() -> None:
    """`[cloud]` without `token` is a warning and no config: nothing is uploaded."""
    config, problems = load_cloud_config({"cloud": {"server": "weather"}})
    assert config is None
    [problem] = problems
    assert (problem.path, problem.severity) == ("cloud.token", "warning")


def test_cloud_must_be_a_table() -> None:
    """`cloud = "x"` is an error at `cloud`."""
    config, problems = load_cloud_config({"cloud": "x"})
    assert config is None
    assert problems == (Problem("cloud", "expected a table, got a string", "error"),)


def test_repr_hides_the_token() -> None:
    """The config's repr never shows the token."""
    assert TOKEN not in repr(CloudConfig(token=TOKEN, server="weather"))
