"""mcpr_core: sans-IO MCP protocol machines.

Bytes and timestamps go in; decisions, bytes and events come out. Nothing in this
package opens a socket, reads a clock, starts a thread or imports an event loop, so
it can parse MCP traffic anywhere: in the proxy, in a test, or offline from a capture.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
