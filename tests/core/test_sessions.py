"""Tests of the session tracker (mcpr_core.sessions), with the clock passed in as `now_ms`."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcpr_core.events import SessionEnd, SessionStart
from mcpr_core.sessions import (
    MAX_CLIENT_FIELD_LENGTH,
    MAX_SESSION_ID_LENGTH,
    SessionEvent,
    SessionInfo,
    SessionStatistics,
    SessionTracker,
)

T0 = 1_767_225_600_000
SECOND = 1000
TTL = 60.0


def tracker(max_sessions: int = 100) -> SessionTracker:
    """A tracker of proxy `p` with a one-minute idle TTL."""
    return SessionTracker("p", ttl=TTL, max_sessions=max_sessions)


def start(t: SessionTracker, sid: str, now_ms: int = T0, name: str | None = "claude-ai") -> None:
    """Start `sid` through an initialize answer."""
    t.on_initialize(
        sid, client_name=name, client_version="0.1.0", protocol_version="2025-11-25", now_ms=now_ms
    )


def test_initialize_starts_a_session() -> None:
    """An initialize answer with a session id starts it and records the client's identity."""
    t = tracker()
    events = t.on_initialize(
        "s1",
        client_name="claude-ai",
        client_version="0.1.0",
        protocol_version="2025-11-25",
        now_ms=T0,
    )
    assert events == [
        SessionStart(
            session_id="s1",
            ts=T0,
            proxy="p",
            client_name="claude-ai",
            client_version="0.1.0",
            client_platform="claude",
            protocol_version="2025-11-25",
        )
    ]
    assert t.get("s1") == SessionInfo(
        session_id="s1",
        client_name="claude-ai",
        client_version="0.1.0",
        client_platform="claude",
        protocol_version="2025-11-25",
        started_at=T0,
        last_seen=T0,
        requests=1,
        active=False,
        adopted=False,
    )


def test_unnamed_client_has_no_platform() -> None:
    """A client without a name has neither name nor platform, like request events."""
    t = tracker()
    start(t, "s1", name=None)
    info = t.get("s1")
    assert info is not None
    assert (info.client_name, info.client_platform) == (None, None)


def test_unrecognised_client_platform_is_unknown() -> None:
    """A named client no platform matches is recorded as platform `unknown`."""
    t = tracker()
    start(t, "s1", name="my-script")
    info = t.get("s1")
    assert info is not None
    assert info.client_platform == "unknown"


def test_touch_counts_requests_and_moves_last_seen() -> None:
    """Each request carrying the id counts once and moves `last_seen` forward only."""
    t = tracker()
    start(t, "s1")
    first = t.touch("s1", T0 + 5 * SECOND)
    second = t.touch("s1", T0 + 2 * SECOND)
    assert first is not None
    assert second is not None
    assert (first.requests, first.last_seen) == (2, T0 + 5 * SECOND)
    assert (second.requests, second.last_seen) == (3, T0 + 5 * SECOND)


def test_touch_of_an_unknown_session_changes_nothing() -> None:
    """An id the tracker does not know is neither counted nor adopted on arrival."""
    t = tracker()
    assert t.touch("ghost", T0) is None
    assert len(t) == 0


def test_initialized_notification_marks_the_session_active() -> None:
    """notifications/initialized flips `active`; an unknown id answers False."""
    t = tracker()
    start(t, "s1")
    assert t.on_initialized("s1") is True
    assert t.on_initialized("ghost") is False
    info = t.get("s1")
    assert info is not None
    assert info.active is True


def test_accepted_unknown_session_is_adopted_with_unknown_client() -> None:
    """A 2xx answer to a request in an unknown session adopts it, client unknown."""
    t = tracker()
    events = t.on_response("old", status=200, now_ms=T0)
    assert events == [SessionStart(session_id="old", ts=T0, proxy="p")]
    info = t.get("old")
    assert info is not None
    assert (info.adopted, info.requests, info.client_name, info.started_at) == (True, 1, None, T0)
    assert t.on_response("old", status=200, now_ms=T0 + 1) == []


@pytest.mark.parametrize("status", [400, 401, 404, 500])
def test_refused_unknown_session_is_not_adopted(status: int) -> None:
    """A made-up id the upstream does not accept leaves no trace."""
    t = tracker()
    assert t.on_response("made-up", status=status, now_ms=T0) == []
    assert "made-up" not in t


def test_404_ends_a_known_session_as_upstream_gone() -> None:
    """The upstream forgot the session: a 404 to a request in it ends it."""
    t = tracker()
    start(t, "s1")
    assert t.on_response("s1", status=404, now_ms=T0 + 1) == [
        SessionEnd(session_id="s1", ts=T0 + 1, proxy="p", reason="upstream_gone")
    ]
    assert t.get("s1") is None


