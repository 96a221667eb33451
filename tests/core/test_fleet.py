"""Tests of routable session ids (`mcpr_core.fleet`) and the `[fleet]` / `sse_keepalive` config."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcpr_core import fleet
from mcpr_core.config import FleetConfig, ProxyConfig, env_overrides, load_config

MCP = "http://127.0.0.1:8000/mcp"

# Visible ASCII, as session ids are ("only visible ASCII characters (0x21 to 0x7E)").
VISIBLE = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=80)
REPLICAS = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="."),
    min_size=1,
    max_size=fleet.MAX_REPLICA_LENGTH,
)


@given(replica=REPLICAS, upstream_id=VISIBLE)
def test_prefix_round_trips(replica: str, upstream_id: str) -> None:
    """What the client is given strips back to the upstream's id, and names its replica."""
    name = replica.encode()
    client_id = fleet.client_session_id(name, upstream_id.encode())
    assert client_id == name + b"." + upstream_id.encode()
    assert fleet.upstream_session_id(name, client_id) == upstream_id.encode()
    assert fleet.replica_of(client_id) == replica


@given(replica=REPLICAS, other=REPLICAS, upstream_id=VISIBLE)
def test_another_replicas_id_is_not_ours(replica: str, other: str, upstream_id: str) -> None:
    """An id minted through another replica never strips to an upstream id here."""
    if other == replica:
        return
    client_id = fleet.client_session_id(other.encode(), upstream_id.encode())
    assert fleet.upstream_session_id(replica.encode(), client_id) is None


@pytest.mark.parametrize(
    ("client_id", "upstream_id"),
    [
        (b"a.s1", b"s1"),
        (b"a.x.y", b"x.y"),  # the upstream's own dots stay
        (b"a.", None),  # nothing after the prefix
        (b"s1", None),  # no prefix at all
        (b"ab.s1", None),  # a longer name is another replica
        (b"b.s1", None),
        (b"", None),
    ],
)
def test_upstream_session_id(client_id: bytes, upstream_id: bytes | None) -> None:
    """Only ids that start with `a.` and go on carry an upstream id for replica `a`."""
    assert fleet.upstream_session_id(b"a", client_id) == upstream_id


def test_replica_of_reads_up_to_the_first_dot() -> None:
    """The replica is the part before the first dot; ids without one name none."""
    assert fleet.replica_of(b"pod-1.a.b") == "pod-1"
    assert fleet.replica_of(b"nodot") is None
    assert fleet.replica_of(b".s1") is None
    assert fleet.replica_of(b"a.") is None
    assert fleet.replica_of(b"x" * 500 + b".s") == "x" * fleet.MAX_REPLICA_LENGTH


def test_the_404_message_names_the_cause() -> None:
    """The local 404 says which replica owns the id, or that it has no replica prefix."""
    foreign = fleet.not_ours_message("a", b"b.s1")
    assert "belongs to replica 'b', not 'a'" in foreign
    assert "start a new session" in foreign
    bare = fleet.not_ours_message("a", b"s1")
    assert "not issued through an mcpr fleet replica" in bare
    assert "'a.'" in bare


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "must not be empty"),
        ("a.b", "must not contain '.'"),
        ("a b", "visible ASCII"),
        ("pod\u00e9", "visible ASCII"),
        ("tab\t", "visible ASCII"),
        ("x" * 65, "at most 64 characters"),
    ],
)
def test_bad_replica_names_are_refused(name: str, message: str) -> None:
    """Empty, dotted, non-visible and overlong names are refused with the reason."""
    with pytest.raises(ValueError, match=message):
        fleet.check_replica(name)


def test_config_fleet_table() -> None:
    """`[fleet] replica` is read; without the table (or the key) the fleet is off."""
    on = load_config({"mcp": MCP, "fleet": {"replica": "mcpr-0"}})
    assert on.config is not None
    assert on.config.fleet == FleetConfig(replica="mcpr-0")
    off = load_config({"mcp": MCP, "fleet": {}})
    assert off.config is not None
    assert off.config.fleet == FleetConfig()
    assert ProxyConfig(mcp=MCP).fleet.replica is None


def test_config_fleet_problems_have_key_paths() -> None:
    """A bad replica name, a misspelt key and a non-table are reported at their paths."""
    result = load_config({"mcp": MCP, "fleet": {"replica": "a.b", "replicas": "x"}})
    assert result.config is None
    found = {(p.path, p.severity) for p in result.problems}
    assert ("fleet.replica", "error") in found
    assert ("fleet.replicas", "warning") in found
    bad = load_config({"mcp": MCP, "fleet": "a"})
    assert [(p.path, p.message) for p in bad.errors] == [
        ("fleet", "expected a table, got the string 'a'")
    ]


def test_replica_from_the_environment() -> None:
    """MCPR_FLEET_REPLICA sets `fleet.replica` over the file, and is validated."""
    values, problems = env_overrides({"MCPR_FLEET_REPLICA": "pod-7"})
    assert problems == ()
    result = load_config({"mcp": MCP, "fleet": {"replica": "file"}}, overrides=values)
    assert result.config is not None
    assert result.config.fleet.replica == "pod-7"
    _, bad = env_overrides({"MCPR_FLEET_REPLICA": "a.b"})
    assert [p.path for p in bad] == ["env MCPR_FLEET_REPLICA"]


def test_sse_keepalive_is_a_duration_off_by_default() -> None:
    """`sse_keepalive` takes durations ("15s"), 0 turns it off, and it defaults to off."""
    assert ProxyConfig(mcp=MCP).sse_keepalive == 0.0
    result = load_config({"mcp": MCP, "sse_keepalive": "15s"})
    assert result.config is not None
    assert result.config.sse_keepalive == 15.0
    zero = load_config({"mcp": MCP, "sse_keepalive": 0})
    assert zero.config is not None
    assert zero.config.sse_keepalive == 0.0
    bad = load_config({"mcp": MCP, "sse_keepalive": "soon"})
    assert [p.path for p in bad.errors] == ["sse_keepalive"]
    values, problems = env_overrides({"MCPR_SSE_KEEPALIVE": "500ms"})
    assert (values, problems) == ({"sse_keepalive": 0.5}, ())
