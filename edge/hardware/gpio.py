"""GPIO behaviours on top of ``pins`` lines, driven by the caller's monotonic ``t``.

Nothing here sleeps or starts a thread: ``update(t)`` is called from ``HardwareManager.poll``,
so tests drive every behaviour with a fake clock.
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from typing import Literal, Protocol

from edge.config.hardware import BeaconConfig, InputLineConfig, IrRelayConfig, hhmm_to_minutes
from edge.types import EventDraft

log = logging.getLogger(__name__)

StatusState = Literal["healthy", "degraded", "offline", "tamper"]

# One cycle of (on?, seconds) steps per state. Told apart by eye from the street:
#   healthy  a short blip every 2 s          (alive, not latched on)
#   degraded 1 Hz even blink
#   offline  double blip every 2 s           (no uplink)
#   tamper   fast 5 Hz flicker
LED_PATTERNS: dict[str, tuple[tuple[bool, float], ...]] = {
    "healthy": ((True, 0.1), (False, 1.9)),
    "degraded": ((True, 0.5), (False, 0.5)),
    "offline": ((True, 0.1), (False, 0.2), (True, 0.1), (False, 1.6)),
    "tamper": ((True, 0.1), (False, 0.1)),
}


class Switchable(Protocol):
    @property
    def is_on(self) -> bool: ...

    def set(self, on: bool) -> None: ...


class Readable(Protocol):
    @property
    def active(self) -> bool: ...

    def take_edges(self) -> tuple[bool, bool]: ...


def pattern_level(state: str, elapsed_s: float) -> bool:
    """Whether the LED is lit ``elapsed_s`` into ``state``'s pattern."""
    steps = LED_PATTERNS[state]
    period = sum(d for _, d in steps)
    x = elapsed_s % period
    for on, d in steps:
        if x < d:
            return on
        x -= d
    return steps[-1][0]


class StatusLed:
    def __init__(self, line: Switchable) -> None:
        self.line = line
        self.state: str = "healthy"
        self._since: float | None = None

    def set_state(self, state: str) -> None:
        if state not in LED_PATTERNS:
            raise ValueError(f"unknown status {state!r}; use one of {', '.join(LED_PATTERNS)}")
        if state != self.state:
            self.state = state
            self._since = None

    def update(self, t: float) -> None:
        if self._since is None:
            self._since = t
        self.line.set(pattern_level(self.state, t - self._since))


def in_quiet_hours(ts: float, start: str, end: str, tz: zoneinfo.ZoneInfo) -> bool:
    local = dt.datetime.fromtimestamp(ts, tz)
    m = local.hour * 60 + local.minute
    a, b = hhmm_to_minutes(start), hhmm_to_minutes(end)
    return a <= m < b if a < b else (m >= a or m < b)


class Beacon:
    """On for chosen severities, off after ``max_on_s`` or when the episode that lit it ends."""

    def __init__(self, line: Switchable, cfg: BeaconConfig, timezone: str) -> None:
        self.line = line
        self.cfg = cfg
        self.tz = zoneinfo.ZoneInfo(timezone)
        self._until: float | None = None
        self._keys: set[str] = set()
        self.suppressed = 0  # alarms not sounded because of quiet hours
        self.activations = 0

    def alarm(self, tr: EventDraft) -> bool:
        """Consider one transition; True if it switched the beacon on."""
        if tr.phase == "end":
            if tr.key in self._keys:
                self._keys.discard(tr.key)
                if not self._keys:
                    self._off()
            return False
        if tr.phase not in ("start", "instant") or tr.severity not in self.cfg.severities:
            return False
        if self.cfg.kinds and tr.kind not in self.cfg.kinds:
            return False
        q = self.cfg.quiet_hours
        if q is not None and tr.severity not in q.allow and in_quiet_hours(tr.ts, q.start, q.end, self.tz):
            self.suppressed += 1
            log.info("beacon suppressed by quiet hours kind=%s key=%s", tr.kind, tr.key)
            return False
        if tr.phase == "start":
            self._keys.add(tr.key)
        self._until = tr.t + self.cfg.max_on_s
        self.activations += 1
        self.line.set(True)
        return True

    def _off(self) -> None:
        self._until = None
        self._keys.clear()
        self.line.set(False)

    def update(self, t: float) -> None:
        if self._until is not None and t >= self._until:
            log.info("beacon off after max_on_s=%.0f", self.cfg.max_on_s)
            self._off()


class DebouncedInput:
    """A condition input with debounce in seconds; reports start/end once per episode.

    The level is read at start-up (``prime``), so a PIR already high or a door already open when
    the agent starts is seen even though gpiozero never delivered an edge for it.
    """

    def __init__(self, line: Readable, cfg: InputLineConfig) -> None:
        self.line = line
        self.debounce_s = cfg.debounce_s
        self.state: bool | None = None
        self.since_t: float | None = None
        self._pending: tuple[bool, float] | None = None

    def prime(self, t: float) -> bool:
        self.line.take_edges()
        self.state = self.line.active
        self.since_t = t
        return self.state

    def update(self, t: float) -> list[bool]:
        """The state changes accepted at ``t`` (a short pulse between polls gives [True, False])."""
        if self.state is None:
            self.prime(t)
            return [True] if self.state else []
        rose, fell = self.line.take_edges()
        level = self.line.active
        if level == self.state:
            self._pending = None
            missed = fell if self.state else rose
            if missed and self.debounce_s == 0:
                # it flipped and came back between two polls: report the whole short episode
                self.since_t = t
                return [not self.state, self.state]
            return []
        if self._pending is None:
            self._pending = (level, t)
        if t - self._pending[1] >= self.debounce_s:
            self.state = level
            self.since_t = t
            self._pending = None
            return [level]
        return []


class IrRelay:
    def __init__(self, line: Switchable, cfg: IrRelayConfig) -> None:
        self.line = line
        self.cfg = cfg
        self.switches = 0

    def set_brightness(self, luma: float) -> None:
        on = self.line.is_on
        if not on and luma < self.cfg.on_below_luma:
            self.line.set(True)
            self.switches += 1
        elif on and luma > self.cfg.off_above_luma:
            self.line.set(False)
            self.switches += 1


class Heartbeat:
    def __init__(self, line: Switchable) -> None:
        self.line = line
        self.beats = 0

    def beat(self) -> None:
        self.line.set(not self.line.is_on)
        self.beats += 1