@pytest.mark.parametrize("status", [200, 202, 204])
def test_accepted_delete_ends_the_session(status: int) -> None:
    """A DELETE the upstream accepted ends the session as `deleted`."""
    t = tracker()
    start(t, "s1")
    assert t.on_delete("s1", T0 + 1, status=status) == [
        SessionEnd(session_id="s1", ts=T0 + 1, proxy="p", reason="deleted")
    ]
    assert "s1" not in t


def test_delete_answered_404_ends_the_session_as_upstream_gone() -> None:
    """A DELETE of a session the upstream no longer has ends it as `upstream_gone`."""
    t = tracker()
    start(t, "s1")
    assert t.on_delete("s1", T0 + 1, status=404) == [
        SessionEnd(session_id="s1", ts=T0 + 1, proxy="p", reason="upstream_gone")
    ]


@pytest.mark.parametrize("status", [400, 401, 403, 405, 500, 502])
def test_refused_delete_leaves_the_session_alone(status: int) -> None:
    """A 405 (clients may not end sessions) or any failure keeps the session going."""
    t = tracker()
    start(t, "s1")
    assert t.on_delete("s1", T0 + 1, status=status) == []
    assert "s1" in t


def test_accepted_delete_of_an_unknown_session_still_ends_it() -> None:
    """A session opened before a restart and deleted after it ends its stored row too."""
    t = tracker()
    assert t.on_delete("old", T0, status=200) == [
        SessionEnd(session_id="old", ts=T0, proxy="p", reason="deleted")
    ]
    assert t.on_delete("old", T0, status=404) == []


def test_idle_sessions_expire_after_the_ttl() -> None:
    """expire() ends exactly the sessions idle for at least the TTL, oldest first."""
    t = tracker()
    start(t, "a", T0)
    start(t, "b", T0 + 10 * SECOND)
    start(t, "c", T0 + 20 * SECOND)
    t.touch("a", T0 + 30 * SECOND)
    assert t.expire(T0 + 69 * SECOND) == []
    assert t.expire(T0 + 80 * SECOND) == [
        SessionEnd(session_id="b", ts=T0 + 80 * SECOND, proxy="p", reason="expired"),
        SessionEnd(session_id="c", ts=T0 + 80 * SECOND, proxy="p", reason="expired"),
    ]
    assert t.expire(T0 + 89 * SECOND) == []
    assert [e.session_id for e in t.expire(T0 + 90 * SECOND)] == ["a"]
    assert len(t) == 0


def test_session_touched_before_the_sweep_lives_on() -> None:
    """A session overdue but used again before expire() ran is not ended."""
    t = tracker()
    start(t, "s1", T0)
    assert t.touch("s1", T0 + 120 * SECOND) is not None
    assert t.expire(T0 + 121 * SECOND) == []


def test_a_full_table_evicts_the_least_recently_seen() -> None:
    """At max_sessions, a new session ends the one idle longest, reported as `evicted`."""
    t = tracker(max_sessions=2)
    start(t, "a", T0)
    start(t, "b", T0 + 1)
    t.touch("a", T0 + 2)
    events = t.on_initialize(
        "c", client_name=None, client_version=None, protocol_version=None, now_ms=T0 + 3
    )
    assert events[0] == SessionEnd(session_id="b", ts=T0 + 3, proxy="p", reason="evicted")
    assert isinstance(events[1], SessionStart)
    adopted = t.on_response("d", status=200, now_ms=T0 + 4)
    assert [type(e) for e in adopted] == [SessionEnd, SessionStart]
    assert adopted[0].session_id == "a"
    assert sorted(["c", "d"]) == sorted(sid for sid in ("a", "b", "c", "d") if sid in t)


def test_close_all_ends_every_session_for_shutdown() -> None:
    """At shutdown each session ends with reason `shutdown` and the table empties."""
    t = tracker()
    start(t, "a")
    start(t, "b")
    assert t.close_all(T0 + 5) == [
        SessionEnd(session_id="a", ts=T0 + 5, proxy="p", reason="shutdown"),
        SessionEnd(session_id="b", ts=T0 + 5, proxy="p", reason="shutdown"),
    ]
    assert len(t) == 0


def test_reinitialize_of_a_known_id_restates_the_identity() -> None:
    """An initialize answer reusing a known id updates the identity, keeps the start time."""
    t = tracker()
    t.on_response("s1", status=200, now_ms=T0)
    events = t.on_initialize(
        "s1",
        client_name="cursor-vscode",
        client_version="1.0.0",
        protocol_version=None,
        now_ms=T0 + 7,
    )
    assert [e.client_platform for e in events if isinstance(e, SessionStart)] == ["cursor"]
    info = t.get("s1")
    assert info is not None
    assert (info.started_at, info.last_seen, info.adopted) == (T0, T0 + 7, False)
    assert t.statistics().started == 0


