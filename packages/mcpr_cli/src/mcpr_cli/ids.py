"""Event ids: UUIDv7 strings, time-ordered so the store's rows sort by arrival (STORE.md)."""

from __future__ import annotations

import random
import time
import uuid

__all__ = ["new_event_id"]

_rand = random.Random()


def new_event_id() -> str:
    """A new RFC 9562 version 7 UUID: 48 bits of unix milliseconds, then 74 random bits.

    Uniqueness, not secrecy, is needed here, so a fast non-cryptographic generator is used.
    """
    ms = time.time_ns() // 1_000_000
    rand = _rand.getrandbits(74)
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version 7
    value |= (rand >> 62) << 64  # 12 bits rand_a
    value |= 0b10 << 62  # RFC 9562 variant
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF  # 62 bits rand_b
    return str(uuid.UUID(int=value))
