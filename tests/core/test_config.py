"""Tests of mcpr_core.config: validation, problems with paths, sizes, durations, overrides, CSP."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from mcpr_core.config import (
    RESERVED_TABLES,
    CspConfig,
    CspDirective,
    LoadResult,
    Problem,
    ProxyConfig,
    WidgetRule,
    env_overrides,
    load_config,
    parse_duration,
    parse_size,
)
from mcpr_core.routing import parse_upstream_url

MCP = "http://127.0.0.1:8000/mcp"


def load(data: dict[str, Any] | None = None, **overrides: Any) -> LoadResult:
    return load_config({"mcp": MCP, **(data or {})}, overrides=overrides)


def config(data: dict[str, Any] | None = None, **overrides: Any) -> ProxyConfig:
    result = load(data, **overrides)
    assert result.problems == ()
    assert result.config is not None
    return result.config


def error(data: dict[str, Any]) -> Problem:
    result = load(data)
    assert result.config is None
    assert len(result.problems) == 1, result.problems
    assert result.problems[0].severity == "error"
    return result.problems[0]


# --- defaults --------------------------------------------------------------------------------


def test_defaults() -> None:
    """A file with only `mcp` gives the documented defaults (PRODUCT.md §2.5, §9)."""
    cfg = config()
    assert cfg == ProxyConfig(mcp=MCP)
    assert (cfg.name, cfg.bind, cfg.port, cfg.public_url) == ("default", "127.0.0.1", 3000, None)
    assert (cfg.backend, cfg.strict_headers) == ("asyncio", False)
    assert (cfg.allowed_hosts, cfg.allowed_origins) == ((), ())
    assert cfg.max_request_body_size == 5 * 1024 * 1024
    assert cfg.max_response_body_size == 10 * 1024 * 1024
    assert cfg.max_header_size == 64 * 1024
    assert cfg.max_concurrent_upstream == 100
    assert (cfg.connect_timeout, cfg.request_timeout, cfg.drain_timeout) == (5.0, 30.0, 30.0)
    assert (cfg.header_timeout, cfg.idle_timeout, cfg.session_ttl) == (10.0, 75.0, 3600.0)
    assert (cfg.ca_file, cfg.admin, cfg.admin_address) == (
        None,
        "127.0.0.1:9901",
        ("127.0.0.1", 9901),
    )
    assert (cfg.log_format, cfg.events_format) == ("auto", "pretty")
    assert (cfg.probe_interval, cfg.probe_timeout) == (10.0, 5.0)
    assert cfg.csp == CspConfig()
    assert cfg.csp.connect_domains == CspDirective((), "extend")
    assert cfg.csp.resource_domains == CspDirective((), "extend")
    assert cfg.csp.frame_domains == CspDirective((), "replace")


def test_upstream_property() -> None:
    """`upstream` is the parsed `mcp` URL."""
    assert config().upstream == parse_upstream_url(MCP)


def test_replace_recomputes_upstream() -> None:
    """dataclasses.replace with a new `mcp` gives a matching `upstream`."""
    cfg = dataclasses.replace(config(), mcp="https://example.com/x")
    assert cfg.upstream.origin == "https://example.com"
    assert cfg.upstream.path == "/x"


def test_direct_construction_validates_mcp() -> None:
    """Building ProxyConfig by hand with an unusable `mcp` raises ValueError."""
    with pytest.raises(ValueError, match="scheme"):
        ProxyConfig(mcp="ftp://x")


def test_config_is_frozen() -> None:
    """A loaded config cannot be mutated."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        config().port = 1  # type: ignore[misc]


def test_missing_mcp_is_an_error() -> None:
    """`mcp` is required and its absence is reported at path `mcp`."""
    result = load_config({"port": 3000})
    assert result.config is None
    assert [(p.path, p.severity) for p in result.problems] == [("mcp", "error")]
    assert "required" in result.problems[0].message


