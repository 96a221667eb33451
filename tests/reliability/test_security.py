"""Item 5 of the reliability issue: the security defaults of PRODUCT.md §9, attacked.

DNS rebinding (crafted Host and Origin values against a loopback bind), server-side request
forgery (targets and headers naming another host: the proxy connects to its configured
upstream and nowhere else), and secrets (Authorization, cookies, the cloud token) scanned
for in everything mcpr writes: stderr, the store, the cloud uploads. The store file is
private (0600) and the default bind is loopback.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import anyio
import anyio.abc
import pytest
from anyio.abc import SocketAttribute

from tests.cli.stub_upstream import ReceivedRequest, Responder, stub_upstream
from tests.cli.wire import JSON, Proxy, RawClient, connect, rpc, run_proxy
from tests.integrations.fake_cloud import fake_cloud
from tests.reliability.support import ProxyProcess, store_rows

_FOREIGN_HOSTS = [
    b"evil.example",
    b"evil.example:3000",
    b"127.0.0.1.evil.example",
    b"localhost.evil.example",
    b"127.0.0.1@evil.example",
    b"evil.example#127.0.0.1",
    b"2130706433",  # 127.0.0.1 as one decimal number: a name here, not an address
    b"0x7f.0.0.1",
    b"[::ffff:8.8.8.8]",
    b"[::1]evil",
    b"",
    b"l\xd0\xbecalhost",  # a Cyrillic o
]
_FOREIGN_ORIGINS = [
    b"http://evil.example",
    b"null",
    b"http://127.0.0.1.evil.example",
    b"http://localhost@evil.example",
    b"file://",
    b"http://evil.example, http://127.0.0.1",
]
_LOOPBACK_HOSTS = [b"127.0.0.1", b"localhost", b"LOCALHOST:3000", b"[::1]:80", b"127.9.9.9"]
_LOOPBACK_ORIGINS = [b"http://127.0.0.1:3000", b"https://localhost", b"http://[::1]"]


async def test_dns_rebinding_is_refused_on_a_loopback_bind() -> None:
    """Every foreign Host or Origin gets 403 and nothing is forwarded; loopback ones pass."""
    foreign = [(b"host", h) for h in _FOREIGN_HOSTS] + [(b"origin", o) for o in _FOREIGN_ORIGINS]
    local = [(b"host", h) for h in _LOOPBACK_HOSTS] + [(b"origin", o) for o in _LOOPBACK_ORIGINS]
    async with stub_upstream() as stub, run_proxy(stub.url) as proxy:
        refused = [await _status(proxy, header) for header in foreign]
        forwarded_before = len(stub.requests)
        passed = [await _status(proxy, header) for header in local]
    assert refused == [403] * len(foreign)
    assert forwarded_before == 0
    assert passed == [200] * len(local)
    assert len(stub.requests) == len(local)


async def _status(proxy: Proxy, header: tuple[bytes, bytes]) -> int:
    """The status of a ping sent with `header` on a new connection (a 403 closes it)."""
    async with connect(proxy) as c:
        return (await c.request(b"POST", b"/mcp", [header, *JSON], rpc("ping"))).status


async def test_no_request_makes_the_proxy_connect_anywhere_but_its_upstream() -> None:
    """Absolute-form and authority-form targets, Host, X-Forwarded-Host and Forwarded naming
    another server (a decoy listener) all end at the configured upstream: the decoy sees no
    connection, and the upstream always gets its own Host."""
    decoy_connections = 0

    async def decoy_handler(stream: anyio.abc.SocketStream) -> None:
        nonlocal decoy_connections
        decoy_connections += 1
        await stream.aclose()

    decoy = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    other = f"127.0.0.1:{decoy.extra(SocketAttribute.local_port)}".encode()
    attempts: list[tuple[bytes, bytes, list[tuple[bytes, bytes]]]] = [
        (b"GET", b"http://" + other + b"/admin", []),
        (b"POST", b"http://" + other + b"/mcp", list(JSON)),
        (b"GET", b"https://" + other + b"/.well-known/oauth-authorization-server", []),
        (b"CONNECT", other, []),
        (b"GET", b"//" + other + b"/admin", []),
        (b"GET", b"/admin", [(b"x-forwarded-host", other), (b"forwarded", b"host=" + other)]),
        (b"POST", b"/mcp", [(b"host", other), *JSON]),
        (b"GET", b"/.well-known/oauth-protected-resource", [(b"host", other)]),
    ]

    async def answer(request: ReceivedRequest, respond: Responder) -> None:
        await respond.reply(204)

    statuses = []
    async with decoy, anyio.create_task_group() as group:
        group.start_soon(decoy.serve, decoy_handler)
        async with (
            stub_upstream(answer) as stub,
            run_proxy(stub.url, allowed_hosts=("*",)) as proxy,
        ):
            for method, target, headers in attempts:
                async with connect(proxy) as c:
                    body = rpc("ping") if method == b"POST" else None
                    await c.send_request(method, target, headers, body)
                    statuses.append((await c.read_head()).status_code)
            await proxy.wait_exchanges(len(attempts))
        group.cancel_scope.cancel()
    assert decoy_connections == 0
    assert statuses == [204, 204, 204, 501, 204, 204, 204, 204]  # CONNECT opens no tunnel
    assert {r.header(b"host") for r in stub.requests} == {stub.host_header}
    assert [r.target for r in stub.requests] == [
        b"/admin",
        b"/mcp",
        b"/.well-known/oauth-authorization-server",
        b"//" + other + b"/admin",  # a path, as RFC 9112 reads it: the upstream's own
        b"/admin",
        b"/mcp",
        b"/.well-known/oauth-protected-resource",
    ]


_SECRETS = {
    "authorization": "Bearer SECRET-AUTH-7f3a9c",
    "cookie": "session=SECRET-COOKIE-51be20",
    "proxy-authorization": "Basic SECRET-PROXY-AUTH-99d1",
}
_TOKEN = "mcpr_SECRET-CLOUD-TOKEN-c0ffee"


def _listening_addresses(port: int) -> set[str]:
    """The local addresses listening on TCP `port`, from /proc/net/tcp and tcp6 (hex)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the proxy runs as its own process
