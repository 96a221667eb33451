"""StderrSink: one line per request event, human (`pretty`) or machine (`json`).

Pretty lines read like an access log that knows MCP (PRODUCT.md §6):

    14:03:07 POST 200 8.0KB 16.23ms tools/call -> get_weather /mcp
    14:03:08 POST 200 97B 850us tools/call -> missing /mcp [-32602 Invalid params]

Sizes are the response body in B, KB or MB (1024-based); latencies use the units of the
store's durations (us, ms, s). The time is local wall-clock time. On a terminal the status,
errors and notes are coloured, unless `NO_COLOR` is set (https://no-color.org).

Only request events are printed in pretty mode; `json` prints every event as one object.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import Literal, TextIO

from mcpr_core.events import ProxyEvent, RequestEvent, event_to_json

__all__ = ["StderrSink", "format_latency", "format_pretty", "format_size"]

_RESET = "\x1b[0m"
_DIM = "\x1b[2m"
_RED = "\x1b[31m"
_GREEN = "\x1b[32m"
_YELLOW = "\x1b[33m"
_CYAN = "\x1b[36m"
_MAGENTA = "\x1b[35m"

_QUIET_NOTES = frozenset({"ok", "rejected"})


def format_size(n: int | None) -> str:
    """A byte count as `512B`, `8.0KB` or `1.2MB` (1024-based); `-` when unknown."""
    if n is None:
        return "-"
    if n < 1024:
        return f"{n}B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f}KB"
    return f"{n / (1024 * 1024):.1f}MB"


def format_latency(us: int) -> str:
    """Microseconds as `850us`, `16.23ms` or `1.52s`."""
    if us < 1000:
        return f"{us}us"
    if us < 1_000_000:
        return f"{us / 1000:.2f}ms"
    return f"{us / 1_000_000:.2f}s"


def _status_colour(status: int) -> str:
    if 200 <= status < 300:
        return _GREEN
    if 300 <= status < 400:
        return _CYAN
    if 400 <= status < 500:
        return _YELLOW
    return _RED


def format_pretty(event: RequestEvent, *, colour: bool = False) -> str:
    """The one-line human form of a request event (local wall-clock time)."""

    def paint(text: str, code: str) -> str:
        return f"{code}{text}{_RESET}" if colour else text

    clock = time.strftime("%H:%M:%S", time.localtime(event.ts / 1000))
    parts = [
        paint(clock, _DIM),
        event.method,
        paint(str(event.status), _status_colour(event.status)),
        format_size(event.response_size),
        format_latency(event.latency_us),
    ]
    if event.mcp_method:
        target = event.tool or event.resource_uri or event.prompt_name
        parts.append(f"{event.mcp_method} -> {target}" if target else event.mcp_method)
    parts.append(event.path)
    if event.error_code is not None or event.error_msg:
        detail = " ".join(
            str(part) for part in (event.error_code, event.error_msg) if part not in (None, "")
        )
        parts.append(paint(f"[{detail}]", _RED))
    if event.note not in _QUIET_NOTES:
        parts.append(paint(f"({event.note})", _MAGENTA))
    return " ".join(parts)


class StderrSink:
    """Write events to a text stream (stderr by default), one line each.

    `colour` None means: colour when the stream is a terminal and `NO_COLOR` is unset.
    """

    def __init__(
        self,
        fmt: Literal["pretty", "json"] = "pretty",
        stream: TextIO | None = None,
        *,
        colour: bool | None = None,
    ) -> None:
        self._fmt = fmt
        self._stream = stream
        self._colour = colour

    @property
    def name(self) -> str:
        """The sink's name in logs and metrics."""
        return "stderr"

    def _out(self) -> TextIO:
        # Looked up on every write so that a swapped sys.stderr (tests, daemons) is honoured.
        return self._stream if self._stream is not None else sys.stderr

    def _use_colour(self, out: TextIO) -> bool:
        if self._colour is not None:
            return self._colour
        return "NO_COLOR" not in os.environ and out.isatty()

    def _lines(self, events: Sequence[ProxyEvent], out: TextIO) -> list[str]:
        if self._fmt == "json":
            return [event_to_json(event) for event in events]
        colour = self._use_colour(out)
        requests = (event for event in events if isinstance(event, RequestEvent))
        return [format_pretty(event, colour=colour) for event in requests]

    def on_event(self, event: ProxyEvent) -> None:
        """Write one event's line."""
        self.on_batch((event,))

    def on_batch(self, events: Sequence[ProxyEvent]) -> None:
        """Write several lines in one call."""
        out = self._out()
        lines = self._lines(events, out)
        if lines:
            out.write("\n".join(lines) + "\n")

    def flush(self) -> None:
        """Flush the stream."""
        self._out().flush()

    def close(self) -> None:
        """Flush; the stream itself stays open (it is usually the process's stderr)."""
        self.flush()
