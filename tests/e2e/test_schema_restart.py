"""Schema versions survive a restart of `mcpr proxy run` without being recorded twice."""

from __future__ import annotations

from pathlib import Path

import apsw
import mcp
import pytest

from tests.e2e.test_csp_reload import ProxyProcess, _free_port


def _tool_list_versions(store: Path) -> list[tuple[str, str]]:
    conn = apsw.Connection(str(store), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return [
            (str(change), str(method))
            for change, method in conn.execute(
                "SELECT change_type, method FROM schema_changes WHERE method = 'tools/list'"
            )
        ]
    finally:
        conn.close()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_restart_with_an_unchanged_upstream_adds_no_version(
    mcp_server_url: str, tmp_path: Path
) -> None:
    """tools/list before and after a restart is stored as one initial version."""
    for run in range(2):
        port = _free_port()
        config = tmp_path / "mcpr.toml"
        config.write_text(f'mcp = "{mcp_server_url}"\nport = {port}\nevents_format = "off"\n')
        proxy = ProxyProcess(config, tmp_path / f"stderr-{run}.log")
        try:
            proxy.wait_listening(port)
            async with mcp.Client(f"http://127.0.0.1:{port}/mcp", mode="legacy") as client:
                await client.list_tools()
        finally:
            assert proxy.stop() == 0
    assert _tool_list_versions(tmp_path / "store.db") == [("initial", "tools/list")]
