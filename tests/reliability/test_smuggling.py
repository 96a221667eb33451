"""Item 5 of the reliability issue, framing: request smuggling attempts never reach the upstream.

A proxy and its upstream must agree on where each request ends. Every ambiguous framing
(RFC 9112 §6.3: Content-Length with Transfer-Encoding, conflicting Content-Lengths,
unsupported codings, malformed field lines) is refused and the connection closed, so bytes
hidden in a body are never read as a second request; nothing of it is forwarded. An obs-fold
line is the one ambiguity RFC 9112 §5.2 lets a server repair: h11 replaces it with a space,
and the upstream receives one plain field line.
"""

from __future__ import annotations

import pytest

from tests.cli.stub_upstream import stub_upstream
from tests.cli.wire import connect, run_proxy

_HEAD = b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
_SMUGGLED = b"GET /admin HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"
_BODY = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'

#: name: (framing headers and body after the common head, status the client gets)
REFUSED: dict[str, tuple[bytes, int]] = {
    "cl-then-te": (
        b"content-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n" + _SMUGGLED,
        400,
    ),
    "te-then-cl": (
        b"transfer-encoding: chunked\r\ncontent-length: 60\r\n\r\n0\r\n\r\n" + _SMUGGLED,
        400,
    ),
    "conflicting-content-lengths": (
        b"content-length: 40\r\ncontent-length: 80\r\n\r\n" + _BODY + _SMUGGLED,
        400,
    ),
    "comma-separated-lengths": (
        b"content-length: 40, 80\r\n\r\n" + _BODY + _SMUGGLED,
        400,
    ),
    "two-transfer-encodings": (
        b"transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
        501,
    ),
    "coding-before-chunked": (b"transfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    "space-before-colon": (
        b"transfer-encoding : chunked\r\ncontent-length: 40\r\n\r\n" + _BODY,
        400,
    ),
    "signed-content-length": (b"content-length: +40\r\n\r\n" + _BODY, 400),
    "chunk-size-overflow": (
        b"transfer-encoding: chunked\r\n\r\nfffffffffffffffffffff\r\n" + _SMUGGLED,
        400,
    ),
    "nul-in-a-field": (b"x-a: b\x00c\r\ncontent-length: 40\r\n\r\n" + _BODY, 400),
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_ambiguous_framing_is_refused_and_nothing_is_forwarded(case: str) -> None:
    """Each smuggling attempt is answered 400 (501 for a coding h11 does not implement),
    the connection is closed, and the upstream receives nothing."""
    framing, status = REFUSED[case]
    async with stub_upstream() as stub, run_proxy(stub.url) as proxy:
        async with connect(proxy) as c:
            await c.send_raw(_HEAD + framing)
            reply = await c.read_response()
            assert await c.closed_by_peer()
        [event] = await proxy.wait_exchanges(1)
    assert reply.status == status
    assert (event.status, event.note) == (status, "rejected")
    assert stub.connections_total == 0


async def test_duplicate_equal_content_lengths_are_one_request() -> None:
    """Two identical Content-Length fields are one length (RFC 9110 §8.6): one request,
    forwarded with a single Content-Length; the bytes after it are a request of their own."""
    framing = b"content-length: 40\r\ncontent-length: 40\r\n\r\n" + _BODY
    async with stub_upstream() as stub, run_proxy(stub.url) as proxy:
        async with connect(proxy) as c:
            await c.send_raw(_HEAD + framing)
            first = await c.read_response()
        await proxy.wait_exchanges(1)
    assert first.status == 200
    [request] = stub.requests
    assert request.body == _BODY
    assert [v for k, v in request.headers if k == b"content-length"] == [b"40"]


async def test_obs_fold_reaches_the_upstream_as_one_plain_line() -> None:
    """A folded field value (obs-fold) is unfolded with a space; no CR or LF of it travels."""
    framing = b"x-folded: first\r\n  second\r\ncontent-length: 40\r\n\r\n" + _BODY
    async with stub_upstream() as stub, run_proxy(stub.url) as proxy:
        async with connect(proxy) as c:
            await c.send_raw(_HEAD + framing)
            reply = await c.read_response()
        await proxy.wait_exchanges(1)
    assert reply.status == 200
    [request] = stub.requests
    assert request.header(b"x-folded") == b"first second"
    assert all(b"\r" not in v and b"\n" not in v for _, v in request.headers)
