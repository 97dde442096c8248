"""NMEA GPS simulator: RMC + GGA once a second from a fix timeline (fix lost and regained),
with on-demand faults (garbage, truncated sentences, bad checksums, fields out of range or
``nan`` behind a *valid* checksum, disconnects)."""

from __future__ import annotations

import calendar
import random
import threading
import time
from typing import Any

from edge.hardware.codecs import nmea
from firmware_sim.base import DISCONNECT, FaultStats, Out, Timeline, garbage

FRAMING_FAULTS = ("truncate", "bad_checksum")
# An RMC field replaced and the checksum recomputed: the line arrives intact, its content is wrong.
# Each maps to (field index, values to draw from).
FIELD_FAULTS: dict[str, tuple[int, tuple[str, ...]]] = {
    "nan_lat": (3, ("nan", "NaN", "-nan", "inf")),
    "nan_lon": (5, ("nan", "Infinity", "-inf")),
    "nan_speed": (7, ("nan", "inf")),
    "lat_range": (3, ("-130.0000", "9507.0000", "9100.0001", "+4807.038", "4807.0e1")),
    "lat_minutes": (3, ("4860.0000", "4899.9999", "3075.1234")),
    "lon_range": (5, ("18130.0000", "-01131.000", "19000.0000")),
    "lon_minutes": (5, ("10460.0000", "01199.000")),
    "bad_time": (1, ("256101.00", "1299.00", "12a519.00", "126060.00")),
    "bad_date": (9, ("320126", "001326", "290225", "31O126")),
    "speed_range": (7, ("-1.0", "99999.0", "1e3")),
}
SENTENCE_FAULTS = (*FRAMING_FAULTS, *FIELD_FAULTS)
FAULT_KINDS = (*SENTENCE_FAULTS, "garbage", "disconnect", "mixed")


def corrupt_sentence(s: bytes, kind: str, rng: random.Random) -> bytes:
    """One sentence (an RMC for the field faults) made invalid in a way the decoder rejects exactly once."""
    if kind == "truncate":
        return s[: rng.randrange(1, len(s) - 2)]  # keeps the '$', loses the line end
    if kind == "bad_checksum":
        star = s.rindex(b"*")
        digit = s[star + 1 : star + 2]
        repl = b"0" if digit != b"0" else b"1"
        return s[: star + 1] + repl + s[star + 2 :]
    if kind in FIELD_FAULTS:
        index, values = FIELD_FAULTS[kind]
        fields = s.decode("ascii").strip()[1 : s.rindex(b"*")].split(",")
        if not fields[0].endswith("RMC"):
            raise ValueError(f"fault {kind!r} needs an RMC sentence")
        fields[index] = rng.choice(values)
        return nmea.frame(",".join(fields))
    raise ValueError(f"unknown sentence fault {kind!r}; use one of {', '.join(SENTENCE_FAULTS)}")


def _parse_start(v: Any) -> float | None:
    if v in (None, "now"):
        return None
    if isinstance(v, int | float):
        return float(v)
    return float(calendar.timegm(time.strptime(str(v).rstrip("Z"), "%Y-%m-%dT%H:%M:%S")))


class GpsSim:
    def __init__(
        self, scenario: dict[str, Any] | None = None, *, seed: int = 0, fault_rate: float = 0.0
    ) -> None:
        sc = scenario or {}
        pos = sc.get("position", {"lat": 30.5400, "lon": 104.0600, "alt_m": 500.0})
        self.lat, self.lon = float(pos["lat"]), float(pos["lon"])
        self.alt_m = float(pos.get("alt_m", 0.0))
        self.start_epoch = _parse_start(sc.get("start_utc"))
        self.timeline = Timeline.from_scenario(sc, {"fix": True})
        self.rate_hz = float(sc.get("rate_hz", 1.0))
        self.fault_rate = float(sc.get("fault_rate", fault_rate))
        self.talker = str(sc.get("talker", "GP"))
        self.rng = random.Random(int(sc.get("seed", seed)))
        self.stats = FaultStats()
        self._lock = threading.Lock()
        self._queued: list[tuple[str, int]] = []
        self.reset()

    def reset(self) -> None:
        self.next_t = 0.0

    def inject(self, kind: str, count: int = 1) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; use one of {', '.join(FAULT_KINDS)}")
        with self._lock:
            self._queued.append((kind, count))

    def epoch(self, now: float) -> float:
        base = self.start_epoch if self.start_epoch is not None else time.time() - now
        return base + now

    def sentences(self, now: float) -> list[bytes]:
        fix = bool(self.timeline.at(now).get("fix", True))
        ep = self.epoch(now)
        lat, lon = (self.lat, self.lon) if fix else (None, None)
        return [
            nmea.encode_rmc(ep, lat, lon, fix, talker=self.talker),
            nmea.encode_gga(ep, lat, lon, 1 if fix else 0, 8 if fix else 0, self.alt_m, talker=self.talker),
        ]

    def handle(self, data: bytes, now: float) -> list[Out]:
        return []  # a GPS receiver ignores what the host sends (no configuration simulated)

    def _fault(self, kind: str, s: bytes) -> bytes:
        self.stats.count(kind)
        if kind == "garbage":
            n = self.rng.randrange(1, 16)
            self.stats.garbage_bytes += n
            return garbage(self.rng, n, b"$")
        self.stats.corrupted += 1
        return corrupt_sentence(s, kind, self.rng)

    def tick(self, now: float) -> list[Out]:
        out: list[Out] = []
        with self._lock:
            queued, self._queued = self._queued, []
        for kind, count in queued:
            if kind == "disconnect":
                self.stats.disconnects += 1
                self.stats.count(kind)
                return [(now, DISCONNECT)]
            buf = bytearray()
            for _ in range(count):
                good = self.sentences(now)[0]
                k = self.rng.choice((*SENTENCE_FAULTS, "garbage")) if kind == "mixed" else kind
                buf += self._fault(k, good)
                buf += good
                self.stats.valid += 1
            out.append((now, bytes(buf)))
        if now < self.next_t:
            return out
        self.next_t = max(self.next_t + 1.0 / self.rate_hz, now)
        buf = bytearray()
        for s in self.sentences(now):
            if self.fault_rate and self.rng.random() < self.fault_rate:
                buf += self._fault(self.rng.choice(FRAMING_FAULTS), s)
            else:
                self.stats.valid += 1
                buf += s
        out.append((now, bytes(buf)))
        return out
