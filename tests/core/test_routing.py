"""Tests of mcpr_core.routing: classification, targets, header forwarding, rebinding checks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcpr_core.routing import (
    HOP_BY_HOP,
    HostCheck,
    RequestKind,
    UpstreamURL,
    check_host_and_origin,
    classify_head,
    forward_request_headers,
    forward_response_headers,
    header_value,
    parse_upstream_url,
    upstream_target,
)

H = list[tuple[bytes, bytes]]

UPSTREAM = parse_upstream_url("http://127.0.0.1:8000/mcp")
UPSTREAM_Q = parse_upstream_url("https://api.example.com/v1/mcp?tenant=7")


# --- parse_upstream_url ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "http://127.0.0.1:8000/mcp",
            UpstreamURL("http", "127.0.0.1", 8000, "/mcp", "", "http://127.0.0.1:8000",
                        b"127.0.0.1:8000", False),
        ),
        (
            "https://Example.COM",
            UpstreamURL("https", "example.com", 443, "/", "", "https://example.com",
                        b"example.com", True),
        ),
        (
            "HTTPS://example.com:443/a/b?x=1&y=2",
            UpstreamURL("https", "example.com", 443, "/a/b", "x=1&y=2", "https://example.com",
                        b"example.com", True),
        ),
        (
            "http://example.com:80/",
            UpstreamURL("http", "example.com", 80, "/", "", "http://example.com",
                        b"example.com", False),
        ),
        (
            "https://example.com:8443/mcp",
            UpstreamURL("https", "example.com", 8443, "/mcp", "", "https://example.com:8443",
                        b"example.com:8443", True),
        ),
        (
            "http://[::1]:9000/mcp",
            UpstreamURL("http", "::1", 9000, "/mcp", "", "http://[::1]:9000", b"[::1]:9000",
                        False),
        ),
        (
            "http://[::1]/",
            UpstreamURL("http", "::1", 80, "/", "", "http://[::1]", b"[::1]", False),
        ),
        (
            "http://mcp_server:8000",
            UpstreamURL("http", "mcp_server", 8000, "/", "", "http://mcp_server:8000",
                        b"mcp_server:8000", False),
        ),
    ],
)  # fmt: skip
def test_parse_upstream_url_valid(url: str, expected: UpstreamURL) -> None:
    """A valid URL splits into host, port, path and query, with default ports omitted."""
    assert parse_upstream_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("ftp://example.com/", "scheme must be http or https"),
        ("ws://example.com/", "scheme must be http or https"),
        ("localhost:8000/mcp", "must start with http:// or https://"),
        ("example.com/mcp", "must start with http:// or https://"),
        ("http:///mcp", "no host"),
        ("http://", "no host"),
        ("http://example.com/mcp#frag", "fragment"),
        ("http://example.com/#", "fragment"),
        ("http://user:pw@example.com/", "credentials"),
        ("http://example.com:0/", "between 1 and 65535"),
        ("http://example.com:99999/", "invalid host or port"),
        ("http://example.com:abc/", "invalid host or port"),
        ("http://[::1/", "invalid host or port"),
        ("http://[example]/", "IPv6"),
        ("http://[v1.future]/", "not an IPv6 address"),
        ("http://exa mple.com/", "whitespace"),
        ("http://example.com/\n", "whitespace"),
        ("http://bücher.example/", "ASCII"),
        ("http://-bad-.example/", "not a valid host name"),
        ("http://ex%41mple.com/", "not a valid host name"),
    ],
)
def test_parse_upstream_url_invalid(url: str, message: str) -> None:
    """An unusable URL raises ValueError with a message naming the problem."""
    with pytest.raises(ValueError, match=message):
        parse_upstream_url(url)


def test_parse_upstream_url_rejects_non_strings() -> None:
    """A value that is not a string is reported as such rather than crashing."""
    with pytest.raises(ValueError, match="must be a string"):
        parse_upstream_url(8000)  # type: ignore[arg-type]


# --- classify_head ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        (b"POST", [], None),
        (b"POST", [(b"content-type", b"text/plain")], None),
        (b"GET", [(b"accept", b"text/event-stream")], RequestKind.MCP_STREAM),
        (b"GET", [(b"accept", b"application/json, text/event-stream")], RequestKind.MCP_STREAM),
        (b"GET", [(b"accept", b"Text/Event-Stream; charset=utf-8")], RequestKind.MCP_STREAM),
        (b"GET", [(b"accept", b"text/event-stream;q=0.5")], RequestKind.MCP_STREAM),
        (b"GET", [(b"accept", b"text/event-stream;q=oops")], RequestKind.MCP_STREAM),
        (b"GET", [(b"accept", b"text/html"), (b"accept", b"text/event-stream")],
         RequestKind.MCP_STREAM),
        (b"GET", [(b"accept", b"text/event-stream;q=0")], RequestKind.PASSTHROUGH),
        (b"GET", [(b"accept", b"text/event-stream; q=0.0")], RequestKind.PASSTHROUGH),
        (b"GET", [(b"accept", b"*/*")], RequestKind.PASSTHROUGH),
        (b"GET", [(b"accept", b"text/*")], RequestKind.PASSTHROUGH),
        (b"GET", [(b"accept", b"application/json")], RequestKind.PASSTHROUGH),
        (b"GET", [], RequestKind.PASSTHROUGH),
        (b"GET", [(b"mcp-session-id", b"abc")], RequestKind.PASSTHROUGH),
        (b"DELETE", [(b"mcp-session-id", b"abc")], RequestKind.SESSION_DELETE),
        (b"DELETE", [(b"mcp-session-id", b"")], RequestKind.PASSTHROUGH),
        (b"DELETE", [(b"mcp-session-id", b"  ")], RequestKind.PASSTHROUGH),
        (b"DELETE", [], RequestKind.PASSTHROUGH),
        (b"DELETE", [(b"accept", b"text/event-stream")], RequestKind.PASSTHROUGH),
        (b"PUT", [(b"mcp-session-id", b"abc")], RequestKind.PASSTHROUGH),
        (b"HEAD", [(b"accept", b"text/event-stream")], RequestKind.PASSTHROUGH),
        (b"OPTIONS", [], RequestKind.PASSTHROUGH),
        (b"PATCH", [], RequestKind.PASSTHROUGH),
        (b"get", [(b"accept", b"text/event-stream")], RequestKind.PASSTHROUGH),
        (b"post", [], RequestKind.PASSTHROUGH),
    ],
)  # fmt: skip
def test_classify_head(method: bytes, headers: H, expected: RequestKind | None) -> None:
    """GET asking for SSE is a stream, DELETE with a session ends it, POST needs its body."""
    assert classify_head(method, headers) is expected


# --- upstream_target -------------------------------------------------------------------------

MCP_KINDS = [RequestKind.MCP_MESSAGE, RequestKind.MCP_STREAM, RequestKind.SESSION_DELETE]


@pytest.mark.parametrize("kind", MCP_KINDS)
@pytest.mark.parametrize(
    ("target", "upstream", "expected"),
    [
        (b"/mcp", UPSTREAM, b"/mcp"),
        (b"/", UPSTREAM, b"/mcp"),
        (b"/anything/else", UPSTREAM, b"/mcp"),
        (b"/mcp?session=1", UPSTREAM, b"/mcp?session=1"),
        (b"/mcp?", UPSTREAM, b"/mcp"),
        (b"/mcp", UPSTREAM_Q, b"/v1/mcp?tenant=7"),
        (b"/mcp?a=b", UPSTREAM_Q, b"/v1/mcp?a=b"),
        (b"/mcp?", UPSTREAM_Q, b"/v1/mcp?tenant=7"),
        (b"/mcp?a=b#frag", UPSTREAM, b"/mcp?a=b"),
        (b"http://proxy.local:3000/mcp?a=b", UPSTREAM, b"/mcp?a=b"),
        (b"HTTPS://proxy.local", UPSTREAM_Q, b"/v1/mcp?tenant=7"),
    ],
)
def test_upstream_target_mcp(
    kind: RequestKind, target: bytes, upstream: UpstreamURL, expected: bytes
) -> None:
    """MCP traffic goes to the endpoint path, with the request's query else the upstream's."""
    assert upstream_target(kind, target, upstream) == expected


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (b"/.well-known/oauth-protected-resource", b"/.well-known/oauth-protected-resource"),
        (b"/favicon.ico?v=2", b"/favicon.ico?v=2"),
        (b"/a%20b/c?x=%2F&y", b"/a%20b/c?x=%2F&y"),
        (b"/", b"/"),
        (b"/p#frag", b"/p"),
        (b"http://proxy.local:3000/health?full=1", b"/health?full=1"),
        (b"http://proxy.local", b"/"),
        (b"http://proxy.local?x=1", b"/?x=1"),
        (b"https://[::1]:3000/a/b", b"/a/b"),
        (b"*", b"*"),
        (b"example.com:443", b"example.com:443"),
    ],
)
@pytest.mark.parametrize("upstream", [UPSTREAM, UPSTREAM_Q])
def test_upstream_target_passthrough(target: bytes, expected: bytes, upstream: UpstreamURL) -> None:
    """Passthrough keeps the request's own path and query, reduced to origin-form."""
    assert upstream_target(RequestKind.PASSTHROUGH, target, upstream) == expected


