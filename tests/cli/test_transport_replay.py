"""Every recorded exchange of `tests/fixtures/*.jsonl`, replayed through the proxy.

The stub upstream answers with the recorded status, headers and body (SSE bodies written
one event per chunk, as a server produces them); a raw client sends the recorded request.
Both ends must see the recorded bytes, and the proxy must describe the exchange in one
`RequestEvent`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest

from mcpr_core.events import RequestEvent
from mcpr_core.routing import HOP_BY_HOP
from tests.cli.stub_upstream import reply_with, stub_upstream
from tests.cli.wire import connect, run_proxy
from tests.fixtures import FIXTURES

_CHUNK_SIZE = re.compile(rb"([0-9a-fA-F]+)\r\n")
_EVENT_END = re.compile(rb"(?<=\r\n\r\n)|(?<=\n\n)")


def unchunk(raw: bytes) -> bytes | None:
    """Decode a body recorded with its chunked framing; None when it is not chunked.

    The `subscriptions/listen` recording is such a body, cut when the client closed the
    stream, so a missing terminating zero-size chunk is accepted.
    """
    out: list[bytes] = []
    position = 0
    while position < len(raw):
        match = _CHUNK_SIZE.match(raw, position)
        if match is None:
            return None
        size = int(match.group(1), 16)
        start = match.end()
        if size == 0:
            return b"".join(out)
        if raw[start + size : start + size + 2] != b"\r\n":
            return None
        out.append(raw[start : start + size])
        position = start + size + 2
    return b"".join(out) if out else None


@dataclass(frozen=True, slots=True)
class Recorded:
    """One exchange of a fixture file, as bytes."""

    id: str
    method: bytes
    request_headers: list[tuple[bytes, bytes]]
    request_body: bytes | None
    status: int
    response_headers: list[tuple[bytes, bytes]]
    body: bytes

    @property
    def is_sse(self) -> bool:
        return any(
            k.lower() == b"content-type" and v.startswith(b"text/event-stream")
            for k, v in self.response_headers
        )

    def chunks(self) -> list[bytes]:
        """The body as a server writes it: SSE one event per chunk, anything else at once."""
        if not self.is_sse:
            return [self.body]
        return [part for part in _EVENT_END.split(self.body) if part]

    def request_message(self) -> dict[str, Any] | None:
        """The JSON-RPC request sent, if any."""
        if not self.request_body:
            return None
        message = json.loads(self.request_body)
        return message if isinstance(message, dict) else None

    def response_messages(self) -> list[dict[str, Any]]:
        """The JSON-RPC messages of the response body (JSON, or the data of each SSE event)."""
        if not self.body:
            return []
        if not self.is_sse:
            return [json.loads(self.body)]
        out = []
        for event in _EVENT_END.split(self.body):
            data = [
                line[5:].removeprefix(b" ")
                for line in event.splitlines()
                if line.startswith(b"data:")
            ]
            if any(data):
                out.append(json.loads(b"\n".join(data)))
        return out


def _load() -> list[Recorded]:
    out = []
    for path in sorted(FIXTURES.glob("*.jsonl")):
        for index, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            record = json.loads(line)
            request, response = record["request"], record["response"]
            raw = response["body"].encode()
            body = unchunk(raw)
            out.append(
                Recorded(
                    id=f"{path.stem}:{index}",
                    method=request["method"].encode(),
                    request_headers=[
                        (k.encode(), v.encode()) for k, v in request["headers"].items()
                    ],
                    request_body=(
                        request["body"].encode() if request["body"] is not None else None
                    ),
                    status=response["status"],
                    response_headers=[(k.encode(), v.encode()) for k, v in response["headers"]],
                    body=raw if body is None else body,
                )
            )
    return out


EXCHANGES = _load()


def _sse_ids(body: bytes) -> list[bytes]:
    return [line[3:].strip() for line in body.splitlines() if line.startswith(b"id:")]


def _request_id(recorded: Recorded) -> object:
    message = recorded.request_message()
    return message.get("id") if message is not None else None


def _expected_error_code(recorded: Recorded, request_id: object) -> int | None:
    for message in recorded.response_messages():
        if message.get("id") == request_id and isinstance(message.get("error"), dict):
            code = message["error"]["code"]
            assert isinstance(code, int)
            return code
    return None


def test_fixtures_cover_the_cases_replayed() -> None:
    """The fixtures are found and hold SSE ids and JSON-RPC errors in JSON and in SSE."""
    assert {e.id.partition(":")[0] for e in EXCHANGES} >= {
        "conformance-everything",
        "mcp-apps-map",
        "modern-2026-07-28",
    }
    assert any(e.is_sse and _sse_ids(e.body) for e in EXCHANGES)
    errors = [(e.is_sse, _expected_error_code(e, _request_id(e))) for e in EXCHANGES]
    assert any(sse and code is not None for sse, code in errors)
    assert any(not sse and code is not None for sse, code in errors)


def test_unchunk_decodes_a_cut_chunked_body() -> None:
    """A chunked body without its terminator decodes to its chunks; other bodies are left."""
    assert unchunk(b"3\r\nabc\r\n2\r\nde\r\n") == b"abcde"
    assert unchunk(b"3\r\nabc\r\n0\r\n\r\n") == b"abc"
    assert unchunk(b"event: message\r\ndata: {}\r\n\r\n") is None
    assert unchunk(b'{"jsonrpc":"2.0"}') is None


@pytest.mark.parametrize("recorded", EXCHANGES, ids=lambda r: r.id)
async def test_replay_is_byte_exact(recorded: Recorded) -> None:
    """Status, end-to-end headers, body bytes and SSE ids cross the proxy unchanged."""
    handler = reply_with(recorded.status, recorded.response_headers, recorded.chunks())
    async with stub_upstream(handler) as stub, run_proxy(stub.url) as proxy, connect(proxy) as c:
        reply = await c.request(
            recorded.method, b"/mcp", recorded.request_headers, recorded.request_body
        )
    [received] = stub.requests
    assert received.method == recorded.method
    assert received.target == b"/mcp"
    assert received.body == (recorded.request_body or b"")
    assert reply.status == recorded.status
    assert reply.complete
    assert reply.body == recorded.body
    assert _sse_ids(reply.body) == _sse_ids(recorded.body)
    for name, value in recorded.response_headers:
        key = name.lower()
        if key not in HOP_BY_HOP and key != b"content-length":
            assert (key, value) in reply.headers
    if recorded.is_sse:
        # Every event the upstream wrote arrived, in order.
        assert reply.body.count(b"data:") == recorded.body.count(b"data:")


@pytest.mark.parametrize("recorded", EXCHANGES, ids=lambda r: r.id)
async def test_replay_emits_one_event(recorded: Recorded) -> None:
    """Each replayed exchange emits exactly one RequestEvent with its method, tool and error."""
    handler = reply_with(recorded.status, recorded.response_headers, recorded.chunks())
    async with stub_upstream(handler) as stub, run_proxy(stub.url) as proxy:
        async with connect(proxy) as c:
            await c.request(
                recorded.method, b"/mcp", recorded.request_headers, recorded.request_body
            )
        await proxy.wait_exchanges(1)
    [event] = proxy.request_events()
    assert isinstance(event, RequestEvent)
    message = recorded.request_message()
    request_id = _request_id(recorded)
    params = message.get("params", {}) if message is not None else {}
    assert event.method == recorded.method.decode()
    assert event.path == "/mcp"
    assert event.status == recorded.status
    asks = any(
        m.get("id") == request_id and m.get("result", {}).get("resultType") == "input_required"
        for m in recorded.response_messages()
    )
    assert event.note == ("input_required" if asks else "ok")
    assert event.mcp_method == (message["method"] if message is not None else None)
    assert event.jsonrpc_id == request_id
    assert event.tool == (params.get("name") if event.mcp_method == "tools/call" else None)
    assert event.error_code == _expected_error_code(recorded, request_id)
    assert event.request_size == len(recorded.request_body or b"")
    assert event.response_size == len(recorded.body)
