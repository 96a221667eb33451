"""Legacy MCP sessions: which exist, who opened them, when they were last used.

Theory of operation
-------------------
A `SessionTracker` is the proxy's memory of the `Mcp-Session-Id` values it carries
(PRODUCT.md §4). It is sans-IO: the driver calls it as exchanges pass and passes the wall
clock in unix milliseconds (`now_ms`), which also stamps the events. Every method that
changes the set of sessions returns the events to emit, as a list (empty when nothing
happened), so the driver's loop is always `for event in ...: emit(event)`.

    initialize answer carrying Mcp-Session-Id  -> on_initialize()   SessionStart
    request carrying the header (on arrival)   -> touch()           info for the event
    notifications/initialized                  -> on_initialized()
    its answer (any method but DELETE)         -> on_response()     adopt (2xx) | end (404)
    DELETE answered                            -> on_delete()       end (2xx, 404)
    periodic sweep                             -> expire()          ends idle sessions
    shutdown                                   -> close_all()       ends everything

Rules
-----
* A session the proxy does not know (opened before a restart, or forgotten after its idle
  TTL) is adopted, with an unknown client, once the upstream *accepts* a request carrying
  it (a 2xx answer). Adopting on arrival instead would let any client fill the table with
  made-up ids that the upstream answers with 404.
* "The server MAY terminate the session at any time, after which it MUST respond to
  requests containing that session ID with HTTP 404 Not Found" (MCP 2025-11-25,
  transports): a 404 to a request carrying a known id ends it with reason `upstream_gone`.
  A DELETE ends its session only when the upstream accepted it (2xx); "the server MAY
  respond to this request with HTTP 405 Method Not Allowed, indicating that the server
  does not allow clients to terminate sessions", and then the session goes on.
* The idle TTL is the proxy's bookkeeping, not the upstream's: `expire()` ends sessions
  idle for at least `ttl` seconds; a session touched before the sweep reached it lives on.
* Memory is bounded: at most `max_sessions` are tracked, and making room ends the least
  recently seen one (reason `evicted`). Ids must be visible ASCII ("The session ID MUST
  only contain visible ASCII characters (ranging from 0x21 to 0x7E)") and at most
  `MAX_SESSION_ID_LENGTH` long, else they are not tracked; client strings are cut to
  `MAX_CLIENT_FIELD_LENGTH`, and identical client identities are shared between sessions.
* Sessions are kept in least-recently-seen order, so expiry and eviction look at the
  front only. A wall clock stepping backwards can only delay an expiry.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from mcpr_core.events import SessionEnd, SessionStart
from mcpr_core.mcp import client_platform

__all__ = [
    "MAX_CLIENT_FIELD_LENGTH",
    "MAX_SESSION_ID_LENGTH",
    "SessionEvent",
    "SessionInfo",
    "SessionStatistics",
    "SessionTracker",
]

#: Longest session id tracked. Ids are usually UUIDs (32-36 characters); some servers pack
#: signed state into them, so leave room, but not unbounded room.
MAX_SESSION_ID_LENGTH: Final = 1024
#: Client name, version and protocol version are self-reported; keep this much of each.
MAX_CLIENT_FIELD_LENGTH: Final = 256
#: Distinct client identities shared between sessions; beyond this each session keeps its own.
_IDENTITY_CACHE_SIZE: Final = 1024

SessionEvent = SessionStart | SessionEnd

# (client_name, client_version, client_platform, protocol_version)
_Identity = tuple[str | None, str | None, str | None, str | None]
_UNKNOWN: Final[_Identity] = (None, None, None, None)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What the tracker knows about one session.

    `active` is True once `notifications/initialized` was seen; `adopted` is True when the
    session was first seen on a request rather than on its `initialize` answer.
    """

    session_id: str
    client_name: str | None
    client_version: str | None
    client_platform: str | None
    protocol_version: str | None
    started_at: int
    last_seen: int
    requests: int
    active: bool
    adopted: bool


@dataclass(frozen=True, slots=True)
class SessionStatistics:
    """Counters of a tracker: sessions tracked now, and how sessions began and ended."""

    sessions: int
    started: int
    adopted: int
    deleted: int
    upstream_gone: int
    expired: int
    evicted: int
    shutdown: int
    refused: int


