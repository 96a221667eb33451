"""Event ids: RFC 9562 version 7 UUIDs in canonical text form, ordered by time."""

from __future__ import annotations

import time
import uuid

from mcpr_cli.ids import new_event_id


def test_ids_are_canonical_version_7_uuids() -> None:
    """Every id parses as a UUID of version 7 and RFC variant, written in its canonical form."""
    for _ in range(1000):
        text = new_event_id()
        value = uuid.UUID(text)
        assert value.version == 7
        assert value.variant == uuid.RFC_4122
        assert str(value) == text


def test_ids_carry_the_current_unix_milliseconds() -> None:
    """The first 48 bits are the wall clock in milliseconds at the time of the call."""
    before = time.time_ns() // 1_000_000
    text = new_event_id()
    after = time.time_ns() // 1_000_000
    assert before <= uuid.UUID(text).int >> 80 <= after


def test_ids_sort_by_time_and_do_not_repeat() -> None:
    """Ids made a millisecond apart sort in the order they were made; 10,000 are distinct."""
    first = new_event_id()
    time.sleep(0.002)
    assert first < new_event_id()
    assert len({new_event_id() for _ in range(10_000)}) == 10_000
