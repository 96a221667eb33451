"""mcp-tunnel-client: give a local MCP server a public URL through a relay.

`TunnelClient` is the anyio driver; `TunnelProtocol` and the frame codec in
`mcp_tunnel_client.frames` are the sans-IO core it drives, usable on their own.
Importing the package (or the core modules) loads no event loop, socket or TLS module:
the driver is imported on first use of `TunnelClient` or `TunnelStatus`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcp_tunnel_client.endpoint import REGISTER_PATH, register_endpoint
from mcp_tunnel_client.frames import STREAM, Frame, FrameError, encode_frame, parse_frame
from mcp_tunnel_client.protocol import RemoteProtocolError, State, TunnelProtocol

if TYPE_CHECKING:
    from mcp_tunnel_client.client import TunnelClient, TunnelStatus

__all__ = [
    "REGISTER_PATH",
    "STREAM",
    "Frame",
    "FrameError",
    "RemoteProtocolError",
    "State",
    "TunnelClient",
    "TunnelProtocol",
    "TunnelStatus",
    "__version__",
    "encode_frame",
    "parse_frame",
    "register_endpoint",
]

#: The distribution's version (kept here: importlib.metadata would pull in socket).
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """Import the driver (anyio, wsproto, ssl) only when it is asked for."""
    if name in ("TunnelClient", "TunnelStatus"):
        from mcp_tunnel_client import client

        return getattr(client, name)
    raise AttributeError(f"module 'mcp_tunnel_client' has no attribute {name!r}")
