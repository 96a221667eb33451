"""The `[otel]` table: defaults, every problem with its key path, secrets kept out."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from mcpr_integrations.otel.config import OtelConfig, load_otel_config, otel_installed


def load(table: Any, *, installed: bool = True) -> tuple[OtelConfig | None, list[str]]:
    config, problems = load_otel_config({"otel": table}, installed=lambda: installed)
    return config, [f"{p.severity}: {p.path}: {p.message}" for p in problems]


def test_no_table_means_no_sink() -> None:
    """Without [otel] there is no config and nothing to report."""
    assert load_otel_config({"mcp": "http://127.0.0.1:1/mcp"}) == (None, ())


def test_empty_table_defers_to_the_environment() -> None:
    """An empty [otel] turns the sink on with every setting left to env and SDK defaults."""
    assert load({}) == (OtelConfig(), [])


def test_every_key() -> None:
    """All keys are read and normalised (endpoint without trailing slash, header names)."""
    config, problems = load(
        {
            "endpoint": "http://collector:4318/",
            "headers": {"Authorization": "Bearer x"},
            "service_name": "weather",
            "sample_ratio": 1,
            "propagate": True,
        }
    )
    assert problems == []
    assert config == OtelConfig(
        endpoint="http://collector:4318",
        headers=(("authorization", "Bearer x"),),
        service_name="weather",
        sample_ratio=1.0,
        propagate=True,
    )
    assert "Bearer" not in repr(config)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"endpoint": "ftp://x"}, "error: otel.endpoint: URL scheme must be http or https"),
        ({"endpoint": "http://x/?a=1"}, "error: otel.endpoint: must not carry a query"),
        ({"sample_ratio": 1.5}, "error: otel.sample_ratio: must be from 0 to 1, got 1.5"),
        ({"sample_ratio": True}, "error: otel.sample_ratio: expected a number from 0 to 1"),
        ({"propagate": "yes"}, "error: otel.propagate: expected true or false, got str"),
        ({"service_name": " "}, "error: otel.service_name: expected a non-empty string"),
        ({"headers": {"bad name": "v"}}, "error: otel.headers: 'bad name' is not a valid"),
        ({"headers": ["a"]}, "error: otel.headers: expected a table of strings, got list"),
        ({"sample_rate": 0.5}, "warning: otel.sample_rate: unknown key; did you mean"),
    ],
)
def test_problems_have_key_paths(table: dict[str, Any], expected: str) -> None:
    """Each bad key is reported at `otel.<key>`; unknown keys are warnings only."""
    config, problems = load(table)
    assert len(problems) == 1
    assert problems[0].startswith(expected)
    assert (config is None) == expected.startswith("error")


def test_header_values_are_never_quoted() -> None:
    """A header value on several lines is refused without echoing it (it may be a token)."""
    _, problems = load({"headers": {"authorization": "secret\nvalue"}})
    assert problems == [
        "error: otel.headers: the value of 'authorization' must be a string on one line"
    ]


def test_table_of_the_wrong_type() -> None:
    """`otel = 1` is an error on `otel`."""
    assert load(1) == (None, ["error: otel: expected a table, got int"])


def test_missing_extra_says_what_to_install() -> None:
    """[otel] without the extra installed is an error naming the pip command."""
    config, problems = load({}, installed=False)
    assert config is None
    assert problems == [
        "error: otel: the OpenTelemetry sink needs the otel extra: "
        "pip install 'mcpr-integrations[otel]'"
    ]


def test_extra_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    """The extra counts as installed when its modules are found; without any `opentelemetry`
    package (find_spec then raises rather than answering None) it does not."""
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    assert otel_installed()

    def missing(name: str) -> None:
        raise ModuleNotFoundError(f"No module named {name.split('.')[0]!r}")

    monkeypatch.setattr(importlib.util, "find_spec", missing)
    assert not otel_installed()
