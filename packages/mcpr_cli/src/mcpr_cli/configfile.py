"""Finding and reading `mcpr.toml`, and merging flags and environment over it.

Priority, highest first: command-line flags, `MCPR_*` environment variables, the file,
the defaults of `mcpr_core.config.ProxyConfig`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcpr_cli.tunnel import TunnelConfig, load_tunnel_config
from mcpr_core.config import LoadResult, Problem, env_overrides, load_config
from mcpr_integrations.cloud import CloudConfig, load_cloud_config
from mcpr_integrations.otel import OtelConfig, load_otel_config
from mcpr_integrations.plugins import SinkConfig, load_sink_configs

__all__ = ["CONFIG_NAME", "LoadedConfig", "find_config", "load"]

CONFIG_NAME = "mcpr.toml"


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """The outcome of loading: the validated result and the file it came from, if any."""

    result: LoadResult
    path: Path | None
    #: The `[cloud]` table, when it is valid and has a token (and the rest is valid too).
    cloud: CloudConfig | None = None
    #: The `[tunnel]` table, when it is valid and enabled (and the rest is valid too).
    tunnel: TunnelConfig | None = None
    #: The `[[sinks]]` tables, when they are valid themselves (the rest may not be, so that
    #: `mcpr validate` can try their factories all the same): custom sinks found among the
    #: installed entry points, not built yet.
    sinks: tuple[SinkConfig, ...] = ()
    #: The `[otel]` table, when present and valid.
    otel: OtelConfig | None = None


def find_config(start: Path) -> Path | None:
    """The nearest `mcpr.toml` in `start` or one of its parents."""
    for folder in (start, *start.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    return None


def load(
    path: Path | None,
    flags: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    search_from: Path | None = None,
) -> LoadedConfig:
    """Read the config file (given, or searched for), then apply env and flag overrides."""
    if path is None:
        path = find_config(search_from if search_from is not None else Path.cwd())
    data: dict[str, Any] = {}
    problems: list[Problem] = []
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            problems.append(Problem(str(path), f"cannot read: {exc.strerror}", "error"))
        except tomllib.TOMLDecodeError as exc:
            problems.append(Problem(str(path), f"invalid TOML: {exc}", "error"))
    env, env_problems = env_overrides(os.environ if environ is None else environ)
    problems.extend(env_problems)
    overrides = {**env, **{k: v for k, v in flags.items() if v is not None}}
    result = load_config(data, overrides=overrides)
    cloud, cloud_problems = load_cloud_config(data)
    tunnel, tunnel_problems = load_tunnel_config(data)
    sinks, sink_problems = load_sink_configs(data)
    otel, otel_problems = load_otel_config(data)
    extra = (*cloud_problems, *tunnel_problems, *sink_problems, *otel_problems)
    if problems or extra:
        merged = (*problems, *result.problems, *extra)
        has_error = any(p.severity == "error" for p in merged)
        result = LoadResult(config=None if has_error else result.config, problems=merged)
    valid = result.config is not None
    return LoadedConfig(
        result=result,
        path=path,
        cloud=cloud if valid else None,
        tunnel=tunnel if valid else None,
        sinks=sinks,
        otel=otel if valid else None,
    )