# --- every key: accepted values and their normal form ----------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("mcp", "https://api.example.com/mcp?x=1", "https://api.example.com/mcp?x=1"),
        ("name", "prod-eu.1_a", "prod-eu.1_a"),
        ("name", "x" * 64, "x" * 64),
        ("bind", "0.0.0.0", "0.0.0.0"),
        ("bind", "::", "::"),
        ("bind", "[::1]", "::1"),
        ("bind", "localhost", "localhost"),
        ("bind", "mcp-proxy.internal", "mcp-proxy.internal"),
        ("port", 0, 0),
        ("port", 65535, 65535),
        ("public_url", "https://mcp.example.com/mcp", "https://mcp.example.com/mcp"),
        ("backend", "trio", "trio"),
        ("allowed_hosts", ["mcp.example.com", "*.example.com:443"],
         ("mcp.example.com", "*.example.com:443")),
        ("allowed_hosts", [], ()),
        ("allowed_origins", ["https://chatgpt.com/", "https://*.claude.ai", "*", "null"],
         ("https://chatgpt.com", "https://*.claude.ai", "*", "null")),
        ("strict_headers", True, True),
        ("max_request_body_size", 1, 1),
        ("max_request_body_size", "1MiB", 1024 * 1024),
        ("max_response_body_size", "10mb", 10_000_000),
        ("max_header_size", "64KB", 64_000),
        ("max_header_size", "64 KiB", 65_536),
        ("max_concurrent_upstream", 1, 1),
        ("connect_timeout", 1, 1.0),
        ("connect_timeout", 0.25, 0.25),
        ("request_timeout", "500ms", 0.5),
        ("drain_timeout", 0, 0.0),
        ("drain_timeout", "2m", 120.0),
        ("header_timeout", "10s", 10.0),
        ("idle_timeout", "1m15s", 75.0),
        ("ca_file", "/etc/ssl/ca.pem", "/etc/ssl/ca.pem"),
        ("session_ttl", "1h", 3600.0),
        ("admin", "none", "none"),
        ("admin", "NONE", "none"),
        ("admin", "0.0.0.0:9902", "0.0.0.0:9902"),
        ("admin", "[::1]:9901", "[::1]:9901"),
        ("admin", "localhost:0", "localhost:0"),
        ("probe_interval", "30s", 30.0),
        ("probe_interval", 0.5, 0.5),
        ("probe_timeout", "1500ms", 1.5),
        ("probe_timeout", 2, 2.0),
        ("log_format", "json", "json"),
        ("events_format", "off", "off"),
    ],
)  # fmt: skip
def test_key_accepts(key: str, value: object, expected: object) -> None:
    """Each key accepts its documented forms and stores them normalised."""
    assert getattr(config({key: value}), key) == expected


@pytest.mark.parametrize(
    ("admin", "address"),
    [
        ("none", None),
        ("127.0.0.1:9901", ("127.0.0.1", 9901)),
        ("[::1]:9901", ("::1", 9901)),
        ("localhost:9000", ("localhost", 9000)),
    ],
)
def test_admin_address(admin: str, address: tuple[str, int] | None) -> None:
    """`admin_address` is the admin listener as (host, port), or None when disabled."""
    assert config({"admin": admin}).admin_address == address


