"""Quectel BG96 simulator: AT command replies byte-for-byte, registration from a timeline
(registered, searching, denied), slow replies, ERROR replies, an MQTT client
(AT+QMTOPEN/QMTCONN/QMTPUB) that records every message it "delivers", and on-demand faults:
malformed URCs, non-ASCII and over-long lines, each followed by a well-formed +QMTSTAT."""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path
from typing import Any

from edge.errors import CodecError
from edge.hardware.codecs import at
from firmware_sim.base import DISCONNECT, FaultStats, Out, Timeline

CRLF = "\r\n"
# Lines the agent must refuse, each exactly once.
LINE_FAULTS = ("bad_qmtstat", "qmtstat_range", "non_ascii", "too_long")
FAULT_KINDS = (*LINE_FAULTS, "mixed")


def bad_line(kind: str, rng: random.Random) -> bytes:
    """One modem -> host line (with its CR LF framing) that the agent must refuse once."""
    if kind == "bad_qmtstat":
        junk = rng.choice(("x", "", " ", "1x", "0x1", "1.5", "++", "1_0", '"1"', "\t"))
        return reply(rng.choice((f"+QMTSTAT: 0,{junk}", f"+QMTSTAT: {junk}", f"+QMTSTAT:{junk},1")))
    if kind == "qmtstat_range":
        a, b = rng.choice(((0, 0), (0, 8), (0, 99999), (6, 1), (-1, 1), (0, -3)))
        return reply(f"+QMTSTAT: {a},{b}")
    if kind == "non_ascii":
        body = bytes(rng.randrange(0x80, 0x100) for _ in range(rng.randrange(1, 12)))
        return b"\r\n+QMTSTAT: 0," + body + b"\r\n"
    if kind == "too_long":
        n = at.MAX_LINE + 1 + rng.randrange(0, 400)
        return b"\r\n+" + bytes(rng.choice(b"ABCDEFGHIJ0123456789,: ") for _ in range(n)) + b"\r\n"
    raise ValueError(f"unknown line fault {kind!r}; use one of {', '.join(LINE_FAULTS)}")


def reply(*lines: str) -> bytes:
    """Each information line and the final result framed as the BG96 does with ATV1: CR LF line CR LF."""
    return "".join(f"{CRLF}{ln}{CRLF}" for ln in lines).encode("ascii")