_COUNTERS: Final = (
    "started",
    "adopted",
    "deleted",
    "upstream_gone",
    "expired",
    "evicted",
    "shutdown",
    "refused",
)


class _Session:
    """The mutable record behind a `SessionInfo` (slotted: about 100 bytes)."""

    __slots__ = ("active", "adopted", "identity", "last_seen", "requests", "started_at")

    def __init__(self, identity: _Identity, now_ms: int, *, adopted: bool) -> None:
        self.identity = identity
        self.started_at = now_ms
        self.last_seen = now_ms
        self.requests = 0
        self.active = False
        self.adopted = adopted


def _valid_id(session_id: str) -> bool:
    return (
        0 < len(session_id) <= MAX_SESSION_ID_LENGTH
        and session_id.isascii()
        and session_id.isprintable()
        and " " not in session_id
    )


def _cut(value: str | None) -> str | None:
    if value is None:
        return None
    return value[:MAX_CLIENT_FIELD_LENGTH]


class SessionTracker:
    """The sessions of one proxy (see the module docstring for the driving order).

    `ttl` is the idle time in seconds after which `expire()` ends a session; `max_sessions`
    bounds how many are tracked at once. Raises ValueError for a non-positive either.
    """

    __slots__ = ("_counts", "_identities", "_max", "_proxy", "_sessions", "_ttl_ms")

    def __init__(self, proxy: str, *, ttl: float, max_sessions: int = 100_000) -> None:
        if ttl <= 0:
            raise ValueError(f"ttl must be positive, got {ttl!r}")
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be at least 1, got {max_sessions!r}")
        self._proxy = proxy
        self._ttl_ms = max(1, round(ttl * 1000))
        self._max = max_sessions
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._identities: dict[_Identity, _Identity] = {_UNKNOWN: _UNKNOWN}
        self._counts = dict.fromkeys(_COUNTERS, 0)

    def __repr__(self) -> str:
        return (
            f"<SessionTracker proxy={self._proxy!r} sessions={len(self._sessions)}/{self._max}"
            f" ttl={self._ttl_ms / 1000:g}s>"
        )

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._sessions

    # -- beginnings ---------------------------------------------------------------------------

    def on_initialize(
        self,
        session_id: str,
        *,
        client_name: str | None,
        client_version: str | None,
        protocol_version: str | None,
        now_ms: int,
    ) -> list[SessionEvent]:
        """An `initialize` answer carried `Mcp-Session-Id`: start the session.

        Returns the `SessionStart`, preceded by the `SessionEnd` of a session evicted to make
        room; nothing for an id that cannot be tracked. A known id (an upstream reusing one)
        takes the new identity and its `SessionStart` is restated.
        """
        if not _valid_id(session_id):
            self._counts["refused"] += 1
            return []
        name = _cut(client_name)
        platform = client_platform(name).value if name else None
        identity = self._share((name, _cut(client_version), platform, _cut(protocol_version)))
        events: list[SessionEvent] = []
        session = self._sessions.get(session_id)
        if session is None:
            events.extend(self._make_room(now_ms))
            session = self._sessions[session_id] = _Session(identity, now_ms, adopted=False)
            session.requests = 1  # the initialize exchange itself
            self._counts["started"] += 1
        else:
            session.identity = identity
            session.adopted = False
            self._seen(session_id, session, now_ms)
        events.append(self._start_event(session_id, session, now_ms))
        return events

    def on_response(self, session_id: str, *, status: int, now_ms: int) -> list[SessionEvent]:
        """The upstream answered `status` to a request carrying `session_id` (not a DELETE).

        An unknown session the upstream accepted (2xx) is adopted with an unknown client
        (`SessionStart`); a known one answered with 404 has ended (`SessionEnd` "upstream_gone").
        """
        session = self._sessions.get(session_id)
        if session is None:
            if not 200 <= status < 300:
                return []
            if not _valid_id(session_id):
                self._counts["refused"] += 1
                return []
            events = self._make_room(now_ms)
            session = self._sessions[session_id] = _Session(_UNKNOWN, now_ms, adopted=True)
            session.requests = 1
            self._counts["adopted"] += 1
            events.append(self._start_event(session_id, session, now_ms))
            return events
        if status == 404:
            return [self._end(session_id, now_ms, "upstream_gone")]
        return []

    # -- use ----------------------------------------------------------------------------------

    def touch(self, session_id: str, now_ms: int) -> SessionInfo | None:
        """A request carrying `session_id` arrived: count it; None for an unknown session."""
        session = self._sessions.get(session_id)
        if session is None:
            return None
        session.requests += 1
        self._seen(session_id, session, now_ms)
        return self._info(session_id, session)

    def on_initialized(self, session_id: str) -> bool:
        """`notifications/initialized` came in the session: mark it active (False if unknown)."""
        session = self._sessions.get(session_id)
        if session is None:
            return False
        session.active = True
        return True

    def get(self, session_id: str) -> SessionInfo | None:
        """What is known about `session_id`, without touching it."""
        session = self._sessions.get(session_id)
        return None if session is None else self._info(session_id, session)

    # -- endings ------------------------------------------------------------------------------

    def on_delete(self, session_id: str, now_ms: int, *, status: int) -> list[SessionEvent]:
        """The upstream answered `status` to a DELETE of `session_id`.

        2xx ends it ("deleted"; also for an unknown id, whose stored row may predate a
        restart); 404 ends a known one ("upstream_gone"); any other status leaves it alone.
        """
        if 200 <= status < 300:
            if session_id in self._sessions:
                return [self._end(session_id, now_ms, "deleted")]
            if not _valid_id(session_id):
                self._counts["refused"] += 1
                return []
            self._counts["deleted"] += 1
            return [SessionEnd(session_id, now_ms, self._proxy, "deleted")]
        if status == 404 and session_id in self._sessions:
            return [self._end(session_id, now_ms, "upstream_gone")]
        return []

    def expire(self, now_ms: int) -> list[SessionEnd]:
        """End every session idle for at least the TTL ("expired"), least recently seen first."""
        events = []
        while self._sessions:
            session_id, session = next(iter(self._sessions.items()))
            if now_ms - session.last_seen < self._ttl_ms:
                break
            events.append(self._end(session_id, now_ms, "expired"))
        return events

    def close_all(self, now_ms: int) -> list[SessionEnd]:
        """End every session ("shutdown"), least recently seen first; the tracker is then empty."""
        return [self._end(sid, now_ms, "shutdown") for sid in list(self._sessions)]

    def statistics(self) -> SessionStatistics:
        """A snapshot of the counters."""
        return SessionStatistics(sessions=len(self._sessions), **self._counts)

    # -- helpers ------------------------------------------------------------------------------

    def _share(self, identity: _Identity) -> _Identity:
        shared = self._identities.get(identity)
        if shared is not None:
            return shared
        if len(self._identities) < _IDENTITY_CACHE_SIZE:
            self._identities[identity] = identity
        return identity

    def _seen(self, session_id: str, session: _Session, now_ms: int) -> None:
        session.last_seen = max(session.last_seen, now_ms)
        self._sessions.move_to_end(session_id)

    def _make_room(self, now_ms: int) -> list[SessionEvent]:
        events: list[SessionEvent] = []
        while len(self._sessions) >= self._max:
            oldest = next(iter(self._sessions))
            events.append(self._end(oldest, now_ms, "evicted"))
        return events

    def _end(self, session_id: str, now_ms: int, reason: str) -> SessionEnd:
        del self._sessions[session_id]
        self._counts[reason] += 1
        return SessionEnd(session_id=session_id, ts=now_ms, proxy=self._proxy, reason=reason)

    def _start_event(self, session_id: str, session: _Session, now_ms: int) -> SessionStart:
        name, version, platform, protocol = session.identity
        return SessionStart(
            session_id=session_id,
            ts=now_ms,
            proxy=self._proxy,
            client_name=name,
            client_version=version,
            client_platform=platform,
            protocol_version=protocol,
        )

    @staticmethod
    def _info(session_id: str, session: _Session) -> SessionInfo:
        name, version, platform, protocol = session.identity
        return SessionInfo(
            session_id=session_id,
            client_name=name,
            client_version=version,
            client_platform=platform,
            protocol_version=protocol,
            started_at=session.started_at,
            last_seen=session.last_seen,
            requests=session.requests,
            active=session.active,
            adopted=session.adopted,
        )