# --- every key: rejected values --------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("mcp", 8000, "expected a string, got an integer"),
        ("mcp", "", "must not be empty"),
        ("mcp", "ftp://example.com", "scheme must be http or https"),
        ("mcp", "http:///mcp", "no host"),
        ("mcp", "http://example.com/mcp#x", "fragment"),
        ("mcp", "localhost:8000", "must start with http://"),
        ("name", "", "must not be empty"),
        ("name", "has space", "1-64 characters"),
        ("name", "x" * 65, "1-64 characters"),
        ("name", 1, "expected a string"),
        ("bind", "", "must not be empty"),
        ("bind", "not a host", "IP address or a host name"),
        ("bind", 127, "expected a string"),
        ("port", True, "expected an integer, got a boolean"),
        ("port", "3000", "expected an integer, got the string '3000'"),
        ("port", 3000.0, "expected an integer, got a number"),
        ("port", -1, "between 0 and 65535"),
        ("port", 65536, "between 0 and 65535"),
        ("public_url", "mcp.example.com", "must start with http://"),
        ("public_url", ["https://x"], "expected a string, got an array"),
        ("backend", "uvloop", "expected one of 'asyncio', 'trio'"),
        ("backend", True, "got a boolean"),
        ("allowed_hosts", "mcp.example.com", "expected an array, got the string"),
        ("allowed_hosts", ["ok", 3], "a host pattern (a string), got an integer"),
        ("allowed_hosts", ["a b"], "without spaces"),
        ("allowed_hosts", [""], "without spaces"),
        ("allowed_origins", ["chatgpt.com"], "expected origins like"),
        ("allowed_origins", ["https://chatgpt.com/app"], "no path"),
        ("allowed_origins", {"a": 1}, "expected an array, got a table"),
        ("strict_headers", 1, "expected true or false, got an integer"),
        ("strict_headers", "true", "expected true or false"),
        ("max_request_body_size", 0, "at least 1 byte"),
        ("max_request_body_size", -5, "non-negative"),
        ("max_request_body_size", True, "got a boolean"),
        ("max_request_body_size", 1.5, "got a number"),
        ("max_response_body_size", "10 parsecs", "expected a size like"),
        ("max_header_size", "", "expected a size like"),
        ("max_concurrent_upstream", 0, "between 1 and"),
        ("max_concurrent_upstream", "10", "expected an integer"),
        ("connect_timeout", 0, "greater than zero"),
        ("connect_timeout", -1, "non-negative"),
        ("request_timeout", True, "got a boolean"),
        ("request_timeout", "soon", "expected a duration like"),
        ("request_timeout", float("inf"), "finite"),
        ("request_timeout", float("nan"), "finite"),
        ("drain_timeout", -0.5, "non-negative"),
        ("header_timeout", [], "got an array"),
        ("idle_timeout", "0s", "greater than zero"),
        ("ca_file", "", "must not be empty"),
        ("ca_file", 1, "expected a string"),
        ("session_ttl", "1 week", "expected a duration like"),
        ("admin", "9901", 'expected "host:port"'),
        ("admin", "localhost:99999", 'expected "host:port"'),
        ("admin", "localhost:", 'expected "host:port"'),
        ("admin", "::1:9901", 'expected "host:port"'),
        ("admin", "bad host:9901", "IP address or a host name"),
        ("admin", False, "expected a string"),
        ("probe_interval", 0, "greater than zero"),
        ("probe_interval", "often", "expected a duration like"),
        ("probe_timeout", "0s", "greater than zero"),
        ("probe_timeout", -1, "non-negative"),
        ("probe_timeout", True, "got a boolean"),
        ("log_format", "text", "expected one of 'auto', 'pretty', 'json'"),
        ("events_format", "quiet", "expected one of 'pretty', 'json', 'off'"),
        ("csp", "example.com", "expected a table, got the string"),
    ],
)
def test_key_rejects(key: str, value: object, message: str) -> None:
    """Each key rejects wrong types and values with an error at its own path."""
    problem = error({key: value})
    assert problem.path == key
    assert message in problem.message


def test_several_errors_reported_at_once() -> None:
    """Every problem in a file is reported in one pass, in file order, each with its path."""
    result = load_config(
        {
            "mcp": "ftp://x",
            "port": "eighty",
            "prot": 1,
            "backend": "gevent",
            "csp": {"frameDomains": {"mode": "merge"}, "widget": [{"match": "ui://*"}, {}]},
        }
    )
    assert result.config is None
    assert [(p.path, p.severity) for p in result.problems] == [
        ("mcp", "error"),
        ("port", "error"),
        ("prot", "warning"),
        ("backend", "error"),
        ("csp.frameDomains.mode", "error"),
        ("csp.widget[1].match", "error"),
    ]
    assert [p.path for p in result.errors] == [
        "mcp",
        "port",
        "backend",
        "csp.frameDomains.mode",
        "csp.widget[1].match",
    ]
    assert [p.path for p in result.warnings] == ["prot"]


