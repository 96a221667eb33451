"""Bounded label values of `/metrics`: status classes, and tool names only from the schema.

The registry is fed events directly and its text read back with the strict parser of
`test_admin.py`.
"""

from __future__ import annotations

import json

from mcpr_cli.metrics import MAX_TOOLS, Metrics
from mcpr_core.events import SchemaVersionCreated
from tests.cli.test_admin import bucket, parse_exposition, request_event


def tools_version(*names: str) -> SchemaVersionCreated:
    """The schema event of a `tools/list` naming these tools."""
    payload = json.dumps({"tools": [{"name": n, "inputSchema": {}} for n in names]})
    return SchemaVersionCreated(
        ts=0, proxy="p", upstream_url="http://u/mcp", method="tools/list", payload=payload,
        schema_hash="h",
    )  # fmt: skip


def test_statuses_are_counted_by_class() -> None:
    """200 and 204 share "2xx"; 404 is "4xx"; no response at all is "none"."""
    metrics = Metrics()
    for status in (200, 204, 404, 502, 0):
        metrics.observe(request_event("ping", status=status))
    requests = parse_exposition(metrics.render())["mcpr_requests_total"]
    by_class = {s.labels["status_class"]: s.value for s in requests.samples}
    assert by_class == {"2xx": 2, "4xx": 1, "5xx": 1, "none": 1}


def test_tool_label_comes_from_the_captured_schema() -> None:
    """Calls of listed tools carry their name; any other name is counted as "other"."""
    metrics = Metrics()
    metrics.observe(request_event("tools/call", tool="echo"))  # before any tools/list
    metrics.observe(tools_version("echo", "fail"))
    metrics.observe(request_event("tools/call", tool="echo"))
    metrics.observe(request_event("tools/call", tool="made-up-1"))
    metrics.observe(request_event("tools/call", tool="made-up-2"))
    metrics.observe(request_event("tools/call", tool="fail", error_msg="tool error"))
    metrics.observe(request_event("tools/call", tool="echo", status=504, error_code=504))
    families = parse_exposition(metrics.render())
    calls = families["mcpr_tool_calls_total"]
    assert {(s.labels["tool"], s.labels["outcome"]): s.value for s in calls.samples} == {
        ("echo", "ok"): 1,
        ("echo", "error"): 1,
        ("fail", "error"): 1,
        ("other", "ok"): 3,
    }
    durations = families["mcpr_tool_call_duration_seconds"]
    assert bucket(durations, "+Inf", tool="echo") == 2
    assert bucket(durations, "+Inf", tool="other") == 3


def test_a_new_tools_list_replaces_the_names() -> None:
    """Tools dropped by the server become "other"; a non-listing payload teaches nothing."""
    metrics = Metrics()
    metrics.know_tools(["old"])
    metrics.observe(tools_version("new"))
    bad = SchemaVersionCreated(
        ts=0, proxy="p", upstream_url="u", method="tools/list", payload="[1]", schema_hash="h"
    )
    metrics.observe(bad)  # not an object: the names become empty
    metrics.observe(tools_version("new"))
    metrics.observe(request_event("tools/call", tool="old"))
    metrics.observe(request_event("tools/call", tool="new"))
    calls = parse_exposition(metrics.render())["mcpr_tool_calls_total"]
    assert {s.labels["tool"] for s in calls.samples} == {"other", "new"}


def test_tool_names_are_capped() -> None:
    """A server listing more than MAX_TOOLS tools gets labels for MAX_TOOLS of them."""
    metrics = Metrics()
    names = [f"t{n:04}" for n in range(MAX_TOOLS + 50)]
    metrics.observe(tools_version(*names))
    for name in names:
        metrics.observe(request_event("tools/call", tool=name))
    calls = parse_exposition(metrics.render())["mcpr_tool_calls_total"]
    assert len(calls.samples) == MAX_TOOLS + 1
    assert calls.value(tool="other", outcome="ok") == 50


def test_header_mismatches_are_counted() -> None:
    """Every request event flagged with a header mismatch adds one to its counter."""
    metrics = Metrics()
    metrics.observe(request_event("tools/call", header_mismatch=True))
    metrics.observe(request_event("tools/call"))
    families = parse_exposition(metrics.render())
    assert families["mcpr_header_mismatches_total"].value() == 1
