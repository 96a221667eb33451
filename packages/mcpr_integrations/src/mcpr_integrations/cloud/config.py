"""The `[cloud]` table of `mcpr.toml`: where and how the cloud sink uploads events.

    [cloud]
    token = "mcpr_…"            # required: without it nothing is sent
    server = "weather-prod"     # slug stamped on every uploaded event as "server"
    endpoint = "https://api.mcpr.app"
    batch_size = 100            # events per POST
    flush_interval_ms = 5000    # a partial batch waits at most this long
    max_buffer = 10000          # events held while the cloud is slow; more are dropped

Rules, as for the rest of the file (`mcpr_core.config`): every problem is reported at once
with its key path (`cloud.batch_size`), unknown keys are warnings, anything else is an
error and any error means no cloud config. The token is a secret: it never appears in a
problem message or a repr.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mcpr_core.config import Problem
from mcpr_core.routing import parse_upstream_url

__all__ = [
    "DEFAULT_ENDPOINT",
    "CloudConfig",
    "ingest_url",
    "load_cloud_config",
    "parse_endpoint",
    "valid_slug",
]

DEFAULT_ENDPOINT = "https://api.mcpr.app"
DEFAULT_BATCH_SIZE = 100
DEFAULT_FLUSH_INTERVAL_MS = 5000
DEFAULT_MAX_BUFFER = 10_000

_SLUG = re.compile(r"[A-Za-z0-9._-]{1,64}")
_TOKEN_MAX = 4096
_KEYS = ["token", "server", "endpoint", "batch_size", "flush_interval_ms", "max_buffer"]


@dataclass(frozen=True, slots=True)
class CloudConfig:
    """A validated `[cloud]` table. Build it with `load_cloud_config`.

    `endpoint` has no trailing slash. `token` is left out of the repr.
    """

    token: str = field(repr=False)
    server: str | None = None
    endpoint: str = DEFAULT_ENDPOINT
    batch_size: int = DEFAULT_BATCH_SIZE
    flush_interval_ms: int = DEFAULT_FLUSH_INTERVAL_MS
    max_buffer: int = DEFAULT_MAX_BUFFER


def ingest_url(endpoint: str) -> str:
    """The URL events are POSTed to: `<endpoint>/api/ingest-events`."""
    return endpoint.rstrip("/") + "/api/ingest-events"


def valid_slug(text: str) -> bool:
    """True for 1-64 characters from A-Z a-z 0-9 . _ - (server and project slugs)."""
    return _SLUG.fullmatch(text) is not None


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    return f"a {type(value).__name__}"


def _token(value: object) -> str:
    # Messages here never quote the value: it is the secret.
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {_describe(value)}")
    if not value:
        raise ValueError("must not be empty (leave [cloud] out to send nothing)")
    if len(value) > _TOKEN_MAX or any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError("must be the token as given, without spaces or control characters")
    return value


def _slug(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {_describe(value)}")
    if not valid_slug(value):
        raise ValueError(f"must be 1-64 characters from A-Z a-z 0-9 . _ -, got {value[:80]!r}")
    return value


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_endpoint(value: object) -> str:
    """Validate a cloud endpoint URL; return it without trailing slash (ValueError if bad)."""
    if not isinstance(value, str):
        raise ValueError(f"expected a URL, got {_describe(value)}")
    url = parse_upstream_url(value)  # its ValueError messages are written for users
    if url.query:
        raise ValueError("must not carry a query ('?...')")
    if url.scheme == "http" and not _is_loopback(url.host):
        # The token travels in a header: in clear text anyone on the path could reuse it.
        raise ValueError(
            "must use https (http only for localhost): the token would travel in clear"
        )
    return value.rstrip("/")


def _integer(low: int, high: int) -> Callable[[object], int]:
    def check(value: object) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"expected an integer, got {_describe(value)}")
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    return check


_CHECKS: dict[str, Callable[[object], object]] = {
    "token": _token,
    "server": _slug,
    "endpoint": parse_endpoint,
    "batch_size": _integer(1, 10_000),
    "flush_interval_ms": _integer(10, 3_600_000),
    "max_buffer": _integer(1, 1_000_000),
}


def _unknown(key: str) -> Problem:
    close = difflib.get_close_matches(key, _KEYS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return Problem(f"cloud.{key}", f"unknown key{hint}", "warning")


def load_cloud_config(data: Mapping[str, Any]) -> tuple[CloudConfig | None, tuple[Problem, ...]]:
    """Validate the `[cloud]` table of a parsed `mcpr.toml` mapping (the whole file's mapping).

    Returns (None, ()) when there is no `[cloud]` table, and None with problems when the table
    is invalid. A table without `token` is a warning, not an error: nothing is sent.
    """
    table = data.get("cloud")
    if table is None:
        return None, ()
    if not isinstance(table, Mapping):
        return None, (Problem("cloud", f"expected a table, got {_describe(table)}", "error"),)
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for key, value in table.items():
        check = _CHECKS.get(str(key))
        if check is None:
            problems.append(_unknown(str(key)))
            continue
        try:
            values[str(key)] = check(value)
        except ValueError as exc:
            problems.append(Problem(f"cloud.{key}", str(exc), "error"))
    buffer = values.get("max_buffer", DEFAULT_MAX_BUFFER)
    batch = values.get("batch_size", DEFAULT_BATCH_SIZE)
    if isinstance(buffer, int) and isinstance(batch, int) and buffer < batch:
        message = f"must be at least batch_size ({batch}), got {buffer}"
        problems.append(Problem("cloud.max_buffer", message, "error"))
    if "token" not in table:
        message = "not set: events are not sent to the cloud (run `mcpr proxy setup`)"
        problems.append(Problem("cloud.token", message, "warning"))
    if any(p.severity == "error" for p in problems) or "token" not in values:
        return None, tuple(problems)
    return CloudConfig(**values), tuple(problems)
