"""TLS to the upstream: certificate verification with a configured CA file."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.abc
import h11
import pytest
import trustme
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSListener

from mcpr_cli.proxy import serve
from mcpr_core.config import ProxyConfig
from mcpr_core.events import ProxyEvent, RequestEvent

ANSWER = b'{"jsonrpc":"2.0","id":1,"result":{}}'
PING = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'


async def answer_once(stream: anyio.abc.ByteStream) -> None:
    """Serve one JSON-RPC answer over an h11 server connection."""
    conn = h11.Connection(h11.SERVER)
    async with stream:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    conn.receive_data(await stream.receive())
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return
                continue
            if isinstance(event, h11.EndOfMessage):
                break
        headers = [("content-type", "application/json"), ("content-length", str(len(ANSWER)))]
        await stream.send(conn.send(h11.Response(status_code=200, headers=headers)) or b"")
        await stream.send(conn.send(h11.Data(data=ANSWER)) or b"")
        await stream.send(conn.send(h11.EndOfMessage()) or b"")


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_upstream(ca: trustme.CA) -> AsyncIterator[int]:
    """A TLS MCP-ish upstream on 127.0.0.1 whose certificate is signed by `ca`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    listener = TLSListener(tcp, context, standard_compatible=False)
    port = tcp.extra(SocketAttribute.local_port)
    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, answer_once)
        yield port
        group.cancel_scope.cancel()
    await listener.aclose()


async def post_ping(url: str) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = h11.Connection(h11.CLIENT)
    async with await anyio.connect_tcp(host, int(port)) as stream:
        headers = [
            ("host", f"{host}:{port}"),
            ("content-type", "application/json"),
            ("content-length", str(len(PING))),
        ]
        await stream.send(conn.send(h11.Request(method="POST", target="/mcp", headers=headers)))
        await stream.send(conn.send(h11.Data(data=PING)) or b"")
        await stream.send(conn.send(h11.EndOfMessage()) or b"")
        status, body = 0, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive())
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return status, body


async def test_https_upstream_is_verified_with_the_configured_ca(
    ca: trustme.CA, tls_upstream: int, tmp_path: Path
) -> None:
    """With the upstream's CA as `ca_file`, requests reach the https upstream."""
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    config = ProxyConfig(
        mcp=f"https://127.0.0.1:{tls_upstream}/mcp", port=0, admin="none", ca_file=str(ca_file)
    )
    events: list[ProxyEvent] = []
    async with serve(config, emit=events.append) as running:
        assert await post_ping(running.url) == (200, ANSWER)
    (event,) = events
    assert isinstance(event, RequestEvent)
    assert event.status == 200
    assert event.mcp_method == "ping"


async def test_https_upstream_with_an_unknown_ca_is_a_502(tls_upstream: int) -> None:
    """Without the CA the certificate is refused and the client gets a 502 naming it."""
    config = ProxyConfig(mcp=f"https://127.0.0.1:{tls_upstream}/mcp", port=0, admin="none")
    events: list[ProxyEvent] = []
    async with serve(config, emit=events.append) as running:
        status, body = await post_ping(running.url)
    assert status == 502
    assert b"CERTIFICATE_VERIFY_FAILED" in body
    (event,) = events
    assert isinstance(event, RequestEvent)
    assert event.note == "upstream_unreachable"
