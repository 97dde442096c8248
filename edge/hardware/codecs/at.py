"""Quectel BG96 AT commands: command lines, reply lines and the unsolicited result codes (URCs).

Host -> modem: ``AT+CSQ\\r``. Modem -> host (echo off, ATE0)::

    \\r\\n+CSQ: 20,99\\r\\n\\r\\nOK\\r\\n
    \\r\\n+CEREG: 0,1\\r\\n\\r\\nOK\\r\\n            stat 1 = home, 5 = roaming, 2 = searching, 3 = denied
    AT+QMTOPEN=0,"host",1883  -> OK ... +QMTOPEN: 0,0          (result 0 = opened)
    AT+QMTCONN=0,"client"     -> OK ... +QMTCONN: 0,0,0        (result 0 = sent OK, ret code 0 = accepted)
    AT+QMTPUB=0,1,1,0,"topic" -> "\\r\\n> " prompt, then payload + Ctrl-Z (0x1A) -> OK ... +QMTPUB: 0,1,0
    +QMTSTAT: 0,<err>          URC: the MQTT link was closed by the network or the peer

``ReplyDecoder`` splits a byte stream into lines and also reports the bare ``>`` prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from edge.errors import CodecError
from edge.hardware.codecs import FieldError, RejectTally

CTRL_Z = b"\x1a"
ESC = b"\x1b"
PROMPT = ">"
FINAL_OK = "OK"
FINAL_ERRORS = ("ERROR", "+CME ERROR", "+CMS ERROR", "NO CARRIER")
MAX_LINE = 1024

MAX_MQTT_CLIENT = 5  # the BG96 has MQTT client indexes 0..5
QMTSTAT_ERRORS = range(1, 8)  # 1 closed by peer ... 7 link not working (Quectel MQTT notes)
_INT = re.compile(r"-?[0-9]{1,6}", re.ASCII)

REG_STATES = {
    0: "not_registered",
    1: "registered_home",
    2: "searching",
    3: "denied",
    4: "unknown",
    5: "registered_roaming",
}


@dataclass(frozen=True, slots=True)
class AtCommand:
    """A parsed command line: ``AT+QMTPUB=0,1,1,0,"t"`` -> name '+QMTPUB', op '=', args ('0','1','1','0','t')."""

    name: str  # '' for bare 'AT', '+CSQ', 'E0' ...
    op: str  # '', '?', '=', '=?'
    args: tuple[str, ...] = ()


def encode_command(line: str) -> bytes:
    """'AT+CSQ' -> b'AT+CSQ\\r'."""
    if "\r" in line or "\n" in line:
        raise ValueError(f"AT command must be one line, got {line!r}")
    return line.encode("ascii") + b"\r"


def quote(s: str) -> str:
    if '"' in s or "\r" in s or "\n" in s:
        raise ValueError(f"{s!r} cannot be sent inside an AT string (contains a quote or line break)")
    return f'"{s}"'


def split_args(text: str) -> tuple[str, ...]:
    """'0,"a,b",3' -> ('0', 'a,b', '3'); raises CodecError on an unterminated quote."""
    out: list[str] = []
    cur: list[str] = []
    in_q = False
    quoted = False
    for ch in text:
        if ch == '"':
            in_q = not in_q
            quoted = True
        elif ch == "," and not in_q:
            out.append("".join(cur) if quoted else "".join(cur).strip())
            cur, quoted = [], False
        else:
            cur.append(ch)
    if in_q:
        raise CodecError(f"unterminated quote in {text!r}")
    out.append("".join(cur) if quoted else "".join(cur).strip())
    return tuple(out)


_CMD = re.compile(r"^AT([+&][A-Z0-9]+|[A-Z][0-9]?)?(=\?|\?|=)?(.*)$", re.IGNORECASE)


def parse_command(line: str) -> AtCommand:
    """A command line as the modem sees it (used by the simulator)."""
    text = line.strip()
    m = _CMD.match(text)
    if not m:
        raise CodecError(f"not an AT command: {text[:40]!r}")
    name = (m.group(1) or "").upper()
    op = m.group(2) or ""
    rest = m.group(3)
    if op != "=" and rest:
        raise CodecError(f"unexpected text after command: {text[:40]!r}")
    return AtCommand(name, op, split_args(rest) if op == "=" and rest else ())


def format_command(cmd: AtCommand) -> str:
    args = ",".join(a if re.fullmatch(r"-?\d+", a) else quote(a) for a in cmd.args)
    return f"AT{cmd.name}{cmd.op}{args}"


def is_final(line: str) -> bool:
    return line == FINAL_OK or any(line.startswith(e) for e in FINAL_ERRORS)


def _ints(line: str, prefix: str, n: int) -> tuple[int, ...]:
    if not line.startswith(prefix):
        raise FieldError("bad_reply", f"expected {prefix!r}, got {line[:40]!r}")
    parts = [p.strip() for p in line[len(prefix) :].split(",")]
    if len(parts) < n:
        raise FieldError("bad_reply", f"{prefix} needs {n} values, got {line[:60]!r}")
    if not all(_INT.fullmatch(p) for p in parts[:n]):
        raise FieldError("bad_reply", f"non-numeric value in {line[:60]!r}")
    return tuple(int(p) for p in parts[:n])


def parse_csq(line: str) -> tuple[int, int]:
    """'+CSQ: 20,99' -> (rssi 0..31 or 99, ber 0..7 or 99)."""
    rssi, ber = _ints(line, "+CSQ:", 2)
    if not (0 <= rssi <= 31 or rssi == 99) or not (0 <= ber <= 7 or ber == 99):
        raise FieldError("out_of_range", f"+CSQ values out of range: {line[:60]!r}")
    return rssi, ber


def csq_to_dbm(rssi: int) -> int | None:
    """27.007: 0 -> -113 dBm, 31 -> -51 dBm, 99 -> unknown."""
    return None if rssi == 99 else -113 + 2 * rssi


def parse_cereg(line: str) -> int:
    """'+CEREG: 0,1' (or a URC '+CEREG: 1') -> the registration stat."""
    body = line[len("+CEREG:") :] if line.startswith("+CEREG:") else None
    if body is None:
        raise FieldError("bad_reply", f"expected '+CEREG:', got {line[:40]!r}")
    parts = split_args(body)
    raw = (parts[1] if len(parts) >= 2 else parts[0]).strip()
    if not _INT.fullmatch(raw):
        raise FieldError("bad_reply", f"non-numeric +CEREG stat in {line[:60]!r}")
    stat = int(raw)
    if stat not in REG_STATES:
        raise FieldError("out_of_range", f"+CEREG stat {stat} unknown")
    return stat


def registered(stat: int | None) -> bool:
    return stat in (1, 5)


def parse_qmtopen(line: str) -> tuple[int, int]:
    """'+QMTOPEN: 0,0' -> (client idx, result); result 0 = opened, 2 = already open."""
    a, b = _ints(line, "+QMTOPEN:", 2)
    return a, b


def parse_qmtconn(line: str) -> tuple[int, int, int]:
    """'+QMTCONN: 0,0,0' -> (client idx, result, MQTT return code)."""
    parts = _ints(line, "+QMTCONN:", 2)
    rest = [p.strip() for p in line[len("+QMTCONN:") :].split(",")]
    if len(rest) > 2 and rest[2] and not _INT.fullmatch(rest[2]):
        raise FieldError("bad_reply", f"non-numeric MQTT return code in {line[:60]!r}")
    code = int(rest[2]) if len(rest) > 2 and rest[2] else 0
    return parts[0], parts[1], code


def parse_qmtpub(line: str) -> tuple[int, int, int]:
    """'+QMTPUB: 0,1,0' -> (client idx, msg id, result 0 = acknowledged, 1 = retransmitting, 2 = failed)."""
    a, b, c = _ints(line, "+QMTPUB:", 3)
    return a, b, c


def parse_qmtstat(line: str) -> tuple[int, int]:
    """'+QMTSTAT: 0,1' -> (client idx 0..5, error code 1..7): the MQTT link closed."""
    a, b = _ints(line, "+QMTSTAT:", 2)
    if not 0 <= a <= MAX_MQTT_CLIENT or b not in QMTSTAT_ERRORS:
        raise FieldError(
            "out_of_range", f"+QMTSTAT client {a} / error {b} outside 0..5 / 1..7: {line[:60]!r}"
        )
    return a, b


@dataclass(slots=True)
class ReplyDecoder:
    """Modem -> host byte stream into lines. The '>' prompt (not followed by CR LF) is a line of its own.

    Lines that are not ASCII or longer than ``MAX_LINE`` are refused (counted once each in
    ``rejects``; an over-long line is discarded up to its line end, so its tail never comes out as
    a line of its own). The device adds the lines it cannot parse to the same tally.
    """

    rejects: RejectTally = field(default_factory=RejectTally)
    _buf: bytearray = field(default_factory=bytearray)
    _discard: bool = False  # inside an over-long line: drop bytes up to the next LF

    @property
    def rejected(self) -> int:
        return self.rejects.total

    def feed(self, data: bytes) -> list[str]:
        self._buf.extend(data)
        out: list[str] = []
        while True:
            if self._discard:
                i = self._buf.find(b"\n")
                if i < 0:
                    self._buf.clear()
                    return out
                del self._buf[: i + 1]
                self._discard = False
                continue
            if self._buf[:1] == b">":
                out.append(PROMPT)
                del self._buf[:1]
                if self._buf[:1] == b" ":
                    del self._buf[:1]
                continue
            i = self._buf.find(b"\n")
            if i > MAX_LINE:  # the whole over-long line is here: drop it, keep what follows
                self.rejects.add("too_long", f"modem line longer than {MAX_LINE} bytes")
                del self._buf[: i + 1]
                continue
            if i < 0:
                if len(self._buf) > MAX_LINE:  # drop it now and the rest of it as it arrives
                    self.rejects.add("too_long", f"modem line longer than {MAX_LINE} bytes")
                    self._buf.clear()
                    self._discard = True
                return out
            raw = bytes(self._buf[:i])
            del self._buf[: i + 1]
            try:
                line = raw.decode("ascii").strip()
            except UnicodeDecodeError:
                self.rejects.add("not_ascii", f"modem line is not ASCII: {raw[:20]!r}")
                continue
            if line:
                out.append(line)


@dataclass(slots=True)
class CommandDecoder:
    """Host -> modem byte stream into command lines (the simulator's side). In data mode (after a
    '>' prompt) it collects bytes up to Ctrl-Z instead; ESC cancels."""

    data_mode: bool = False
    _buf: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[str | bytes | None]:
        """Command lines (str) and, in data mode, one payload (bytes) per Ctrl-Z, or None when ESC cancelled it."""
        self._buf.extend(data)
        out: list[str | bytes | None] = []
        while self._buf:
            if self.data_mode:
                z = self._buf.find(CTRL_Z)
                e = self._buf.find(ESC)
                if e >= 0 and (z < 0 or e < z):
                    del self._buf[: e + 1]
                    self.data_mode = False
                    out.append(None)
                    continue
                if z < 0:
                    return out
                out.append(bytes(self._buf[:z]))
                del self._buf[: z + 1]
                self.data_mode = False
                continue
            i = min((j for j in (self._buf.find(b"\r"), self._buf.find(b"\n")) if j >= 0), default=-1)
            if i < 0:
                if len(self._buf) > MAX_LINE:
                    self._buf.clear()
                return out
            raw = bytes(self._buf[:i])
            del self._buf[: i + 1]
            line = raw.decode("ascii", "replace").strip()
            if line:
                out.append(line)
        return out
