"""Tests of mcpr_core.oauth: discovery paths, discovery documents and WWW-Authenticate mapping."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcpr_core.oauth import is_discovery_path, rewrite_discovery, rewrite_www_authenticate

UP = "http://127.0.0.1:8000"
PUB = "https://mcp.example.com"


def discovery(document: Any, upstream: str = UP) -> Any:
    """Rewrite a JSON document and return the parsed result (None when unchanged)."""
    out = rewrite_discovery(
        json.dumps(document).encode(), upstream_origin=upstream, public_origin=PUB
    )
    return None if out is None else json.loads(out)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (b"/.well-known/oauth-protected-resource", True),
        (b"/.well-known/oauth-protected-resource/mcp", True),
        (b"/.well-known/oauth-protected-resource/mcp?x=1", True),
        (b"/.well-known/oauth-authorization-server", True),
        (b"/.well-known/oauth-authorization-server/tenant1", True),
        (b"/.well-known/openid-configuration", True),
        (b"/.well-known/openid-configuration/tenant1", True),
        (b"/tenant1/.well-known/openid-configuration", True),
        (b"/.well-known/oauth-protected-resourcex", False),
        (b"/.well-known/oauth-authorization-server-x/a", False),
        (b"/mcp/.well-known/oauth-protected-resource", False),
        (b"/.well-known/OAUTH-PROTECTED-RESOURCE", False),
        (b"/.well-known/", False),
        (b"/mcp", False),
        (b"", False),
        (b"/x?/.well-known/oauth-protected-resource", False),
    ],
)
def test_is_discovery_path(path: bytes, expected: bool) -> None:
    """RFC 9728, RFC 8414 and OIDC discovery paths are recognised, with suffix and query."""
    assert is_discovery_path(path) is expected


def test_protected_resource_metadata() -> None:
    """The PRM `resource` and its authorization server move to the public origin."""
    prm = {
        "resource": "http://127.0.0.1:8000/mcp",
        "authorization_servers": ["http://127.0.0.1:8000", "https://auth.example.com"],
        "scopes_supported": ["mcp"],
        "bearer_methods_supported": ["header"],
    }
    assert discovery(prm) == {
        "resource": "https://mcp.example.com/mcp",
        "authorization_servers": ["https://mcp.example.com", "https://auth.example.com"],
        "scopes_supported": ["mcp"],
        "bearer_methods_supported": ["header"],
    }


def test_authorization_server_metadata() -> None:
    """Issuer and endpoints of an MCP server that is its own authorization server are mapped."""
    meta = {
        "issuer": "http://127.0.0.1:8000/",
        "authorization_endpoint": "http://127.0.0.1:8000/authorize",
        "token_endpoint": "http://127.0.0.1:8000/token?x=1",
        "registration_endpoint": "http://127.0.0.1:8000#frag",
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "nested": {"deep": [{"url": "http://127.0.0.1:8000/jwks"}]},
        "http://127.0.0.1:8000/key": "keys are not values",
    }
    assert discovery(meta) == {
        "issuer": "https://mcp.example.com/",
        "authorization_endpoint": "https://mcp.example.com/authorize",
        "token_endpoint": "https://mcp.example.com/token?x=1",
        "registration_endpoint": "https://mcp.example.com#frag",
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "nested": {"deep": [{"url": "https://mcp.example.com/jwks"}]},
        "http://127.0.0.1:8000/key": "keys are not values",
    }


# (upstream origin, value, the value mapped; None when it does not name the upstream)
ORIGIN_CASES = [
    (UP, "http://127.0.0.1:8000", PUB),
    (UP, "HTTP://127.0.0.1:8000/a", PUB + "/a"),
    (UP, "http://localhost:8000/mcp", PUB + "/mcp"),
    (UP, "http://[::1]:8000?q", PUB + "?q"),
    (UP, "http://127.0.0.1:80001/mcp", None),
    (UP, "http://127.0.0.1:800/mcp", None),
    (UP, "https://127.0.0.1:8000/mcp", None),
    (UP, "http://127.0.0.1/mcp", None),
    (UP, "http://user@127.0.0.1:8000/mcp", None),
    (UP, "see http://127.0.0.1:8000/mcp", None),
    (UP, "127.0.0.1:8000", None),
    ("https://api.example.com", "https://API.example.com:443/mcp", PUB + "/mcp"),
    ("https://api.example.com:443", "https://api.example.com/mcp", PUB + "/mcp"),
    ("https://api.example.com", "https://api.example.com.evil/mcp", None),
    ("https://api.example.com", "https://localhost/mcp", None),
    ("http://localhost:3000/", "http://127.0.0.1:3000/x", PUB + "/x"),
    ("http://[::1]:3000", "http://[::1]:3000/x", PUB + "/x"),
]


@pytest.mark.parametrize(("upstream", "value", "expected"), ORIGIN_CASES)
def test_origin_matching(upstream: str, value: str, expected: str | None) -> None:
    """Only a whole origin matches: scheme, host and port, with loopback names interchangeable."""
    out = discovery({"resource": value}, upstream)
    assert out == (None if expected is None else {"resource": expected})


def test_origin_mapping_keeps_the_rest() -> None:
    """Path, query and fragment after the origin are kept as they were."""
    out = discovery({"a": "http://localhost:8000/mcp/x?y=1#z", "b": "http://127.0.0.1:8000"})
    assert out == {"a": "https://mcp.example.com/mcp/x?y=1#z", "b": "https://mcp.example.com"}


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"{",
        b"\xff\xfe\xfa",
        b'{"resource": "https://other.example/mcp"}',
        b"[1, 2]",
        b'"https://other.example"',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_unchanged_or_not_json_is_none(body: bytes) -> None:
    """A body that is not JSON, or names no upstream URL, is left to pass through as is."""
    assert rewrite_discovery(body, upstream_origin=UP, public_origin=PUB) is None


def test_any_json_value_is_walked() -> None:
    """A top-level array or string is mapped as well as an object."""
    body = b'["http://127.0.0.1:8000/a", 1, null, {"x": true}]'
    out = rewrite_discovery(body, upstream_origin=UP, public_origin=PUB)
    assert out is not None
    assert json.loads(out) == ["https://mcp.example.com/a", 1, None, {"x": True}]


def test_public_origin_trailing_slash() -> None:
    """A trailing slash on either origin does not double the slash."""
    out = rewrite_discovery(
        b'{"resource": "http://127.0.0.1:8000/mcp"}',
        upstream_origin=UP + "/",
        public_origin=PUB + "/",
    )
    assert out == b'{"resource":"https://mcp.example.com/mcp"}'


# (header value in, header value out)
CHALLENGES = [
    (
        b'Bearer resource_metadata="http://127.0.0.1:8000/.well-known/oauth-protected-resource"',
        b'Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource"',
    ),
    (
        b'Bearer error="insufficient_scope", scope="a b", '
        b'resource_metadata="http://localhost:8000/.well-known/oauth-protected-resource/mcp"',
        b'Bearer error="insufficient_scope", scope="a b", '
        b'resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"',
    ),
    (
        b"Bearer Resource_Metadata = http://127.0.0.1:8000/prm, realm=x",
        b"Bearer Resource_Metadata = https://mcp.example.com/prm, realm=x",
    ),
    (
        b'Basic realm="x", Bearer resource_metadata="http://127.0.0.1:8000/a",'
        b'Bearer resource_metadata="http://127.0.0.1:8000/b"',
        b'Basic realm="x", Bearer resource_metadata="https://mcp.example.com/a",'
        b'Bearer resource_metadata="https://mcp.example.com/b"',
    ),
    (
        b'Bearer error_description="resource_metadata=\\"http://127.0.0.1:8000/x\\""',
        b'Bearer error_description="resource_metadata=\\"http://127.0.0.1:8000/x\\""',
    ),
    (
        b'Bearer resource_metadata="https://elsewhere.example/prm"',
        b'Bearer resource_metadata="https://elsewhere.example/prm"',
    ),
    (b"Bearer", b"Bearer"),
    (b"", b""),
    (
        b'Bearer resource_metadata="http://127.0.0.1:8000/a',
        b'Bearer resource_metadata="https://mcp.example.com/a"',
    ),
    (
        b'Bearer realm="caf\xe9", resource_metadata="http://127.0.0.1:8000/"',
        b'Bearer realm="caf\xe9", resource_metadata="https://mcp.example.com/"',
    ),
]


@pytest.mark.parametrize(("value", "expected"), CHALLENGES)
def test_rewrite_www_authenticate(value: bytes, expected: bytes) -> None:
    """Each challenge's `resource_metadata` URL is mapped; everything else is kept byte for byte."""
    out = rewrite_www_authenticate(value, upstream_origin=UP, public_origin=PUB)
    assert out == expected
    if value == expected:
        assert out is value


