"""Tests of `mcpr proxy setup`: flags only, prompts driven through stdin, and the file written.

The cloud side is the fake cloud of `tests.integrations.fake_cloud` on 127.0.0.1; every
written file is loaded back through `mcpr_cli.configfile.load`, as `mcpr proxy run` would.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mcpr_cli.cli import cli
from mcpr_cli.configfile import load
from mcpr_integrations.cloud.config import CloudConfig
from tests.integrations.fake_cloud import FakeCloud, fake_cloud

UPSTREAM = "http://127.0.0.1:8000/mcp"


@pytest.fixture
def cloud() -> Iterator[FakeCloud]:
    """A fake cloud, shut down (threads joined) after the test."""
    with fake_cloud() as running:
        yield running


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """Where the command writes."""
    return tmp_path / "mcpr.toml"


def setup(*args: str, answers: list[str] | None = None) -> Result:
    """Run `mcpr proxy setup ARGS`, typing `answers` one per line."""
    text = None if answers is None else "".join(f"{a}\n" for a in answers)
    return CliRunner().invoke(cli, ["proxy", "setup", *args], input=text)


def mode(path: Path) -> int:
    """The permission bits of `path`."""
    return stat.S_IMODE(os.stat(path).st_mode)


def test_flags_only_writes_a_cloud_config(target: Path) -> None:
    """With --yes and flags nothing is asked; the file has [cloud], mode 0600, and loads."""
    result = setup(str(target), "--yes", "--mcp", UPSTREAM, "--port", "3100",
                   "--token", "mcpr_tok_1", "--server", "weather")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "?" not in result.output
    assert mode(target) == 0o600
    loaded = load(target, {}, environ={})
    assert loaded.result.config is not None
    assert (loaded.result.config.mcp, loaded.result.config.port) == (UPSTREAM, 3100)
    assert loaded.cloud == CloudConfig(token="mcpr_tok_1", server="weather")
    assert loaded.result.problems == ()


def test_flags_only_without_token_has_no_cloud(target: Path) -> None:
    """Without --token, --yes writes the upstream and the default port, no [cloud]."""
    result = setup(str(target), "--yes", "--mcp", UPSTREAM)
    assert result.exit_code == 0, result.output
    assert tomllib.loads(target.read_text()) == {"mcp": UPSTREAM, "port": 3000}
    assert load(target, {}, environ={}).cloud is None


def test_yes_requires_mcp(target: Path) -> None:
    """--yes cannot ask for the upstream, so it must be given."""
    result = setup(str(target), "--yes")
    assert result.exit_code == 2
    assert "--mcp is required" in result.output
    assert not target.exists()


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--mcp", "ftp://x", "scheme must be http or https"),
        ("--endpoint", "http://cloud.example.com", "must use https"),
        ("--token", "two words", "without spaces"),
        ("--server", "no spaces please", "1-64 characters"),
    ],
)
def test_malformed_flags_are_usage_errors(
    target: Path, flag: str, value: str, message: str
) -> None:
    """A bad flag value stops the command before anything is asked or written."""
    result = setup(str(target), "--yes", "--mcp", UPSTREAM, flag, value)
    assert result.exit_code == 2
    assert message in result.output
    assert not target.exists()


def test_existing_file_is_kept_when_the_answer_is_no(target: Path) -> None:
    """Without --yes an existing file is replaced only after a yes."""
    target.write_text("# mine\n")
    result = setup(str(target), "--mcp", UPSTREAM, answers=["n"])
    assert result.exit_code == 1
    assert "Left" in result.output
    assert target.read_text() == "# mine\n"


def test_existing_file_is_replaced_after_a_yes(target: Path) -> None:
    """Answering yes replaces the file, which is then 0600 even if the old one was not."""
    target.write_text("# mine\n")
    target.chmod(0o644)
    result = setup(str(target), "--mcp", UPSTREAM, "--port", "3001", answers=["y", "n"])
    assert result.exit_code == 0, result.output
    assert tomllib.loads(target.read_text()) == {"mcp": UPSTREAM, "port": 3001}
    assert mode(target) == 0o600


def test_yes_replaces_an_existing_file(target: Path) -> None:
    """--yes is the answer to the replace question too."""
    target.write_text("# mine\n")
    assert setup(str(target), "--yes", "--mcp", UPSTREAM).exit_code == 0
    assert "mcp" in tomllib.loads(target.read_text())


def test_prompts_log_in_and_create_everything(
    cloud: FakeCloud, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From nothing: URL, port, cloud yes, email, code, new project, new server, a token."""
    monkeypatch.chdir(target.parent)
    answers = ["example.com/mcp", UPSTREAM, "3200", "y", "ada@example.com", "000000", "424242",
               "Weather Co", "Weather API", ""]  # fmt: skip
    result = setup("--endpoint", cloud.url, answers=answers)
    assert result.exit_code == 0, result.output
    assert "must start with http:// or https://" in result.output
    assert "that code is not valid" in result.output
    loaded = load(None, {}, environ={}, search_from=target.parent)
    assert loaded.path is not None
    assert loaded.path.resolve() == target.resolve()
    assert loaded.result.config is not None
    assert loaded.result.config.port == 3200
    assert loaded.cloud == CloudConfig(
        token="mcpr_ingest_0", server="weather-api", endpoint=cloud.url
    )
    assert cloud.servers == [
        {"id": "s1", "project_id": "p1", "name": "Weather API", "slug": "weather-api"}
    ]
    assert mode(target) == 0o600


