"""mcp-tunnel-client: give a local MCP server a public URL through a relay.

`TunnelClient` is the anyio driver; `TunnelProtocol` and the frame codec in
`mcp_tunnel_client.frames` are the sans-IO core it drives, usable on their own.
"""

from importlib.metadata import PackageNotFoundError, version

from mcp_tunnel_client.client import TunnelClient, TunnelStatus
from mcp_tunnel_client.frames import STREAM, Frame, FrameError, encode_frame, parse_frame
from mcp_tunnel_client.protocol import RemoteProtocolError, State, TunnelProtocol
from mcp_tunnel_client.websocket import REGISTER_PATH, register_endpoint

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

try:
    __version__ = version("mcp-tunnel-client")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