# --- unknown keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "path", "suggestion"),
    [
        ({"prot": 1}, "prot", "port"),
        ({"request-timeout": 1}, "request-timeout", "request_timeout"),
        ({"maxRequestBodySize": 1}, "maxRequestBodySize", "max_request_body_size"),
        ({"allowed_origin": []}, "allowed_origin", "allowed_origins"),
        ({"zzz": 1}, "zzz", None),
        ({"csp": {"domian": "x.com"}}, "csp.domian", "domain"),
        ({"csp": {"connect_domains": {}}}, "csp.connect_domains", "connectDomains"),
        ({"csp": {"connectDomains": {"domain": []}}}, "csp.connectDomains.domain", "domains"),
        ({"csp": {"widget": [{"match": "*", "frame_domains": []}]}},
         "csp.widget[0].frame_domains", "frameDomains"),
    ],
)  # fmt: skip
def test_unknown_keys_warn_with_suggestion(
    data: dict[str, Any], path: str, suggestion: str | None
) -> None:
    """An unknown key is a warning at its path, naming the closest known key when there is one."""
    result = load(data)
    assert result.config is not None
    (problem,) = result.problems
    assert (problem.path, problem.severity) == (path, "warning")
    assert problem.message.startswith("unknown key")
    if suggestion is None:
        assert "did you mean" not in problem.message
    else:
        assert f"did you mean {suggestion!r}?" in problem.message


@pytest.mark.parametrize("table", sorted(RESERVED_TABLES))
def test_reserved_tables_are_left_alone(table: str) -> None:
    """Tables owned by other packages ([cloud], [[sinks]]) raise no problem here."""
    assert load({table: {"anything": [1, 2]}}).problems == ()