def test_prompts_pick_existing_project_and_server(cloud: FakeCloud, target: Path) -> None:
    """Listed projects and servers are picked by number; only a token is created."""
    cloud.projects.append({"id": "p7", "slug": "acme", "name": "Acme"})
    cloud.servers.append({"id": "s7", "project_id": "p7", "slug": "acme-mcp", "name": "MCP"})
    answers = [UPSTREAM, "", "y", "ada@example.com", "424242", "1", "1"]
    result = setup(str(target), "--endpoint", cloud.url, answers=answers)
    assert result.exit_code == 0, result.output
    assert "1) Acme (acme)" in result.output
    assert tomllib.loads(target.read_text())["cloud"] == {
        "token": "mcpr_ingest_0",
        "server": "acme-mcp",
        "endpoint": cloud.url,
    }
    assert [t["server"] for t in cloud.tokens] == ["acme-mcp"]


def test_server_flag_names_the_server_to_use(cloud: FakeCloud, target: Path) -> None:
    """With --server the slug is reused in the project if it exists, without asking."""
    cloud.projects.append({"id": "p7", "slug": "acme", "name": "Acme"})
    cloud.servers.append({"id": "s7", "project_id": "p7", "slug": "acme-mcp", "name": "MCP"})
    answers = ["y", "ada@example.com", "424242", "1"]
    result = setup(str(target), "--mcp", UPSTREAM, "--port", "3000", "--server", "acme-mcp",
                   "--endpoint", cloud.url, answers=answers)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(cloud.servers) == 1
    assert tomllib.loads(target.read_text())["cloud"]["server"] == "acme-mcp"


def test_cloud_failure_writes_nothing(target: Path) -> None:
    """An unreachable cloud ends the command with its error and no file."""
    with fake_cloud() as gone:
        endpoint = gone.url
    result = setup(str(target), "--mcp", UPSTREAM, "--port", "3000", "--endpoint", endpoint,
                   answers=["y", "ada@example.com"])  # fmt: skip
    assert result.exit_code == 1
    assert "mcpr cloud: cloud: unreachable" in result.output
    assert not target.exists()


def test_closed_stdin_is_a_usage_error(target: Path) -> None:
    """Prompts with nothing to read end with a hint about --yes, not a traceback."""
    result = setup(str(target), answers=[])
    assert result.exit_code == 2
    assert "pass --yes" in result.output


def test_port_on_the_admin_listener_is_refused(target: Path) -> None:
    """A file that would not load (port 9901 is the admin listener's) is not written."""
    result = setup(str(target), "--yes", "--mcp", UPSTREAM, "--port", "9901")
    assert result.exit_code == 1
    assert "admin: uses port 9901" in result.output
    assert not target.exists()
