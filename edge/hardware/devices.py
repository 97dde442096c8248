"""Serial device workers: one reader thread per device, reconnect with backoff, state read lock-free.

The pipeline only reads cached state (``snapshot()``); nothing it calls waits for a device, so a
device that never answers cannot block it.
"""

from __future__ import annotations

import abc
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge.config.hardware import GpsConfig, RadarConfig, SerialDeviceConfig
from edge.errors import CodecError, HardwareError
from edge.hardware.codecs import RejectTally, ld2410, nmea
from edge.hardware.serial_link import SerialLink

log = logging.getLogger(__name__)
Clock = Callable[[], float]


class RejectLog:
    """Logs the first refusal of each kind once per device; later ones are only counted (health's
    ``rejected_by_kind``). 10^5 corrupted frames make a handful of log lines, never a traceback."""

    def __init__(self, device: str, unit: str) -> None:
        self.device = device
        self.unit = unit
        self._seen: set[str] = set()

    def check(self, tally: RejectTally) -> None:
        if len(tally.by_kind) == len(self._seen):
            return
        for kind in sorted(tally.by_kind.keys() - self._seen):
            self._seen.add(kind)
            log.warning(
                "device=%s refused a %s kind=%s: %s (later %s refusals are counted in health, not logged)",
                self.device,
                self.unit,
                kind,
                tally.example.get(kind, ""),
                kind,
            )