# --- sizes and durations ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (0, 0),
        (1234, 1234),
        ("1234", 1234),
        ("1234b", 1234),
        ("5MiB", 5 * 2**20),
        ("5mib", 5 * 2**20),
        ("5Mi", 5 * 2**20),
        ("5M", 5_000_000),
        ("64KB", 64_000),
        ("64kb", 64_000),
        ("64k", 64_000),
        ("64KiB", 65_536),
        ("10mb", 10_000_000),
        ("1GiB", 2**30),
        ("2gb", 2_000_000_000),
        (" 1.5 KiB ", 1536),
        ("0.1MiB", 104_857),
    ],
)
def test_parse_size(text: int | str, expected: int) -> None:
    """Sizes are bytes or a number with a decimal (KB) or binary (KiB) unit."""
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text", ["", "MiB", "5 MiBs", "5TB", "-5", "1e3", "1.MiB", ".5MiB", True, 1.0, None]
)
def test_parse_size_rejects(text: Any) -> None:
    """Anything that is not bytes or a size string raises ValueError."""
    with pytest.raises(ValueError, match="expected"):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (0, 0.0),
        (30, 30.0),
        (2.5, 2.5),
        ("30", 30.0),
        ("2.5", 2.5),
        ("30s", 30.0),
        ("500ms", 0.5),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1m30s", 90.0),
        ("1h 30m", 5400.0),
        (" 1.5S ", 1.5),
        ("5m5s", 305.0),
    ],
)
def test_parse_duration(text: float | str, expected: float) -> None:
    """Durations are seconds or numbers with ms, s, m, h or d units, possibly combined."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "s", "soon", "30 sec", "1mo", "3 0s", "-1s", "1.5.5s", "1e3", "9" * 400 + "s",
     -1, float("inf"), float("-inf"), float("nan"), 10**400, True, None, [1]],
)  # fmt: skip
def test_parse_duration_rejects(text: Any) -> None:
    """Anything that is not a finite, non-negative duration raises ValueError."""
    with pytest.raises(ValueError, match="expected"):
        parse_duration(text)


# --- env_overrides and priority --------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "raw", "key", "value"),
    [
        ("MCPR_MCP", "https://example.com/mcp", "mcp", "https://example.com/mcp"),
        ("MCPR_PORT", "8080", "port", 8080),
        ("MCPR_PORT", " 0 ", "port", 0),
        ("MCPR_BIND", "0.0.0.0", "bind", "0.0.0.0"),
        ("MCPR_NAME", "edge-1", "name", "edge-1"),
        ("MCPR_PUBLIC_URL", "https://mcp.example.com/mcp", "public_url",
         "https://mcp.example.com/mcp"),
        ("MCPR_BACKEND", "trio", "backend", "trio"),
        ("MCPR_CSP_DOMAIN", "https://widgets.example.com/", "csp_domain", "widgets.example.com"),
        ("MCPR_REQUEST_TIMEOUT", "45", "request_timeout", 45.0),
        ("MCPR_REQUEST_TIMEOUT", "1m", "request_timeout", 60.0),
        ("MCPR_PROBE_INTERVAL", "30s", "probe_interval", 30.0),
        ("MCPR_MAX_REQUEST_BODY_SIZE", "1MiB", "max_request_body_size", 2**20),
        ("MCPR_MAX_CONCURRENT_UPSTREAM", "7", "max_concurrent_upstream", 7),
        ("MCPR_STRICT_HEADERS", "true", "strict_headers", True),
        ("MCPR_STRICT_HEADERS", "YES", "strict_headers", True),
        ("MCPR_STRICT_HEADERS", "on", "strict_headers", True),
        ("MCPR_STRICT_HEADERS", "1", "strict_headers", True),
        ("MCPR_STRICT_HEADERS", "false", "strict_headers", False),
        ("MCPR_STRICT_HEADERS", "0", "strict_headers", False),
        ("MCPR_STRICT_HEADERS", "off", "strict_headers", False),
        ("MCPR_ALLOWED_ORIGINS", "https://chatgpt.com, https://claude.ai/", "allowed_origins",
         ("https://chatgpt.com", "https://claude.ai")),
        ("MCPR_ALLOWED_HOSTS", "a.example.com,,b.example.com,", "allowed_hosts",
         ("a.example.com", "b.example.com")),
        ("MCPR_ALLOWED_HOSTS", ",", "allowed_hosts", ()),
        ("MCPR_ADMIN", "none", "admin", "none"),
        ("MCPR_CA_FILE", "/ca.pem", "ca_file", "/ca.pem"),
        ("MCPR_EVENTS_FORMAT", "json", "events_format", "json"),
    ],
)  # fmt: skip
def test_env_overrides_parse(variable: str, raw: str, key: str, value: object) -> None:
    """Each MCPR_<KEY> variable is parsed to the key's type and normalised."""
    assert env_overrides({variable: raw}) == ({key: value}, ())


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        ("MCPR_PORT", "abc", "expected an integer, got 'abc'"),
        ("MCPR_PORT", "70000", "between 0 and 65535"),
        ("MCPR_PORT", "80.5", "expected an integer"),
        ("MCPR_STRICT_HEADERS", "maybe", "expected true/false"),
        ("MCPR_REQUEST_TIMEOUT", "forever", "expected a duration like"),
        ("MCPR_MAX_HEADER_SIZE", "big", "expected a size like"),
        ("MCPR_BACKEND", "gevent", "expected one of"),
        ("MCPR_MCP", "ftp://x", "scheme"),
        ("MCPR_CSP_DOMAIN", "https://x.com/path", "expected a domain"),
        ("MCPR_ALLOWED_ORIGINS", "chatgpt.com", "expected origins like"),
    ],
)
def test_env_overrides_errors(variable: str, raw: str, message: str) -> None:
    """A bad variable is an error at path `env MCPR_...` and is left out of the overrides."""
    values, problems = env_overrides({variable: raw})
    assert values == {}
    (problem,) = problems
    assert (problem.path, problem.severity) == (f"env {variable}", "error")
    assert message in problem.message


