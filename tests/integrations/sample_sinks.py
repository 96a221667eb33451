"""Sink factories for tests, named by `importlib.metadata.EntryPoint` objects built in tests.

EntryPoint("recording", "tests.integrations.sample_sinks:recording", "mcpr.sinks")
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from importlib.metadata import EntryPoint
from typing import Any

from mcpr_core.events import ProxyEvent, SinkConfigError

__all__ = [
    "RecordingSink",
    "crashing",
    "entry_point",
    "not_a_sink",
    "recording",
    "refusing",
]


class RecordingSink:
    """Keeps every event it is given; `options` are the keys it was configured with."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = dict(options)
        self.events: list[ProxyEvent] = []
        self.flushed = 0
        self.closed = threading.Event()

    @property
    def name(self) -> str:
        return "recording"

    def on_event(self, event: ProxyEvent) -> None:
        self.events.append(event)

    def on_batch(self, events: Sequence[ProxyEvent]) -> None:
        self.events.extend(events)

    def flush(self) -> None:
        self.flushed += 1

    def close(self) -> None:
        self.closed.set()


def recording(options: Mapping[str, Any]) -> RecordingSink:
    """A RecordingSink; refuses a `colour` key, as a real factory refuses unknown keys."""
    if "colour" in options:
        raise SinkConfigError("colour", "unknown key")
    return RecordingSink(options)


def refusing(options: Mapping[str, Any]) -> RecordingSink:
    """Always refuses, with two problems at once."""
    raise SinkConfigError.from_problems([("path", "required"), (None, "cannot be used here")])


def crashing(options: Mapping[str, Any]) -> RecordingSink:
    """Raises something that is not a SinkConfigError."""
    raise RuntimeError("disk on fire")


def not_a_sink(options: Mapping[str, Any]) -> object:
    """Returns something that is not an EventSink."""
    return object()


def entry_point(name: str, attribute: str | None = None) -> EntryPoint:
    """An entry point of group `mcpr.sinks` naming a factory of this module."""
    return EntryPoint(name, f"{__name__}:{attribute or name}", "mcpr.sinks")
