"""The transport against a scripted upstream: forwarding, routing, streaming, keep-alive.

Real loopback sockets on both sides: a raw h11 client talks to mcpr, mcpr talks to the
stub upstream of `stub_upstream.py`. Fixture replays are in `test_transport_replay.py`,
failures and limits in `test_transport_faults.py` and `test_transport_guards.py`.
"""

from __future__ import annotations

import anyio
import h11

from mcpr_core.events import RequestEvent
from tests.cli.stub_upstream import ReceivedRequest, Responder, reply_with, stub_upstream
from tests.cli.wire import JSON, SSE_ACCEPT, Proxy, connect, rpc, run_proxy, wait_until

_RESULT = b'{"jsonrpc":"2.0","id":1,"result":{}}'
_JSON_REPLY = reply_with(200, [(b"content-type", b"application/json")], [_RESULT])
_SSE_HEAD = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


async def test_hop_by_hop_headers_are_dropped_both_ways() -> None:
    """Connection, the fields it names, Keep-Alive, TE, Trailer and Proxy-* never cross."""
    upstream_headers = [
        (b"content-type", b"application/json"),
        (b"connection", b"keep-alive, x-upstream-hop"),
        (b"keep-alive", b"timeout=5"),
        (b"x-upstream-hop", b"1"),
        (b"proxy-authenticate", b"Basic"),
        (b"trailer", b"x-checksum"),
        (b"x-upstream-kept", b"yes"),
    ]
    request_headers = [
        *JSON,
        (b"connection", b"keep-alive, x-client-hop"),
        (b"keep-alive", b"timeout=5"),
        (b"x-client-hop", b"1"),
        (b"te", b"trailers"),
        (b"proxy-authorization", b"Basic Zm9vOmJhcg=="),
        (b"proxy-connection", b"keep-alive"),
        (b"x-client-kept", b"yes"),
    ]
    handler = reply_with(200, upstream_headers, [_RESULT])
    async with stub_upstream(handler) as stub, run_proxy(stub.url) as proxy, connect(proxy) as c:
        reply = await c.request(b"POST", b"/mcp", request_headers, rpc("ping"))
    [received] = stub.requests
    hop = {b"keep-alive", b"te", b"trailer", b"proxy-authorization", b"proxy-connection"}
    assert not received.header_names() & {*hop, b"connection", b"x-client-hop"}
    assert received.header(b"x-client-kept") == b"yes"
    assert reply.status == 200
    assert reply.body == _RESULT
    assert not reply.header_names() & {
        b"keep-alive",
        b"x-upstream-hop",
        b"proxy-authenticate",
        b"trailer",
    }
    assert reply.header(b"connection") in (None, b"keep-alive")
    assert reply.header(b"x-upstream-kept") == b"yes"


async def test_host_is_rewritten_and_forwarded_headers_are_added() -> None:
    """The upstream sees its own Host and X-Forwarded-For/-Proto/-Host naming the client."""
    async with (
        stub_upstream(_JSON_REPLY) as stub,
        run_proxy(stub.url) as proxy,
        connect(proxy) as c,
    ):
        await c.request(b"POST", b"/mcp", JSON, rpc("ping"))
    [received] = stub.requests
    assert received.headers[0] == (b"host", stub.host_header)
    assert [v for k, v in received.headers if k == b"host"] == [stub.host_header]
    assert received.header(b"x-forwarded-for") == b"127.0.0.1"
    assert received.header(b"x-forwarded-proto") == b"http"
    assert received.header(b"x-forwarded-host") == proxy.host_header