def test_env_overrides_ignores_empty_and_foreign_variables() -> None:
    """Empty variables count as unset; MCPR_* names that are not keys are not ours."""
    environ = {
        "MCPR_PORT": "",
        "MCPR_BIND": "  ",
        "MCPR_DB": "/tmp/x.db",
        "PORT": "1",
        "mcpr_port": "2",
    }
    assert env_overrides(environ) == ({}, ())


def test_env_overrides_reports_all_problems() -> None:
    """Every bad variable is reported, and the good ones still come through."""
    values, problems = env_overrides(
        {"MCPR_PORT": "x", "MCPR_BACKEND": "y", "MCPR_NAME": "ok", "MCPR_CSP": "z"}
    )
    assert values == {"name": "ok"}
    assert sorted(p.path for p in problems) == ["env MCPR_BACKEND", "env MCPR_PORT"]


def test_priority_flags_over_env_over_file_over_defaults() -> None:
    """Callers merge flags over env; both override the file, which overrides defaults."""
    file = {"mcp": MCP, "port": 1000, "bind": "0.0.0.0", "name": "from-file"}
    env, _ = env_overrides({"MCPR_PORT": "2000", "MCPR_NAME": "from-env"})
    flags = {"port": 3001, "bind": None}
    cfg = load_config(file, overrides={**env, **flags}).config
    assert cfg is not None
    assert (cfg.port, cfg.name, cfg.bind, cfg.backend) == (3001, "from-env", "0.0.0.0", "asyncio")


def test_override_none_means_not_given() -> None:
    """An override of None leaves the file's value in place."""
    assert config({"port": 1234}, port=None).port == 1234


def test_override_can_supply_required_mcp() -> None:
    """`mcp` may come from an override alone, with no file."""
    result = load_config({}, overrides={"mcp": MCP})
    assert result.config is not None
    assert result.config.mcp == MCP


def test_override_errors_use_the_key_path() -> None:
    """A bad override value is an error at the key's path, like a file value."""
    result = load({"port": 1}, port="x")
    assert result.config is None
    assert [(p.path, p.severity) for p in result.problems] == [("port", "error")]


def test_csp_domain_override_merges_into_csp_table() -> None:
    """`csp_domain` sets csp.domain (normalised) and keeps the rest of the [csp] table."""
    data = {"csp": {"domain": "old.example.com", "frameDomains": {"domains": ["f.com"]}}}
    cfg = config(data, csp_domain="https://new.example.com/")
    assert cfg.csp.domain == "new.example.com"
    assert cfg.csp.frame_domains == CspDirective(("f.com",), "replace")


def test_csp_domain_override_without_csp_table() -> None:
    """`csp_domain` works when the file has no [csp] table."""
    assert config(csp_domain="w.example.com").csp.domain == "w.example.com"


def test_csp_domain_override_with_broken_csp_table() -> None:
    """When [csp] is not a table, that error is reported and the override does not hide it."""
    result = load({"csp": 5}, csp_domain="w.example.com")
    assert [(p.path, p.severity) for p in result.problems] == [("csp", "error")]


def test_unknown_override_key_warns() -> None:
    """An override key that is no config key is warned about like a file key."""
    result = load(prot=1)
    assert [(p.path, p.severity) for p in result.problems] == [("prot", "warning")]


def test_admin_port_clash() -> None:
    """The admin listener may not take the proxy's own address."""
    for data in (
        {"port": 9901},
        {"port": 9000, "admin": "0.0.0.0:9000"},
        {"port": 9000, "bind": "::", "admin": "127.0.0.1:9000"},
    ):
        problem = error(data)
        assert problem.path == "admin"
        assert "proxy's own port" in problem.message


