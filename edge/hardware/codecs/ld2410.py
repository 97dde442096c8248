"""HLK-LD2410 24 GHz presence radar: report frames, command frames and their ACKs.

Report frame (radar -> host, ~10 Hz)::

    F4 F3 F2 F1 | len u16le | type (0x01 engineering, 0x02 basic) | 0xAA | target | 0x55 | 0x00 | F8 F7 F6 F5

Basic target data: state u8 (0 none, 1 moving, 2 stationary, 3 both), moving distance u16le cm,
moving energy u8, stationary distance u16le cm, stationary energy u8, detection distance u16le cm.
Engineering frames append: max moving gate N u8, max static gate M u8, N+1 moving gate energies,
M+1 static gate energies, then light level u8 and OUT pin level u8.

Command frame (host -> radar) and ACK (radar -> host)::

    FD FC FB FA | len u16le | command word u16le | value... | 04 03 02 01

An ACK's command word is the command | 0x0100, followed by a status u16le (0 = success) and the
returned value. ``FrameDecoder`` is a streaming decoder that counts and skips malformed frames.

Range checks (a frame that breaks one is refused, kind ``out_of_range``): target state 0..3,
every energy (target and per gate) 0..100, gate counts up to 8 (9 gates), distances up to
``MAX_DISTANCE_CM`` and the OUT pin 0 or 1. Every 4-byte window of a valid report then holds a
state, energy, gate-count or marker byte that no header byte (0xF1..0xF4, 0xFA..0xFD) can equal,
so no valid report contains a frame header (a property the tests check). A report whose claimed
length runs over the next header is therefore refused at once (kind ``overrun``) and the decoder
resynchronises on that header, instead of waiting for bytes that would delay the next frame.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from edge.errors import CodecError
from edge.hardware.codecs import FieldError, RejectTally, kind_of

REPORT_HEAD = b"\xf4\xf3\xf2\xf1"
REPORT_TAIL = b"\xf8\xf7\xf6\xf5"
CMD_HEAD = b"\xfd\xfc\xfb\xfa"
CMD_TAIL = b"\x04\x03\x02\x01"

CMD_ENABLE_CONFIG = 0x00FF
CMD_END_CONFIG = 0x00FE
CMD_ENABLE_ENGINEERING = 0x0062
CMD_END_ENGINEERING = 0x0063
CMD_READ_FIRMWARE = 0x00A0
ACK_FLAG = 0x0100

TYPE_ENGINEERING = 0x01
TYPE_BASIC = 0x02
MAX_GATES = 8
MAX_LEN = 64  # no LD2410 frame carries more than 64 bytes of intra-frame data
MAX_ENERGY = 100
# The LD2410 has at most 9 gates of 0.75 m (6.75 m); 10 m leaves room for firmware rounding and
# still refuses the 655 m a corrupted u16 can say.
MAX_DISTANCE_CM = 1000


@dataclass(frozen=True, slots=True)
class RadarReport:
    """One decoded report frame."""

    target_state: int  # 0 none, 1 moving, 2 stationary, 3 both
    moving_distance_cm: int
    moving_energy: int
    static_distance_cm: int
    static_energy: int
    detection_distance_cm: int
    engineering: bool = False
    moving_gate_energy: tuple[int, ...] = ()
    static_gate_energy: tuple[int, ...] = ()
    light: int = 0
    out_pin: int = 0

    @property
    def presence(self) -> bool:
        return self.target_state != 0


@dataclass(frozen=True, slots=True)
class Command:
    """A host -> radar command frame."""

    word: int
    value: bytes = b""


@dataclass(frozen=True, slots=True)
class Ack:
    """A radar -> host command acknowledgement."""

    command: int  # the command word it answers (without the 0x0100 flag)
    status: int  # 0 = success
    value: bytes = b""

    @property
    def ok(self) -> bool:
        return self.status == 0


Message = RadarReport | Command | Ack


def _frame(head: bytes, body: bytes, tail: bytes) -> bytes:
    return head + struct.pack("<H", len(body)) + body + tail


def encode_report(r: RadarReport) -> bytes:
    """Bytes of one report frame, as the radar sends it."""
    for name in ("target_state",):
        if not 0 <= getattr(r, name) <= 3:
            raise ValueError(f"target_state must be 0..3, got {r.target_state}")
    target = struct.pack(
        "<BHBHBH",
        r.target_state,
        r.moving_distance_cm,
        r.moving_energy,
        r.static_distance_cm,
        r.static_energy,
        r.detection_distance_cm,
    )
    if r.engineering:
        mg, sg = r.moving_gate_energy, r.static_gate_energy
        if not (1 <= len(mg) <= MAX_GATES + 1 and 1 <= len(sg) <= MAX_GATES + 1):
            raise ValueError(
                f"engineering frames carry 1..{MAX_GATES + 1} gate energies, got {len(mg)} and {len(sg)}"
            )
        target += bytes([len(mg) - 1, len(sg) - 1, *mg, *sg, r.light, r.out_pin])
        kind = TYPE_ENGINEERING
    else:
        kind = TYPE_BASIC
    return _frame(REPORT_HEAD, bytes([kind, 0xAA]) + target + b"\x55\x00", REPORT_TAIL)


def encode_command(cmd: Command) -> bytes:
    """Bytes of a host -> radar command frame."""
    return _frame(CMD_HEAD, struct.pack("<H", cmd.word) + cmd.value, CMD_TAIL)


def encode_ack(ack: Ack) -> bytes:
    """Bytes of a radar -> host ACK frame."""
    return _frame(CMD_HEAD, struct.pack("<HH", ack.command | ACK_FLAG, ack.status) + ack.value, CMD_TAIL)


def enable_config() -> Command:
    return Command(CMD_ENABLE_CONFIG, b"\x01\x00")


def end_config() -> Command:
    return Command(CMD_END_CONFIG)


def read_firmware() -> Command:
    return Command(CMD_READ_FIRMWARE)


def enable_engineering() -> Command:
    return Command(CMD_ENABLE_ENGINEERING)


def firmware_value(major: int, minor: int, fw_type: int = 0x0000) -> bytes:
    """The value of a firmware-version ACK: type u16, major u16 (0x0102 = 1.02), minor u32 (build date)."""
    return struct.pack("<HHI", fw_type, major, minor)


def parse_firmware(value: bytes) -> str:
    """'V1.02.22062416' from a firmware-version ACK value."""
    if len(value) < 8:
        raise CodecError(f"firmware ACK value is {len(value)} bytes, expected 8")
    _fw_type, major, minor = struct.unpack_from("<HHI", value)
    return f"V{major >> 8}.{major & 0xFF:02x}.{minor:08x}"


def _check_report(r: RadarReport) -> None:
    """Raise FieldError('out_of_range') naming the first field outside its documented range."""
    if r.target_state > 3:
        raise FieldError("out_of_range", f"target state {r.target_state} is not 0..3")
    for name in ("moving_energy", "static_energy"):
        v = getattr(r, name)
        if v > MAX_ENERGY:
            raise FieldError("out_of_range", f"{name.replace('_', ' ')} {v} is above {MAX_ENERGY}")
    for name in ("moving_distance_cm", "static_distance_cm", "detection_distance_cm"):
        v = getattr(r, name)
        if v > MAX_DISTANCE_CM:
            raise FieldError(
                "out_of_range", f"{name[:-3].replace('_', ' ')} {v} cm is beyond {MAX_DISTANCE_CM} cm"
            )
    for name in ("moving_gate_energy", "static_gate_energy"):
        gates = getattr(r, name)
        for g, v in enumerate(gates):
            if v > MAX_ENERGY:
                raise FieldError(
                    "out_of_range", f"{name.replace('_', ' ')} of gate {g} is {v}, above {MAX_ENERGY}"
                )
    if r.out_pin > 1:
        raise FieldError("out_of_range", f"OUT pin level {r.out_pin} is not 0 or 1")


def _decode_report(body: bytes) -> RadarReport:
    if len(body) < 13:
        raise FieldError("size", f"report body is {len(body)} bytes, expected at least 13")
    kind, head = body[0], body[1]
    if head != 0xAA or body[-2:] != b"\x55\x00":
        raise FieldError("marker", "report frame lacks its 0xAA head / 0x55 0x00 tail markers")
    if kind not in (TYPE_BASIC, TYPE_ENGINEERING):
        raise FieldError("type", f"unknown report type 0x{kind:02x}")
    target = body[2:-2]
    state, md, me, sd, se, dd = struct.unpack_from("<BHBHBH", target)
    if kind == TYPE_BASIC:
        if len(target) != 9:
            raise FieldError("size", f"basic target data is {len(target)} bytes, expected 9")
        r = RadarReport(state, md, me, sd, se, dd)
        _check_report(r)
        return r
    rest = target[9:]
    if len(rest) < 2:
        raise FieldError("size", "engineering frame lacks gate counts")
    n, m = rest[0] + 1, rest[1] + 1
    if n > MAX_GATES + 1 or m > MAX_GATES + 1:
        raise FieldError(
            "out_of_range", f"engineering frame says {n} moving and {m} static gates; at most {MAX_GATES + 1}"
        )
    if len(rest) != 2 + n + m + 2:
        raise FieldError(
            "size", f"engineering frame gate data is {len(rest)} bytes, does not fit {n}+{m} gates"
        )
    mg = tuple(rest[2 : 2 + n])
    sg = tuple(rest[2 + n : 2 + n + m])
    light, out = rest[2 + n + m], rest[3 + n + m]
    r = RadarReport(state, md, me, sd, se, dd, True, mg, sg, light, out)
    _check_report(r)
    return r


def _decode_cmd(body: bytes) -> Command | Ack:
    if len(body) < 2:
        raise FieldError("size", "command frame is shorter than its command word")
    (word,) = struct.unpack_from("<H", body)
    if word & ACK_FLAG:
        if len(body) < 4:
            raise FieldError("size", "ACK frame lacks its status word")
        (status,) = struct.unpack_from("<H", body, 2)
        return Ack(word & ~ACK_FLAG, status, bytes(body[4:]))
    return Command(word, bytes(body[2:]))


def decode_frame(data: bytes) -> Message:
    """Decode exactly one complete frame (report, command or ACK); raises CodecError."""
    dec = FrameDecoder()
    out = dec.feed(data)
    if dec.rejected or len(out) != 1 or dec.pending:
        raise CodecError(f"not exactly one valid LD2410 frame ({len(out)} decoded, {dec.rejected} rejected)")
    return out[0]


@dataclass(slots=True)
class FrameDecoder:
    """Streaming decoder. ``feed`` returns the complete messages; malformed frames are counted in
    ``rejects`` (by kind) and skipped, bytes outside any frame are counted in ``garbage_bytes``.

    A frame "exists" once its 4-byte header has been seen: every header-started frame ends up as
    exactly one decoded message or one rejection. After a rejection the search for the next
    header starts 4 bytes on, so a frame that followed a corrupted one is never lost.
    """

    garbage_bytes: int = 0
    decoded: int = 0
    rejects: RejectTally = field(default_factory=RejectTally)
    _buf: bytearray = field(default_factory=bytearray)

    @property
    def rejected(self) -> int:
        return self.rejects.total

    @property
    def last_error(self) -> str:
        return self.rejects.last

    @property
    def pending(self) -> int:
        return len(self._buf)

    def _reject(self, kind: str, why: str) -> None:
        self.rejects.add(kind, why)

    def feed(self, data: bytes) -> list[Message]:
        self._buf.extend(data)
        buf = self._buf
        out: list[Message] = []
        pos = 0  # consume by index and compact once at the end: del on a big bytearray is O(n)
        n = len(buf)
        while True:
            a = buf.find(REPORT_HEAD, pos)
            b = buf.find(CMD_HEAD, pos)
            i = b if a < 0 else a if b < 0 else min(a, b)
            if i < 0:
                keep = 0
                for k in (3, 2, 1):
                    if n - pos >= k:
                        tail = bytes(buf[n - k :])
                        if REPORT_HEAD.startswith(tail) or CMD_HEAD.startswith(tail):
                            keep = k
                            break
                self.garbage_bytes += n - pos - keep
                pos = n - keep
                break
            self.garbage_bytes += i - pos
            pos = i
            is_report = buf[pos : pos + 4] == REPORT_HEAD
            if n - pos < 6:
                break
            (length,) = struct.unpack_from("<H", buf, pos + 4)
            if length > MAX_LEN:
                self._reject("length", f"length {length} exceeds {MAX_LEN}")
                pos += 4  # resync after this header
                continue
            end = pos + 10 + length
            if is_report and _header_within(buf, pos + 4, min(end - 4, n)):
                # A valid report never contains a header: this one was cut short or its length
                # is corrupted. Refuse it now rather than wait for bytes that belong to the next.
                self._reject("overrun", f"report of length {length} runs into the next frame header")
                pos += 4
                continue
            if n < end:
                break
            if buf[end - 4 : end] != (REPORT_TAIL if is_report else CMD_TAIL):
                self._reject("tail", "bad frame tail")
                pos += 4
                continue
            body = bytes(buf[pos + 6 : end - 4])
            try:
                msg: Message = _decode_report(body) if is_report else _decode_cmd(body)
            except CodecError as exc:
                self._reject(kind_of(exc), str(exc))
                pos += 4
                continue
            pos = end
            self.decoded += 1
            out.append(msg)
        del buf[:pos]
        return out


def _header_within(buf: bytearray, start: int, stop: int) -> bool:
    """A report or command header starting in buf[start:stop] (the header may end past stop)."""
    if stop <= start:
        return False
    hi = stop + 3
    a = buf.find(REPORT_HEAD, start, hi)
    if 0 <= a < stop:
        return True
    b = buf.find(CMD_HEAD, start, hi)
    return 0 <= b < stop
