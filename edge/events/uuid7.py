"""UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits; sortable by creation time."""

from __future__ import annotations

import os
import threading
import time
import uuid


class Uuid7Factory:
    """Makes UUIDv7s that are strictly increasing within this process, even within one millisecond.

    Uses RFC 9562 method 1: a 12-bit counter in ``rand_a`` seeded randomly each millisecond.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0

    def new(self, unix_ms: int | None = None) -> uuid.UUID:
        ms = int(time.time() * 1000) if unix_ms is None else int(unix_ms)
        with self._lock:
            if ms <= self._last_ms:
                ms = self._last_ms
                self._counter += 1
                if self._counter > 0xFFF:  # counter overflow: borrow the next millisecond
                    ms += 1
                    self._counter = int.from_bytes(os.urandom(2), "big") & 0x7FF
            else:
                self._counter = int.from_bytes(os.urandom(2), "big") & 0x7FF
            self._last_ms = ms
            counter = self._counter
        rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
        value = (ms & ((1 << 48) - 1)) << 80
        value |= 0x7 << 76
        value |= counter << 64
        value |= 0b10 << 62
        value |= rand_b
        return uuid.UUID(int=value)


def uuid7_time_ms(u: uuid.UUID | str) -> int:
    """The Unix milliseconds stored in a UUIDv7."""
    v = u if isinstance(u, uuid.UUID) else uuid.UUID(u)
    return v.int >> 80
