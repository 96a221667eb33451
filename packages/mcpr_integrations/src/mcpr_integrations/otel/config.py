"""The `[otel]` table of `mcpr.toml`: where the OpenTelemetry sink exports, and how.

    [otel]                                  # present: the sink is on
    endpoint = "http://collector:4318"      # OTLP/HTTP base URL: /v1/traces, /v1/metrics
    headers = { authorization = "Bearer …" }
    service_name = "weather-mcp"            # default: OTEL_SERVICE_NAME, else the proxy name
    sample_ratio = 0.25                     # of new traces; a client's decision is kept
    propagate = false                       # true: the upstream's traceparent names mcpr's span

Keys left out fall back to the standard environment variables the OpenTelemetry SDK reads
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_SERVICE_NAME`,
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*`, `OTEL_METRIC_EXPORT_INTERVAL`, …), then to the
SDK's defaults (`http://localhost:4318`); keys set here win over them. Header values may be
secrets: they never appear in a problem message or a repr.

Reading this table imports nothing of OpenTelemetry; a table present without the `otel`
extra installed is an error that says what to install.
"""

from __future__ import annotations

import difflib
import importlib.util
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from mcpr_core.config import Problem
from mcpr_core.routing import parse_upstream_url

__all__ = ["OtelConfig", "load_otel_config", "otel_installed"]

_KEYS: Final = ("endpoint", "headers", "service_name", "sample_ratio", "propagate")
_INSTALL: Final = "pip install 'mcpr-integrations[otel]'"


@dataclass(frozen=True, slots=True)
class OtelConfig:
    """A validated `[otel]` table; None fields defer to the environment and SDK defaults."""

    endpoint: str | None = None
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    service_name: str | None = None
    sample_ratio: float = 1.0
    propagate: bool = False


def otel_installed() -> bool:
    """Whether the `otel` extra (the OpenTelemetry SDK and OTLP/HTTP exporter) is installed."""
    try:
        return all(
            importlib.util.find_spec(name) is not None
            for name in ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http")
        )
    except ModuleNotFoundError:  # find_spec imports the parents: no `opentelemetry` at all
        return False


def _endpoint(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a URL, got {type(value).__name__}")
    url = parse_upstream_url(value)  # http(s), a host, no credentials: messages for users
    if url.query:
        raise ValueError("must not carry a query ('?...')")
    return value.rstrip("/")


def _headers(value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a table of strings, got {type(value).__name__}")
    out: list[tuple[str, str]] = []
    for key, item in value.items():
        name = str(key)
        if not name or not all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in name):
            raise ValueError(f"{name!r} is not a valid HTTP header name")
        if not isinstance(item, str) or any(c in item for c in "\r\n\0"):
            # The value is never quoted: it may be the collector's token.
            raise ValueError(f"the value of {name!r} must be a string on one line")
        out.append((name.lower(), item))
    return tuple(out)


def _service_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty string")
    return value


def _ratio(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number from 0 to 1, got {type(value).__name__}")
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"must be from 0 to 1, got {value}")
    return float(value)


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {type(value).__name__}")
    return value


_CHECKS: dict[str, Callable[[object], object]] = {
    "endpoint": _endpoint,
    "headers": _headers,
    "service_name": _service_name,
    "sample_ratio": _ratio,
    "propagate": _flag,
}


def load_otel_config(
    data: Mapping[str, Any], *, installed: Callable[[], bool] = otel_installed
) -> tuple[OtelConfig | None, tuple[Problem, ...]]:
    """Validate the `[otel]` table of a parsed `mcpr.toml` mapping (the whole file's).

    (None, ()) without the table; None with problems when it is invalid. Unknown keys are
    warnings; everything else is an error.
    """
    table = data.get("otel")
    if table is None:
        return None, ()
    if not isinstance(table, Mapping):
        return None, (Problem("otel", f"expected a table, got {type(table).__name__}", "error"),)
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for key, value in table.items():
        check = _CHECKS.get(str(key))
        if check is None:
            close = difflib.get_close_matches(str(key), _KEYS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(Problem(f"otel.{key}", f"unknown key{hint}", "warning"))
            continue
        try:
            values[str(key)] = check(value)
        except ValueError as exc:
            problems.append(Problem(f"otel.{key}", str(exc), "error"))
    if not installed():
        message = f"the OpenTelemetry sink needs the otel extra: {_INSTALL}"
        problems.append(Problem("otel", message, "error"))
    if any(p.severity == "error" for p in problems):
        return None, tuple(problems)
    return OtelConfig(**values), tuple(problems)
