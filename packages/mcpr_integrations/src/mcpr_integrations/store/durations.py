"""Durations on the query commands' command line: an integer and one unit (STORE.md).

`--since 1h`, `--before 7d` take `s m h d w`; `--threshold` also takes `us` and `ms`.
Compound forms ("1h30m") and fractions are refused, so every value reads the same way.
"""

from __future__ import annotations

import re

__all__ = ["parse_duration"]

_UNITS_US = {
    "us": 1,
    "ms": 1_000,
    "s": 1_000_000,
    "m": 60 * 1_000_000,
    "h": 3_600 * 1_000_000,
    "d": 86_400 * 1_000_000,
    "w": 7 * 86_400 * 1_000_000,
}
_WINDOW_UNITS = ("s", "m", "h", "d", "w")
_PATTERN = re.compile(r"(\d+)([a-z]+)")


def parse_duration(text: str, *, sub_second: bool = False) -> int:
    """Return the duration in microseconds; raise ValueError with a readable reason.

    Units are `s m h d w`, plus `us ms` when `sub_second` is true.
    """
    units = (*_WINDOW_UNITS, "us", "ms") if sub_second else _WINDOW_UNITS
    match = _PATTERN.fullmatch(text.strip().lower())
    if match is None or match.group(2) not in units:
        example = "500ms, 2s" if sub_second else "30m, 7d"
        raise ValueError(
            f"{text!r} is not a duration: use an integer and one unit of "
            f"{', '.join(units)} (e.g. {example})"
        )
    return int(match.group(1)) * _UNITS_US[match.group(2)]
