"""HLK-LD2410 simulator: report frames at ~10 Hz from a presence timeline, ACKs for commands,
and on-demand faults (garbage, truncated frames, bad tails/markers/lengths, disconnects)."""

from __future__ import annotations

import random
import threading
from typing import Any

from edge.hardware.codecs import ld2410
from firmware_sim.base import DISCONNECT, FaultStats, Out, Timeline, garbage

STATES = {"none": 0, "moving": 1, "stationary": 2, "both": 3}
FRAME_FAULTS = ("truncate", "bad_tail", "bad_marker", "bad_length")
FAULT_KINDS = (*FRAME_FAULTS, "garbage", "disconnect")
FIRMWARE = (0x0102, 0x22062416)  # V1.02.22062416


def corrupt_frame(frame: bytes, kind: str, rng: random.Random) -> bytes:
    """One report frame made invalid in a way the decoder must reject exactly once."""
    if kind == "truncate":
        return frame[: rng.randrange(4, len(frame))]
    if kind == "bad_tail":
        i = len(frame) - rng.randrange(1, 5)
        return frame[:i] + bytes([frame[i] ^ 0x5A]) + frame[i + 1 :]
    if kind == "bad_marker":
        return frame[:7] + b"\x00" + frame[8:]  # the 0xAA head marker
    if kind == "bad_length":
        return frame[:4] + b"\xff\x7f" + frame[6:]
    raise ValueError(f"unknown frame fault {kind!r}; use one of {', '.join(FRAME_FAULTS)}")


class RadarSim:
    def __init__(
        self,
        scenario: dict[str, Any] | None = None,
        *,
        fault_rate: float = 0.0,
        faults: tuple[str, ...] = FRAME_FAULTS,
        seed: int = 0,
        rate_hz: float | None = None,
    ) -> None:
        sc = scenario or {}
        self.timeline = Timeline.from_scenario(sc, {"state": "none"})
        self.rate_hz = float(rate_hz or sc.get("rate_hz", 10.0))
        self.fault_rate = float(sc.get("fault_rate", fault_rate))
        self.fault_kinds = tuple(sc.get("faults", faults))
        for k in self.fault_kinds:
            if k not in (*FRAME_FAULTS, "garbage"):
                raise ValueError(f"random fault {k!r} is not one of {', '.join((*FRAME_FAULTS, 'garbage'))}")
        self.scheduled = sorted((dict(f) for f in sc.get("inject", [])), key=lambda f: float(f["at_s"]))
        self.rng = random.Random(int(sc.get("seed", seed)))
        self.stats = FaultStats()
        self.commands: list[int] = []
        self._lock = threading.Lock()
        self._queued: list[tuple[str, int]] = []
        self.reset()

    def reset(self) -> None:
        self.next_t = 0.0
        self.config_mode = False
        self.engineering = False
        self._sched_i = 0
        self._cmd_dec = ld2410.FrameDecoder()

    def inject(self, kind: str, count: int = 1) -> None:
        """Queue ``count`` faults of ``kind`` for the next ticks (thread-safe)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; use one of {', '.join(FAULT_KINDS)}")
        with self._lock:
            self._queued.append((kind, count))

    def report(self, now: float) -> ld2410.RadarReport:
        st = self.timeline.at(now)
        state = STATES[str(st.get("state", "none"))]
        dist = int(st.get("distance_cm", 0))
        energy = int(st.get("energy", 0))
        moving = state in (1, 3)
        static = state in (2, 3)
        md, me = (dist, energy) if moving else (0, 0)
        sd, se = (
            (int(st.get("static_distance_cm", dist)), int(st.get("static_energy", energy)))
            if static
            else (0, 0)
        )
        if self.engineering:
            gates = tuple(min(100, energy if g * 75 <= dist < (g + 1) * 75 else 5) for g in range(9))
            return ld2410.RadarReport(
                state, md, me, sd, se, dist if state else 0, True, gates, gates, 80, int(bool(state))
            )
        return ld2410.RadarReport(state, md, me, sd, se, dist if state else 0)

    def _fault_bytes(self, kind: str, frame: bytes) -> bytes | None:
        if kind == "garbage":
            n = self.rng.randrange(1, 16)
            self.stats.garbage_bytes += n
            self.stats.count(kind)
            return garbage(self.rng, n, b"\xf4\xfd\xf8")
        self.stats.corrupted += 1
        self.stats.count(kind)
        return corrupt_frame(frame, kind, self.rng)

    def handle(self, data: bytes, now: float) -> list[Out]:
        out: list[Out] = []
        for msg in self._cmd_dec.feed(data):
            if not isinstance(msg, ld2410.Command):
                continue
            self.commands.append(msg.word)
            out.append((now, ld2410.encode_ack(self._ack(msg))))
        return out

    def _ack(self, cmd: ld2410.Command) -> ld2410.Ack:
        w = cmd.word
        if w == ld2410.CMD_ENABLE_CONFIG:
            self.config_mode = True
            return ld2410.Ack(w, 0, b"\x01\x00\x40\x00")
        if not self.config_mode:
            return ld2410.Ack(w, 1)
        if w == ld2410.CMD_END_CONFIG:
            self.config_mode = False
            return ld2410.Ack(w, 0)
        if w == ld2410.CMD_READ_FIRMWARE:
            return ld2410.Ack(w, 0, ld2410.firmware_value(*FIRMWARE))
        if w == ld2410.CMD_ENABLE_ENGINEERING:
            self.engineering = True
            return ld2410.Ack(w, 0)
        if w == ld2410.CMD_END_ENGINEERING:
            self.engineering = False
            return ld2410.Ack(w, 0)
        return ld2410.Ack(w, 1)

    def tick(self, now: float) -> list[Out]:
        out: list[Out] = []
        while self._sched_i < len(self.scheduled) and float(self.scheduled[self._sched_i]["at_s"]) <= now:
            f = self.scheduled[self._sched_i]
            self.inject(str(f["fault"]), int(f.get("count", 1)))
            self._sched_i += 1
        with self._lock:
            queued, self._queued = self._queued, []
        for kind, count in queued:
            if kind == "disconnect":
                self.stats.disconnects += 1
                self.stats.count(kind)
                out.append((now, DISCONNECT))
                return out
            buf = bytearray()
            for _ in range(count):
                frame = ld2410.encode_report(self.report(now))
                fb = self._fault_bytes(kind, frame)
                if fb:
                    buf += fb
                # a valid frame after each fault keeps the stream realistic and the count exact
                buf += frame
                self.stats.valid += 1
            out.append((now, bytes(buf)))
        if self.config_mode or now < self.next_t:
            return out
        self.next_t = max(self.next_t + 1.0 / self.rate_hz, now)
        frame = ld2410.encode_report(self.report(now))
        if self.fault_rate and self.rng.random() < self.fault_rate:
            fb = self._fault_bytes(self.rng.choice(self.fault_kinds), frame)
            out.append((now, fb or b""))
        else:
            self.stats.valid += 1
            out.append((now, frame))
        return out
