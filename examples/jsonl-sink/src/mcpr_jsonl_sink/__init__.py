"""An example mcpr sink: every event as one JSON line in a file, rotated by size.

Registered in the entry-point group `mcpr.sinks` as `jsonl` (see pyproject.toml), enabled by

    [[sinks]]
    use = "jsonl"
    path = "/var/log/mcpr/events.jsonl"
    max_bytes = 10_000_000     # rotate past this many bytes (0: never)
    backups = 5                # events.jsonl.1 is the newest rotated file

Rotation renames `path` to `path.1` (and `path.1` to `path.2`, …, dropping the oldest)
before a line would take the file past `max_bytes`: a line is never split across files,
and only a single line longer than `max_bytes` makes a file larger.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from mcpr_core.events import ProxyEvent, SinkConfigError, event_to_json

__all__ = ["JsonlSink", "make_sink"]

_KEYS = ("path", "max_bytes", "backups")


def _integer(value: object, low: int) -> int | None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        return None
    return value


def make_sink(options: Mapping[str, Any]) -> JsonlSink:
    """The factory mcpr calls with the sink's keys; refuses unknown or bad ones, all at once."""
    problems: list[tuple[str | None, str]] = [
        (key, f"unknown key (this sink takes {', '.join(_KEYS)})")
        for key in options
        if key not in _KEYS
    ]
    path = options.get("path")
    if not isinstance(path, str) or not path:
        problems.append(("path", "required: the file to write, e.g. events.jsonl"))
    max_bytes = _integer(options.get("max_bytes", 10_000_000), 0)
    if max_bytes is None:
        problems.append(("max_bytes", f"expected an integer >= 0, got {options['max_bytes']!r}"))
    backups = _integer(options.get("backups", 5), 1)
    if backups is None:
        problems.append(("backups", f"expected an integer >= 1, got {options['backups']!r}"))
    if problems or not isinstance(path, str) or max_bytes is None or backups is None:
        raise SinkConfigError.from_problems(problems)
    return JsonlSink(Path(path), max_bytes=max_bytes, backups=backups)


class JsonlSink:
    """Appends events as JSON lines; the file opens on the first event, not before."""

    def __init__(self, path: Path, *, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._file: IO[bytes] | None = None
        self._size = 0

    @property
    def name(self) -> str:
        """The label mcpr uses unless the table gives a `name`."""
        return "jsonl"

    def on_event(self, event: ProxyEvent) -> None:
        """Write one event."""
        self.on_batch([event])

    def on_batch(self, events: Sequence[ProxyEvent]) -> None:
        """Write the events in order, one line each, rotating before a line that won't fit."""
        if self._file is None:
            self._open()
        for event in events:
            line = event_to_json(event).encode("utf-8") + b"\n"
            if self.max_bytes and self._size and self._size + len(line) > self.max_bytes:
                self._rotate()
            assert self._file is not None
            self._file.write(line)
            self._size += len(line)

    def flush(self) -> None:
        """Push what was written to the operating system, and to the disk."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        """Flush and close the file; safe to call more than once."""
        if self._file is not None:
            self.flush()
            self._file.close()
            self._file = None

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("ab")
        self._size = self._file.tell()

    def _rotate(self) -> None:
        self.close()
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._open()
