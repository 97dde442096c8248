"""HLK-LD2410 simulator: report frames at ~10 Hz from a presence timeline, ACKs for commands,
and on-demand faults (garbage, truncated frames, bad tails/markers/lengths, fields out of range,
corrupted engineering frames, disconnects)."""

from __future__ import annotations

import random
import threading
from typing import Any

from edge.hardware.codecs import ld2410
from firmware_sim.base import DISCONNECT, FaultStats, Out, Timeline, garbage

STATES = {"none": 0, "moving": 1, "stationary": 2, "both": 3}
# framing faults (any report frame)
FRAMING_FAULTS = ("truncate", "bad_tail", "bad_marker", "bad_length")
# well-framed reports carrying a field out of range
FIELD_FAULTS = ("state_range", "energy_range", "distance_range")
# engineering frames: a gate energy above 100, a length that runs into the next frame, cut short
ENGINEERING_FAULTS = ("gate_range", "eng_overrun", "eng_truncate")
FRAME_FAULTS = (*FRAMING_FAULTS, *FIELD_FAULTS, *ENGINEERING_FAULTS)
FAULT_KINDS = (*FRAME_FAULTS, "garbage", "disconnect", "mixed")
FIRMWARE = (0x0102, 0x22062416)  # V1.02.22062416
# byte offsets in a report frame: head 4, length 2, type, 0xAA, then the target data
_STATE, _MOVING_DIST, _MOVING_ENERGY, _GATE_COUNTS = 8, 9, 11, 17


def corrupt_frame(frame: bytes, kind: str, rng: random.Random) -> bytes:
    """One report frame made invalid in a way the decoder must reject exactly once.

    The engineering faults need an engineering frame (``frame[6] == 0x01``); the others take either.
    """
    b = bytearray(frame)
    if kind == "truncate":
        return frame[: rng.randrange(4, len(frame))]
    if kind == "bad_tail":
        i = len(frame) - rng.randrange(1, 5)
        b[i] ^= 0x5A
    elif kind == "bad_marker":
        b[7] = 0x00  # the 0xAA head marker
    elif kind == "bad_length":
        b[4:6] = b"\xff\x7f"
    elif kind == "state_range":
        b[_STATE] = rng.randrange(4, 256)
    elif kind == "energy_range":
        b[_MOVING_ENERGY + rng.choice((0, 3))] = rng.randrange(ld2410.MAX_ENERGY + 1, 256)
    elif kind == "distance_range":
        off = _MOVING_DIST + rng.choice((0, 3, 6))
        b[off : off + 2] = rng.randrange(ld2410.MAX_DISTANCE_CM + 1, 65536).to_bytes(2, "little")
    elif kind in ENGINEERING_FAULTS:
        if frame[6] != ld2410.TYPE_ENGINEERING:
            raise ValueError(f"fault {kind!r} needs an engineering frame")
        if kind == "gate_range":
            gates = b[_GATE_COUNTS] + b[_GATE_COUNTS + 1] + 2
            b[_GATE_COUNTS + 2 + rng.randrange(gates)] = rng.randrange(ld2410.MAX_ENERGY + 1, 256)
        elif kind == "eng_overrun":
            length = int.from_bytes(b[4:6], "little")
            b[4:6] = rng.randrange(length + 1, ld2410.MAX_LEN + 1).to_bytes(2, "little")
        else:  # eng_truncate: cut inside the gate energies, the length still claims them all
            return frame[: rng.randrange(_GATE_COUNTS + 2, len(frame) - 4)]
    else:
        raise ValueError(f"unknown frame fault {kind!r}; use one of {', '.join(FRAME_FAULTS)}")
    return bytes(b)


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
        # "mixed" draws from these; the engineering faults are sent as engineering frames
        self.mixed_kinds = tuple(sc.get("mixed", (*FRAME_FAULTS, "garbage")))
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

    def report(self, now: float, engineering: bool | None = None) -> ld2410.RadarReport:
        """The report for ``now``; ``engineering`` forces the frame type (default: the radar's mode)."""
        eng = self.engineering if engineering is None else engineering
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
        if eng:
            gates = tuple(min(100, energy if g * 75 <= dist < (g + 1) * 75 else 5) for g in range(9))
            return ld2410.RadarReport(
                state, md, me, sd, se, dist if state else 0, True, gates, gates, 80, int(bool(state))
            )
        return ld2410.RadarReport(state, md, me, sd, se, dist if state else 0)

    def _fault_bytes(self, kind: str, frame: bytes, now: float = 0.0) -> bytes | None:
        if kind == "garbage":
            n = self.rng.randrange(1, 16)
            self.stats.garbage_bytes += n
            self.stats.count(kind)
            return garbage(self.rng, n, b"\xf4\xfd\xf8")
        self.stats.corrupted += 1
        self.stats.count(kind)
        if kind in ENGINEERING_FAULTS and frame[6] != ld2410.TYPE_ENGINEERING:
            frame = ld2410.encode_report(self.report(now, engineering=True))
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
                k = self.rng.choice(self.mixed_kinds) if kind == "mixed" else kind
                fb = self._fault_bytes(k, frame, now)
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
            fb = self._fault_bytes(self.rng.choice(self.fault_kinds), frame, now)
            out.append((now, fb or b""))
        else:
            self.stats.valid += 1
            out.append((now, frame))
        return out
