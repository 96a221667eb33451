"""The configuration model: an already-parsed `mcpr.toml` mapping in, a frozen config out.

Rules of this module:

* It never reads a file or the environment itself. The CLI parses the TOML file, calls
  `env_overrides(os.environ)`, merges its own flags over that, and passes both mappings to
  `load_config`. Priority is flags > `MCPR_*` environment > file > defaults (PRODUCT.md §7).
* Every problem is reported at once, each with the key path it concerns (`port`,
  `csp.widget[2].match`, `env MCPR_PORT`), so one run of `mcpr validate` shows them all.
  Unknown keys are warnings (with a suggestion when one is close), everything else is an
  error, and any error means no config.
* Field names are the TOML keys. The `[csp]` sub-tables use the camelCase keys of the MCP
  Apps metadata they configure (`connectDomains`, …), as the reference tool does.
* Sizes are bytes or strings such as "5MiB", "64KB", "10mb". Like Kubernetes quantities,
  K/M/G (and KB/MB/GB) are powers of 1000 and Ki/Mi/Gi (KiB/MiB/GiB) powers of 1024.
  Durations are seconds or strings such as "30s", "500ms", "2m", "1h30m".
* TOML has booleans distinct from integers; so does this loader (`port = true` is an error,
  although `isinstance(True, int)` holds in Python).
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Final, Literal

from mcpr_core.fleet import check_replica
from mcpr_core.routing import UpstreamURL, parse_upstream_url

__all__ = [
    "RELOADABLE",
    "RESERVED_TABLES",
    "CspConfig",
    "CspDirective",
    "FleetConfig",
    "LoadResult",
    "Problem",
    "ProxyConfig",
    "WidgetRule",
    "env_overrides",
    "load_config",
    "parse_duration",
    "parse_size",
    "restart_fields",
]

Mode = Literal["extend", "replace"]
Severity = Literal["error", "warning"]

_KIB = 1024
_MIB = 1024 * _KIB

#: Top-level tables that belong to other packages (the cloud, OpenTelemetry and custom sinks
#: in mcpr_integrations, PRODUCT.md §6; the tunnel and the relay in mcpr_cli). They are
#: skipped here, neither validated nor warned about.
RESERVED_TABLES = frozenset({"cloud", "otel", "relay", "sinks", "tunnel"})


@dataclass(frozen=True, slots=True)
class CspDirective:
    """Domains configured for one CSP directive, and whether they extend or replace."""

    domains: tuple[str, ...] = ()
    mode: Mode = "extend"


@dataclass(frozen=True, slots=True)
class WidgetRule:
    """A `[[csp.widget]]` rule, applied to widgets whose URI matches the `match` glob.

    A directive left as None is not touched by the rule. A mode left as None means the
    rule did not say; the CSP rewriter applies its default (extend). A mode given without
    its domains is kept with an empty domain list, so `replace` empties the directive.
    """

    match: str
    connect_domains: tuple[str, ...] | None = None
    connect_domains_mode: Mode | None = None
    resource_domains: tuple[str, ...] | None = None
    resource_domains_mode: Mode | None = None
    frame_domains: tuple[str, ...] | None = None
    frame_domains_mode: Mode | None = None
    base_uri_domains: tuple[str, ...] | None = None
    base_uri_domains_mode: Mode | None = None
    redirect_domains: tuple[str, ...] | None = None
    redirect_domains_mode: Mode | None = None
    ui_domain: str | None = None


@dataclass(frozen=True, slots=True)
class CspConfig:
    """The `[csp]` table (PRODUCT.md §3). Hot-reloadable: the driver swaps the whole value."""

    domain: str | None = None
    ui_domain: str | None = None
    connect_domains: CspDirective = CspDirective(mode="extend")
    resource_domains: CspDirective = CspDirective(mode="extend")
    # Frames default to replace: an upstream's localhost frame sources are never wanted.
    frame_domains: CspDirective = CspDirective(mode="replace")
    widgets: tuple[WidgetRule, ...] = ()


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """The `[fleet]` table: this proxy's name among the replicas behind one load balancer.

    With `replica` set, every session id the upstream mints reaches the client as
    `replica + "." + id`, so a balancer can route on it (`mcpr_core.fleet`); None (the
    default) changes nothing.
    """

    replica: str | None = None


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """One proxy's configuration. Build it with `load_config`, which validates every field.

    Constructing it directly validates only `mcp` (ValueError), since `upstream` needs it.
    """

    mcp: str
    name: str = "default"
    bind: str = "127.0.0.1"  # loopback unless told otherwise (PRODUCT.md §9)
    port: int = 3000
    public_url: str | None = None
    backend: Literal["asyncio", "trio"] = "asyncio"
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    strict_headers: bool = False
    # Limits from PRODUCT.md §2.5 (the reference tool's values).
    max_request_body_size: int = 5 * _MIB
    max_response_body_size: int = 10 * _MIB
    max_header_size: int = 64 * _KIB
    max_concurrent_upstream: int = 100
    connect_timeout: float = 5.0
    request_timeout: float = 30.0
    drain_timeout: float = 30.0
    header_timeout: float = 10.0
    idle_timeout: float = 75.0  # nginx's keepalive_timeout default
    ca_file: str | None = None
    session_ttl: float = 3600.0
    # An SSE comment written on a response stream idle this long (0 = never), so that load
    # balancers with idle timeouts keep long tool calls and listen streams open.
    sse_keepalive: float = 0.0
    admin: str = "127.0.0.1:9901"
    # The upstream health probe (PRODUCT.md §8): an `initialize` every 10 s, 5 s to answer.
    probe_interval: float = 10.0
    probe_timeout: float = 5.0
    log_format: Literal["auto", "pretty", "json"] = "auto"
    events_format: Literal["pretty", "json", "off"] = "pretty"
    csp: CspConfig = CspConfig()
    fleet: FleetConfig = FleetConfig()
    _upstream: UpstreamURL = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_upstream", parse_upstream_url(self.mcp))

    @property
    def upstream(self) -> UpstreamURL:
        """The parsed `mcp` URL."""
        return self._upstream

    @property
    def admin_address(self) -> tuple[str, int] | None:
        """The admin listener as (host, port), IPv6 without brackets; None when disabled."""
        return _split_address(self.admin)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a configuration, at a key path such as `csp.widget[2].match`."""

    path: str
    message: str
    severity: Severity


