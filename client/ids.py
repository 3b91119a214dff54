"""Event ids made on the client, so that a batch sent twice is stored once.

A UUID version 7 (RFC 9562): Unix time in milliseconds in the first 48 bits, then random bits. The
collector makes the same kind of id for events sent without one (`sluice.collector.validate.uuid7`);
these few lines are written again here on purpose: the client must not import the collector, which
brings the server's dependencies with it.
"""

from __future__ import annotations

import random

_VERSION_BITS = ~(0xF000 << 64 | 0xC000 << 48)  # clears the version and variant bits
_VERSION_7 = 7 << 76 | 0x8000 << 48  # version 7, RFC 9562 variant
_random_bits = random.getrandbits  # reseeded by Python in a forked child


def uuid7(ns: int) -> str:
    """The id of an event made at `ns` (time.time_ns()), as the canonical hyphenated string."""
    digits = "%032x" % ((ns // 1_000_000 << 80 | _random_bits(80)) & _VERSION_BITS | _VERSION_7)
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
