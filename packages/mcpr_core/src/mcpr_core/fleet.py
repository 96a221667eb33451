"""Routable session ids for a fleet of mcpr replicas behind one load balancer.

Theory of operation
-------------------
The `initialize` request that mints a legacy MCP session carries no session id, so a load
balancer cannot know where the session will live, and hashing on `Mcp-Session-Id` sends
later requests of the session anywhere. A replica configured with `[fleet] replica = "a"`
makes the id say where it lives instead:

* Every `Mcp-Session-Id` the upstream sends is handed to the client as `a.` + the upstream's
  id (`client_session_id`). A balancer routes on the part before the first `.` (an nginx
  `map`, an Envoy header match), and requests without an id are balanced freely.
* On every request the prefix is taken off again before the header goes upstream
  (`upstream_session_id`); bodies are never touched.
* An id that does not start with this replica's prefix was not issued through this
  replica: the balancer sent it to the wrong place, or it predates the fleet. Forwarding it
  would reach an upstream that never minted it, so the replica answers 404 itself
  (`not_ours_message` says why), which the MCP transports spec makes the client's cue to
  start a new session: "When a client receives HTTP 404 in response to a request
  containing an `Mcp-Session-Id`, it MUST start a new session".

Replica names are visible ASCII without `.` (`check_replica`), so the first `.` of a
client's id always ends the prefix, whatever the upstream's own ids contain.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "MAX_REPLICA_LENGTH",
    "SEPARATOR",
    "SESSION_NOT_FOUND",
    "check_replica",
    "client_session_id",
    "not_ours_message",
    "replica_of",
    "upstream_session_id",
]

#: Between the replica name and the upstream's session id.
SEPARATOR: Final = "."
#: Longest replica name: it is repeated in every session id of the replica.
MAX_REPLICA_LENGTH: Final = 64
#: The JSON-RPC error code of the local 404 ("Session not found", as the TypeScript SDK's
#: servers answer it; outside the range 2026-07-28 reserves for the spec).
SESSION_NOT_FOUND: Final = -32001

_SEP: Final = SEPARATOR.encode("ascii")


def check_replica(name: str) -> str:
    """Return `name` if it can be a replica name, else raise ValueError saying why.

    A replica name is 1-64 visible ASCII characters (0x21-0x7E, as session ids are) other
    than the separator `.`.
    """
    if not name:
        raise ValueError("must not be empty")
    if len(name) > MAX_REPLICA_LENGTH:
        raise ValueError(f"must be at most {MAX_REPLICA_LENGTH} characters, got {len(name)}")
    bad = next((c for c in name if not 0x21 <= ord(c) <= 0x7E), None)
    if bad is not None:
        raise ValueError(f"must be visible ASCII (no spaces or control characters), got {name!r}")
    if SEPARATOR in name:
        raise ValueError(f"must not contain {SEPARATOR!r}, the session-id separator, got {name!r}")
    return name


def client_session_id(replica: bytes, upstream_id: bytes) -> bytes:
    """The id the client sees for a session the upstream calls `upstream_id`."""
    return replica + _SEP + upstream_id


def upstream_session_id(replica: bytes, client_id: bytes) -> bytes | None:
    """The upstream's id inside a client's `client_id`; None when it is not this replica's."""
    prefix = replica + _SEP
    if client_id.startswith(prefix) and len(client_id) > len(prefix):
        return client_id[len(prefix) :]
    return None


def replica_of(client_id: bytes) -> str | None:
    """The replica a client's session id names (the part before the first `.`), if any.

    Cut to `MAX_REPLICA_LENGTH`: it comes from the client and ends up in messages.
    """
    name, sep, rest = client_id.partition(_SEP)
    if not sep or not name or not rest:
        return None
    return name[:MAX_REPLICA_LENGTH].decode("ascii", "replace")


def not_ours_message(replica: str, client_id: bytes) -> str:
    """Why a session id is answered 404 by `replica` instead of being forwarded."""
    owner = replica_of(client_id)
    if owner is None:
        return (
            f"Session not found: this session id was not issued through an mcpr fleet replica"
            f" (expected the prefix '{replica}{SEPARATOR}'); start a new session"
        )
    return (
        f"Session not found: this session belongs to replica '{owner}', not '{replica}'"
        f" (the load balancer sent it to the wrong replica); start a new session"
    )