@dataclass(frozen=True, slots=True)
class LoadResult:
    """The outcome of `load_config`: `config` is None exactly when some problem is an error."""

    config: ProxyConfig | None
    problems: tuple[Problem, ...]

    @property
    def errors(self) -> tuple[Problem, ...]:
        """The problems of severity "error"."""
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        """The problems of severity "warning"."""
        return tuple(p for p in self.problems if p.severity == "warning")


# --- value parsers: each returns the normalised value or raises ValueError -------------------

_SIZE = re.compile(r"([0-9]+)(?:\.([0-9]+))?\s*([a-z]*)")
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "ki": 2**10, "kib": 2**10,
    "m": 10**6, "mb": 10**6, "mi": 2**20, "mib": 2**20,
    "g": 10**9, "gb": 10**9, "gi": 2**30, "gib": 2**30,
}  # fmt: skip
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HOSTNAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_-]+)*\.?")


def _describe(value: object) -> str:
    """Name a value's type the way a TOML user thinks of it."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return f"the string {value[:60]!r}"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    return f"a {type(value).__name__}"


def parse_size(value: int | str) -> int:
    """Return a byte count from an int or a string such as "5MiB", "64KB" or "1.5 mb".

    Raises ValueError for anything else, including booleans and negative numbers.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"expected a non-negative size, got {value}")
        return value
    if not isinstance(value, str):
        raise ValueError(f'expected bytes or a size like "5MiB", got {_describe(value)}')
    match = _SIZE.fullmatch(value.strip().lower())
    if match is None or match.group(3) not in _SIZE_UNITS:
        raise ValueError(f'expected a size like "5MiB", "64KB" or "10mb", got {value!r}')
    whole, fraction, unit = match.groups()
    scale = _SIZE_UNITS[unit]
    size = int(whole) * scale
    if fraction:
        # Integer arithmetic, so "0.1MiB" is exactly floor(104857.6) on every platform.
        size += int(fraction) * scale // 10 ** len(fraction)
    return size


