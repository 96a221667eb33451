"""HTTP-level routing decisions: what a request is, where it goes, which headers travel.

Theory of operation. The driver reads a request head and asks, in order:

1. `check_host_and_origin`: is this request allowed to reach us at all (DNS rebinding)?
2. `classify_head`: is it MCP traffic? A POST cannot be decided from the head alone: the
   caller parses the body as JSON-RPC (MCP_MESSAGE) or not (PASSTHROUGH), PRODUCT.md §2.1.
3. `upstream_target`: which request-target to send upstream. MCP traffic goes to the
   configured `mcp` URL with the same method; everything else keeps its own path and query.
4. `forward_request_headers` / `forward_response_headers`: which fields cross the proxy.

Headers are h11-style: a sequence of `(name, value)` byte pairs with lower-case names.
Every function here accepts arbitrary bytes without raising; a value it cannot make
sense of simply fails the check it was part of.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

__all__ = [
    "HOP_BY_HOP",
    "HostCheck",
    "RequestKind",
    "UpstreamURL",
    "check_host_and_origin",
    "classify_head",
    "forward_request_headers",
    "forward_response_headers",
    "header_value",
    "parse_upstream_url",
    "upstream_target",
]

Headers = Sequence[tuple[bytes, bytes]]

_DEFAULT_PORTS = {"http": 80, "https": 443}

# A DNS name as the URL and Host syntax allow it (RFC 3986 §3.2.2 reg-name, restricted to
# what resolvers accept). Underscores are tolerated because container hostnames use them.
_HOSTNAME = re.compile(
    r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*\.?"
)
_PORT = re.compile(r"[0-9]{1,5}")
_SCHEME_PREFIX = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True, slots=True)
class UpstreamURL:
    """The upstream MCP endpoint, split into what a transport needs.

    `host` is bare (an IPv6 literal has no brackets) so it can be handed to a connect call;
    `host_header` and `origin` carry the brackets and omit the scheme's default port, as
    RFC 9110 §7.2 and RFC 6454 §6.2 serialise them.
    """

    scheme: Literal["http", "https"]
    host: str
    port: int
    path: str
    query: str
    origin: str
    host_header: bytes
    is_tls: bool


def parse_upstream_url(url: str) -> UpstreamURL:
    """Parse and validate an upstream `http://` or `https://` URL.

    Raises ValueError with a message fit to show the user. The URL must be ASCII, have a
    host, and carry neither credentials nor a fragment; the path defaults to "/".
    """
    if not isinstance(url, str):
        raise ValueError(f"URL must be a string, got {type(url).__name__}")
    if not url:
        raise ValueError("URL is empty")
    if not url.isascii():
        raise ValueError("URL must be ASCII: percent-encode the path and use punycode for the host")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise ValueError("URL must not contain whitespace or control characters")
    scheme, sep, _ = url.partition("://")
    if not sep:
        raise ValueError(f"URL must start with http:// or https://, got {url!r}")
    scheme = scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"URL scheme must be http or https, got {scheme!r}")
    if "#" in url:
        # A fragment is never sent on the wire (RFC 9110 §4.2.4), so one here is a mistake.
        raise ValueError("URL must not contain a fragment ('#...')")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"URL has an invalid host or port: {exc}") from None
    if "@" in parts.netloc:
        raise ValueError("URL must not contain credentials (user:password@)")
    host = parts.hostname or ""
    if not host:
        raise ValueError("URL has no host")
    is_ipv6 = parts.netloc.startswith("[")
    if is_ipv6:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"URL host [{host}] is not an IPv6 address") from None
    elif _HOSTNAME.fullmatch(host) is None:
        raise ValueError(f"URL host {host!r} is not a valid host name")
    if port is None:
        port = _DEFAULT_PORTS[scheme]
    elif port == 0:
        raise ValueError("URL port must be between 1 and 65535")
    authority = f"[{host}]" if is_ipv6 else host
    if port != _DEFAULT_PORTS[scheme]:
        authority = f"{authority}:{port}"
    return UpstreamURL(
        scheme="https" if scheme == "https" else "http",
        host=host,
        port=port,
        path=parts.path or "/",
        query=parts.query,
        origin=f"{scheme}://{authority}",
        host_header=authority.encode("ascii"),
        is_tls=scheme == "https",
    )


class RequestKind(enum.Enum):
    """What an incoming request is, for routing (PRODUCT.md §2.1)."""

    MCP_MESSAGE = "mcp_message"
    MCP_STREAM = "mcp_stream"
    SESSION_DELETE = "session_delete"
    PASSTHROUGH = "passthrough"


def header_value(headers: Headers, name: bytes) -> bytes | None:
    """Return the first value of header `name` (given lower-case), or None when absent."""
    size = len(name)
    for key, value in headers:
        # Lengths first: most names differ in length, and then need no lower-casing.
        if len(key) == size and key.lower() == name:
            return value
    return None


def _header_values(headers: Headers, name: bytes) -> list[bytes]:
    size = len(name)
    return [value for key, value in headers if len(key) == size and key.lower() == name]


def _accepts_event_stream(headers: Headers) -> bool:
    """True when some Accept field lists text/event-stream with a non-zero weight.

    Wildcards (`*/*`, `text/*`) do not count: a browser asks for `*/*` on every GET, and
    treating that as a server-push stream would swallow ordinary pages (RFC 9110 §12.5.1).
    """
    for value in _header_values(headers, b"accept"):
        for media_range in value.split(b","):
            media_type, *params = media_range.split(b";")
            if media_type.strip(b" \t").lower() != b"text/event-stream":
                continue
            weight = 1.0
            for param in params:
                key, _, raw = param.partition(b"=")
                if key.strip(b" \t").lower() == b"q":
                    try:
                        weight = float(raw.strip(b" \t"))
                    except ValueError:
                        weight = 1.0
            if weight > 0:
                return True
    return False


def classify_head(method: bytes, headers: Headers) -> RequestKind | None:
    """Classify a request from its head alone (PRODUCT.md §2.1).

    Returns None for POST: only its body can tell MCP (a JSON-RPC message or batch) from
    passthrough. Methods are case-sensitive (RFC 9110 §9.1), so `get` is not GET.
    """
    if method == b"POST":
        return None
    if method == b"GET" and _accepts_event_stream(headers):
        return RequestKind.MCP_STREAM
    if method == b"DELETE":
        session = header_value(headers, b"mcp-session-id")
        if session is not None and session.strip(b" \t"):
            return RequestKind.SESSION_DELETE
    return RequestKind.PASSTHROUGH


def _origin_form(target: bytes) -> bytes:
    """Reduce an absolute-form target (RFC 9112 §3.2.2) to origin-form; drop any fragment."""
    target = target.partition(b"#")[0]
    match = _SCHEME_PREFIX.match(target)
    if match is None:
        return target
    rest = target[match.end() :]
    cut = min((i for i in (rest.find(b"/"), rest.find(b"?")) if i >= 0), default=len(rest))
    path_and_query = rest[cut:]
    if not path_and_query.startswith(b"/"):
        path_and_query = b"/" + path_and_query
    return path_and_query


def upstream_target(kind: RequestKind, request_target: bytes, upstream: UpstreamURL) -> bytes:
    """Return the request-target to send upstream.

    MCP traffic goes to the configured endpoint path; the request's own query wins when it
    has one, else the upstream URL's query is used. Passthrough keeps the request's path and
    query (in origin-form). Asterisk- and authority-form targets pass through untouched.
    """
    target = _origin_form(request_target)
    if kind is RequestKind.PASSTHROUGH:
        return target
    query = target.partition(b"?")[2]
    path = upstream.path.encode("ascii")
    if query:
        return path + b"?" + query
    if upstream.query:
        return path + b"?" + upstream.query.encode("ascii")
    return path


#: Hop-by-hop fields (RFC 9110 §7.6.1), plus the non-standard Proxy-Connection that old
#: clients still send. None of these may be forwarded by a proxy.
HOP_BY_HOP: frozenset[bytes] = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)


def _dropped_fields(headers: Headers) -> set[bytes]:
    """Hop-by-hop names plus every option listed in Connection (RFC 9110 §7.6.1).

    Content-Length is never dropped on a Connection option's say-so: it frames the message,
    and the body is forwarded byte for byte, so removing it would corrupt the exchange.
    """
    dropped = set(HOP_BY_HOP)
    for value in _header_values(headers, b"connection"):
        for token in value.split(b","):
            option = token.strip(b" \t").lower()
            if option and option != b"content-length":
                dropped.add(option)
    return dropped


def forward_request_headers(
    headers: Headers,
    *,
    upstream: UpstreamURL,
    client_host: str | None,
    scheme: str = "http",
) -> list[tuple[bytes, bytes]]:
    """Return the headers to send upstream for a client request (PRODUCT.md §2.3).

    Hop-by-hop fields go; Host becomes the upstream's and comes first (RFC 9112 §3.2);
    X-Forwarded-For gains the client (all earlier values merged into one field, in order);
    X-Forwarded-Proto and X-Forwarded-Host keep a value set by a proxy in front of us, else
    get `scheme` and the client's Host. Every other field, MCP headers, Authorization and
    cookies included, is forwarded unchanged and in order (PROTOCOL.md §6.2).
    Content-Length is kept: the body is forwarded unchanged.
    """
    dropped = _dropped_fields(headers)
    out: list[tuple[bytes, bytes]] = [(b"host", upstream.host_header)]
    client_host_header: bytes | None = None
    forwarded_for: list[bytes] = []
    has_proto = has_host = False
    for name, value in headers:
        key = name.lower()
        if key == b"host":
            if client_host_header is None:
                client_host_header = value
            continue
        if key in dropped:
            continue
        if key == b"x-forwarded-for":
            forwarded_for.append(value.strip(b" \t"))
            continue
        if key == b"x-forwarded-proto":
            has_proto = True
        elif key == b"x-forwarded-host":
            has_host = True
        out.append((name, value))
    if client_host:
        forwarded_for.append(client_host.encode("ascii", "replace"))
    chain = b", ".join(v for v in forwarded_for if v)
    if chain:
        out.append((b"x-forwarded-for", chain))
    if not has_proto:
        out.append((b"x-forwarded-proto", scheme.encode("ascii", "replace")))
    if not has_host and client_host_header:
        out.append((b"x-forwarded-host", client_host_header))
    return out


def forward_response_headers(
    headers: Headers, *, keep_content_length: bool
) -> list[tuple[bytes, bytes]]:
    """Return the upstream response headers to send to the client.

    Hop-by-hop fields go (the driver re-frames the response for its client). Content-Length
    stays only when the body passes through unchanged; otherwise the driver recomputes it or
    lets h11 chunk the body.
    """
    dropped = _dropped_fields(headers)
    if not keep_content_length:
        dropped.add(b"content-length")
    return [(name, value) for name, value in headers if name.lower() not in dropped]


class HostCheck(enum.Enum):
    """The verdict on a request's Host and Origin (PROTOCOL.md §7 decision 5)."""

    OK = "ok"
    BAD_HOST = "bad_host"
    BAD_ORIGIN = "bad_origin"