# --- header_value ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "name", "expected"),
    [
        ([(b"a", b"1"), (b"b", b"2"), (b"a", b"3")], b"a", b"1"),
        ([(b"a", b"1")], b"b", None),
        ([], b"a", None),
        ([(b"Mcp-Session-Id", b"x")], b"mcp-session-id", b"x"),
        ([(b"a", b"")], b"a", b""),
    ],
)
def test_header_value(headers: H, name: bytes, expected: bytes | None) -> None:
    """The first value of a header is returned, matching names case-insensitively."""
    assert header_value(headers, name) == expected


# --- forward_request_headers -----------------------------------------------------------------


def forward(headers: H, client: str | None = "10.0.0.9", scheme: str = "http") -> H:
    return forward_request_headers(headers, upstream=UPSTREAM, client_host=client, scheme=scheme)


def test_forward_request_headers_typical_mcp_post() -> None:
    """End-to-end headers pass unchanged and in order; Host is replaced and X-Forwarded-* added."""
    headers = [
        (b"host", b"localhost:3000"),
        (b"accept", b"application/json, text/event-stream"),
        (b"content-type", b"application/json"),
        (b"content-length", b"42"),
        (b"mcp-session-id", b"s-1"),
        (b"mcp-protocol-version", b"2026-07-28"),
        (b"mcp-method", b"tools/call"),
        (b"mcp-name", b"echo"),
        (b"mcp-param-region", b"eu"),
        (b"last-event-id", b"7"),
        (b"authorization", b"Bearer t"),
        (b"cookie", b"a=b"),
        (b"origin", b"http://localhost:3000"),
        (b"x-api-key", b"k"),
        (b"connection", b"keep-alive"),
    ]
    assert forward(headers) == [
        (b"host", b"127.0.0.1:8000"),
        *headers[1:-1],
        (b"x-forwarded-for", b"10.0.0.9"),
        (b"x-forwarded-proto", b"http"),
        (b"x-forwarded-host", b"localhost:3000"),
    ]


