"""Test, lint and typecheck sessions, one environment per package (`uv run nox`)."""

from __future__ import annotations

import json
import re
import shutil
import tarfile
import tomllib
import zipfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True


def sync(session: nox.Session, *args: str) -> None:
    """Install exactly what uv.lock pins for these arguments into this session's venv."""
    session.run_install(
        "uv",
        "sync",
        "--locked",
        "--group",
        "dev",
        *args,
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
    )


@nox.session(name="tests-core")
def tests_core(session: nox.Session) -> None:
    """Unit and property tests of mcpr_core, with nothing but core and the test tools installed."""
    sync(session, "--package", "mcpr-core")
    session.run("pytest", "tests/core", *session.posargs)


@nox.session(name="tests-integrations")
def tests_integrations(session: nox.Session) -> None:
    """Tests of the sinks (the OpenTelemetry one included) and the store."""
    sync(session, "--package", "mcpr-integrations", "--extra", "otel")
    session.run("pytest", "tests/integrations", *session.posargs)


@nox.session(name="tests-cli")
def tests_cli(session: nox.Session) -> None:
    """Tests of the transport, the bus and the commands, on asyncio and trio."""
    sync(session, "--package", "mcpr-cli")
    session.run("pytest", "tests/cli", *session.posargs)


@nox.session(name="tests-tunnel")
def tests_tunnel(session: nox.Session) -> None:
    """Tests of the tunnel client, with nothing but it and the test tools installed."""
    sync(session, "--package", "mcp-tunnel-client")
    session.run("pytest", "tests/tunnel", *session.posargs)


@nox.session(name="tests-e2e")
def tests_e2e(session: nox.Session) -> None:
    """The real proxy in front of a real MCP SDK server, driven by the SDK's own client."""
    sync(session, "--all-packages", "--all-extras", "--group", "e2e")
    session.run("pytest", "tests/e2e", *session.posargs)


@nox.session(name="tests-prometheus")
def tests_prometheus(session: nox.Session) -> None:
    """/metrics linted by promtool and scraped by a real Prometheus server (.ci/run installs it)."""
    sync(session, "--all-packages", "--group", "e2e")
    session.run("pytest", "tests/prometheus", *session.posargs)


@nox.session(name="tests-fleet")
def tests_fleet(session: nox.Session) -> None:
    """Two mcpr replicas behind nginx with the config of docs/DEPLOY.md (.ci/run installs it)."""
    sync(session, "--all-packages", "--group", "e2e")
    session.run("pytest", "tests/fleet", *session.posargs)


