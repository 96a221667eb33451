"""OAuth discovery mapping: the upstream's origin becomes the proxy's public origin.

Theory of operation
-------------------
An MCP server is an OAuth 2.1 resource server. Clients find its authorization server
through RFC 9728 Protected Resource Metadata, named by `WWW-Authenticate: Bearer
resource_metadata="<url>"` on a 401/403 or fetched from a well-known URI, and they "MUST
check that PRM `resource` matches the URL they are talking to" (PROTOCOL.md §1.6). Behind
a reverse proxy both name the upstream, so "the PRM document and the `resource_metadata`
URL in `WWW-Authenticate` both name the *upstream* URL and must be rewritten to the proxy's
public URL, or conforming clients abort" (PROTOCOL.md §1.6, §6 item 7; PRODUCT.md §2.3).

* `is_discovery_path` says which passthrough responses to rewrite: RFC 9728
  `/.well-known/oauth-protected-resource[/<path>]`, RFC 8414
  `/.well-known/oauth-authorization-server[/<path>]`, and the OpenID Connect discovery
  document clients probe next (`/.well-known/openid-configuration[/<path>]` and
  `<path>/.well-known/openid-configuration`). An MCP server that is its own authorization
  server publishes its `issuer` and endpoints there, and RFC 8414 §3.3 makes clients
  compare `issuer` with the URL they fetched.
* `rewrite_discovery` replaces the upstream origin at the start of every string value of
  the JSON document (keys are never touched): `resource`, `issuer`, `authorization_servers`
  entries, endpoints. An origin matches whole (scheme, host, port; case-insensitive, the
  default port implied), so `http://127.0.0.1:80001` is not `http://127.0.0.1:8000`. When
  the upstream is a loopback address, any loopback name with its scheme and port counts
  (a dev server bound to 127.0.0.1 often calls itself `localhost` in its metadata).
* `rewrite_www_authenticate` maps the `resource_metadata` parameter of every challenge,
  scanning quoted strings as units so text inside another parameter is never touched.

Pure functions: bytes and strings in, bytes out; nothing here raises for network input.
"""

from __future__ import annotations

import ipaddress
import json
import string
from typing import Any, Final

__all__ = ["is_discovery_path", "rewrite_discovery", "rewrite_www_authenticate"]

_WELL_KNOWN: Final = (
    b"/.well-known/oauth-protected-resource",
    b"/.well-known/oauth-authorization-server",
    b"/.well-known/openid-configuration",
)
_OIDC_SUFFIX: Final = b"/.well-known/openid-configuration"
_DEFAULT_PORTS: Final = {"http": "80", "https": "443"}
_LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "::1"})
# RFC 9110 §5.6.2 tchar: the characters of a token such as an auth-param name.
_TCHAR: Final = frozenset("!#$%&'*+-.^_`|~" + string.digits + string.ascii_letters)


def is_discovery_path(path: bytes) -> bool:
    """Whether a request target (origin-form, query allowed) names an OAuth discovery document."""
    path = path.partition(b"?")[0].partition(b"#")[0]
    for prefix in _WELL_KNOWN:
        if path == prefix or path.startswith(prefix + b"/"):
            return True
    return path.endswith(_OIDC_SUFFIX)


def rewrite_discovery(body: bytes, *, upstream_origin: str, public_origin: str) -> bytes | None:
    """Replace the upstream origin in a discovery JSON document; None if unchanged or not JSON."""
    mapper = _OriginMapper(upstream_origin, public_origin)
    try:
        document = json.loads(body)
        new = mapper.walk(document)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if not mapper.changed or new == document:  # equal when both origins are the same
        return None
    return json.dumps(new, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def rewrite_www_authenticate(value: bytes, *, upstream_origin: str, public_origin: str) -> bytes:
    """Map the `resource_metadata` URL of each challenge; the same bytes when nothing matched."""
    text = value.decode("latin-1")  # field values are octets; latin-1 keeps every one
    mapper = _OriginMapper(upstream_origin, public_origin)
    pieces: list[str] = []
    last = 0
    for start, end, url, quoted in _resource_metadata_params(text):
        new = mapper.map(url)
        if new == url:
            continue
        if quoted:
            new = '"' + new.replace("\\", "\\\\").replace('"', '\\"') + '"'
        pieces.append(text[last:start])
        pieces.append(new)
        last = end
    if not pieces:
        return value
    pieces.append(text[last:])
    return "".join(pieces).encode("latin-1", "replace")


def _resource_metadata_params(text: str) -> list[tuple[int, int, str, bool]]:
    """(start, end, url, quoted) of every `resource_metadata` value in a header value."""
    found = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i = _skip_quoted(text, i)[0]
        elif c in _TCHAR:
            start = i
            while i < n and text[i] in _TCHAR:
                i += 1
            name = text[start:i]
            j = i
            while j < n and text[j] in " \t":
                j += 1
            if j < n and text[j] == "=" and name.lower() == "resource_metadata":
                j += 1
                while j < n and text[j] in " \t":
                    j += 1
                if j < n and text[j] == '"':
                    end, url = _skip_quoted(text, j)
                    found.append((j, end, url, True))
                else:
                    end = j
                    while end < n and text[end] not in ", \t":
                        end += 1
                    found.append((j, end, text[j:end], False))
                i = end
        else:
            i += 1
    return found


def _skip_quoted(text: str, i: int) -> tuple[int, str]:
    """From an opening quote: the index after the closing one, and the unescaped content."""
    out = []
    i += 1
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        elif c == '"':
            return i + 1, "".join(out)
        else:
            out.append(c)
            i += 1
    return i, "".join(out)  # unterminated: runs to the end


class _OriginMapper:
    """Replaces one origin (by value, not spelling) at the start of URL strings."""

    def __init__(self, upstream_origin: str, public_origin: str) -> None:
        self._upstream = _split_origin(upstream_origin.rstrip("/"))
        self._public = public_origin.rstrip("/")
        self.changed = False

    def map(self, value: str) -> str:
        split = _split_origin(value)
        if split is None or self._upstream is None or not _same_origin(split, self._upstream):
            return value
        self.changed = True
        return self._public + split[3]

    def walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.map(value)
        if isinstance(value, list):
            return [self.walk(v) for v in value]
        if isinstance(value, dict):
            return {k: self.walk(v) for k, v in value.items()}
        return value


# (scheme, host, port, rest): scheme and host lower-case, IPv6 bare, port explicit.
_Origin = tuple[str, str, str, str]


def _split_origin(url: str) -> _Origin | None:
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _DEFAULT_PORTS:
        return None
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    if "@" in authority or not authority:
        return None
    if authority.startswith("["):
        host, _, after = authority[1:].partition("]")
        port = after[1:] if after.startswith(":") else ""
    else:
        host, _, port = authority.partition(":")
    return scheme, host.lower(), port or _DEFAULT_PORTS[scheme], tail


def _same_origin(a: _Origin, b: _Origin) -> bool:
    if a[0] != b[0] or a[2] != b[2]:
        return False
    return a[1] == b[1] or (_is_loopback(a[1]) and _is_loopback(b[1]))


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
