"""The error hierarchy of mcpr_core, split the way h11 splits it.

* `RemoteProtocolError`: the peer (client or upstream) sent something we cannot work
  with. It carries `status_hint`, the HTTP status a driver should answer with.
* `LocalProtocolError`: the caller drove a machine wrongly (wrong order, input after
  the end). It means a bug in the driver, never bad network input.

Bad input that a machine can describe (an invalid JSON-RPC body, an SSE field it does
not know) is a returned value, not an exception.
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "McprError", "RemoteProtocolError"]


class McprError(Exception):
    """Root of every exception raised by mcpr_core."""


class RemoteProtocolError(McprError):
    """The remote side violated the protocol; `status_hint` is the HTTP status to answer."""

    def __init__(self, message: str, *, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint


class LocalProtocolError(McprError):
    """The local caller used a machine in a way its state does not allow (a driver bug)."""