@nox.session(name="tests-reliability")
def tests_reliability(session: nox.Session) -> None:
    """Fuzzing, hostile clients, upstream faults, event safety and security (docs/RELIABILITY.md).

    About 70 s. `MCPR_LONG_TESTS=1 uv run nox -s tests-reliability` runs the long variant:
    125,000 fuzzed parser inputs, 40,000 live fuzzed requests, 5,000 idle connections,
    20,000 answers before SIGTERM (about 15 minutes). Add
    `-- --junitxml=FILE -o junit_family=xunit1` to collect the measured figures.
    """
    sync(session, "--all-packages")
    session.run("pytest", "tests/reliability", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole tree."""
    sync(session, "--all-packages")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the three packages and the tests; internal version ranges checked."""
    sync(session, "--all-packages", "--all-extras", "--group", "e2e")
    session.run("mypy")
    session.run("uv", "pip", "check", env={"VIRTUAL_ENV": session.virtualenv.location})


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """mcpr against direct, nginx and the FastMCP proxy (`uv run nox -s bench`; not default)."""
    sync(session, "--all-packages", "--group", "e2e", "--group", "bench")
    session.run("python", "-m", "benchmarks", *session.posargs)


#: What `nox -s build` builds, checks and installs, each after the siblings it depends on.
DISTRIBUTIONS = ("mcpr-core", "mcpr-integrations", "mcp-tunnel-client", "mcpr-cli")
#: Extras installed with a distribution's wheel, so that every one of its modules imports.
EXTRAS = {"mcpr-integrations": "[otel]"}
#: Run in each fresh venv: import the package and every module in it (but `__main__`), from
#: that venv only; print the version.
IMPORT_ALL = """
import importlib, pkgutil, sys
package = importlib.import_module(sys.argv[1])
assert package.__file__.startswith(sys.prefix), package.__file__
for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    if not module.name.endswith(".__main__"):
        importlib.import_module(module.name)
print(package.__version__)
"""


@nox.session(default=False)
def build(session: nox.Session) -> None:
    """Build every wheel and sdist, check them, and install each wheel into a fresh venv.

    `uv run nox -s build -- DIR` leaves the artifacts in DIR (default: the session's tmp).
    """
    session.install("twine>=6.1,<8")
    tmp = Path(session.create_tmp()).resolve()
    out = Path(session.posargs[0]).resolve() if session.posargs else tmp / "dist"
    versions = {name: _version(name) for name in DISTRIBUTIONS}
    wheels = {name: out / f"{_stem(name, versions[name])}-py3-none-any.whl" for name in versions}
    sdists = {name: out / f"{_stem(name, versions[name])}.tar.gz" for name in versions}
    for name in DISTRIBUTIONS:
        session.run("uv", "build", "--package", name, "--no-sources", "--out-dir", str(out))
    session.run("twine", "check", "--strict", *map(str, [*wheels.values(), *sdists.values()]))
    for name in DISTRIBUTIONS:
        missing = _missing(name, wheels[name], sdists[name])
        if missing:
            session.error(f"{name}: missing {', '.join(missing)}")
    interpreter = str(Path(session.bin) / "python")
    with session.chdir(tmp):  # nothing of the source tree on sys.path
        for name in DISTRIBUTIONS:
            venv = tmp / f"venv-{name}"
            shutil.rmtree(venv, ignore_errors=True)
            session.run("uv", "venv", "--quiet", "--python", interpreter, str(venv))
            python = str(venv / "bin" / "python")
            needed = [str(wheels[sibling]) for sibling in _siblings(name, wheels)]
            wheel = f"{wheels[name]}{EXTRAS.get(name, '')}"
            session.run("uv", "pip", "install", "--python", python, wheel, *needed)
            module = name.replace("-", "_")
            imported = session.run(python, "-c", IMPORT_ALL, module, silent=True, external=True)
            if str(imported).strip() != versions[name]:
                session.error(f"{module} says version {imported!r}, not {versions[name]}")
        mcpr = str(tmp / "venv-mcpr-cli" / "bin" / "mcpr")
        shown = json.loads(str(session.run(mcpr, "version", "--json", silent=True, external=True)))
        if shown != versions:
            session.error(f"mcpr version --json printed {shown}, expected {versions}")
        session.run(mcpr, "demo", silent=True, external=True)  # the whole job, exit 0
    session.log(f"{len(wheels) + len(sdists)} artifacts built, checked and installed: {out}")


def _version(name: str) -> str:
    """The version in a distribution's pyproject.toml."""
    path = Path("packages") / name.replace("-", "_") / "pyproject.toml"
    return str(tomllib.loads(path.read_text(encoding="utf-8"))["project"]["version"])


def _stem(name: str, version: str) -> str:
    """The file name of a distribution's artifacts, without the suffix."""
    return f"{name.replace('-', '_')}-{version}"


def _metadata(wheel: Path) -> str:
    """The METADATA file of a wheel."""
    with zipfile.ZipFile(wheel) as archive:
        (path,) = (n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return archive.read(path).decode("utf-8")


def _siblings(name: str, wheels: dict[str, Path]) -> list[str]:
    """The distributions of this workspace that `name` needs, directly or not."""
    found: list[str] = []
    todo = [name]
    while todo:
        for line in _metadata(wheels[todo.pop()]).splitlines():
            if line.startswith("Requires-Dist: ") and "extra ==" not in line:
                required = re.split(r"[\s<>=!~;\[(]", line.removeprefix("Requires-Dist: "))[0]
                if required in wheels and required not in found:
                    found.append(required)
                    todo.append(required)
    return found


def _missing(name: str, wheel: Path, sdist: Path) -> list[str]:
    """What a release needs and one of the two artifacts lacks (nothing, hopefully)."""
    module = name.replace("-", "_")
    with zipfile.ZipFile(wheel) as archive:
        files = set(archive.namelist())
    metadata = _metadata(wheel)
    with tarfile.open(sdist) as archive:
        top = sdist.name.removesuffix(".tar.gz")
        sources = {member.name.removeprefix(top + "/") for member in archive.getmembers()}
    missing = [
        f for f in ("License-Expression: MIT", "Requires-Python: >=3.11") if f not in metadata
    ]
    missing += [f for f in (f"{module}/py.typed",) if f not in files]
    missing += [
        f
        for f in ("LICENSE", "README.md", "CHANGELOG.md", f"src/{module}/py.typed")
        if f not in sources
    ]
    if not any(f.endswith(".dist-info/licenses/LICENSE") for f in files):
        missing.append("the wheel's licenses/LICENSE")
    return missing
