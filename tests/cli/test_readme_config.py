"""The root README's configuration reference and `mcpr.toml` example, checked against the code.

Each row of the reference table names a key path, its default (a TOML value, or `unset`,
`required`, or prose), its environment variable and its `mcpr proxy run` flag. The tests load
every documented default through the real loaders and compare it with the dataclass
defaults, read the environment variables `env_overrides` looks at, list the flags of
`mcpr proxy run`, and load the example file, so the README cannot drift from the code.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click
import pytest

from mcpr_cli.cli import proxy_run
from mcpr_cli.relay.config import RelayConfig, load_relay_config
from mcpr_cli.tunnel import TunnelConfig, load_tunnel_config
from mcpr_core.config import (
    RESERVED_TABLES,
    CspConfig,
    FleetConfig,
    Problem,
    ProxyConfig,
    env_overrides,
    load_config,
)
from mcpr_integrations.cloud import CloudConfig, load_cloud_config
from mcpr_integrations.otel import OtelConfig, load_otel_config
from mcpr_integrations.plugins import DEFAULT_MAX_FAILURES, SINK_GROUP, load_sink_configs

README = Path(__file__).resolve().parents[2] / "README.md"
UPSTREAM = "http://127.0.0.1:8000/mcp"
Loaded = tuple[Any, tuple[Problem, ...]]


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of a reference table: the key path and the other cells as written."""

    key: str
    default: str
    env: str | None = None
    flag: str | None = None


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _code(cell: str) -> str | None:
    """The text of a cell that is one `code span`, else None."""
    match = re.fullmatch(r"`([^`]*)`", cell)
    return match.group(1) if match else None


def _table_after(text: str, marker: str) -> list[list[str]]:
    """The body rows of the first Markdown table after `marker`."""
    lines = text[text.index(marker) :].splitlines()[1:]
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(_cells(line))
    return rows


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def config_rows() -> list[Row]:
    """The rows of the `mcpr.toml` reference table."""
    rows = []
    for key, default, env, flag, _ in _table_after(_readme(), "<!-- config-table:"):
        name = _code(key)
        assert name is not None, f"the key cell {key!r} is not a code span"
        rows.append(Row(name, default, _code(env), _code(flag)))
    return rows


def relay_rows() -> list[Row]:
    """The rows of the `[relay]` table (`mcpr relay run`)."""
    rows = _table_after(_readme(), "reads a different table, `[relay]`")
    return [Row(_code(key) or key, default) for key, default, _ in rows]


def example_toml() -> dict[str, Any]:
    """The `mcpr.toml` example, parsed."""
    text = _readme()
    block = text[text.index("<!-- mcpr.toml example") :]
    body = block.split("```toml\n", 1)[1].split("```", 1)[0]
    return tomllib.loads(body)


# --- how to load one documented key through the real loaders ---------------------------------


def _nest(path: str, value: object) -> dict[str, Any]:
    head, _, rest = path.partition(".")
    return {head: _nest(rest, value) if rest else value}


def _field_name(cls: type, key: str) -> str:
    """The dataclass field behind a TOML key (`connectDomains` is `connect_domains`, …)."""
    snake = re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()
    names = {f.name for f in dataclasses.fields(cls)}
    for candidate in (key, snake, snake + "s"):
        if candidate in names:
            return candidate
    raise AssertionError(f"{key!r} is not a field of {cls.__name__}")


def _sink_entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    point = importlib.metadata.EntryPoint("jsonl", "mcpr_jsonl_sink:make_sink", SINK_GROUP)
    return {"jsonl": point}


@dataclasses.dataclass(frozen=True)
class Section:
    """A table of the file: how to load it with some keys set, and its dataclass."""

    cls: type
    load: Callable[[dict[str, Any]], Loaded]
    required: Mapping[str, Any]


def _load_proxy(values: dict[str, Any]) -> Loaded:
    result = load_config(values)
    return result.config, result.problems


def _load_table(
    table: str, loader: Callable[[Mapping[str, Any]], Loaded]
) -> Callable[[dict[str, Any]], Loaded]:
    return lambda values: loader({table: values})


def _load_otel(values: dict[str, Any]) -> Loaded:
    return load_otel_config({"otel": values}, installed=lambda: True)


def _load_sinks(values: dict[str, Any]) -> Loaded:
    configs, problems = load_sink_configs({"sinks": [values]}, _sink_entry_points())
    return (configs[0] if configs and not problems else None), problems


SECTIONS: dict[str, Section] = {
    "": Section(ProxyConfig, _load_proxy, {"mcp": UPSTREAM}),
    "csp": Section(CspConfig, lambda v: _load_proxy({"mcp": UPSTREAM, "csp": v}), {}),
    "fleet": Section(FleetConfig, lambda v: _load_proxy({"mcp": UPSTREAM, "fleet": v}), {}),
    "cloud": Section(CloudConfig, _load_table("cloud", load_cloud_config), {"token": "t0k3n"}),
    "otel": Section(OtelConfig, _load_otel, {}),
    "tunnel": Section(
        TunnelConfig,
        _load_table("tunnel", load_tunnel_config),
        {"relay_url": "https://relay.example.com", "token": "t0k3n"},
    ),
    "sinks": Section(type(None), _load_sinks, {"use": "jsonl"}),
    "relay": Section(
        RelayConfig,
        _load_table("relay", load_relay_config),
        {"domain": "tunnel.example.com", "tokens": [{"token": "t0k3n"}]},
    ),
}


def _split(path: str) -> tuple[str, str]:
    table, _, key = path.rpartition(".")
    return table, key