async def test_end_to_end_headers_pass_both_ways() -> None:
    """MCP headers, credentials, cookies and custom fields reach the other end unchanged."""
    response_headers = [
        (b"content-type", b"application/json"),
        (b"mcp-session-id", b"session-42"),
        (b"set-cookie", b"a=1; HttpOnly"),
        (b"set-cookie", b"b=2"),
        (b"www-authenticate", b'Bearer resource_metadata="x"'),
        (b"x-custom-response", b"r"),
    ]
    request_headers = [
        *JSON,
        (b"mcp-session-id", b"session-42"),
        (b"mcp-protocol-version", b"2026-07-28"),
        (b"mcp-method", b"tools/call"),
        (b"mcp-name", b"echo"),
        (b"last-event-id", b"17"),
        (b"authorization", b"Bearer secret-token"),
        (b"cookie", b"a=1; b=2"),
        (b"x-api-key", b"k-123"),
    ]
    body = rpc("tools/call", 1, name="echo", arguments={})
    handler = reply_with(200, response_headers, [_RESULT])
    async with stub_upstream(handler) as stub, run_proxy(stub.url) as proxy, connect(proxy) as c:
        reply = await c.request(b"POST", b"/mcp", request_headers, body)
    [received] = stub.requests
    for name, value in request_headers:
        assert (name, value) in received.headers
    for name, value in response_headers:
        assert (name, value) in reply.headers
    assert [v for k, v in reply.headers if k == b"set-cookie"] == [b"a=1; HttpOnly", b"b=2"]


async def test_delete_is_forwarded_as_delete() -> None:
    """A session DELETE reaches the MCP endpoint as a DELETE with its session id."""
    handler = reply_with(200, [(b"content-length", b"0")])
    async with stub_upstream(handler) as stub, run_proxy(stub.url) as proxy, connect(proxy) as c:
        reply = await c.request(b"DELETE", b"/mcp", [(b"mcp-session-id", b"s-1")])
    [received] = stub.requests
    assert (received.method, received.target) == (b"DELETE", b"/mcp")
    assert received.header(b"mcp-session-id") == b"s-1"
    assert reply.status == 200
    [event] = proxy.request_events()
    assert (event.method, event.session_id) == ("DELETE", "s-1")


async def test_get_sse_streams_events_as_they_are_produced() -> None:
    """The client receives event 1 of a GET stream before the upstream writes event 2."""
    first_seen = anyio.Event()

    async def handler(request: ReceivedRequest, respond: Responder) -> None:
        await respond.head(200, _SSE_HEAD)
        await respond.send(b"id: 1\ndata: one\n\n")
        await first_seen.wait()
        await respond.send(b"id: 2\ndata: two\n\n")
        await respond.end()

    headers = [*SSE_ACCEPT, (b"last-event-id", b"0")]
    async with stub_upstream(handler) as stub, run_proxy(stub.url) as proxy, connect(proxy) as c:
        await c.send_request(b"GET", b"/mcp", headers)
        head = await c.read_head()
        assert head.status_code == 200
        assert (b"transfer-encoding", b"chunked") in head.headers
        early = await c.read_until(b"\n\n")
        assert early == b"id: 1\ndata: one\n\n"
        first_seen.set()
        rest, complete = await c.read_body()
    assert complete
    assert rest == b"id: 2\ndata: two\n\n"
    [received] = stub.requests
    assert (received.method, received.target) == (b"GET", b"/mcp")
    assert received.header(b"last-event-id") == b"0"


async def test_passthrough_keeps_path_and_query() -> None:
    """A request outside MCP goes to the upstream origin with its own path and query."""
    document = b'{"resource":"urn:x","authorization_servers":[]}'
    handler = reply_with(200, [(b"content-type", b"application/json")], [document])
    target = b"/.well-known/oauth-protected-resource/mcp?x=1&y=%20"
    async with stub_upstream(handler) as stub, run_proxy(stub.url) as proxy, connect(proxy) as c:
        reply = await c.request(b"GET", target, [(b"accept", b"application/json")])
    [received] = stub.requests
    assert (received.method, received.target) == (b"GET", target)
    assert reply.body == document
    [event] = proxy.request_events()
    assert event.mcp_method is None
    assert event.path == "/.well-known/oauth-protected-resource/mcp"