class ModemSim:
    def __init__(self, scenario: dict[str, Any] | None = None, *, record: str | Path | None = None) -> None:
        sc = scenario or {}
        self.timeline = Timeline.from_scenario(sc, {"registration": 1, "csq": 20})
        self.delay_s = float(sc.get("reply_delay_s", 0.0))
        self.urc_delay_s = float(sc.get("urc_delay_s", 0.05))
        self.error_commands: dict[str, int] = {
            str(k).upper(): int(v) for k, v in (sc.get("error_commands") or {}).items()
        }
        self.broker = str(sc.get("broker", "accept"))  # accept | refuse | unreachable | silent
        self.record_path = Path(record) if record else None
        self.received: list[dict[str, Any]] = []
        self.commands: list[str] = []
        self._lock = threading.Lock()
        self._urcs: list[str] = []
        self._queued: list[tuple[str, int]] = []
        self.rng = random.Random(int(sc.get("seed", 0)))
        self.stats = FaultStats()
        self.reset()

    def reset(self) -> None:
        """Power-on state (a new connection = the modem restarted)."""
        self.echo = True
        self.decoder = at.CommandDecoder()
        self.mqtt_open = False
        self.mqtt_conn = False
        self._pub: tuple[int, int, str] | None = None

    def state(self, now: float) -> dict[str, Any]:
        return self.timeline.at(now)

    def push_urc(self, line: str) -> None:
        """Send an unsolicited line at the next tick (e.g. '+QMTSTAT: 0,1')."""
        with self._lock:
            self._urcs.append(line)
        if line.startswith("+QMTSTAT"):
            self.mqtt_open = self.mqtt_conn = False

    def inject(self, kind: str, count: int = 1) -> None:
        """Queue ``count`` bad lines of ``kind`` ('mixed': any), each followed by a good +QMTSTAT."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; use one of {', '.join(FAULT_KINDS)}")
        with self._lock:
            self._queued.append((kind, count))

    def _faults(self, kind: str, count: int) -> bytes:
        buf = bytearray()
        for _ in range(count):
            k = self.rng.choice(LINE_FAULTS) if kind == "mixed" else kind
            buf += bad_line(k, self.rng)
            self.stats.corrupted += 1
            self.stats.count(k)
            buf += reply(f"+QMTSTAT: 0,{self.rng.randrange(1, 8)}")
            self.stats.valid += 1
        self.mqtt_open = self.mqtt_conn = False
        return bytes(buf)

    def tick(self, now: float) -> list[Out]:
        with self._lock:
            urcs, self._urcs = self._urcs, []
            queued, self._queued = self._queued, []
        st = self.state(now)
        if st.get("disconnect"):
            return [(now, DISCONNECT)]
        return [(now, reply(u)) for u in urcs] + [(now, self._faults(k, n)) for k, n in queued]

    def handle(self, data: bytes, now: float) -> list[Out]:
        out: list[Out] = []
        for item in self.decoder.feed(data):
            if isinstance(item, str):
                out.extend(self._command(item, now))
            else:
                out.extend(self._payload(item, now))
        return out

    def _payload(self, payload: bytes | None, now: float) -> list[Out]:
        pub, self._pub = self._pub, None
        if pub is None:
            return [(now + self.delay_s, reply("ERROR"))]
        if payload is None:  # ESC: cancelled
            return [(now + self.delay_s, reply("OK"))]
        mid, qos, topic = pub
        rec = {
            "topic": topic,
            "payload": payload.decode("utf-8", "replace"),
            "msgid": mid,
            "qos": qos,
            "t": now,
        }
        self.received.append(rec)
        if self.record_path:
            with self.record_path.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")
        return [
            (now + self.delay_s, reply("OK")),
            (now + self.delay_s + self.urc_delay_s, reply(f"+QMTPUB: 0,{mid},0")),
        ]

    def _command(self, line: str, now: float) -> list[Out]:
        self.commands.append(line)
        due = now + self.delay_s
        st = self.state(now)
        echo = (line + "\r").encode("ascii") if self.echo else b""
        if st.get("silent"):
            return []
        try:
            cmd = at.parse_command(line)
        except CodecError:
            return [(due, echo + reply("ERROR"))]
        key = cmd.name + cmd.op
        for k in (key, cmd.name):
            n = self.error_commands.get(k, 0)
            if n:
                if n > 0:
                    self.error_commands[k] = n - 1
                return [(due, echo + reply("ERROR"))]
        reg = int(st.get("registration", 1))
        urc_due = due + self.urc_delay_s
        if cmd.name == "" or cmd.name in ("+CGMR", "I"):
            return [(due, echo + reply("BG96MAR02A07M1G", "OK") if cmd.name else echo + reply("OK"))]
        if cmd.name in ("E0", "E1"):
            self.echo = cmd.name == "E1"
            return [(due, echo + reply("OK"))]
        if cmd.name == "+CSQ" and cmd.op == "":
            return [(due, echo + reply(f"+CSQ: {int(st.get('csq', 20))},99", "OK"))]
        if cmd.name == "+CEREG" and cmd.op == "?":
            return [(due, echo + reply(f"+CEREG: 0,{reg}", "OK"))]
        if cmd.name == "+QMTOPEN" and cmd.op == "=":
            if len(cmd.args) < 3:
                return [(due, echo + reply("ERROR"))]
            if self.mqtt_open:
                res = 2
            elif not at.registered(reg) or self.broker == "unreachable":
                res = 3 if not at.registered(reg) else 5
            else:
                res = 0
                self.mqtt_open = True
            if self.broker == "silent":
                return [(due, echo + reply("OK"))]
            return [(due, echo + reply("OK")), (urc_due, reply(f"+QMTOPEN: 0,{res}"))]
        if cmd.name == "+QMTCONN" and cmd.op == "=":
            if not self.mqtt_open:
                return [(due, echo + reply("ERROR"))]
            code = 5 if self.broker == "refuse" else 0
            self.mqtt_conn = code == 0
            return [(due, echo + reply("OK")), (urc_due, reply(f"+QMTCONN: 0,0,{code}"))]
        if cmd.name == "+QMTPUB" and cmd.op == "=":
            if not self.mqtt_conn or len(cmd.args) < 5:
                return [(due, echo + reply("ERROR"))]
            self._pub = (int(cmd.args[1]), int(cmd.args[2]), cmd.args[4])
            self.decoder.data_mode = True
            return [(due, echo + b"\r\n> ")]
        if cmd.name == "+QMTDISC" and cmd.op == "=":
            self.mqtt_conn = False
            return [(due, echo + reply("OK")), (urc_due, reply("+QMTDISC: 0,0"))]
        if cmd.name == "+QMTCLOSE" and cmd.op == "=":
            self.mqtt_open = self.mqtt_conn = False
            return [(due, echo + reply("OK")), (urc_due, reply("+QMTCLOSE: 0,0"))]
        return [(due, echo + reply("ERROR"))]
