"""The `data` of an SSE body's events, for the tests that read the recorded fixtures."""

from __future__ import annotations


def sse_data(body: str) -> list[str]:
    """The `data` of every dispatched event of an SSE body (WHATWG rules, enough for fixtures).

    Other fields, comments, and the chunk-size lines of the raw chunked fixture are lines
    this helper (like an SSE decoder for unknown fields) ignores.
    """
    events: list[str] = []
    data: list[str] = []
    for line in body.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line:
            if data and "\n".join(data):
                events.append("\n".join(data))
            data = []
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
    return events