@pytest.mark.parametrize("name", sorted(HOP_BY_HOP))
def test_forward_request_headers_drops_each_hop_by_hop(name: bytes) -> None:
    """Every hop-by-hop field of RFC 9110 §7.6.1 is removed."""
    out = forward([(b"host", b"h"), (name, b"x"), (b"x-keep", b"1")])
    assert name not in {n for n, _ in out}
    assert (b"x-keep", b"1") in out


@pytest.mark.parametrize(
    ("connection", "dropped"),
    [
        (b"close", set()),
        (b"x-foo", {b"x-foo"}),
        (b"close, X-Foo,  x-bar ", {b"x-foo", b"x-bar"}),
        (b"x-foo,,", {b"x-foo"}),
        (b"cookie", {b"cookie"}),
    ],
)
def test_forward_request_headers_drops_connection_options(
    connection: bytes, dropped: set[bytes]
) -> None:
    """Fields named in Connection are hop-by-hop too, and go with it."""
    headers = [
        (b"host", b"h"),
        (b"connection", connection),
        (b"x-foo", b"1"),
        (b"x-bar", b"2"),
        (b"cookie", b"c"),
        (b"x-baz", b"3"),
    ]
    names = {n for n, _ in forward(headers)}
    assert not names & dropped
    assert {b"x-foo", b"x-bar", b"cookie", b"x-baz"} - dropped <= names
    assert b"connection" not in names