@pytest.mark.parametrize(
    "data",
    [
        {"port": 9901, "admin": "none"},
        {"port": 0, "admin": "127.0.0.1:0"},
        {"port": 9000, "bind": "127.0.0.1", "admin": "127.0.0.2:9000"},
    ],
)
def test_admin_port_no_clash(data: dict[str, Any]) -> None:
    """A disabled admin, port 0 or a different address is no clash."""
    assert load(data).problems == ()


# --- CSP -------------------------------------------------------------------------------------


def test_csp_full_table() -> None:
    """Every [csp] key is read into CspConfig, with widget rules in file order."""
    csp = config(
        {
            "csp": {
                "domain": "widgets.example.com",
                "ui_domain": "https://ui.example.com",
                "connectDomains": {"domains": ["https://api.example.com"], "mode": "replace"},
                "resourceDomains": {"domains": ["https://cdn.example.com"]},
                "frameDomains": {"domains": ["https://www.youtube.com"], "mode": "extend"},
                "widget": [
                    {
                        "match": "ui://widget/*",
                        "connectDomains": ["https://a.com"],
                        "connectDomainsMode": "replace",
                        "resourceDomains": ["https://r.com"],
                        "resourceDomainsMode": "extend",
                        "frameDomains": ["https://f.com"],
                        "frameDomainsMode": "extend",
                        "baseUriDomains": ["https://b.com"],
                        "baseUriDomainsMode": "replace",
                        "redirectDomains": ["https://x.com"],
                        "redirectDomainsMode": "extend",
                        "uiDomain": "abc.claudemcpcontent.com",
                    },
                    {"match": "ui://?other"},
                ],
            }
        }
    ).csp
    assert csp == CspConfig(
        domain="widgets.example.com",
        ui_domain="https://ui.example.com",
        connect_domains=CspDirective(("https://api.example.com",), "replace"),
        resource_domains=CspDirective(("https://cdn.example.com",), "extend"),
        frame_domains=CspDirective(("https://www.youtube.com",), "extend"),
        widgets=(
            WidgetRule(
                match="ui://widget/*",
                connect_domains=("https://a.com",),
                connect_domains_mode="replace",
                resource_domains=("https://r.com",),
                resource_domains_mode="extend",
                frame_domains=("https://f.com",),
                frame_domains_mode="extend",
                base_uri_domains=("https://b.com",),
                base_uri_domains_mode="replace",
                redirect_domains=("https://x.com",),
                redirect_domains_mode="extend",
                ui_domain="abc.claudemcpcontent.com",
            ),
            WidgetRule(match="ui://?other"),
        ),
    )


@pytest.mark.parametrize(
    ("key", "default"),
    [("connectDomains", "extend"), ("resourceDomains", "extend"), ("frameDomains", "replace")],
)
def test_csp_directive_default_modes(key: str, default: str) -> None:
    """A directive table without `mode` takes its directive's default mode."""
    csp = config({"csp": {key: {"domains": ["https://a.com"]}}}).csp
    directive = {
        "connectDomains": csp.connect_domains,
        "resourceDomains": csp.resource_domains,
        "frameDomains": csp.frame_domains,
    }[key]
    assert directive == CspDirective(("https://a.com",), default)  # type: ignore[arg-type]


def test_widget_mode_without_domains_means_empty_list() -> None:
    """A rule giving only a mode keeps an empty domain list, so `replace` empties it."""
    rule = config({"csp": {"widget": [{"match": "*", "frameDomainsMode": "replace"}]}}).csp.widgets[
        0
    ]
    assert (rule.frame_domains, rule.frame_domains_mode) == ((), "replace")
    assert (rule.connect_domains, rule.connect_domains_mode) == (None, None)


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("widgets.example.com", "widgets.example.com"),
        ("https://widgets.example.com", "widgets.example.com"),
        ("https://widgets.example.com/", "widgets.example.com"),
        ("HTTP://widgets.example.com//", "widgets.example.com"),
        ("widgets.example.com:8443/", "widgets.example.com:8443"),
    ],
)
def test_csp_domain_strips_scheme_and_slash(domain: str, expected: str) -> None:
    """csp.domain is stored as a bare domain, without scheme or trailing slash."""
    assert config({"csp": {"domain": domain}}).csp.domain == expected


