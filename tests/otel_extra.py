"""Whether the OpenTelemetry tests can run: they need the `otel` extra of mcpr-integrations.

The nox sessions that run them install it (`--extra otel`, `--all-extras`). In an environment
without it (a plain `uv run pytest`), the conftests leave those modules out rather than fail
on an import; with `CI` set they never do, so a missing extra fails loudly there.
"""

from __future__ import annotations

import os

from mcpr_integrations.otel.config import otel_installed

__all__ = ["otel_ignores"]


def otel_ignores(*modules: str) -> list[str]:
    """`modules` when the extra is missing outside CI (for `collect_ignore`), else none."""
    if otel_installed() or os.environ.get("CI"):
        return []
    return list(modules)
