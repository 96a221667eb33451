"""A custom sink from its own distribution, through `mcpr proxy run`: the whole plugin path.

`examples/jsonl-sink` is built and installed as a separate package (with `uv pip install
--target`, into a folder of the test's own; it is not a workspace member), and the proxy
subprocess finds it on `PYTHONPATH`, through its `mcpr.sinks` entry point, as it would after
`pip install`. Real SDK traffic goes through; the JSON Lines files (rotated by size) must
hold every request once SIGTERM has flushed and closed the sink.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import mcp
import pytest
from click.testing import CliRunner

from mcpr_cli.cli import cli
from tests.e2e.processes import spawn_mcpr

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "jsonl-sink"
STARTUP_TIMEOUT = 20.0
CALLS = 12


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example sink installed, without dependencies, into a folder of its own."""
    uv = shutil.which("uv")
    assert uv is not None, "uv is needed to install examples/jsonl-sink for this test"
    site = tmp_path_factory.mktemp("plugin-site")
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--no-deps", "--python", sys.executable,
         "--target", str(site), str(EXAMPLE)],
        check=True,
        timeout=300,
    )  # fmt: skip
    assert (site / "mcpr_jsonl_sink").is_dir()
    return site


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environ(site: Path, tmp_path: Path) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "MCPR_DB": str(tmp_path / "store.db")}


def _config(tmp_path: Path, upstream: str, port: int, table: str) -> Path:
    path = tmp_path / "mcpr.toml"
    path.write_text(
        f'mcp = "{upstream}"\nport = {port}\nadmin = "none"\nevents_format = "off"\n{table}'
    )
    return path


@pytest.fixture
def proxy(
    plugin_site: Path, mcp_server_url: str, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """`mcpr proxy run` with the jsonl sink (small files, so that traffic rotates them)."""
    port = _free_port()
    table = (
        '[[sinks]]\nuse = "jsonl"\nname = "audit"\n'
        f'path = "{tmp_path / "out" / "events.jsonl"}"\nmax_bytes = 4000\nbackups = 50\n'
    )
    config = _config(tmp_path, mcp_server_url, port, table)
    stderr_path = tmp_path / "stderr.log"
    env = _environ(plugin_site, tmp_path)
    proc = spawn_mcpr("proxy", "run", str(config), stderr_path=stderr_path, env=env)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while "listening on" not in stderr_path.read_text(errors="replace"):
            assert proc.poll() is None, stderr_path.read_text(errors="replace")
            assert time.monotonic() < deadline, "mcpr did not start listening"
            time.sleep(0.05)
        yield proc, port, stderr_path
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _events(folder: Path) -> list[dict[str, object]]:
    """Every event of the rotated files, oldest file first."""
    files = sorted(folder.glob("events.jsonl.*"), key=lambda p: -int(p.suffix[1:]))
    lines: list[dict[str, object]] = []
    for path in [*files, folder / "events.jsonl"]:
        lines.extend(json.loads(line) for line in path.read_text().splitlines())
    return lines


async def test_plugin_sink_gets_every_event_and_is_closed_on_sigterm(
    proxy: tuple[subprocess.Popen[bytes], int, Path], tmp_path: Path
) -> None:
    """Entry point, config, banner, events received and rotated, flush and close on SIGTERM."""
    proc, port, stderr_path = proxy
    assert "  sinks     sqlite, audit" in stderr_path.read_text()
    url = f"http://127.0.0.1:{port}/mcp"
    for era in ("legacy", "2026-07-28"):
        async with mcp.Client(url, mode=era) as client:
            for n in range(CALLS):
                await client.call_tool("echo", {"text": f"{era}-{n}"})
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=STARTUP_TIMEOUT) == 0
    folder = tmp_path / "out"
    assert len(list(folder.glob("events.jsonl.*"))) >= 2  # rotated by size
    for path in folder.iterdir():  # only a single line longer than max_bytes makes more
        assert path.stat().st_size <= 4000 or len(path.read_text().splitlines()) == 1
    events = _events(folder)
    calls = [e for e in events if e["type"] == "request" and e["mcp_method"] == "tools/call"]
    assert len(calls) == 2 * CALLS
    assert {e["era"] for e in calls} == {"legacy", "modern"}
    ids = [e["id"] for e in events if e["type"] == "request"]
    assert len(ids) == len(set(ids))  # each event once, across the rotations
    assert any(e["type"] == "session_start" for e in events)


def test_validate_runs_the_plugin_factory(
    plugin_site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mcpr validate` finds the installed plugin and reports its refusals with key paths."""
    monkeypatch.syspath_prepend(str(plugin_site))
    table = '[[sinks]]\nuse = "jsonl"\nmax_bytes = -5\n[[sinks]]\nuse = "jsonl"\nname = "b"\n'
    config = _config(tmp_path, "http://127.0.0.1:9/mcp", 3000, table)
    result = CliRunner().invoke(cli, ["validate", str(config)])
    assert result.exit_code == 1
    assert "error: sinks[0].max_bytes: expected an integer >= 0, got -5" in result.output
    assert "error: sinks[1].path: required: the file to write" in result.output
