"""mcpr_core stays pure: importing all of it pulls in no I/O, threads, event loops or logging."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

# Snapshot after the tooling is imported, then import every core module: the difference is
# exactly what mcpr_core drags in. A diff, not a membership test, because some interpreters
# pre-import threading through site (STYLE.md §4.4).
_PROBE = textwrap.dedent(
    """
    import importlib, importlib.util, json, pkgutil, sys
    before = set(sys.modules)
    import mcpr_core
    spec = importlib.util.find_spec("mcpr_core")
    for info in pkgutil.walk_packages(spec.submodule_search_locations, "mcpr_core."):
        importlib.import_module(info.name)
    print(json.dumps(sorted(set(sys.modules) - before)))
    """
)

BANNED = (
    "socket",
    "_socket",
    "selectors",
    "select",
    "ssl",
    "_ssl",
    "asyncio",
    "_asyncio",
    "threading",
    "subprocess",
    "anyio",
    "trio",
    "h11",
    "sqlite3",
    "_sqlite3",
    "apsw",
    "requests",
    "logging",
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def imported() -> set[str]:
    """Modules newly imported by importing mcpr_core and all its submodules."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    names: list[str] = json.loads(done.stdout)
    return set(names)


def test_probe_imports_every_core_module(imported: set[str]) -> None:
    """The probe really imported the core package and its modules (so the diff means something)."""
    assert {"mcpr_core", "mcpr_core.config", "mcpr_core.routing"} <= imported


@pytest.mark.parametrize("banned", BANNED)
def test_core_imports_nothing_banned(imported: set[str], banned: str) -> None:
    """No core module imports the banned module, directly or through a dependency."""
    leaked = sorted(name for name in imported if name.split(".")[0] == banned)
    assert leaked == []


def test_core_declares_no_dependencies() -> None:
    """mcpr-core depends on the standard library only: no runtime or optional dependencies."""
    project = tomllib.loads((ROOT / "packages/mcpr_core/pyproject.toml").read_text())["project"]
    assert project.get("dependencies", []) == []
    assert project.get("optional-dependencies", {}) == {}