def test_forward_request_headers_multiple_connection_fields() -> None:
    """Options from every Connection field are honoured, not just the first."""
    headers = [(b"connection", b"x-a"), (b"connection", b"x-b"), (b"x-a", b"1"), (b"x-b", b"2")]
    assert {n for n, _ in forward(headers)} == {
        b"host",
        b"x-forwarded-for",
        b"x-forwarded-proto",
    }


def test_forward_request_headers_keeps_content_length_named_in_connection() -> None:
    """Content-Length frames the unchanged body, so a Connection option cannot remove it."""
    out = forward([(b"connection", b"content-length"), (b"content-length", b"5")])
    assert (b"content-length", b"5") in out


@pytest.mark.parametrize(
    ("existing", "client", "expected"),
    [
        ([], "10.0.0.9", b"10.0.0.9"),
        ([b"203.0.113.5"], "10.0.0.9", b"203.0.113.5, 10.0.0.9"),
        ([b"203.0.113.5, 198.51.100.1"], "10.0.0.9", b"203.0.113.5, 198.51.100.1, 10.0.0.9"),
        ([b"203.0.113.5", b" 198.51.100.1 "], "::1", b"203.0.113.5, 198.51.100.1, ::1"),
        ([b"203.0.113.5"], None, b"203.0.113.5"),
        ([b"a", b"b"], None, b"a, b"),
        ([b""], "10.0.0.9", b"10.0.0.9"),
    ],
)
def test_forward_request_headers_x_forwarded_for(
    existing: list[bytes], client: str | None, expected: bytes
) -> None:
    """X-Forwarded-For merges every earlier value in order and appends the client."""
    headers = [(b"host", b"h"), *[(b"x-forwarded-for", v) for v in existing]]
    values = [v for n, v in forward(headers, client) if n == b"x-forwarded-for"]
    assert values == [expected]


@pytest.mark.parametrize("client", [None, ""])
def test_forward_request_headers_no_client_no_x_forwarded_for(client: str | None) -> None:
    """Without a client address and no earlier value, no X-Forwarded-For is invented."""
    assert b"x-forwarded-for" not in {n for n, _ in forward([(b"host", b"h")], client)}


@pytest.mark.parametrize(
    ("headers", "scheme", "expected"),
    [
        ([], "http", [b"http"]),
        ([], "https", [b"https"]),
        ([(b"x-forwarded-proto", b"https")], "http", [b"https"]),
    ],
)
def test_forward_request_headers_x_forwarded_proto(
    headers: H, scheme: str, expected: list[bytes]
) -> None:
    """X-Forwarded-Proto set by a proxy in front is kept; otherwise our own scheme is sent."""
    out = forward([(b"host", b"h"), *headers], scheme=scheme)
    assert [v for n, v in out if n == b"x-forwarded-proto"] == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"host", b"mcp.example.com")], [b"mcp.example.com"]),
        ([(b"host", b"a"), (b"x-forwarded-host", b"public.example.com")], [b"public.example.com"]),
        ([], []),
    ],
)
def test_forward_request_headers_x_forwarded_host(headers: H, expected: list[bytes]) -> None:
    """X-Forwarded-Host keeps an earlier value, else carries the client's Host."""
    assert [v for n, v in forward(headers) if n == b"x-forwarded-host"] == expected


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"host", b"localhost:3000")],
        [(b"accept", b"*/*"), (b"Host", b"a"), (b"host", b"b")],
    ],
)
def test_forward_request_headers_host_first_and_single(headers: H) -> None:
    """Exactly one Host goes upstream, first, naming the upstream (RFC 9112 §3.2)."""
    out = forward(headers)
    assert out[0] == (b"host", b"127.0.0.1:8000")
    assert [n for n, _ in out].count(b"host") == 1
    assert b"Host" not in {n for n, _ in out}