async def test_secrets_never_reach_stderr_store_or_cloud(tmp_path: Path) -> None:
    """Requests carrying Authorization, cookies and Proxy-Authorization (in good, refused and
    malformed requests, and in query strings) leave no trace of them, nor of the cloud token,
    in stderr (events as JSON), the store or the uploads; the store is 0600 and the proxy
    listens on 127.0.0.1 only."""

    async def answer(request: ReceivedRequest, respond: Responder) -> None:
        status = 500 if b"fail" in request.target else 200
        body = b'{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"no"}}'
        await respond.reply(status, JSON[:1], [body])

    headers = [(k.encode(), v.encode()) for k, v in _SECRETS.items()]
    with fake_cloud() as cloud:
        cloud_table = f'[cloud]\ntoken = "{_TOKEN}"\nendpoint = "{cloud.url}"\n'
        cloud_table += "flush_interval_ms = 50\n"
        async with stub_upstream(answer) as stub:
            proxy = ProxyProcess(tmp_path, stub.url, events_format="json", tables=cloud_table)
            try:
                await anyio.to_thread.run_sync(proxy.wait_listening)
                listening = _listening_addresses(proxy.port)
                await _send_with_secrets(proxy.port, headers)
                proxy.terminate()
                assert await anyio.to_thread.run_sync(proxy.wait) == 0
            finally:
                proxy.close()
        uploads = b"".join(upload.body for upload in cloud.uploads())
    files = await anyio.to_thread.run_sync(lambda: list(tmp_path.glob("store.db*")))
    stored = b"".join([await anyio.Path(path).read_bytes() for path in files])
    modes = {path.name: stat.S_IMODE(os.stat(path).st_mode) for path in files}
    assert store_rows(proxy.store) >= 5
    assert uploads.count(b'"type":"request"') >= 5
    assert proxy.stderr.count('"type": "request"') + proxy.stderr.count('"type":"request"') >= 5
    for secret in [*_SECRETS.values(), _TOKEN]:
        needle = secret.split()[-1].split("=")[-1]
        assert needle not in proxy.stderr
        assert needle.encode() not in stored
        assert needle.encode() not in uploads
    assert set(modes.values()) == {0o600}, modes
    assert listening == {"0100007F"}  # 127.0.0.1, and nothing else


async def _send_with_secrets(port: int, headers: list[tuple[bytes, bytes]]) -> None:
    """Good, failing, refused and malformed requests, each carrying the secrets."""
    client = RawClient(await anyio.connect_tcp("127.0.0.1", port), f"127.0.0.1:{port}".encode())
    try:
        for target in [b"/mcp", b"/mcp?fail&token=SECRET-QUERY-31", b"/.well-known/x?k=SECRET-Q2"]:
            body = rpc("tools/call", 1, name="t", token="SECRET-ARG-77")
            reply = await client.request(b"POST", target, [*headers, *JSON], body)
            assert reply.status in (200, 500)
    finally:
        await client.aclose()
    for raw in [
        b"POST /mcp HTTP/1.1\r\nhost: evil.example\r\nauthorization: Bearer SECRET-AUTH-7f3a9c\r\n"
        b"content-length: 2\r\n\r\n{}",
        b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        b"cookie: session=SECRET-COOKIE-51be20\x00\r\n\r\n",
    ]:
        stream = await anyio.connect_tcp("127.0.0.1", port)
        async with stream:
            await stream.send(raw)
            assert (await stream.receive()).startswith(b"HTTP/1.1 4")
