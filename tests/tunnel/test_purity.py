"""The tunnel protocol core stays sans-IO: importing it loads no sockets, TLS or event loop."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib.metadata import version

_PROBE = textwrap.dedent(
    """
    import json, sys
    before = set(sys.modules)
    import mcp_tunnel_client
    import mcp_tunnel_client.endpoint, mcp_tunnel_client.frames
    import mcp_tunnel_client.http1, mcp_tunnel_client.protocol
    core = set(sys.modules) - before
    mcp_tunnel_client.TunnelClient
    print(json.dumps([sorted(core), sorted(set(sys.modules) - before)]))
    """
)
BANNED = frozenset(
    {"socket", "_socket", "ssl", "_ssl", "select", "selectors", "asyncio", "anyio", "trio"}
    | {"threading", "wsproto", "h11", "logging"}
)


def test_core_imports_nothing_that_does_io() -> None:
    """The package and its core modules import none of the I/O modules; the driver does."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    core, everything = (set(names) for names in json.loads(done.stdout))
    assert {name for name in core if name.split(".")[0] in BANNED} == set()
    assert {"anyio", "wsproto", "ssl"} <= everything


def test_version_matches_the_distribution() -> None:
    """The hard-coded `__version__` is the installed distribution's version."""
    import mcp_tunnel_client

    assert mcp_tunnel_client.__version__ == version("mcp-tunnel-client")
