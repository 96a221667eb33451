"""What the cloud sink and the cloud API client share: sessions, the bearer token, Retry-After.

The token rules live here. A token is only ever placed in the Authorization header, through
a requests auth object: an explicit auth object also stops requests from replacing the
header with a `.netrc` entry. `redact` masks secrets in any text bound for a log line or an
error message, in case a server or an exception echoes one.
"""

from __future__ import annotations

import datetime
import email.utils
import math
from collections.abc import Iterable

import requests
import requests.adapters
import requests.auth

from mcpr_integrations import __version__

__all__ = [
    "USER_AGENT",
    "BearerAuth",
    "close_session",
    "new_session",
    "parse_retry_after",
    "redact",
]

USER_AGENT = f"mcpr/{__version__}"
_MASK = "[redacted]"


class BearerAuth(requests.auth.AuthBase):
    """Send `Authorization: Bearer <token>`; the token is not in the repr."""

    __slots__ = ("_header",)

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._header
        return request

    def __repr__(self) -> str:
        return "<BearerAuth [redacted]>"


def new_session(token: str | None = None) -> requests.Session:
    """A session with mcpr's User-Agent and, when given, the bearer token."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    if token is not None:
        session.auth = BearerAuth(token)
    return session


def close_session(session: requests.Session) -> None:
    """Close a session's pooled connections now, then the session.

    `Session.close()` alone only forgets the pools: with urllib3 2.8 their sockets close when
    the pools are garbage-collected, which an exception's traceback can postpone for long.
    """
    for adapter in session.adapters.values():
        if isinstance(adapter, requests.adapters.HTTPAdapter):
            pools = adapter.poolmanager.pools
            for key in list(pools.keys()):
                pool = pools.get(key)
                if pool is not None:
                    pool.close()
    session.close()


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every non-empty secret replaced by `[redacted]`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, _MASK)
    return text


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` value (RFC 9110 §10.2.3), or None.

    The value is delay-seconds or an HTTP-date (compared with `now`, unix seconds); a date
    in the past means 0. Anything unreadable is None, so the caller falls back to backoff.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": RFC 9110 dates are GMT anyway
        when = when.replace(tzinfo=datetime.UTC)
    delay = when.timestamp() - now
    return max(0.0, delay) if math.isfinite(delay) else None
