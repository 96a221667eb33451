"""In-process timings of the pipeline on the ~230 KB widget (no sockets, no other process).

One `resources/read` exchange is driven through `mcpr_core.pipeline.Exchange` from request
head to `finish()`, with the answer in JSON and in SSE framing, once with the widget CSP
rewriter on (a `[csp]` domain configured) and once without (the answer is only observed).
The difference is the time the rewrite adds to one such exchange.
"""

from __future__ import annotations

import json
import timeit
from typing import Any, Final

from benchmarks.payloads import WORKLOADS, widget
from mcpr_core.config import CspConfig, ProxyConfig
from mcpr_core.pipeline import (
    Exchange,
    Forward,
    Outcome,
    ReadBody,
    RequestHead,
    ResponseHead,
    Settings,
)

__all__ = ["rewrite_timings"]

_UPSTREAM: Final = "http://127.0.0.1:8000/mcp"
_CHUNK: Final = 65536  # what the transport reads from a socket at a time


def _exchange(settings: Settings, body: bytes, content_type: bytes) -> bytes:
    request = WORKLOADS["resources/read 230KB"].render(7)
    head = RequestHead(
        method=b"POST",
        target=b"/mcp",
        headers=[
            (b"host", b"127.0.0.1:3000"),
            (b"content-type", b"application/json"),
            (b"accept", b"application/json, text/event-stream"),
            (b"content-length", b"%d" % len(request)),
        ],
        client_host="127.0.0.1",
    )
    ex = Exchange(settings, exchange_id="bench", ts_ms=0, now=0.0)
    step = ex.receive_request_head(head)
    assert isinstance(step, ReadBody)
    assert isinstance(ex.receive_request_body(request), Forward)
    headers: list[tuple[bytes, bytes]] = [(b"content-type", content_type)]
    if content_type == b"application/json":
        headers.append((b"content-length", b"%d" % len(body)))
    out = [ex.receive_response_head(ResponseHead(200, headers), now=0.0)]
    sent = [ex.receive_response_data(body[i : i + _CHUNK]) for i in range(0, len(body), _CHUNK)]
    held, last = ex.receive_response_end()
    ex.finish(now=0.0, outcome=Outcome.COMPLETED)
    del out, held
    return b"".join(sent) + last


def _best_ms(call: Any, number: int = 20) -> float:
    return min(timeit.repeat(call, number=number, repeat=5)) / number * 1000


def rewrite_timings() -> dict[str, Any]:
    """Milliseconds per exchange, observe-only vs rewriting, JSON and SSE framing."""
    message = {"jsonrpc": "2.0", "id": 7, "result": widget().result}
    json_body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    sse_body = b"event: message\ndata: " + json_body + b"\n\n"
    observe = Settings.from_config(ProxyConfig(mcp=_UPSTREAM))
    rewrite = Settings.from_config(
        ProxyConfig(mcp=_UPSTREAM, csp=CspConfig(domain="widgets.example.com"))
    )
    figures: dict[str, Any] = {"body_bytes": len(json_body)}
    for framing, body, ctype in (
        ("json", json_body, b"application/json"),
        ("sse", sse_body, b"text/event-stream"),
    ):
        same = _exchange(observe, body, ctype)
        changed = _exchange(rewrite, body, ctype)
        if same != body or changed == body:
            raise SystemExit(f"{framing}: the rewrite did not behave as expected")
        plain = _best_ms(lambda b=body, c=ctype: _exchange(observe, b, c))
        rewritten = _best_ms(lambda b=body, c=ctype: _exchange(rewrite, b, c))
        figures[framing] = {
            "observe_ms": plain,
            "rewrite_ms": rewritten,
            "added_ms": rewritten - plain,
        }
    return figures
