"""Test, lint and typecheck sessions, one environment per package (`uv run nox`)."""

from __future__ import annotations

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