def test_rewrite_www_authenticate_escapes_quotes() -> None:
    """A public origin is re-quoted safely inside a quoted-string."""
    out = rewrite_www_authenticate(
        b'Bearer resource_metadata="http://127.0.0.1:8000/p"',
        upstream_origin=UP,
        public_origin='https://x.example"\\',
    )
    assert out == b'Bearer resource_metadata="https://x.example\\"\\\\/p"'


@given(st.binary(max_size=200))
def test_www_authenticate_never_raises(value: bytes) -> None:
    """Arbitrary header bytes never raise, and bytes without the parameter come back unchanged."""
    out = rewrite_www_authenticate(value, upstream_origin=UP, public_origin=PUB)
    if b"resource_metadata" not in value.lower():
        assert out is value


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([UP, UP + "/x", PUB, "x"])
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=15,
)


def _upstream_urls(value: Any) -> list[str]:
    """Every string value that starts with the upstream origin (keys excluded)."""
    if isinstance(value, str):
        return [value] if value == UP or value.startswith(UP + "/") else []
    if isinstance(value, list):
        return [u for v in value for u in _upstream_urls(v)]
    if isinstance(value, dict):
        return [u for v in value.values() for u in _upstream_urls(v)]
    return []


@given(json_values)
def test_discovery_never_raises_and_maps_everything(document: Any) -> None:
    """Any JSON document is survived, no upstream URL is left, and a second pass changes nothing."""
    out = rewrite_discovery(json.dumps(document).encode(), upstream_origin=UP, public_origin=PUB)
    assert (out is None) == (not _upstream_urls(document))
    if out is not None:
        assert _upstream_urls(json.loads(out)) == []
        assert rewrite_discovery(out, upstream_origin=UP, public_origin=PUB) is None


def test_same_origin_is_unchanged() -> None:
    """When the public origin is the upstream's, nothing is re-encoded."""
    body = b'{"resource": "http://127.0.0.1:8000/mcp"}'
    assert rewrite_discovery(body, upstream_origin=UP, public_origin=UP) is None
    header = b'Bearer resource_metadata="http://127.0.0.1:8000/prm"'
    assert rewrite_www_authenticate(header, upstream_origin=UP, public_origin=UP) is header
