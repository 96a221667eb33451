"""Event ids: UUIDv7 strings, time-ordered so the store's rows sort by arrival (STORE.md)."""

from __future__ import annotations

import random
import time

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
    text = f"{value:032x}"  # the canonical 8-4-4-4-12 form, without building a UUID object
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