# --- forward_response_headers ----------------------------------------------------------------


@pytest.mark.parametrize("keep", [True, False])
def test_forward_response_headers(keep: bool) -> None:
    """Hop-by-hop and Connection-named fields go; Content-Length stays only when asked."""
    headers = [
        (b"content-type", b"text/event-stream"),
        (b"connection", b"keep-alive, x-hop"),
        (b"keep-alive", b"timeout=5"),
        (b"transfer-encoding", b"chunked"),
        (b"content-length", b"10"),
        (b"x-hop", b"1"),
        (b"mcp-session-id", b"s"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
        (b"www-authenticate", b'Bearer resource_metadata="x"'),
    ]
    expected = [
        (b"content-type", b"text/event-stream"),
        *([(b"content-length", b"10")] if keep else []),
        (b"mcp-session-id", b"s"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
        (b"www-authenticate", b'Bearer resource_metadata="x"'),
    ]
    assert forward_response_headers(headers, keep_content_length=keep) == expected


def test_forward_response_headers_content_length_named_in_connection() -> None:
    """A Connection option cannot remove a Content-Length the caller wants to keep."""
    headers = [(b"connection", b"Content-Length"), (b"content-length", b"3")]
    assert forward_response_headers(headers, keep_content_length=True) == [
        (b"content-length", b"3")
    ]


# --- check_host_and_origin -------------------------------------------------------------------

OK, BAD_HOST, BAD_ORIGIN = HostCheck.OK, HostCheck.BAD_HOST, HostCheck.BAD_ORIGIN


def check(
    headers: H, bind: str = "127.0.0.1", hosts: tuple[str, ...] = (), origins: tuple[str, ...] = ()
) -> HostCheck:
    return check_host_and_origin(headers, bind=bind, allowed_hosts=hosts, allowed_origins=origins)


@pytest.mark.parametrize(
    "bind", ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost", "LocalHost"]
)
@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (b"localhost", OK),
        (b"LOCALHOST:3000", OK),
        (b"127.0.0.1", OK),
        (b"127.0.0.1:3000", OK),
        (b"127.1.2.3:80", OK),
        (b"[::1]", OK),
        (b"[::1]:3000", OK),
        (b"[::ffff:127.0.0.1]:3000", OK),
        (b"evil.example.com", BAD_HOST),
        (b"evil.example.com:3000", BAD_HOST),
        (b"localhost.evil.com", BAD_HOST),
        (b"127.0.0.1.nip.io", BAD_HOST),
        (b"10.0.0.1:3000", BAD_HOST),
        (b"[::2]:3000", BAD_HOST),
        (b"::1", BAD_HOST),
        (b"[::1", BAD_HOST),
        (b"[::1]x", BAD_HOST),
        (b"localhost:abc", BAD_HOST),
        (b"localhost:", OK),
        (b"", BAD_HOST),
        (b":3000", BAD_HOST),
        (b"\xff\xfe", BAD_HOST),
    ],
)  # fmt: skip
def test_check_host_on_loopback(bind: str, host: bytes, expected: HostCheck) -> None:
    """Bound to loopback, Host must name a loopback host, on any port."""
    assert check([(b"host", host)], bind=bind) is expected


@pytest.mark.parametrize("headers", [[], [(b"host", b"localhost"), (b"host", b"localhost")]])
def test_check_host_missing_or_repeated(headers: H) -> None:
    """A missing or repeated Host cannot be verified and fails the check."""
    assert check(headers) is BAD_HOST


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        (b"http://localhost:3000", OK),
        (b"https://localhost", OK),
        (b"HTTP://LOCALHOST:5173", OK),
        (b"http://127.0.0.1:6274", OK),
        (b"http://[::1]:3000", OK),
        (b"null", BAD_ORIGIN),
        (b"https://evil.example.com", BAD_ORIGIN),
        (b"http://localhost.evil.com", BAD_ORIGIN),
        (b"file://localhost", BAD_ORIGIN),
        (b"localhost:3000", BAD_ORIGIN),
        (b"http://localhost:3000/path", BAD_ORIGIN),
        (b"", BAD_ORIGIN),
    ],
)
def test_check_origin_on_loopback(origin: bytes, expected: HostCheck) -> None:
    """Bound to loopback, a present Origin must be a loopback origin; "null" is foreign."""
    assert check([(b"host", b"localhost:3000"), (b"origin", origin)]) is expected