@pytest.mark.parametrize(
    "sid", ["", "has space", "tab\there", "naïve", "x" * (MAX_SESSION_ID_LENGTH + 1), "\x7f"]
)
def test_ids_outside_visible_ascii_or_too_long_are_not_tracked(sid: str) -> None:
    """Ids the transport spec forbids, or longer than the cap, are refused and counted."""
    t = tracker()
    start(t, sid)
    assert t.on_response(sid, status=200, now_ms=T0) == []
    assert t.on_delete(sid, T0, status=200) == []
    assert len(t) == 0
    assert t.statistics().refused == 3


def test_longest_allowed_id_is_tracked() -> None:
    """An id of exactly MAX_SESSION_ID_LENGTH visible characters is fine."""
    t = tracker()
    sid = "~" * MAX_SESSION_ID_LENGTH
    start(t, sid)
    assert sid in t


def test_client_fields_are_cut() -> None:
    """Self-reported client strings are kept to MAX_CLIENT_FIELD_LENGTH characters."""
    t = tracker()
    long = "claude" + "x" * 1000
    t.on_initialize("s1", client_name=long, client_version=long, protocol_version=long, now_ms=T0)
    info = t.get("s1")
    assert info is not None
    assert info.client_name == long[:MAX_CLIENT_FIELD_LENGTH]
    assert info.client_version == long[:MAX_CLIENT_FIELD_LENGTH]
    assert info.protocol_version == long[:MAX_CLIENT_FIELD_LENGTH]


def test_sessions_of_one_client_share_its_identity() -> None:
    """Equal identities are stored once, which is what keeps a session small."""
    t = tracker()
    start(t, "a")
    start(t, "b")
    a, b = t.get("a"), t.get("b")
    assert a is not None
    assert b is not None
    assert a.client_name is b.client_name


def test_statistics_and_repr() -> None:
    """statistics() counts beginnings and endings by kind; repr shows size and TTL."""
    t = tracker(max_sessions=3)
    start(t, "a")
    start(t, "b")
    t.on_response("c", status=200, now_ms=T0)
    t.on_response("d", status=200, now_ms=T0)
    t.on_delete("b", T0, status=204)
    t.on_response("c", status=404, now_ms=T0)
    t.expire(T0 + 61 * SECOND)
    start(t, "e", T0 + 61 * SECOND)
    t.close_all(T0 + 62 * SECOND)
    assert t.statistics() == SessionStatistics(
        sessions=0,
        started=3,
        adopted=2,
        deleted=1,
        upstream_gone=1,
        expired=1,
        evicted=1,
        shutdown=1,
        refused=0,
    )
    start(t, "f")
    assert repr(t) == "<SessionTracker proxy='p' sessions=1/3 ttl=60s>"


@pytest.mark.parametrize(("ttl", "max_sessions"), [(0.0, 10), (-1.0, 10), (1.0, 0)])
def test_bad_limits_are_refused(ttl: float, max_sessions: int) -> None:
    """A non-positive TTL or table size is a configuration bug."""
    with pytest.raises(ValueError, match="must be"):
        SessionTracker("p", ttl=ttl, max_sessions=max_sessions)


_ops = st.lists(
    st.tuples(
        st.sampled_from(["init", "touch", "response", "delete", "expire", "initialized"]),
        st.sampled_from(["a", "b", "c", "d", "e"]),
        st.sampled_from([200, 204, 404, 405, 500]),
        st.integers(min_value=0, max_value=200 * SECOND),
    ),
    max_size=60,
)


def _step(t: SessionTracker, op: str, sid: str, status: int, now: int) -> list[SessionEvent]:
    """Apply one operation; return the events it produced."""
    if op == "init":
        return t.on_initialize(
            sid, client_name="c", client_version="1", protocol_version=None, now_ms=now
        )
    if op == "touch":
        t.touch(sid, now)
        return []
    if op == "response":
        return t.on_response(sid, status=status, now_ms=now)
    if op == "delete":
        return t.on_delete(sid, now, status=status)
    if op == "expire":
        return list(t.expire(now))
    t.on_initialized(sid)
    return []


@given(_ops)
def test_any_sequence_keeps_the_table_bounded_and_matches_the_events(
    ops: list[tuple[str, str, int, int]],
) -> None:
    """Whatever happens, at most max_sessions are tracked, exactly those started and not ended."""
    t = tracker(max_sessions=3)
    open_ids: set[str] = set()
    for op, sid, status, offset in ops:
        for event in _step(t, op, sid, status, T0 + offset):
            if isinstance(event, SessionStart):
                open_ids.add(event.session_id)
            else:
                open_ids.discard(event.session_id)
        assert len(t) <= 3
        assert {s for s in "abcde" if s in t} == open_ids