def parse_duration(value: float | str) -> float:
    """Return seconds from a number or a string such as "30s", "500ms", "2m" or "1h30m".

    A bare number (or numeric string) is seconds. Raises ValueError for anything else,
    including booleans, negative, infinite and NaN values.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:  # an integer too large for a float
            seconds = math.inf
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"expected a finite, non-negative duration, got {value}")
        return seconds
    if not isinstance(value, str):
        raise ValueError(f'expected seconds or a duration like "30s", got {_describe(value)}')
    text = value.strip().lower()
    if _NUMBER.fullmatch(text):
        return float(text)
    parts = _DURATION_PART.findall(text)
    if not text or "".join(n + u for n, u in parts) != text.replace(" ", ""):
        raise ValueError(f'expected a duration like "30s", "500ms" or "2m", got {value!r}')
    seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    if not math.isfinite(seconds):
        raise ValueError(f"expected a finite duration, got {value!r}")
    return seconds


def _split_address(text: str) -> tuple[str, int] | None:
    """Parse "host:port" / "[v6]:port"; None for "none". Raises ValueError when malformed."""
    if text.lower() == "none":
        return None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    else:
        host, sep, port_text = text.rpartition(":")
        port = port_text if sep and ":" not in host else None
    if port is None or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f'expected "host:port" (port 0-65535) or "none", got {text!r}')
    return _check_host(host), int(port)


def _check_host(host: str) -> str:
    """Validate a listening host: an IP literal (IPv6 with or without brackets) or a name."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    if _HOSTNAME.fullmatch(bare) is None:
        raise ValueError(f"expected an IP address or a host name, got {host!r}")
    return bare


# --- key checks: each validates and normalises one value -------------------------------------


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {_describe(value)}")
    if not value.strip():
        raise ValueError("must not be empty (leave the key out for the default)")
    return value


def _name(value: object) -> str:
    text = _string(value)
    if _NAME.fullmatch(text) is None:
        raise ValueError(f"must be 1-64 characters from A-Z a-z 0-9 . _ -, got {text!r}")
    return text


def _url(value: object) -> str:
    text = _string(value)
    parse_upstream_url(text)  # its ValueError messages are written for users
    return text


def _choice(*options: str) -> Callable[[object], str]:
    def check(value: object) -> str:
        if value not in options:
            listed = ", ".join(repr(o) for o in options)
            raise ValueError(f"expected one of {listed}, got {_describe(value)}")
        return str(value)

    return check


def _integer(low: int, high: int) -> Callable[[object], int]:
    def check(value: object) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"expected an integer, got {_describe(value)}")
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    return check


def _size(value: Any) -> int:
    size = parse_size(value)  # it rejects other types itself
    if size < 1:
        raise ValueError("must be at least 1 byte")
    return size


def _duration(*, allow_zero: bool) -> Callable[[object], float]:
    def check(value: Any) -> float:
        seconds = parse_duration(value)  # it rejects other types itself
        if seconds == 0 and not allow_zero:
            raise ValueError("must be greater than zero")
        return seconds

    return check


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {_describe(value)}")
    return value


def _host_list(value: object) -> tuple[str, ...]:
    return tuple(_token(item, "a host pattern") for item in _array(value))


def _origin_list(value: object) -> tuple[str, ...]:
    origins = []
    for item in _array(value):
        origin = _token(item, "an origin").rstrip("/")
        if origin not in ("*", "null") and "://" not in origin:
            raise ValueError(f'expected origins like "https://chatgpt.com", got {item!r}')
        if "/" in origin.partition("://")[2]:
            raise ValueError(f"an origin has no path, got {item!r}")
        origins.append(origin)
    return tuple(origins)


def _array(value: object) -> list[object]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"expected an array, got {_describe(value)}")
    return list(value)


def _token(item: object, what: str) -> str:
    """A non-empty string without whitespace, separators or control characters."""
    if not isinstance(item, str):
        raise ValueError(f"expected {what} (a string), got {_describe(item)}")
    if not item or any(c.isspace() or c in ",;" or ord(c) < 0x20 for c in item):
        raise ValueError(f"expected {what} without spaces, commas or semicolons, got {item!r}")
    return item