def _split_host_port(authority: str) -> tuple[str, str] | None:
    """Split `host[:port]` or `[v6][:port]`; the port is "" when absent. None when malformed."""
    if authority.startswith("["):
        host, bracket, rest = authority[1:].partition("]")
        if not bracket or not host:
            return None
        if not rest:
            return host, ""
        if not rest.startswith(":"):
            return None
        return host, rest[1:]
    if authority.count(":") > 1:
        # An unbracketed IPv6 literal is no valid Host; as a pattern it is a bare host.
        return authority, ""
    host, _, port = authority.partition(":")
    return host, port


@functools.lru_cache(maxsize=256)
def _is_loopback_host(host: str) -> bool:
    """True for "localhost", 127.0.0.0/8 and ::1 (also written as IPv4-mapped).

    Cached: every request asks it about the bind address and its Host, nearly always the
    same few values, and `ipaddress` parsing is the most of a request's host check.
    """
    host = host.lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # Python before 3.13 says ::ffff:127.0.0.1 is not loopback; decide it the same
        # way on every version.
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _parse_authority(authority: str) -> tuple[str, str] | None:
    """Split and validate a Host value; None when it is not `host[:port]`."""
    parts = _split_host_port(authority.lower())
    if parts is None:
        return None
    host, port = parts
    if port and _PORT.fullmatch(port) is None:
        return None
    if not host or (":" in host and not authority.startswith("[")):
        return None
    return host, port


