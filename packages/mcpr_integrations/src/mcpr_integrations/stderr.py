"""StderrSink: one line per request event, human (`pretty`) or machine (`json`).

Pretty lines read like an access log that knows MCP:

    14:03:07 POST 200 8.0KB 16.23ms tools/call -> get_weather /mcp
    14:03:08 POST 200 0.1KB 2.10ms tools/call -> missing /mcp [-32602 Invalid params]

Only request events are printed in pretty mode; `json` prints every event as one object.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Literal, TextIO

from mcpr_core.events import ProxyEvent, RequestEvent, event_to_json

__all__ = ["StderrSink", "format_pretty"]


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f}KB"
    return f"{n / (1024 * 1024):.1f}MB"


def format_pretty(event: RequestEvent) -> str:
    """The one-line human form of a request event (local wall-clock time)."""
    clock = time.strftime("%H:%M:%S", time.localtime(event.ts / 1000))
    parts = [
        clock,
        event.method,
        str(event.status),
        _size(event.response_size),
        f"{event.latency_us / 1000:.2f}ms",
    ]
    if event.mcp_method:
        target = event.tool or event.resource_uri or event.prompt_name
        parts.append(f"{event.mcp_method} -> {target}" if target else event.mcp_method)
    parts.append(event.path)
    if event.error_code is not None or event.error_msg:
        code = "" if event.error_code is None else f"{event.error_code} "
        parts.append(f"[{code}{event.error_msg or ''}]".replace(" ]", "]"))
    if event.note not in ("ok", "rejected"):
        parts.append(f"({event.note})")
    return " ".join(parts)


class StderrSink:
    """Write events to a text stream (stderr by default), one line each."""

    def __init__(
        self, fmt: Literal["pretty", "json"] = "pretty", stream: TextIO | None = None
    ) -> None:
        self._fmt = fmt
        self._stream = stream

    @property
    def name(self) -> str:
        """The sink's name in logs and metrics."""
        return "stderr"

    def _out(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def _line(self, event: ProxyEvent) -> str | None:
        if self._fmt == "json":
            return event_to_json(event)
        if isinstance(event, RequestEvent):
            return format_pretty(event)
        return None

    def on_event(self, event: ProxyEvent) -> None:
        """Write one event's line."""
        line = self._line(event)
        if line is not None:
            self._out().write(line + "\n")

    def on_batch(self, events: Sequence[ProxyEvent]) -> None:
        """Write several lines in one call."""
        lines = [line for line in map(self._line, events) if line is not None]
        if lines:
            self._out().write("\n".join(lines) + "\n")

    def flush(self) -> None:
        """Flush the stream."""
        self._out().flush()

    def close(self) -> None:
        """Flush; the process's stderr itself stays open."""
        self.flush()