def _admin(value: object) -> str:
    text = _string(value)
    return "none" if _split_address(text) is None else text


def _replica(value: object) -> str:
    return check_replica(_string(value))


def _bind(value: object) -> str:
    return _check_host(_string(value))


def _csp_domain(value: object) -> str:
    """A host name, given with or without scheme and trailing slash (both are stripped)."""
    text = _string(value).strip()
    for scheme in ("https://", "http://"):
        if text.lower().startswith(scheme):
            text = text[len(scheme) :]
    text = text.rstrip("/")
    if not text or "/" in text or any(c.isspace() for c in text):
        raise ValueError(f'expected a domain such as "widgets.example.com", got {value!r}')
    return text


@dataclass(frozen=True, slots=True)
class _Key:
    """How to check one top-level key, and how to read it from an environment string."""

    check: Callable[[Any], Any]
    from_env: Callable[[str], object] = str


def _env_int(text: str) -> object:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected an integer, got {text!r}") from None


def _env_bool(text: str) -> object:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true/false, 1/0, yes/no or on/off, got {text!r}")


def _env_list(text: str) -> object:
    return [item.strip() for item in text.split(",") if item.strip()]


_DURATION = _duration(allow_zero=False)

_KEYS: dict[str, _Key] = {
    "mcp": _Key(_url),
    "name": _Key(_name),
    "bind": _Key(_bind),
    "port": _Key(_integer(0, 65535), _env_int),
    "public_url": _Key(_url),
    "backend": _Key(_choice("asyncio", "trio")),
    "allowed_hosts": _Key(_host_list, _env_list),
    "allowed_origins": _Key(_origin_list, _env_list),
    "strict_headers": _Key(_boolean, _env_bool),
    "max_request_body_size": _Key(_size),
    "max_response_body_size": _Key(_size),
    "max_header_size": _Key(_size),
    "max_concurrent_upstream": _Key(_integer(1, 1_000_000), _env_int),
    "connect_timeout": _Key(_DURATION),
    "request_timeout": _Key(_DURATION),
    "drain_timeout": _Key(_duration(allow_zero=True)),  # 0 = exit without waiting
    "header_timeout": _Key(_DURATION),
    "idle_timeout": _Key(_DURATION),
    "ca_file": _Key(_string),
    "session_ttl": _Key(_DURATION),
    "sse_keepalive": _Key(_duration(allow_zero=True)),  # 0 = off
    "admin": _Key(_admin),
    "probe_interval": _Key(_DURATION),
    "probe_timeout": _Key(_DURATION),
    "log_format": _Key(_choice("auto", "pretty", "json")),
    "events_format": _Key(_choice("pretty", "json", "off")),
}
# Flat override keys that land inside a table (flags and environment are flat).
_NESTED_OVERRIDES: dict[str, tuple[str, str, _Key]] = {
    "csp_domain": ("csp", "domain", _Key(_csp_domain)),
    "fleet_replica": ("fleet", "replica", _Key(_replica)),
}


def _unknown(path: str, key: str, known: list[str]) -> Problem:
    """A warning for an unknown key, suggesting the closest known one."""
    squashed = {k.replace("_", "").lower(): k for k in known}
    guess = squashed.get(key.replace("_", "").replace("-", "").lower())
    if guess is None:
        close = difflib.get_close_matches(key, known, n=1)
        guess = close[0] if close else None
    hint = f"; did you mean {guess!r}?" if guess else ""
    return Problem(path, f"unknown key{hint}", "warning")


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


# --- the [csp] table -------------------------------------------------------------------------

_DIRECTIVES: dict[str, tuple[str, Mode]] = {  # TOML key -> (field, default mode)
    "connectDomains": ("connect_domains", "extend"),
    "resourceDomains": ("resource_domains", "extend"),
    "frameDomains": ("frame_domains", "replace"),
}
_WIDGET_DIRECTIVES = {
    "connectDomains": "connect_domains",
    "resourceDomains": "resource_domains",
    "frameDomains": "frame_domains",
    "baseUriDomains": "base_uri_domains",
    "redirectDomains": "redirect_domains",
}
_WIDGET_KEYS = ["match", "uiDomain", *_WIDGET_DIRECTIVES, *(k + "Mode" for k in _WIDGET_DIRECTIVES)]
_MODE = _choice("extend", "replace")