def _glob(pattern: str, text: str) -> bool:
    """Match `text` against a pattern whose only wildcard is `*` (any run of characters).

    Deliberately not fnmatch: bracketed IPv6 patterns such as "[::1]" must stay literal.
    """
    pieces = pattern.split("*")
    if len(pieces) == 1:
        return pattern == text
    first, *middle, last = pieces
    if not text.startswith(first) or len(text) < len(first) + len(last):
        return False
    if not text.endswith(last):
        return False
    position = len(first)
    end = len(text) - len(last)
    for piece in middle:
        found = text.find(piece, position, end)
        if found < 0:
            return False
        position = found + len(piece)
    return True


def _host_allowed(host: str, port: str, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        parts = _split_host_port(pattern.strip().lower())
        if parts is None:
            continue
        host_pattern, port_pattern = parts
        if _glob(host_pattern, host) and (not port_pattern or _glob(port_pattern, port)):
            return True
    return False


def _is_loopback_origin(origin: str) -> bool:
    scheme, sep, authority = origin.partition("://")
    if not sep or scheme not in _DEFAULT_PORTS:
        return False
    parts = _parse_authority(authority)
    return parts is not None and _is_loopback_host(parts[0])


def _origin_allowed(origin: str, patterns: Iterable[str]) -> bool:
    return any(_glob(p.strip().lower().rstrip("/"), origin) for p in patterns)


def check_host_and_origin(
    headers: Headers,
    *,
    bind: str,
    allowed_hosts: Sequence[str],
    allowed_origins: Sequence[str],
) -> HostCheck:
    """Decide whether a request passes the DNS-rebinding checks.

    Bound to loopback, a browser tricked by DNS rebinding would reach us with a foreign
    Host or Origin; mcpr rewrites Host for the upstream, which would switch the upstream's
    own check off, so it checks them itself (PROTOCOL.md §7 decision 5; MCP transports:
    "Servers MUST validate the Origin header"). There the loopback names are always allowed
    and `allowed_hosts` / `allowed_origins` extend the set. Bound elsewhere, each check
    applies only when its allow-list is given. An absent Origin (a non-browser client) is
    fine; "null" is foreign. A missing, repeated or malformed Host fails a Host check.

    Host patterns are `host` (any port) or `host:port`; origin patterns are full origins
    (`https://chatgpt.com`). Both may use `*` as a wildcard, and `*` alone allows anything.
    """
    loopback = _is_loopback_host(bind.strip("[]"))
    if loopback or allowed_hosts:
        hosts = _header_values(headers, b"host")
        if len(hosts) != 1:
            return HostCheck.BAD_HOST
        parts = _parse_authority(hosts[0].decode("latin-1").strip(" \t"))
        if parts is None:
            return HostCheck.BAD_HOST
        host, port = parts
        if not ((loopback and _is_loopback_host(host)) or _host_allowed(host, port, allowed_hosts)):
            return HostCheck.BAD_HOST
    if loopback or allowed_origins:
        origins = _header_values(headers, b"origin")
        if not origins:
            return HostCheck.OK
        if len(origins) > 1:
            return HostCheck.BAD_ORIGIN
        origin = origins[0].decode("latin-1").strip(" \t").lower()
        if not (
            (loopback and _is_loopback_origin(origin)) or _origin_allowed(origin, allowed_origins)
        ):
            return HostCheck.BAD_ORIGIN
    return HostCheck.OK