def test_check_origin_absent_is_fine() -> None:
    """Non-browser clients send no Origin, and that passes."""
    assert check([(b"host", b"127.0.0.1:3000")]) is OK


def test_check_origin_repeated_is_bad() -> None:
    """Two Origin fields are ambiguous and fail the check."""
    headers = [(b"host", b"localhost"), (b"origin", b"http://localhost"), (b"origin", b"null")]
    assert check(headers) is BAD_ORIGIN


def test_check_host_is_checked_before_origin() -> None:
    """With both wrong, the Host verdict wins."""
    assert check([(b"host", b"evil.com"), (b"origin", b"https://evil.com")]) is BAD_HOST


@pytest.mark.parametrize(
    ("host", "patterns", "expected"),
    [
        (b"mcp.example.com", ("mcp.example.com",), OK),
        (b"MCP.example.com:8443", ("mcp.example.com",), OK),
        (b"mcp.example.com:8443", ("mcp.example.com:8443",), OK),
        (b"mcp.example.com:9000", ("mcp.example.com:8443",), BAD_HOST),
        (b"mcp.example.com", ("mcp.example.com:8443",), BAD_HOST),
        (b"a.example.com", ("*.example.com",), OK),
        (b"a.b.example.com:1", ("*.example.com",), OK),
        (b"example.com", ("*.example.com",), BAD_HOST),
        (b"evilexample.com", ("*.example.com",), BAD_HOST),
        (b"anything:1234", ("*",), OK),
        (b"mcp.example.com:8443", ("mcp.example.com:*",), OK),
        (b"[fd00::5]:3000", ("[fd00::5]",), OK),
        (b"[fd00::5]:3000", ("[fd00::5]:3000",), OK),
        (b"[fd00::6]:3000", ("[fd00::5]",), BAD_HOST),
        (b"api-1.internal", ("api-*.internal",), OK),
        (b"x.internal", ("[bad",), BAD_HOST),
        (b"x.internal", ("a.internal", "x.internal"), OK),
        (b"a-1-b-2-c", ("a*b*c",), OK),
        (b"abc", ("a*b*c",), OK),
        (b"a-1-c", ("a*b*c",), BAD_HOST),
        (b"ab", ("a*b*b",), BAD_HOST),
        (b"ab", ("ab*ab",), BAD_HOST),
    ],
)
@pytest.mark.parametrize("bind", ["127.0.0.1", "0.0.0.0"])
def test_check_allowed_hosts(
    host: bytes, patterns: tuple[str, ...], expected: HostCheck, bind: str
) -> None:
    """allowed_hosts match host (any port) or host:port, with `*` as a wildcard."""
    assert check([(b"host", host)], bind=bind, hosts=patterns) is expected


def test_check_allowed_hosts_extend_loopback() -> None:
    """On loopback, allowed_hosts add to the loopback names instead of replacing them."""
    assert check([(b"host", b"localhost:3000")], hosts=("mcp.example.com",)) is OK


def test_check_allowed_hosts_replace_on_public_bind() -> None:
    """On a non-loopback bind, allowed_hosts is the whole set: loopback names are not implied."""
    headers = [(b"host", b"localhost:3000")]
    assert check(headers, bind="0.0.0.0", hosts=("mcp.example.com",)) is BAD_HOST