def _domains(value: object) -> tuple[str, ...]:
    return tuple(_token(item, "a CSP source") for item in _array(value))


class _Collector:
    """Accumulates problems while walking a table, so every one is reported."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def check(self, path: str, checker: Callable[[Any], Any], value: object) -> Any:
        try:
            return checker(value)
        except ValueError as exc:
            self.problems.append(Problem(path, str(exc), "error"))
            return None

    def table(self, path: str, value: object, known: list[str]) -> Mapping[str, Any] | None:
        if not isinstance(value, Mapping):
            self.problems.append(
                Problem(path, f"expected a table, got {_describe(value)}", "error")
            )
            return None
        for key in value:
            if key not in known:
                self.problems.append(_unknown(_join(path, str(key)), str(key), known))
        return value


def _load_directive(out: _Collector, path: str, value: object, default: Mode) -> CspDirective:
    table = out.table(path, value, ["domains", "mode"])
    if table is None:
        return CspDirective(mode=default)
    domains = out.check(f"{path}.domains", _domains, table.get("domains", []))
    mode = out.check(f"{path}.mode", _MODE, table.get("mode", default))
    return CspDirective(domains=domains or (), mode=mode or default)


def _load_widget(out: _Collector, path: str, value: object) -> WidgetRule | None:
    table = out.table(path, value, _WIDGET_KEYS)
    if table is None:
        return None
    fields: dict[str, Any] = {"match": None}
    if "match" in table:
        fields["match"] = out.check(f"{path}.match", _string, table["match"])
    else:
        message = 'required: a URI glob such as "ui://*"'
        out.problems.append(Problem(f"{path}.match", message, "error"))
    if "uiDomain" in table:
        fields["ui_domain"] = out.check(f"{path}.uiDomain", _string, table["uiDomain"])
    for key, name in _WIDGET_DIRECTIVES.items():
        if key in table:
            fields[name] = out.check(f"{path}.{key}", _domains, table[key])
        if key + "Mode" in table:
            fields[name + "_mode"] = out.check(f"{path}.{key}Mode", _MODE, table[key + "Mode"])
            fields.setdefault(name, ())
    if any(v is None for v in fields.values()):
        return None
    return WidgetRule(**fields)


def _load_fleet(out: _Collector, value: object) -> FleetConfig | None:
    table = out.table("fleet", value, ["replica"])
    if table is None:
        return None
    if "replica" not in table:
        return FleetConfig()
    replica = out.check("fleet.replica", _replica, table["replica"])
    return None if replica is None else FleetConfig(replica=replica)


def _load_csp(out: _Collector, value: object) -> CspConfig | None:
    table = out.table("csp", value, ["domain", "ui_domain", *_DIRECTIVES, "widget"])
    if table is None:
        return None
    fields: dict[str, Any] = {}
    if "domain" in table:
        fields["domain"] = out.check("csp.domain", _csp_domain, table["domain"])
    if "ui_domain" in table:
        fields["ui_domain"] = out.check("csp.ui_domain", _string, table["ui_domain"])
    for key, (name, default) in _DIRECTIVES.items():
        if key in table:
            fields[name] = _load_directive(out, f"csp.{key}", table[key], default)
    rules = table.get("widget", [])
    if not isinstance(rules, list):
        message = f"expected an array of tables ([[csp.widget]]), got {_describe(rules)}"
        out.problems.append(Problem("csp.widget", message, "error"))
        rules = []
    fields["widgets"] = tuple(_load_widget(out, f"csp.widget[{i}]", r) for i, r in enumerate(rules))
    if any(v is None for v in fields["widgets"]):
        return None
    return CspConfig(**fields)


# --- entry points ----------------------------------------------------------------------------

_NO_OVERRIDES: Mapping[str, Any] = MappingProxyType({})


def load_config(
    data: Mapping[str, Any], *, overrides: Mapping[str, Any] = _NO_OVERRIDES
) -> LoadResult:
    """Validate a parsed `mcpr.toml` mapping, with flat `overrides` applied over it.

    `overrides` holds top-level keys from flags and `env_overrides` (already merged by the
    caller, flags winning); a None value means "not given" and is skipped; `csp_domain`
    sets `csp.domain` and `fleet_replica` sets `fleet.replica`. Tables named in
    RESERVED_TABLES are left to their owners.
    """
    merged: dict[str, Any] = dict(data)
    for key, value in overrides.items():
        if value is None:
            continue
        if key in _NESTED_OVERRIDES:
            table, inner, _ = _NESTED_OVERRIDES[key]
            current = merged.get(table, {})
            if isinstance(current, Mapping):  # otherwise the table's own error is reported
                merged[table] = {**current, inner: value}
        else:
            merged[key] = value
    out = _Collector()
    values: dict[str, Any] = {}
    for key, value in merged.items():
        if key in RESERVED_TABLES:
            continue
        if key == "csp":
            values["csp"] = _load_csp(out, value)
        elif key == "fleet":
            values["fleet"] = _load_fleet(out, value)
        elif key in _KEYS:
            values[key] = out.check(key, _KEYS[key].check, value)
        else:
            out.problems.append(_unknown(key, str(key), [*_KEYS, "csp", "fleet"]))
    if "mcp" not in merged:
        message = 'required: the upstream MCP server URL, e.g. mcp = "http://127.0.0.1:8000/mcp"'
        out.problems.append(Problem("mcp", message, "error"))
    _check_admin_port(out, values)
    problems = tuple(out.problems)
    if any(p.severity == "error" for p in problems):
        return LoadResult(None, problems)
    return LoadResult(ProxyConfig(**values), problems)


def _check_admin_port(out: _Collector, values: Mapping[str, Any]) -> None:
    """The admin listener and the proxy cannot share an address."""
    defaults = {f.name: f.default for f in dataclasses.fields(ProxyConfig)}
    admin = values.get("admin", defaults["admin"])
    port = values.get("port", defaults["port"])
    bind = values.get("bind", defaults["bind"])
    if admin is None or port is None or bind is None or admin == "none" or port == 0:
        return
    address = _split_address(admin)
    wildcard = {"0.0.0.0", "::"}
    if (
        address is not None
        and address[1] == port
        and (address[0] == bind or address[0] in wildcard or bind in wildcard)
    ):
        out.problems.append(Problem("admin", f"uses port {port}, the proxy's own port", "error"))


def env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, Any], tuple[Problem, ...]]:
    """Read `MCPR_<KEY>` variables into override values for `load_config`.

    Every top-level scalar or list key has one (`MCPR_PORT`, `MCPR_ALLOWED_ORIGINS` as a
    comma list, `MCPR_STRICT_HEADERS` as true/false/1/0/yes/no/on/off, …), plus
    `MCPR_CSP_DOMAIN` for `csp.domain` and `MCPR_FLEET_REPLICA` for `fleet.replica` (a
    Kubernetes pod can take its own name from the downward API). Empty variables count as
    unset; other `MCPR_*` variables (such as `MCPR_DB`) are not ours and are ignored.
    Problems use the path `env MCPR_<KEY>`; a variable with a problem is left out of the
    overrides.
    """
    keys: dict[str, _Key] = {**_KEYS, **{k: v[2] for k, v in _NESTED_OVERRIDES.items()}}
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for key, spec in keys.items():
        variable = f"MCPR_{key.upper()}"
        raw = environ.get(variable, "").strip()
        if not raw:
            continue
        try:
            values[key] = spec.check(spec.from_env(raw))
        except ValueError as exc:
            problems.append(Problem(f"env {variable}", str(exc), "error"))
    return values, tuple(problems)


#: Settings a running proxy can take from a reloaded file (SIGHUP); any other change needs
#: a restart, because it shapes the listener, the upstream pool or the event sinks.
RELOADABLE: Final = frozenset({"csp"})


def restart_fields(old: ProxyConfig, new: ProxyConfig) -> tuple[str, ...]:
    """Names of the settings that differ between `old` and `new` but cannot be reloaded."""
    return tuple(
        f.name
        for f in fields(ProxyConfig)
        if f.name not in RELOADABLE
        and not f.name.startswith("_")
        and getattr(old, f.name) != getattr(new, f.name)
    )
