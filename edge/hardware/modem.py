"""Quectel BG96 over AT commands: signal and registration for health, and ``ModemFallbackLink``,
an MQTT uplink through the modem's own stack (AT+QMTOPEN / AT+QMTCONN / AT+QMTPUB).

One reader thread (the ``SerialDevice`` loop) turns bytes into lines; commands are serialised
by a lock and wait on a line queue. A poller thread reads AT+CSQ / AT+CEREG? every
``poll_interval_s``. The pipeline only reads cached values.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any

from edge.config.hardware import ModemConfig, ModemFallbackConfig
from edge.errors import CodecError, HardwareError, UplinkError
from edge.hardware.codecs import at, kind_of
from edge.hardware.devices import RejectLog, SerialDevice

log = logging.getLogger(__name__)
MAX_REPLY_LINES = 256  # no AT reply has more; a modem that floods us is cut off here


class ModemError(HardwareError):
    """The modem answered ERROR or did not answer in time."""


class ModemDevice(SerialDevice):
    name = "modem"

    def __init__(self, cfg: ModemConfig, **kw: Any) -> None:
        super().__init__(cfg, **kw)
        self.mcfg = cfg
        self.decoder = at.ReplyDecoder()
        self._lines: queue.Queue[str] = queue.Queue(MAX_REPLY_LINES)
        self._cmd_lock = threading.Lock()
        self._waiting = False  # a command is waiting for its reply lines (set under _cmd_lock)
        self._rejects_log = RejectLog(self.name, "line")
        self.urcs = 0  # well-formed unsolicited result codes handled (+QMTSTAT)
        self.unsolicited = 0  # other lines that arrived while no command was waiting
        self._poller: threading.Thread | None = None
        self._need_init = threading.Event()
        self.rssi: int | None = None
        self.ber: int | None = None
        self.reg_stat: int | None = None
        self.reg_t: float | None = None
        self.timeouts = 0
        self.errors = 0
        self.mqtt_open = False
        self.mqtt_connected = False
        self.last_qmtstat: int | None = None

    # -- reader side --------------------------------------------------------------------------
    def on_connect(self) -> None:
        new = at.ReplyDecoder()
        new.rejects = self.decoder.rejects  # a fresh line buffer, the same running tally
        self.decoder = new
        self.mqtt_open = self.mqtt_connected = False
        self.reg_t = None  # a restarted modem must re-register before it counts as available
        self._need_init.set()

    def on_disconnect(self) -> None:
        self.mqtt_open = self.mqtt_connected = False
        self.reg_t = None

    def _reject(self, kind: str, why: str) -> None:
        self.decoder.rejects.add(kind, why)
        self._rejects_log.check(self.decoder.rejects)

    def on_bytes(self, data: bytes) -> None:
        lines = self.decoder.feed(data)
        self._rejects_log.check(self.decoder.rejects)
        for line in lines:
            if line.startswith("+QMTSTAT:"):
                self._on_qmtstat(line)
            elif self._waiting:
                try:
                    self._lines.put_nowait(line)
                except queue.Full:
                    self._reject("flood", f"more than {MAX_REPLY_LINES} reply lines to one command")
            else:
                self.unsolicited += 1  # a late reply or a URC we do not use: nothing waits for it

    def _on_qmtstat(self, line: str) -> None:
        """The MQTT link closed. A malformed +QMTSTAT is refused (counted) but still taken as a
        close: assuming the session is down costs one AT+QMTOPEN, assuming it is up loses alarms."""
        err: int | None = None
        try:
            _, err = at.parse_qmtstat(line)
            self.urcs += 1
            self.last_qmtstat = err
        except CodecError as exc:
            self._reject(kind_of(exc), str(exc))
        if self.mqtt_open or self.mqtt_connected:
            log.warning(
                "modem MQTT link closed by the network (+QMTSTAT err=%s); the next alarm reopens it",
                err if err is not None else "unreadable",
            )
        self.mqtt_open = self.mqtt_connected = False

    # -- command side -------------------------------------------------------------------------
    def start(self) -> None:
        super().start()
        if self._poller is None:
            self._poller = threading.Thread(target=self._poll_loop, name="hw-modem-poll", daemon=True)
            self._poller.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        super().stop(timeout_s)
        if self._poller is not None:
            self._poller.join(timeout_s)
            self._poller = None

    def _drain(self) -> None:
        while True:
            try:
                self._lines.get_nowait()
            except queue.Empty:
                return

    def _next_line(self, deadline: float) -> str:
        while True:
            remaining = deadline - self.clock()
            if remaining <= 0 or self._stop.is_set():
                self.timeouts += 1
                raise ModemError(
                    f"modem {self.cfg.url} did not answer in time; check power and the serial cable"
                )
            try:
                return self._lines.get(timeout=min(remaining, 0.2))
            except queue.Empty:
                if not self.connected:
                    raise ModemError(f"modem {self.cfg.url} is not connected") from None

    def _wait_final(self, deadline: float, want: str | None = None) -> list[str]:
        """Lines up to OK (raising on ERROR); with ``want``, also until a line starting with it."""
        lines: list[str] = []
        got_ok = False
        got_want = want is None
        while not (got_ok and got_want):
            line = self._next_line(deadline)
            lines.append(line)
            if want is not None and line.startswith(want):
                got_want = True
            elif line == at.FINAL_OK:
                got_ok = True
            elif at.is_final(line):
                self.errors += 1
                raise ModemError(f"modem answered {line!r}")
        return lines

    @contextlib.contextmanager
    def exchange(self) -> Iterator[None]:
        """Hold the command lock with reply lines flowing to ``_next_line``; stale lines dropped."""
        with self._cmd_lock:
            if not self.connected:
                raise ModemError(f"modem {self.cfg.url} is not connected")
            self._drain()
            self._waiting = True
            try:
                yield
            finally:
                self._waiting = False
                self._drain()

    def command(self, line: str, *, want: str | None = None, timeout_s: float | None = None) -> list[str]:
        """Send one AT command; the reply lines (without echo) up to OK. Raises ModemError."""
        timeout = self.cfg.timeout_s if timeout_s is None else timeout_s
        with self.exchange():
            self.link.write(at.encode_command(line))
            lines = self._wait_final(self.clock() + timeout, want)
        return [ln for ln in lines if ln != line]

    def _init(self) -> None:
        self.command("ATE0")

    def refresh(self) -> None:
        """Read signal and registration now (normally done by the poller). A reply that does not
        parse is refused (counted, logged once per kind) and raised as ModemError."""
        try:
            for ln in self.command("AT+CSQ", want="+CSQ:"):
                if ln.startswith("+CSQ:"):
                    self.rssi, self.ber = at.parse_csq(ln)
            for ln in self.command("AT+CEREG?", want="+CEREG:"):
                if ln.startswith("+CEREG:"):
                    self.reg_stat = at.parse_cereg(ln)
                    self.reg_t = self.clock()
        except CodecError as exc:
            self._reject(kind_of(exc), str(exc))
            raise ModemError(f"modem {self.cfg.url} sent an unreadable reply: {exc}") from None

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            if self.connected:
                try:
                    if self._need_init.is_set():
                        self._init()
                        self._need_init.clear()
                    self.refresh()
                    wait = self.mcfg.poll_interval_s
                except (HardwareError, ValueError) as exc:
                    self._note_error(str(exc))
                    wait = min(self.mcfg.poll_interval_s, 2.0)
            else:
                wait = 0.2
            self._stop.wait(wait)

    # -- state --------------------------------------------------------------------------------
    def registered(self) -> bool:
        if not self.connected or self.reg_t is None or self.clock() - self.reg_t > self.cfg.stale_after_s:
            return False
        return at.registered(self.reg_stat)

    def health(self) -> dict[str, Any]:
        h = super().health()
        h.update(
            rejected_lines=self.decoder.rejected,
            rejected_by_kind=dict(self.decoder.rejects.by_kind),
            urcs=self.urcs,
            csq=self.rssi,
            rssi_dbm=None if self.rssi is None else at.csq_to_dbm(self.rssi),
            registration=None if self.reg_stat is None else at.REG_STATES.get(self.reg_stat, "unknown"),
            registered=self.registered(),
            timeouts=self.timeouts,
            errors=self.errors,
            mqtt_connected=self.mqtt_connected,
        )
        return h

    def status(self) -> str:
        s = super().status()
        # the modem only talks when asked: a recent registration answer counts as traffic
        if s == "stale" and self.reg_t is not None and self.clock() - self.reg_t <= self.cfg.stale_after_s:
            return "online"
        return s


class ModemFallbackLink:
    """``edge.ports.FallbackLink`` over the BG96's MQTT client (client index 0).

    ``send`` publishes one message and returns True only once the modem reports ``+QMTPUB: 0,<id>,0``
    (the broker's PUBACK for QoS 1). The payload is the event JSON with its own ``event_id``, so a
    message that is sent both here and later by the primary uplink can be deduplicated upstream.
    """

    CLIENT = 0

    def __init__(self, modem: ModemDevice, cfg: ModemFallbackConfig) -> None:
        self.modem = modem
        self.cfg = cfg
        self._msg_id = 0
        self._lock = threading.Lock()
        self.sent = 0
        self.failed = 0

    def available(self) -> bool:
        return self.modem.connected and self.modem.registered()

    def _next_id(self) -> int:
        self._msg_id = self._msg_id % 65535 + 1
        return self._msg_id

    def _ensure_session(self) -> None:
        m, c = self.modem, self.cfg
        if m.mqtt_connected:
            return
        if not m.mqtt_open:
            lines = m.command(
                f"AT+QMTOPEN={self.CLIENT},{at.quote(c.host)},{c.port}",
                want="+QMTOPEN:",
                timeout_s=c.open_timeout_s,
            )
            res = next(at.parse_qmtopen(ln)[1] for ln in lines if ln.startswith("+QMTOPEN:"))
            if res not in (0, 2):  # 2 = already open
                raise UplinkError(f"modem could not open MQTT to {c.host}:{c.port} (+QMTOPEN result {res})")
            m.mqtt_open = True
        cmd = f"AT+QMTCONN={self.CLIENT},{at.quote(c.client_id)}"
        if c.username is not None:
            cmd += f",{at.quote(c.username)},{at.quote(c.password or '')}"
        lines = m.command(cmd, want="+QMTCONN:", timeout_s=c.open_timeout_s)
        _, res, code = next(at.parse_qmtconn(ln) for ln in lines if ln.startswith("+QMTCONN:"))
        if res != 0 or code != 0:
            m.mqtt_open = False
            raise UplinkError(
                f"broker {c.host} refused the modem's MQTT connection (result {res}, code {code})"
            )
        m.mqtt_connected = True

    def _publish(self, topic: str, payload: bytes) -> bool:
        m, c = self.modem, self.cfg
        mid = self._next_id() if c.qos else 0
        with m.exchange():
            m.link.write(at.encode_command(f"AT+QMTPUB={self.CLIENT},{mid},{c.qos},0,{at.quote(topic)}"))
            deadline = m.clock() + m.cfg.timeout_s
            while True:
                line = m._next_line(deadline)
                if line == at.PROMPT:
                    break
                if at.is_final(line):
                    m.errors += 1
                    raise ModemError(f"modem refused AT+QMTPUB: {line!r}")
            m.link.write(payload + at.CTRL_Z)
            lines = m._wait_final(m.clock() + c.publish_timeout_s, want="+QMTPUB:")
        for ln in lines:
            if ln.startswith("+QMTPUB:"):
                _, got_mid, result = at.parse_qmtpub(ln)
                if got_mid == mid and result == 0:
                    return True
                log.warning("modem publish not acknowledged (msgid=%s result=%s)", got_mid, result)
        return False

    def send(self, topic: str, payload: bytes) -> bool:
        if len(payload) > self.cfg.max_payload_bytes:
            log.error(
                "payload of %d bytes is over the modem limit of %d; left for the primary uplink",
                len(payload),
                self.cfg.max_payload_bytes,
            )
            self.failed += 1
            return False
        if at.CTRL_Z in payload or at.ESC in payload:
            log.error(
                "payload contains Ctrl-Z/ESC and cannot go through AT+QMTPUB; left for the primary uplink"
            )
            self.failed += 1
            return False
        if not self.available():
            return False
        with self._lock:
            try:
                self._ensure_session()
                ok = self._publish(topic, payload)
            except (HardwareError, UplinkError, CodecError, StopIteration) as exc:
                if isinstance(exc, CodecError):
                    self.modem._reject(kind_of(exc), str(exc))
                log.warning("fallback publish failed topic=%s: %s", topic, exc)
                self.modem.mqtt_connected = False
                self.modem.mqtt_open = False
                ok = False
        if ok:
            self.sent += 1
        else:
            self.failed += 1
        return ok

    def health(self) -> dict[str, Any]:
        return {"available": self.available(), "sent": self.sent, "failed": self.failed}
