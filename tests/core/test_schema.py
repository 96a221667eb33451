"""Tests of schema capture (mcpr_core.schema): hashing, versions, diffs, pagination, restarts."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcpr_core import schema
from mcpr_core.events import SchemaChange, SchemaVersionCreated
from mcpr_core.schema import SchemaCapture, SchemaSnapshot, SchemaStatistics, canonical_json

T0 = 1_767_225_600_000
URL = "http://127.0.0.1:8000/mcp"


def sha(text: str) -> str:
    """Hex SHA-256 of UTF-8 text."""
    return hashlib.sha256(text.encode()).hexdigest()


def tool(name: str, prop: str = "q", description: str = "") -> dict[str, Any]:
    """A tool whose input schema has one string property `prop`."""
    return {
        "name": name,
        "description": description or f"The {name} tool.",
        "inputSchema": {"type": "object", "properties": {prop: {"type": "string"}}},
    }


def tool_hash(item: dict[str, Any]) -> str:
    """The expected per-item hash of a tool: its name and inputSchema."""
    return sha(canonical_json({"name": item["name"], "inputSchema": item["inputSchema"]}))


def listing_hash(items: list[dict[str, Any]]) -> str:
    """The expected schema hash of a tool listing: its sorted identities."""
    identities = sorted(
        canonical_json({"name": i["name"], "inputSchema": i["inputSchema"]}) for i in items
    )
    return sha("[" + ",".join(identities) + "]")


def tools(
    capture: SchemaCapture, *items: dict[str, Any], now_ms: int = T0
) -> SchemaVersionCreated | None:
    """Observe a one-page tools/list result."""
    return capture.observe("tools/list", {}, {"tools": list(items)}, now_ms)


def changes(event: SchemaVersionCreated | None) -> list[tuple[str, str | None]]:
    """The (change_type, item_name) pairs of a version."""
    assert event is not None
    return [(c.change_type, c.item_name) for c in event.changes]


def test_first_listing_is_an_initial_version() -> None:
    """The first tools/list creates a version: canonical payload, hash of the identities."""
    cap = SchemaCapture("p", URL)
    a, b = tool("search"), tool("fetch")
    event = tools(cap, a, b)
    assert event == SchemaVersionCreated(
        ts=T0,
        proxy="p",
        upstream_url=URL,
        method="tools/list",
        payload=canonical_json({"tools": [a, b]}),
        schema_hash=listing_hash([a, b]),
        changes=(SchemaChange("initial", None, None, listing_hash([a, b])),),
    )


def test_unchanged_reordered_or_redescribed_listing_creates_nothing() -> None:
    """Same identities in any order, or only descriptions changed: no new version."""
    cap = SchemaCapture("p", URL)
    tools(cap, tool("a"), tool("b"))
    assert tools(cap, tool("a"), tool("b")) is None
    assert tools(cap, tool("b"), tool("a")) is None
    assert tools(cap, tool("a", description="New words."), tool("b")) is None
    assert cap.statistics().unchanged == 3


def test_added_removed_and_modified_tools_are_diffed_by_name() -> None:
    """A changed listing yields one change per tool name, sorted, with old and new hashes."""
    cap = SchemaCapture("p", URL)
    a, b, c = tool("alpha"), tool("beta"), tool("gamma")
    first = tools(cap, a, b, c)
    b2, d = tool("beta", prop="query"), tool("delta")
    event = tools(cap, a, b2, d, now_ms=T0 + 5)
    assert event is not None
    assert first is not None
    assert event.ts == T0 + 5
    assert event.changes == (
        SchemaChange("tool_modified", "beta", tool_hash(b), tool_hash(b2)),
        SchemaChange("tool_added", "delta", None, tool_hash(d)),
        SchemaChange("tool_removed", "gamma", tool_hash(c), None),
    )
    assert event.schema_hash != first.schema_hash


_PROMPT = {"name": "x"}
_RESOURCE = {"name": "x", "uri": "file:///a"}
_TEMPLATE = {"name": "x", "uriTemplate": "file:///{a}"}


@pytest.mark.parametrize(
    ("method", "key", "prefix", "item", "changed"),
    [
        ("prompts/list", "prompts", "prompt", _PROMPT, {**_PROMPT, "arguments": [{"name": "a"}]}),
        ("resources/list", "resources", "resource", _RESOURCE, {**_RESOURCE, "uri": "file:///b"}),
        (
            "resources/templates/list",
            "resourceTemplates",
            "resource_template",
            _TEMPLATE,
            {**_TEMPLATE, "uriTemplate": "file:///{b}"},
        ),
    ],
)
def test_other_listings_use_their_identifying_fields(
    method: str, key: str, prefix: str, item: dict[str, Any], changed: dict[str, Any]
) -> None:
    """Prompts by arguments, resources by uri, templates by uriTemplate; prefixed changes."""
    cap = SchemaCapture("p", URL)
    assert changes(cap.observe(method, None, {key: [item]}, T0)) == [("initial", None)]
    assert cap.observe(method, None, {key: [{**item, "description": "d"}]}, T0) is None
    assert changes(cap.observe(method, None, {key: [changed]}, T0)) == [(f"{prefix}_modified", "x")]
    added = cap.observe(method, None, {key: [changed, {**item, "name": "y"}]}, T0)
    assert changes(added) == [(f"{prefix}_added", "y")]


def test_pages_of_a_cursor_chain_are_merged() -> None:
    """Three pages joined by nextCursor make one version, equal to the one-page listing."""
    cap = SchemaCapture("p", URL)
    a, b, c = tool("a"), tool("b"), tool("c")
    assert cap.observe("tools/list", None, {"tools": [a], "nextCursor": "c1"}, T0) is None
    assert (
        cap.observe("tools/list", {"cursor": "c1"}, {"tools": [b], "nextCursor": "c2"}, T0) is None
    )
    assert cap.statistics().pending_chains == 1
    event = cap.observe("tools/list", {"cursor": "c2"}, {"tools": [c], "nextCursor": None}, T0)
    assert event is not None
    assert event.payload == canonical_json({"tools": [a, b, c]})
    assert event.schema_hash == listing_hash([a, b, c])
    assert cap.statistics().pending_chains == 0
    assert tools(cap, c, b, a) is None


def test_page_of_a_chain_never_begun_is_ignored() -> None:
    """A cursor no pending chain expects (begun before the proxy started) is skipped."""
    cap = SchemaCapture("p", URL)
    assert cap.observe("tools/list", {"cursor": "c9"}, {"tools": [tool("z")]}, T0) is None
    assert cap.snapshot("tools/list") is None
    assert cap.statistics().ignored == 1


def test_interleaved_chains_of_two_clients_both_complete() -> None:
    """Two clients paging at once each finish their own chain."""
    cap = SchemaCapture("p", URL)
    a, b = tool("a"), tool("b")
    cap.observe("tools/list", {}, {"tools": [a], "nextCursor": "x1"}, T0)
    cap.observe("tools/list", {}, {"tools": [a], "nextCursor": "y1"}, T0)
    first = cap.observe("tools/list", {"cursor": "y1"}, {"tools": [b]}, T0)
    second = cap.observe("tools/list", {"cursor": "x1"}, {"tools": [b]}, T0)
    assert changes(first) == [("initial", None)]
    assert second is None


def test_too_many_pending_chains_drop_the_oldest(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chains beyond MAX_PENDING_CHAINS push out the oldest, which is counted as dropped."""
    monkeypatch.setattr(schema, "MAX_PENDING_CHAINS", 2)
    cap = SchemaCapture("p", URL)
    for cursor in ("c1", "c2", "c3"):
        cap.observe("tools/list", {}, {"tools": [tool(cursor)], "nextCursor": cursor}, T0)
    assert cap.observe("tools/list", {"cursor": "c1"}, {"tools": []}, T0) is None
    assert changes(cap.observe("tools/list", {"cursor": "c3"}, {"tools": []}, T0)) == [
        ("initial", None)
    ]
    assert cap.statistics().dropped_chains == 1


