"""Tests of the stderr sink: the pretty line, its units and colours, and JSON lines."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mcpr_core.events import RequestEvent, SessionStart
from mcpr_integrations.stderr import StderrSink, format_latency, format_pretty, format_size

# 2026-01-01 14:03:07.250 UTC
TS = 1_767_276_187_250


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC during these tests."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def request(**fields: Any) -> RequestEvent:
    """A tools/call answered 200 in 16.23 ms with 8 KiB; `fields` override."""
    base: dict[str, Any] = {
        "id": "r1",
        "ts": TS,
        "proxy": "p",
        "method": "POST",
        "path": "/mcp",
        "status": 200,
        "latency_us": 16_230,
        "request_size": 90,
        "response_size": 8192,
        "note": "ok",
        "mcp_method": "tools/call",
        "tool": "get_weather",
    }
    return RequestEvent(**{**base, **fields})


class TTY(io.StringIO):
    """A text stream that claims to be a terminal."""

    def isatty(self) -> bool:
        """Always a terminal."""
        return True


@pytest.mark.parametrize(
    ("fields", "line"),
    [
        ({}, "14:03:07 POST 200 8.0KB 16.23ms tools/call -> get_weather /mcp"),
        (
            {"tool": None, "mcp_method": "resources/read", "resource_uri": "ui://map"},
            "14:03:07 POST 200 8.0KB 16.23ms resources/read -> ui://map /mcp",
        ),
        (
            {"tool": None, "mcp_method": "prompts/get", "prompt_name": "greet"},
            "14:03:07 POST 200 8.0KB 16.23ms prompts/get -> greet /mcp",
        ),
        (
            {"tool": None, "mcp_method": "ping", "response_size": 97, "latency_us": 850},
            "14:03:07 POST 200 97B 850us ping /mcp",
        ),
        (
            {"error_code": -32602, "error_msg": "Invalid params"},
            "14:03:07 POST 200 8.0KB 16.23ms tools/call -> get_weather /mcp"
            " [-32602 Invalid params]",
        ),
        (
            {"error_msg": "tool error"},
            "14:03:07 POST 200 8.0KB 16.23ms tools/call -> get_weather /mcp [tool error]",
        ),
        (
            {"status": 504, "note": "timeout", "error_code": 504, "error_msg": "upstream timeout",
             "response_size": 120, "latency_us": 30_000_000},
            "14:03:07 POST 504 120B 30.00s tools/call -> get_weather /mcp"
            " [504 upstream timeout] (timeout)",
        ),
        (
            {"method": "GET", "mcp_method": None, "tool": None, "response_size": None,
             "path": "/mcp"},
            "14:03:07 GET 200 - 16.23ms /mcp",
        ),
    ],
)  # fmt: skip
def test_pretty_line(fields: dict[str, Any], line: str) -> None:
    """One line: local time, verb, status, size, latency, MCP method and target, path, error."""
    assert format_pretty(request(**fields)) == line


@pytest.mark.parametrize(
    ("n", "text"),
    [(None, "-"), (0, "0B"), (1023, "1023B"), (1024, "1.0KB"), (8192, "8.0KB"), (3 << 20, "3.0MB")],
)
def test_format_size(n: int | None, text: str) -> None:
    """Sizes read in B below 1 KiB, then KB, then MB (1024-based)."""
    assert format_size(n) == text


@pytest.mark.parametrize(
    ("us", "text"),
    [(0, "0us"), (999, "999us"), (1000, "1.00ms"), (16_230, "16.23ms"), (1_520_000, "1.52s")],
)
def test_format_latency(us: int, text: str) -> None:
    """Latencies read in us below 1 ms, ms below 1 s, then s."""
    assert format_latency(us) == text


def test_colour_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal the time is dim, the status coloured by class and the error red."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    out = TTY()
    StderrSink("pretty", out).on_event(request(status=502, error_msg="bad gateway"))
    assert out.getvalue() == (
        "\x1b[2m14:03:07\x1b[0m POST \x1b[31m502\x1b[0m 8.0KB 16.23ms"
        " tools/call -> get_weather /mcp \x1b[31m[bad gateway]\x1b[0m\n"
    )


@pytest.mark.parametrize(("status", "code"), [(200, "32"), (302, "36"), (404, "33"), (0, "31")])
def test_status_colour_by_class(status: int, code: str) -> None:
    """2xx green, 3xx cyan, 4xx yellow, anything else red."""
    assert f"\x1b[{code}m{status}\x1b[0m" in format_pretty(request(status=status), colour=True)


def test_no_colour_off_a_terminal_or_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pipe gets plain text, and so does a terminal when NO_COLOR is set."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    piped = io.StringIO()
    StderrSink("pretty", piped).on_event(request())
    monkeypatch.setenv("NO_COLOR", "1")
    tty = TTY()
    StderrSink("pretty", tty).on_event(request())
    assert "\x1b[" not in piped.getvalue() + tty.getvalue()


def test_pretty_mode_prints_only_requests() -> None:
    """Session and other events have no pretty line."""
    out = io.StringIO()
    sink = StderrSink("pretty", out)
    sink.on_batch([SessionStart("s", TS, "p"), request(), request(id="r2")])
    assert out.getvalue().count("\n") == 2


def test_json_mode_writes_every_event_as_one_object_per_line() -> None:
    """Each event becomes one compact JSON object with its type tag."""
    out = io.StringIO()
    sink = StderrSink("json", out)
    sink.on_batch([SessionStart("s", TS, "p"), request()])
    sink.close()
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["type"] == "session_start"
    assert first["session_id"] == "s"
    assert second["type"] == "request"
    assert second["tool"] == "get_weather"
    assert second["latency_us"] == 16_230


def test_default_stream_is_the_current_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a stream the sink writes to whatever sys.stderr is at the time."""
    sink = StderrSink("pretty")
    assert sink.name == "stderr"
    sink.on_event(request())
    sink.flush()
    assert capsys.readouterr().err.startswith("14:03:07 POST 200")
