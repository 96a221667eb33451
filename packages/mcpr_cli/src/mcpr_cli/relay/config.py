"""The `[relay]` table of the configuration `mcpr relay run` reads.

    [relay]
    domain = "tunnel.example.com"   # required: tunnels get <subdomain>.<domain>
    bind = "127.0.0.1"
    port = 8080
    scheme = "https"                # of the public URLs handed to clients (TLS is terminated
    public_port = 443               # in front of the relay); http URLs default to `port`
    request_timeout = "5m"          # how long a public request waits for its answer's head
    streaming = true                # offer streamed answers (false: whole bodies, as the
                                    # reference relay does)

    [[relay.tokens]]
    token = "s3cret"
    subdomains = ["demo", "demo-*"] # globs: which subdomains this token may register

Every problem is reported at once with its key path (`relay.tokens[1].subdomains`),
unknown keys are warnings, anything else is an error, and any error means no config.
Tokens never appear in a message or a repr.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from mcpr_core.config import Problem, parse_duration

__all__ = ["RelayConfig", "TokenRule", "load_relay_config", "valid_subdomain"]

_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_GLOB: Final = re.compile(r"[a-z0-9*?-]{1,63}")
_DOMAIN: Final = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9-]{1,63}")


def valid_subdomain(name: str) -> bool:
    """True for one DNS label: a-z 0-9 and inner hyphens, at most 63 characters."""
    return _LABEL.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class TokenRule:
    """A static token and the subdomain globs it may register."""

    token: str = field(repr=False)
    subdomains: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """A validated `[relay]` table (build it with `load_relay_config`)."""

    domain: str
    tokens: tuple[TokenRule, ...]
    bind: str = "127.0.0.1"
    port: int = 8080
    scheme: Literal["http", "https"] = "https"
    public_port: int | None = None
    request_timeout: float = 300.0
    streaming: bool = True

    def public_url(self, subdomain: str, listening_port: int) -> str:
        """The URL public clients use for `subdomain`."""
        port = self.public_port
        if port is None and self.scheme == "http":
            port = listening_port
        default = 443 if self.scheme == "https" else 80
        suffix = f":{port}" if port is not None and port != default else ""
        return f"{self.scheme}://{subdomain}.{self.domain}{suffix}"


def _describe(value: object) -> str:
    return "a table" if isinstance(value, Mapping) else type(value).__name__


def _port(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise ValueError("expected an integer from 0 to 65535")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty string")
    return value


def _domain(value: object) -> str:
    text = _text(value).strip().lower().rstrip(".")
    if _DOMAIN.fullmatch(text) is None:
        raise ValueError(f'expected a domain such as "tunnel.example.com", got {text[:80]!r}')
    return text


def _scheme(value: object) -> str:
    if value not in ("http", "https"):
        raise ValueError('expected "http" or "https"')
    return str(value)


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


def _duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("must be greater than zero")
    return seconds


_CHECKS: Final = {
    "domain": _domain,
    "bind": _text,
    "port": _port,
    "scheme": _scheme,
    "public_port": _port,
    "request_timeout": _duration,
    "streaming": _boolean,
}


def _token_rule(path: str, value: object, problems: list[Problem]) -> TokenRule | None:
    if not isinstance(value, Mapping):
        problems.append(Problem(path, f"expected a table, got {_describe(value)}", "error"))
        return None
    for key in value:
        if key not in ("token", "subdomains"):
            problems.append(Problem(f"{path}.{key}", "unknown key", "warning"))
    token = value.get("token")
    ok = True
    if not isinstance(token, str) or not token or any(c.isspace() for c in token):
        problems.append(Problem(f"{path}.token", "required: a string without spaces", "error"))
        ok = False
    globs = value.get("subdomains", ["*"])
    if not isinstance(globs, list) or not globs or not all(isinstance(g, str) for g in globs):
        message = 'expected a non-empty array of globs such as ["demo", "demo-*"]'
        problems.append(Problem(f"{path}.subdomains", message, "error"))
        return None
    for glob in globs:
        if _GLOB.fullmatch(glob.lower()) is None:
            message = f"{glob[:80]!r} is not a subdomain glob (a-z 0-9 - * ?)"
            problems.append(Problem(f"{path}.subdomains", message, "error"))
            ok = False
    if not ok:
        return None
    assert isinstance(token, str)
    return TokenRule(token, tuple(glob.lower() for glob in globs))


def load_relay_config(data: Mapping[str, Any]) -> tuple[RelayConfig | None, tuple[Problem, ...]]:
    """Validate the `[relay]` table of a parsed TOML mapping (the whole file's mapping)."""
    table = data.get("relay")
    if not isinstance(table, Mapping):
        got = "it is missing" if table is None else f"got {_describe(table)}"
        return None, (Problem("relay", f"expected a [relay] table; {got}", "error"),)
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key == "tokens":
            continue
        check = _CHECKS.get(key)
        if check is None:
            problems.append(Problem(f"relay.{key}", "unknown key", "warning"))
            continue
        try:
            values[key] = check(value)
        except ValueError as exc:
            problems.append(Problem(f"relay.{key}", str(exc), "error"))
    if "domain" not in table:
        problems.append(Problem("relay.domain", 'required, e.g. "tunnel.example.com"', "error"))
    tokens = table.get("tokens")
    rules: list[TokenRule | None] = []
    if not isinstance(tokens, list) or not tokens:
        message = "required: at least one [[relay.tokens]] table with token and subdomains"
        problems.append(Problem("relay.tokens", message, "error"))
    else:
        rules = [_token_rule(f"relay.tokens[{i}]", t, problems) for i, t in enumerate(tokens)]
    if any(p.severity == "error" for p in problems):
        return None, tuple(problems)
    values["tokens"] = tuple(rule for rule in rules if rule is not None)
    return RelayConfig(**values), tuple(problems)