def test_endless_chain_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that pages past MAX_CHAIN_PAGES is not followed further."""
    monkeypatch.setattr(schema, "MAX_CHAIN_PAGES", 3)
    cap = SchemaCapture("p", URL)
    cursor: str | None = None
    for page in range(5):
        params = {"cursor": cursor} if cursor else {}
        cap.observe("tools/list", params, {"tools": [], "nextCursor": f"c{page}"}, T0)
        cursor = f"c{page}"
    assert cap.statistics().dropped_chains == 1
    assert cap.statistics().pending_chains == 0


def test_list_changed_marks_stale_and_drops_pending_chains() -> None:
    """list_changed flags the lists it names and drops their half-read chains."""
    cap = SchemaCapture("p", URL)
    cap.observe("resources/list", None, {"resources": []}, T0)
    cap.observe("resources/list", None, {"resources": [], "nextCursor": "r1"}, T0)
    marked = cap.mark_stale("notifications/resources/list_changed")
    assert marked == ("resources/list", "resources/templates/list")
    assert cap.snapshot("resources/list") == SchemaSnapshot(
        "resources/list", sha("[]"), (), stale=True
    )
    assert cap.observe("resources/list", {"cursor": "r1"}, {"resources": []}, T0) is None
    assert cap.statistics().stale == ("resources/list", "resources/templates/list")
    assert cap.observe("resources/list", None, {"resources": []}, T0) is None
    assert cap.statistics().stale == ("resources/templates/list",)
    assert cap.mark_stale("notifications/message") == ()


def test_restart_with_load_creates_no_duplicate_version() -> None:
    """A stored snapshot seeded with load() makes an unchanged server create nothing."""
    before = SchemaCapture("p", URL)
    a, b = tool("a"), tool("b")
    stored = tools(before, a, b)
    assert stored is not None
    after = SchemaCapture("p", URL)
    assert after.load("tools/list", stored.payload, stored.schema_hash) is True
    assert tools(after, b, a) is None
    b2 = tool("b", prop="other")
    assert changes(tools(after, a, b2)) == [("tool_modified", "b")]


def test_load_refuses_what_it_cannot_use() -> None:
    """Unknown methods, bad JSON and payloads without the list are not loaded."""
    cap = SchemaCapture("p", URL)
    assert cap.load("tools/call", "{}", "h") is False
    assert cap.load("tools/list", "{not json", "h") is False
    assert cap.load("tools/list", "[1]", "h") is False
    assert cap.load("tools/list", '{"tools": 3}', "h") is False
    assert cap.load("initialize", '{"serverInfo": {}}', "h") is True
    assert cap.snapshot("tools/list") is None


def test_loaded_hash_from_another_version_still_gives_a_change() -> None:
    """A stored hash computed differently but identical items: one `updated` change."""
    cap = SchemaCapture("p", URL)
    cap.load("tools/list", canonical_json({"tools": [tool("a")]}), "old-style-hash")
    assert changes(tools(cap, tool("a"))) == [("updated", None)]


def test_initialize_is_hashed_whole_minus_volatile_fields() -> None:
    """initialize: _meta, ttlMs, cacheScope and protocolVersion don't count; the rest does."""
    cap = SchemaCapture("p", URL)
    result = {
        "protocolVersion": "2025-11-25",
        "capabilities": {"tools": {"listChanged": True}},
        "serverInfo": {"name": "demo", "version": "1.0"},
    }
    first = cap.observe("initialize", {"clientInfo": {}}, result, T0)
    assert first is not None
    assert first.payload == canonical_json(result)
    identity = {k: v for k, v in result.items() if k != "protocolVersion"}
    assert first.schema_hash == sha(canonical_json(identity))
    noisy = {**result, "protocolVersion": "2025-06-18", "_meta": {"x": 1}, "ttlMs": 5}
    assert cap.observe("initialize", None, noisy, T0) is None
    upgraded = {**result, "serverInfo": {"name": "demo", "version": "1.1"}}
    event = cap.observe("initialize", None, upgraded, T0 + 1)
    assert event is not None
    assert event.changes == (SchemaChange("updated", None, first.schema_hash, event.schema_hash),)