class SerialDevice(abc.ABC):
    """Base: open the link, read in a thread, hand bytes to ``on_bytes``; reopen with backoff."""

    name = "serial"

    def __init__(
        self,
        cfg: SerialDeviceConfig,
        *,
        reconnect_min_s: float = 1.0,
        reconnect_max_s: float = 30.0,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.wall = wall
        self.link = SerialLink(cfg.url, cfg.baudrate, timeout_s=0.1)
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.connected = False
        self.reconnects = 0
        self.open_failures = 0
        self.last_error = ""
        self.last_rx_t: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected_evt = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"hw-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        self.link.close()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self.connected = False

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected_evt.wait(timeout_s)

    def _run(self) -> None:
        delay = self.reconnect_min_s
        while not self._stop.is_set():
            try:
                self.link.open()
            except HardwareError as exc:
                self.open_failures += 1
                self._note_error(str(exc))
                self._stop.wait(delay)
                delay = min(delay * 2, self.reconnect_max_s)
                continue
            if self.open_failures or self.reconnects or self.last_error:
                self.reconnects += 1
            delay = self.reconnect_min_s
            try:
                # The device's fresh-link state (decoders, "needs init") is in place before anyone
                # can see it connected: a poller must not talk to a modem it has not initialised.
                self.on_connect()
                self.connected = True
                self._connected_evt.set()
                log.info("serial device up device=%s url=%s", self.name, self.cfg.url)
                while not self._stop.is_set():
                    data = self.link.read()
                    if data:
                        self.last_rx_t = self.clock()
                        self.on_bytes(data)
            except HardwareError as exc:
                if not self._stop.is_set():
                    self._note_error(str(exc))
            except Exception as exc:  # a codec bug must not kill the reader thread
                log.exception("device=%s reader failed", self.name)
                self._note_error(f"internal error: {exc}")
            finally:
                self.connected = False
                self._connected_evt.clear()
                self.link.close()
                self.on_disconnect()
            if not self._stop.is_set():
                log.warning(
                    "serial device lost device=%s url=%s; retrying in %.1fs", self.name, self.cfg.url, delay
                )
                self._stop.wait(delay)
                delay = min(delay * 2, self.reconnect_max_s)

    def _note_error(self, msg: str) -> None:
        if msg != self.last_error:
            log.warning("device=%s %s", self.name, msg)
        self.last_error = msg

    # -- hooks -------------------------------------------------------------------------------
    def on_connect(self) -> None:  # noqa: B027 -- an optional hook, empty by default
        """Runs in the reader thread after the port opened."""

    def on_disconnect(self) -> None:  # noqa: B027 -- an optional hook, empty by default
        """Runs in the reader thread after the port closed."""

    @abc.abstractmethod
    def on_bytes(self, data: bytes) -> None:
        """Runs in the reader thread for every chunk read: feed the device's codec."""

    # -- state -------------------------------------------------------------------------------
    def age_s(self) -> float | None:
        return None if self.last_rx_t is None else self.clock() - self.last_rx_t

    def status(self) -> str:
        """'online', 'stale' (open but silent) or 'offline'."""
        if not self.connected:
            return "offline"
        age = self.age_s()
        if age is None or age > self.cfg.stale_after_s:
            return "stale"
        return "online"

    def health(self) -> dict[str, Any]:
        age = self.age_s()
        return {
            "status": self.status(),
            "url": self.cfg.url,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
            "last_rx_age_s": None if age is None else round(age, 3),
        }


@dataclass(frozen=True, slots=True)
class RadarState:
    report: ld2410.RadarReport
    t: float


class RadarDevice(SerialDevice):
    """HLK-LD2410. On connect asks for the firmware version (and engineering mode if configured)."""

    name = "radar"

    def __init__(self, cfg: RadarConfig, **kw: Any) -> None:
        super().__init__(cfg, **kw)
        self.rcfg = cfg
        self.decoder = ld2410.FrameDecoder()
        self.state: RadarState | None = None
        self.firmware: str | None = None
        self.acks: list[ld2410.Ack] = []
        self._fw_evt = threading.Event()
        self._rejects_log = RejectLog(self.name, "frame")

    def on_connect(self) -> None:
        self.decoder = _keep_counts(self.decoder, ld2410.FrameDecoder())
        cmds = [ld2410.enable_config(), ld2410.read_firmware()]
        if self.rcfg.engineering:
            cmds.append(ld2410.enable_engineering())
        cmds.append(ld2410.end_config())
        self.link.write(b"".join(ld2410.encode_command(c) for c in cmds))

    def request_firmware(self) -> None:
        self._fw_evt.clear()
        self.link.write(
            b"".join(
                ld2410.encode_command(c)
                for c in (ld2410.enable_config(), ld2410.read_firmware(), ld2410.end_config())
            )
        )

    def wait_firmware(self, timeout_s: float) -> str | None:
        self._fw_evt.wait(timeout_s)
        return self.firmware

    def on_bytes(self, data: bytes) -> None:
        msgs = self.decoder.feed(data)
        self._rejects_log.check(self.decoder.rejects)
        for msg in msgs:
            if isinstance(msg, ld2410.RadarReport):
                self.state = RadarState(msg, self.clock())
            elif isinstance(msg, ld2410.Ack):
                self.acks = [*self.acks[-15:], msg]
                if msg.command == ld2410.CMD_READ_FIRMWARE and msg.ok:
                    try:
                        self.firmware = ld2410.parse_firmware(msg.value)
                        self._fw_evt.set()
                    except CodecError as exc:
                        self.decoder.rejects.add("bad_ack", f"bad firmware ACK: {exc}")
                        self._rejects_log.check(self.decoder.rejects)

    def fresh(self) -> RadarState | None:
        s = self.state
        if s is None or not self.connected or self.clock() - s.t > self.cfg.stale_after_s:
            return None
        return s

    def presence(self) -> bool | None:
        s = self.fresh()
        if s is None:
            return None
        r = s.report
        me = self.rcfg.min_energy
        return (r.target_state in (1, 3) and r.moving_energy >= me) or (
            r.target_state in (2, 3) and r.static_energy >= me
        )

    def health(self) -> dict[str, Any]:
        h = super().health()
        h.update(
            firmware=self.firmware,
            frames=self.decoder.decoded,
            rejected_frames=self.decoder.rejected,
            rejected_by_kind=dict(self.decoder.rejects.by_kind),
            garbage_bytes=self.decoder.garbage_bytes,
        )
        return h


def _keep_counts(old: Any, new: Any) -> Any:
    """A fresh decoder (no half frame from the old connection) that keeps the running counters."""
    for k in ("rejects", "decoded", "garbage_bytes", "ignored"):
        if hasattr(old, k):
            setattr(new, k, getattr(old, k))
    return new


@dataclass(frozen=True, slots=True)
class GpsFix:
    lat: float
    lon: float
    alt_m: float | None
    satellites: int
    t: float  # monotonic time of the sentence


class GpsDevice(SerialDevice):
    """NMEA receiver: position from RMC/GGA, UTC time from RMC."""

    name = "gps"

    def __init__(self, cfg: GpsConfig, **kw: Any) -> None:
        super().__init__(cfg, **kw)
        self.decoder = nmea.SentenceDecoder()
        self.fix: GpsFix | None = None
        self.has_fix = False
        self._alt: float | None = None
        self._sats = 0
        self.time_offset_s: float | None = None  # gps UTC - local wall clock
        self.time_t: float | None = None  # monotonic time the offset was measured
        self._rejects_log = RejectLog(self.name, "sentence")

    def on_connect(self) -> None:
        self.decoder = _keep_counts(self.decoder, nmea.SentenceDecoder())

    def on_bytes(self, data: bytes) -> None:
        now = self.clock()
        sentences = self.decoder.feed(data)
        self._rejects_log.check(self.decoder.rejects)
        for s in sentences:
            if isinstance(s, nmea.Gga):
                self._alt, self._sats = s.alt_m, s.satellites
                if s.quality == 0:
                    self.has_fix = False
                elif (pos := _finite_position(s.lat, s.lon)) is not None:
                    self.has_fix = True
                    self.fix = GpsFix(pos[0], pos[1], s.alt_m, s.satellites, now)
            elif isinstance(s, nmea.Rmc):
                if not s.valid:
                    self.has_fix = False
                    continue
                if (pos := _finite_position(s.lat, s.lon)) is not None:
                    self.has_fix = True
                    self.fix = GpsFix(pos[0], pos[1], self._alt, self._sats, now)
                if s.epoch_s is not None:
                    self.time_offset_s = s.epoch_s - self.wall()
                    self.time_t = now

    def fresh_fix(self) -> GpsFix | None:
        f = self.fix
        if f is None or not self.has_fix or not self.connected or self.clock() - f.t > self.cfg.stale_after_s:
            return None
        return f

    def fresh_offset(self, max_age_s: float = 3600.0) -> float | None:
        if self.time_offset_s is None or self.time_t is None or self.clock() - self.time_t > max_age_s:
            return None
        return self.time_offset_s

    def health(self) -> dict[str, Any]:
        h = super().health()
        f = self.fresh_fix()
        h.update(
            fix=f is not None,
            satellites=self._sats,
            sentences=self.decoder.decoded,
            rejected_sentences=self.decoder.rejected,
            rejected_by_kind=dict(self.decoder.rejects.by_kind),
        )
        return h


def _finite_position(lat: float | None, lon: float | None) -> tuple[float, float] | None:
    """(lat, lon) when both are finite and on the globe, else None. The codec already refuses
    nan/inf and out-of-range fields; this is the last gate before a position reaches events."""
    if lat is None or lon is None or not (math.isfinite(lat) and math.isfinite(lon)):
        return None
    return (lat, lon) if -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0 else None
