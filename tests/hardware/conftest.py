from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.fixtures.broker import mosquitto, mosquitto_tls  # noqa: F401  (fixtures)
from tests.fixtures.serial_sim import gps_sim, modem_sim, radar_sim  # noqa: F401  (fixtures)


def wait_for(cond: Callable[[], object], timeout_s: float = 5.0, what: str = "condition") -> None:
    """Wait for real I/O between threads (a simulator and a reader); logic never waits on this."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.01)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}")


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> float:
        self.t += dt
        return self.t