def test_discover_keeps_the_server_identity_from_meta() -> None:
    """server/discover: the serverInfo in `_meta` is part of the snapshot, other `_meta` not."""
    cap = SchemaCapture("p", URL)
    info = "io.modelcontextprotocol/serverInfo"
    result = {
        "supportedVersions": ["2026-07-28"],
        "capabilities": {},
        "resultType": "complete",
        "cacheScope": "public",
        "_meta": {info: {"name": "s", "version": "1"}, "trace": "abc"},
    }
    first = cap.observe("server/discover", None, result, T0)
    assert first is not None
    assert json.loads(first.payload)["_meta"] == {info: {"name": "s", "version": "1"}}
    assert (
        cap.observe(
            "server/discover", None, {**result, "_meta": {info: {"name": "s", "version": "1"}}}, T0
        )
        is None
    )
    bumped = {**result, "_meta": {info: {"name": "s", "version": "2"}}}
    assert changes(cap.observe("server/discover", None, bumped, T0)) == [("updated", None)]


def test_duplicate_names_and_odd_items() -> None:
    """A name listed twice is one diff entry; non-object items are kept in the payload only."""
    cap = SchemaCapture("p", URL)
    cap.observe("tools/list", None, {"tools": [tool("a"), tool("a", prop="z"), 7]}, T0)
    snap = cap.snapshot("tools/list")
    assert snap is not None
    assert [name for name, _ in snap.items] == ["a"]
    assert changes(tools(cap, tool("a"), 8)) == [("tool_modified", "a")]  # type: ignore[arg-type]
    assert changes(tools(cap, {"name": 5}, tool("a"))) == [("tool_added", "5")]