@pytest.mark.parametrize(
    ("csp", "path", "message"),
    [
        ({"domain": "https://x.com/path"}, "csp.domain", "expected a domain"),
        ({"domain": "https://"}, "csp.domain", "expected a domain"),
        ({"domain": 5}, "csp.domain", "expected a string"),
        ({"ui_domain": ""}, "csp.ui_domain", "must not be empty"),
        ({"connectDomains": ["https://a.com"]}, "csp.connectDomains", "expected a table"),
        ({"connectDomains": {"mode": "merge"}}, "csp.connectDomains.mode", "expected one of"),
        ({"resourceDomains": {"domains": "a.com"}}, "csp.resourceDomains.domains",
         "expected an array"),
        ({"frameDomains": {"domains": [1]}}, "csp.frameDomains.domains",
         "a CSP source (a string), got an integer"),
        ({"frameDomains": {"domains": ["a.com; script-src *"]}}, "csp.frameDomains.domains",
         "without spaces"),
        ({"widget": {"match": "*"}}, "csp.widget", "expected an array of tables"),
        ({"widget": ["ui://*"]}, "csp.widget[0]", "expected a table"),
        ({"widget": [{}]}, "csp.widget[0].match", "required"),
        ({"widget": [{"connectDomains": []}]}, "csp.widget[0].match", "required"),
        ({"widget": [{"match": ["ui://*"]}]}, "csp.widget[0].match", "expected a string"),
        ({"widget": [{"match": 3}]}, "csp.widget[0].match", "got an integer"),
        ({"widget": [{"match": ""}]}, "csp.widget[0].match", "must not be empty"),
        ({"widget": [{"match": "*"}, {"match": "*", "connectDomainsMode": "merge"}]},
         "csp.widget[1].connectDomainsMode", "expected one of 'extend', 'replace'"),
        ({"widget": [{"match": "*", "redirectDomains": "x"}]},
         "csp.widget[0].redirectDomains", "expected an array"),
        ({"widget": [{"match": "*", "uiDomain": 1}]}, "csp.widget[0].uiDomain",
         "expected a string"),
    ],
)  # fmt: skip
def test_csp_errors(csp: dict[str, Any], path: str, message: str) -> None:
    """Bad [csp] values are errors at their exact key path, rule index included."""
    problem = error({"csp": csp})
    assert problem.path == path
    assert message in problem.message


def test_csp_several_widget_errors() -> None:
    """Problems in several widget rules are all reported, each with its index."""
    result = load({"csp": {"widget": [{"match": 1}, {"match": "ok"}, {"frameDomainsMode": "x"}]}})
    assert [p.path for p in result.problems] == [
        "csp.widget[0].match",
        "csp.widget[2].match",
        "csp.widget[2].frameDomainsMode",
    ]


def test_problem_and_result_are_frozen() -> None:
    """Problems and results are immutable values."""
    result = load({"prot": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.problems[0].path = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.config = None  # type: ignore[misc]


def test_restart_fields_names_only_what_a_reload_cannot_apply() -> None:
    """A CSP change is reloadable; a port or upstream change is named as needing a restart."""
    from mcpr_core.config import CspConfig, ProxyConfig, restart_fields

    old = ProxyConfig(mcp="http://127.0.0.1:8000/mcp")
    csp_only = ProxyConfig(mcp="http://127.0.0.1:8000/mcp", csp=CspConfig(domain="a.example"))
    assert restart_fields(old, csp_only) == ()
    moved = ProxyConfig(mcp="http://127.0.0.1:9000/mcp", port=4000)
    assert restart_fields(old, moved) == ("mcp", "port")
