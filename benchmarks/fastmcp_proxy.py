"""The FastMCP proxy as the benchmark runs it: `python -m benchmarks.fastmcp_proxy URL PORT`.

`fastmcp.server.create_proxy` re-hosts the MCP session in front of the upstream at URL and
serves Streamable HTTP on 127.0.0.1:PORT at `/mcp`, with its own defaults otherwise.
"""

from __future__ import annotations

import sys

from fastmcp.server import create_proxy


def main() -> None:
    """Serve until terminated."""
    upstream, port = sys.argv[1], int(sys.argv[2])
    proxy = create_proxy(upstream, name="mcpr-bench-fastmcp")
    proxy.run("http", host="127.0.0.1", port=port, log_level="warning", show_banner=False)


if __name__ == "__main__":
    main()