def test_lone_surrogate_is_escaped_in_the_payload() -> None:
    """A payload UTF-8 cannot hold is stored ASCII-escaped and loads back to the same hash."""
    cap = SchemaCapture("p", URL)
    event = tools(cap, tool("bad\ud800name"))
    assert event is not None
    assert event.payload.isascii()
    again = SchemaCapture("p", URL)
    assert again.load("tools/list", event.payload, event.schema_hash)
    assert tools(again, tool("bad\ud800name")) is None


def test_ignored_inputs() -> None:
    """Other methods are not captured; malformed results are counted as ignored."""
    cap = SchemaCapture("p", URL)
    assert SchemaCapture.wants("tools/list")
    assert not SchemaCapture.wants("tools/call")
    assert cap.observe("tools/call", None, {"content": []}, T0) is None
    assert cap.observe("tools/list", None, {"tools": "nope"}, T0) is None
    assert cap.observe("tools/list", None, [], T0) is None  # type: ignore[arg-type]
    assert cap.statistics() == SchemaStatistics(
        observed=2, versions=0, unchanged=0, ignored=2, dropped_chains=0, pending_chains=0, stale=()
    )


def test_repr_and_snapshot() -> None:
    """repr names the proxy, the upstream, the captured methods and the stale ones."""
    cap = SchemaCapture("p", URL)
    a = tool("a")
    tools(cap, a)
    cap.mark_stale("notifications/prompts/list_changed")
    assert repr(cap) == (
        f"<SchemaCapture proxy='p' upstream='{URL}' methods=['tools/list'] stale=['prompts/list']>"
    )
    assert cap.snapshot("tools/list") == SchemaSnapshot(
        "tools/list", listing_hash([a]), (("a", tool_hash(a)),), stale=False
    )


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)
_results = st.dictionaries(
    st.sampled_from(
        ["tools", "prompts", "resources", "resourceTemplates", "nextCursor", "_meta", "x"]
    ),
    _json,
    max_size=4,
)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(sorted(schema.CAPTURED_METHODS)),
            st.none() | st.dictionaries(st.sampled_from(["cursor", "x"]), _json, max_size=2),
            _results | _json,
        ),
        max_size=8,
    )
)
def test_observe_never_raises_on_arbitrary_json(steps: list[tuple[str, Any, Any]]) -> None:
    """Whatever JSON the upstream answers, observe returns a version or None."""
    cap = SchemaCapture("p", URL)
    for method, params, result in steps:
        event = cap.observe(method, params, result, T0)
        assert event is None or event.changes
    cap.statistics()