async def test_non_json_post_is_passthrough() -> None:
    """A POST that is not JSON-RPC keeps its path and arrives byte for byte."""
    body = b"\x00binary upload \xff" * 100
    handler = reply_with(201, [(b"content-type", b"text/plain")], [b"stored"])
    headers = [(b"content-type", b"application/octet-stream")]
    async with stub_upstream(handler) as stub, run_proxy(stub.url) as proxy, connect(proxy) as c:
        reply = await c.request(b"POST", b"/upload?name=a", headers, body)
        json_reply = await c.request(b"POST", b"/hook", JSON, b'{"not": "json-rpc"}')
    upload, hook = stub.requests
    assert (upload.method, upload.target, upload.body) == (b"POST", b"/upload?name=a", body)
    assert (hook.target, hook.body) == (b"/hook", b'{"not": "json-rpc"}')
    assert (reply.status, reply.body) == (201, b"stored")
    assert json_reply.status == 201
    events = await proxy.wait_exchanges(2)
    assert [e.mcp_method for e in events] == [None, None]


async def test_jsonrpc_post_to_an_mcp_path_goes_to_the_mcp_endpoint() -> None:
    """A JSON-RPC POST to "/" or the MCP path is sent to the configured MCP endpoint."""
    async with (
        stub_upstream(_JSON_REPLY) as stub,
        run_proxy(stub.url) as proxy,
        connect(proxy) as c,
    ):
        await c.request(b"POST", b"/", JSON, rpc("ping"))
        await c.request(b"POST", b"/mcp?tenant=7", JSON, rpc("tools/list"))
    assert [r.target for r in stub.requests] == [b"/mcp", b"/mcp?tenant=7"]
    assert [r.body for r in stub.requests] == [rpc("ping"), rpc("tools/list")]


async def test_jsonrpc_post_elsewhere_keeps_its_path_and_is_observed() -> None:
    """A JSON-RPC POST to another path (legacy /messages) keeps it and is still recorded."""
    async with stub_upstream(_JSON_REPLY) as stub, run_proxy(stub.url) as proxy:
        async with connect(proxy) as c:
            await c.request(b"POST", b"/messages/?session_id=ab", JSON, rpc("tools/list"))
        [event] = await proxy.wait_exchanges(1)
    [received] = stub.requests
    assert (received.target, received.body) == (b"/messages/?session_id=ab", rpc("tools/list"))
    assert (event.mcp_method, event.path) == ("tools/list", "/messages/")


async def test_keep_alive_reuses_both_connections() -> None:
    """Two requests on one client connection travel over one pooled upstream connection."""
    async with stub_upstream(_JSON_REPLY) as stub, run_proxy(stub.url) as proxy:
        async with connect(proxy) as c:
            first = await c.request(b"POST", b"/mcp", JSON, rpc("ping"))
            second = await c.request(b"POST", b"/mcp", JSON, rpc("tools/list"))
            events = await proxy.wait_exchanges(2)
            stats = proxy.running.statistics()
            assert stats.handler.connections_open == 1
        assert (first.status, second.status) == (200, 200)
        assert stats.pool.opened_total == 1
        assert stats.pool.idle == 1
        assert stub.connections_total == 1
        assert len(stub.requests) == 2
    assert [e.mcp_method for e in events] == ["ping", "tools/list"]


async def test_a_request_asking_for_upgrade_leaves_the_connection_open() -> None:
    """Upgrade is never honoured (it is hop-by-hop): the next pipelined request is served."""
    async with stub_upstream(_JSON_REPLY) as stub, run_proxy(stub.url) as proxy:
        body = rpc("ping")
        head = b"POST /mcp HTTP/1.1\r\nhost: %b\r\ncontent-type: application/json\r\n" % (
            proxy.host_header
        )
        head += b"content-length: %d\r\n" % len(body)
        upgrade = b"connection: upgrade\r\nupgrade: websocket\r\n"
        stream = await anyio.connect_tcp("127.0.0.1", proxy.running.port)
        async with stream:
            await stream.send(head + upgrade + b"\r\n" + body + head + b"\r\n" + body)
            answers = b""
            with anyio.fail_after(5):
                while answers.count(b"HTTP/1.1 200 ") < 2:
                    answers += await stream.receive()
        assert len(stub.requests) == 2
        assert b"connection: close" not in answers.lower()
        assert all(b"upgrade" not in dict(r.headers) for r in stub.requests)