def _value_of(loaded: object, table: str, key: str) -> object:
    """The loaded value of `key` (a top-level ProxyConfig holds the csp and fleet tables)."""
    if table in ("csp", "fleet"):
        loaded = getattr(loaded, table)
    return getattr(loaded, _field_name(SECTIONS[table].cls, key))


def _default_of(table: str, key: str) -> object:
    cls = SECTIONS[table].cls
    (field,) = (f for f in dataclasses.fields(cls) if f.name == _field_name(cls, key))
    return field.default


def _check_default(row: Row) -> None:
    table, key = _split(row.key)
    section = SECTIONS[table]
    if row.default == "required":
        values = {k: v for k, v in section.required.items() if k != key}
        loaded, problems = section.load(values)
        paths = {re.sub(r"\[\d+\]", "", p.path) for p in problems}
        assert loaded is None, f"{row.key}: loads without it, so it is not required"
        assert row.key in paths, f"{row.key}: its absence is not reported ({sorted(paths)})"
        return
    if table == "sinks" or (table == "tunnel" and key == "enabled"):
        return  # checked on their own below: these defaults are not dataclass fields
    if row.default == "unset":
        assert _default_of(table, key) is None, f"{row.key}: the code has a default"
        return
    literal = _code(row.default)
    assert literal is not None, f"{row.key}: the default {row.default!r} is not a TOML value"
    value = tomllib.loads(f"v = {literal}")["v"]
    loaded, problems = section.load({**section.required, key: value})
    assert not [p for p in problems if p.severity == "error"], (row.key, problems)
    assert loaded is not None
    assert _value_of(loaded, table, key) == _default_of(table, key), row.key


# --- the tests -----------------------------------------------------------------------------------


def test_every_proxy_config_field_has_a_row() -> None:
    """Every field of ProxyConfig, CspConfig and FleetConfig is a row, and no row is extra."""
    documented = {row.key for row in config_rows() if _split(row.key)[0] in ("", "csp", "fleet")}
    expected = {f.name for f in dataclasses.fields(ProxyConfig) if not f.name.startswith("_")}
    expected -= {"csp", "fleet"}
    for table, cls in (("csp", CspConfig), ("fleet", FleetConfig)):
        keys = {_split(k)[1] for k in documented if k.startswith(table + ".")}
        fields = {_field_name(cls, key) for key in keys}
        assert fields == {f.name for f in dataclasses.fields(cls)}, table
        expected |= {f"{table}.{key}" for key in keys}
    assert documented == expected


def test_every_table_field_has_a_row() -> None:
    """The [cloud], [otel], [tunnel] and [relay] rows cover their dataclasses exactly."""
    rows = [*config_rows(), *relay_rows()]
    for table in ("cloud", "otel", "tunnel", "relay"):
        keys = {_split(r.key)[1] for r in rows if _split(r.key)[0] == table}
        cls = SECTIONS[table].cls
        fields = {_field_name(cls, key) for key in keys - {"enabled"}}
        assert fields == {f.name for f in dataclasses.fields(cls)}, table


@pytest.mark.parametrize("row", [*config_rows(), *relay_rows()], ids=lambda row: row.key)
def test_documented_default_is_the_code_default(row: Row) -> None:
    """A row's default, loaded by the real loader, equals the dataclass default."""
    _check_default(row)


def test_defaults_that_are_not_fields() -> None:
    """`tunnel.enabled` defaults to on, and a sink's `max_failures` to DEFAULT_MAX_FAILURES."""
    rows = {row.key: row for row in config_rows()}
    assert rows["tunnel.enabled"].default == "`true`"
    assert load_tunnel_config({"tunnel": dict(SECTIONS["tunnel"].required)})[0] is not None
    assert rows["sinks.max_failures"].default == f"`{DEFAULT_MAX_FAILURES}`"
    (config,), _ = load_sink_configs({"sinks": [{"use": "jsonl"}]}, _sink_entry_points())
    assert config.name == "jsonl"


class _Recording(dict[str, str]):
    """An environment that remembers every variable looked up."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)


def test_environment_column_is_what_env_overrides_reads() -> None:
    """The MCPR_* variables in the table are exactly those env_overrides reads, on their keys."""
    environ = _Recording()
    env_overrides(environ)
    rows = [row for row in config_rows() if row.env and row.env.startswith("MCPR_")]
    assert {row.env for row in rows} == environ.asked
    for row in rows:
        assert row.env == "MCPR_" + row.key.replace(".", "_").upper()


def test_flag_column_is_what_proxy_run_accepts() -> None:
    """The flags in the table are exactly the options of `mcpr proxy run`, on their keys."""
    options = {
        param.opts[0]: param.name
        for param in proxy_run.params
        if isinstance(param, click.Option) and param.name != "help"
    }
    rows = [row for row in config_rows() if row.flag]
    assert {row.flag for row in rows} == set(options)
    for row in rows:
        assert row.flag is not None
        assert options[row.flag] == row.key.replace(".", "_")


def test_toml_example_has_every_table_and_loads_without_a_problem() -> None:
    """The example file names every table a proxy reads, and every loader accepts it as is."""
    data = example_toml()
    assert set(data) >= {"csp", "fleet"} | (RESERVED_TABLES - {"relay"})
    result = load_config(data)
    assert result.problems == ()
    assert load_cloud_config(data)[1] == ()
    assert load_otel_config(data, installed=lambda: True)[1] == ()
    assert load_tunnel_config(data)[1] == ()
    assert load_sink_configs(data, _sink_entry_points())[1] == ()