@pytest.mark.parametrize(
    ("origin", "patterns", "expected"),
    [
        (b"https://chatgpt.com", ("https://chatgpt.com",), OK),
        (b"https://ChatGPT.com", ("https://chatgpt.com/",), OK),
        (b"https://chatgpt.com:8443", ("https://chatgpt.com",), BAD_ORIGIN),
        (b"http://chatgpt.com", ("https://chatgpt.com",), BAD_ORIGIN),
        (b"https://claude.ai", ("https://chatgpt.com", "https://claude.ai"), OK),
        (b"https://a.vscode-cdn.net", ("https://*.vscode-cdn.net",), OK),
        (b"https://evil.com", ("*",), OK),
        (b"null", ("*",), OK),
        (b"null", ("null",), OK),
        (b"null", ("https://chatgpt.com",), BAD_ORIGIN),
    ],
)
@pytest.mark.parametrize("bind", ["127.0.0.1", "0.0.0.0", "::"])
def test_check_allowed_origins(
    origin: bytes, patterns: tuple[str, ...], expected: HostCheck, bind: str
) -> None:
    """allowed_origins match full origins case-insensitively, with `*` as a wildcard."""
    headers = [(b"host", b"localhost"), (b"origin", origin)]
    assert check(headers, bind=bind, origins=patterns) is expected


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", "10.1.2.3", "mcp.internal"])
@pytest.mark.parametrize(
    "headers",
    [
        [(b"host", b"evil.example.com"), (b"origin", b"https://evil.example.com")],
        [(b"origin", b"null")],
        [],
    ],
)
def test_check_public_bind_without_lists_checks_nothing(bind: str, headers: H) -> None:
    """Bound to a non-loopback address with no allow-lists, Host and Origin are unchecked."""
    assert check(headers, bind=bind) is OK


def test_check_public_bind_origin_only_when_listed() -> None:
    """On a non-loopback bind, allowed_origins alone checks Origin but leaves Host alone."""
    headers = [(b"host", b"whatever"), (b"origin", b"https://chatgpt.com")]
    assert check(headers, bind="0.0.0.0", origins=("https://chatgpt.com",)) is OK
    headers = [(b"host", b"whatever"), (b"origin", b"http://localhost:3000")]
    assert check(headers, bind="0.0.0.0", origins=("https://chatgpt.com",)) is BAD_ORIGIN


# --- robustness against arbitrary bytes ------------------------------------------------------

header_lists = st.lists(
    st.tuples(
        st.one_of(st.sampled_from([b"host", b"origin", b"connection", b"x-forwarded-for",
                                   b"x-forwarded-host", b"x-forwarded-proto", b"content-length"]),
                  st.binary(max_size=20)),
        st.binary(max_size=40),
    ),
    max_size=8,
)  # fmt: skip


@given(
    headers=header_lists,
    bind=st.sampled_from(["127.0.0.1", "::1", "localhost", "0.0.0.0", "[::1]", ""]),
    hosts=st.lists(st.text(max_size=12), max_size=3),
    origins=st.lists(st.text(max_size=12), max_size=3),
)
def test_check_host_and_origin_never_raises(
    headers: H, bind: str, hosts: list[str], origins: list[str]
) -> None:
    """Arbitrary header bytes and patterns always give a verdict, never an exception."""
    verdict = check_host_and_origin(
        headers, bind=bind, allowed_hosts=hosts, allowed_origins=origins
    )
    assert isinstance(verdict, HostCheck)


@given(headers=header_lists, client=st.one_of(st.none(), st.text(max_size=12)))
def test_forward_request_headers_never_raises(headers: H, client: str | None) -> None:
    """Arbitrary header bytes are forwarded without an exception, with one Host first."""
    out = forward_request_headers(headers, upstream=UPSTREAM, client_host=client)
    assert out[0] == (b"host", UPSTREAM.host_header)
    assert not {name for name, _ in out[1:]} & (HOP_BY_HOP | {b"host"})


@given(headers=header_lists, keep=st.booleans())
def test_forward_response_headers_never_raises(headers: H, keep: bool) -> None:
    """Arbitrary response header bytes are filtered without an exception."""
    out = forward_response_headers(headers, keep_content_length=keep)
    assert not {name.lower() for name, _ in out} & HOP_BY_HOP


@given(target=st.binary(max_size=40), kind=st.sampled_from(list(RequestKind)))
def test_upstream_target_never_raises(target: bytes, kind: RequestKind) -> None:
    """Any request-target bytes produce some target without an exception."""
    assert isinstance(upstream_target(kind, target, UPSTREAM_Q), bytes)


@given(method=st.binary(max_size=8), headers=header_lists)
def test_classify_head_never_raises(method: bytes, headers: H) -> None:
    """Any method and header bytes classify without an exception."""
    classify_head(method, headers)