async def test_dead_pooled_connection_is_replaced() -> None:
    """An idle upstream connection the server closed is not reused; the request succeeds."""
    async with stub_upstream(_JSON_REPLY) as stub, run_proxy(stub.url) as proxy:
        stub.close_after_response = True
        async with connect(proxy) as c:
            first = await c.request(b"POST", b"/mcp", JSON, rpc("ping"))
            await stub.wait_until(lambda: stub.connections_open == 0)
            second = await c.request(b"POST", b"/mcp", JSON, rpc("ping", 2))
        assert (first.status, second.status) == (200, 200)
        assert second.body == _RESULT
        assert stub.connections_total == 2
        assert proxy.running.statistics().pool.opened_total == 2
        events = await proxy.wait_exchanges(2)
    assert [e.note for e in events] == ["ok", "ok"]


async def test_event_records_sizes_and_session() -> None:
    """The event of an exchange carries its request and response sizes and the session id."""
    body = rpc("tools/call", 7, name="add", arguments={"a": 1})
    answer = b'{"jsonrpc":"2.0","id":7,"result":{"content":[],"isError":false}}'
    headers = [(b"content-type", b"application/json"), (b"mcp-session-id", b"abc")]
    handler = reply_with(200, headers, [answer[:10], answer[10:]])
    async with stub_upstream(handler) as stub, run_proxy(stub.url) as proxy:
        async with connect(proxy) as c:
            await c.request(b"POST", b"/mcp", JSON, body)
        [event] = await proxy.wait_exchanges(1)
    assert isinstance(event, RequestEvent)
    assert (event.request_size, event.response_size) == (len(body), len(answer))
    assert (event.mcp_method, event.tool, event.jsonrpc_id) == ("tools/call", "add", 7)
    assert (event.session_id, event.status, event.error_code) == ("abc", 200, None)


async def test_chunked_upload_is_streamed_to_the_upstream() -> None:
    """A chunked non-JSON upload reaches the upstream whole, chunked again."""
    parts = [b"part one,", b"part two,", b"part three"]
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"text/plain"),
        (b"transfer-encoding", b"chunked"),
    ]
    async with (
        stub_upstream(_JSON_REPLY) as stub,
        run_proxy(stub.url) as proxy,
        connect(proxy) as c,
    ):
        await c.send(h11.Request(method=b"POST", target=b"/files", headers=headers))
        for part in parts:
            await c.send(h11.Data(data=part))
        await c.send(h11.EndOfMessage())
        reply = await c.read_response()
    assert reply.status == 200
    [received] = stub.requests
    assert (received.target, received.body) == (b"/files", b"".join(parts))
    assert received.header(b"transfer-encoding") == b"chunked"


async def test_excess_upstream_exchanges_wait_for_a_slot() -> None:
    """Beyond max_concurrent_upstream an exchange waits, then proceeds once a slot frees."""
    release = anyio.Event()

    async def handler(request: ReceivedRequest, respond: Responder) -> None:
        if request.body == rpc("tools/call", 1):
            await release.wait()
        await respond.reply(200, [(b"content-type", b"application/json")], [_RESULT])

    replies: list[int] = []

    async def call(proxy: Proxy, body: bytes) -> None:
        async with connect(proxy) as c:
            replies.append((await c.request(b"POST", b"/mcp", JSON, body)).status)

    async with (
        stub_upstream(handler) as stub,
        run_proxy(stub.url, max_concurrent_upstream=1) as p,
        anyio.create_task_group() as group,
    ):
        group.start_soon(call, p, rpc("tools/call", 1))
        await stub.wait_until(lambda: len(stub.requests) == 1)
        group.start_soon(call, p, rpc("ping", 2))
        await wait_until(lambda: p.running.statistics().pool.waiting == 1)
        assert len(stub.requests) == 1
        release.set()
    assert replies == [200, 200]
    assert [r.body for r in stub.requests] == [rpc("tools/call", 1), rpc("ping", 2)]
