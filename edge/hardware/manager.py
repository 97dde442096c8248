"""``HardwareManager``: the one object the agent runner talks to about GPIO and serial devices.

Everything the pipeline calls returns immediately from cached state; serial I/O happens in
device threads. GPIO behaviours advance in ``poll(t, ts)`` (call it a few times a second).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from edge import plugins
from edge.config.hardware import HardwareConfig
from edge.config.site import GeoConfig
from edge.errors import HardwareError
from edge.hardware import gpio
from edge.hardware.clock import ntp_synced
from edge.hardware.devices import GpsDevice, RadarDevice, SerialDevice
from edge.hardware.modem import ModemDevice, ModemFallbackLink
from edge.ports import FallbackLink
from edge.types import EventDraft, FeatureValue

log = logging.getLogger(__name__)
Clock = Callable[[], float]
NTP_RECHECK_S = 60.0


class HardwareManager:
    def __init__(
        self,
        cfg: HardwareConfig,
        timezone: str,
        pin_factory: Any = None,
        *,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
        ntp_status: Callable[[], bool | None] = ntp_synced,
    ) -> None:
        self.cfg = cfg
        self.timezone = timezone
        self.clock = clock
        self.wall = wall
        self._ntp_status = ntp_status
        self._ntp: tuple[float, bool | None] | None = None
        self.pin_factory = pin_factory
        self._lines: list[Any] = []
        self.led: gpio.StatusLed | None = None
        self.beacon: gpio.Beacon | None = None
        self.tamper: gpio.DebouncedInput | None = None
        self.pir: gpio.DebouncedInput | None = None
        self.ir: gpio.IrRelay | None = None
        self.hb: gpio.Heartbeat | None = None
        kw: dict[str, Any] = dict(
            reconnect_min_s=cfg.reconnect_min_s, reconnect_max_s=cfg.reconnect_max_s, clock=clock, wall=wall
        )
        self.radar = RadarDevice(cfg.radar, **kw) if cfg.radar else None
        self.gps = GpsDevice(cfg.gps, **kw) if cfg.gps else None
        self.modem = ModemDevice(cfg.modem, **kw) if cfg.modem else None
        self._fallback = (
            ModemFallbackLink(self.modem, cfg.modem.fallback)
            if self.modem and cfg.modem and cfg.modem.fallback
            else None
        )
        self._tamper_since_ts: float | None = None
        self._pir_since_ts: float | None = None
        self._pir_last_active_t: float | None = None
        self._last_t: float | None = None
        self._dev_state: dict[str, str] = {}
        self._dev_since_ts: dict[str, float] = {}
        self._started_t: float | None = None
        self.status_state = "healthy"
        self._gpio_driver: Any = None
        # GPIO calls may come from the runner's tick and the event emitter at once
        self._lock = threading.RLock()
        self._pir_report_initial = False

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def devices(self) -> list[SerialDevice]:
        return [d for d in (self.radar, self.gps, self.modem) if d is not None]

    def start(self) -> None:
        """Open GPIO lines (fails fast with HardwareError) and start the serial device threads."""
        from edge.hardware import pins

        lines = self.cfg.gpio_lines()
        if lines and self.pin_factory is None:
            self.pin_factory = pins.make_pin_factory(self.cfg.pin_factory)
        f = self.pin_factory
        c = self.cfg
        t = self.clock()
        if c.mock_scenario is not None:
            driver = plugins.gpio_driver("scenario")
            if driver is None:
                raise HardwareError(
                    "hardware.mock_scenario needs the GPIO scenario driver that firmware_sim provides, and no "
                    f"{plugins.GPIO_DRIVERS} plug-in 'scenario' is installed; install the edge repository with "
                    "firmware_sim, or remove mock_scenario"
                )
            self._gpio_driver = driver(f, c.mock_scenario)
        try:
            if c.status_led:
                self.led = gpio.StatusLed(self._out("status_led", c.status_led, f, pins))
            if c.beacon:
                self.beacon = gpio.Beacon(self._out("beacon", c.beacon, f, pins), c.beacon, self.timezone)
            if c.ir_relay:
                self.ir = gpio.IrRelay(self._out("ir_relay", c.ir_relay, f, pins), c.ir_relay)
            if c.heartbeat:
                self.hb = gpio.Heartbeat(self._out("heartbeat", c.heartbeat, f, pins))
            if c.tamper_switch:
                line = pins.InputLine("tamper_switch", c.tamper_switch, f)
                self._lines.append(line)
                self.tamper = gpio.DebouncedInput(line, c.tamper_switch)
            if c.pir:
                line = pins.InputLine("pir", c.pir, f)
                self._lines.append(line)
                self.pir = gpio.DebouncedInput(line, c.pir)
            if self._gpio_driver is not None:
                self._gpio_driver.advance(0.0)  # the simulated box's state before the agent looks
            if self.pir is not None and self.pir.prime(t):
                # read the level now: an edge before gpiozero's queue existed is never delivered
                self._pir_last_active_t = t
                self._pir_report_initial = True
                log.info("PIR already active at start-up")
        except HardwareError:
            self._close_lines()
            raise
        self._started_t = t
        for d in self.devices:
            d.start()
        log.info("hardware started gpio=%s serial=%s", sorted(lines), [d.name for d in self.devices])

    def _out(self, name: str, cfg: Any, factory: Any, pins: Any) -> Any:
        line = pins.OutputLine(name, cfg, factory)
        self._lines.append(line)
        return line

    def _close_lines(self) -> None:
        for line in self._lines:
            try:
                line.close()
            except Exception:  # closing is best effort at shutdown
                log.debug("closing %s failed", getattr(line, "name", line), exc_info=True)
        self._lines.clear()

    def stop(self) -> None:
        for d in self.devices:
            d.stop()
        self._close_lines()

    # -- the pipeline's calls -------------------------------------------------------------------
    def poll(self, t: float, ts: float) -> list[EventDraft]:
        """Advance GPIO behaviours to ``t``; the transitions for inputs and device status changes."""
        with self._lock:
            return self._poll(t, ts)

    def _poll(self, t: float, ts: float) -> list[EventDraft]:
        self._last_t = t
        out: list[EventDraft] = []
        if self._gpio_driver is not None and self._started_t is not None:
            self._gpio_driver.advance(t - self._started_t)
        if self.led:
            self.led.update(t)
        if self.beacon:
            self.beacon.update(t)
        if self.tamper and self.cfg.tamper_switch:
            for active in self.tamper.update(t):
                out.append(self._tamper_tr(active, t, ts))
        if self.pir and self.cfg.pir:
            if self.pir.state:
                self._pir_last_active_t = t
            changes = self.pir.update(t)
            if self._pir_report_initial:
                self._pir_report_initial = False
                changes = [True, *changes]
            for active in changes:
                self._pir_last_active_t = t
                if self.cfg.pir.report_events:
                    out.append(self._input_tr("pir", self.cfg.pir.pin, active, t, ts))
        out.extend(self._device_transitions(t, ts))
        return out

    def _tamper_tr(self, active: bool, t: float, ts: float) -> EventDraft:
        assert self.cfg.tamper_switch is not None
        if active:
            self._tamper_since_ts = ts
        started = self._tamper_since_ts
        if not active:
            self._tamper_since_ts = None
        return EventDraft(
            kind="tamper",
            phase="start" if active else "end",
            key="enclosure:tamper_switch",
            t=t,
            ts=ts,
            severity=self.cfg.tamper_switch.severity,
            severity_reason="enclosure door opened" if active else "enclosure door closed",
            started_ts=started,
            payload={
                "source": "enclosure_door",
                "line": "tamper_switch",
                "pin": self.cfg.tamper_switch.pin,
                "state": "open" if active else "closed",
            },
        )

    def _input_tr(self, name: str, pin: int, active: bool, t: float, ts: float) -> EventDraft:
        if active:
            self._pir_since_ts = ts
        started = self._pir_since_ts
        return EventDraft(
            kind="hardware_input",
            phase="start" if active else "end",
            key=f"input:{name}",
            t=t,
            ts=ts,
            started_ts=started,
            payload={"input": name, "pin": pin, "active": active},
        )

    def _device_transitions(self, t: float, ts: float) -> list[EventDraft]:
        out: list[EventDraft] = []
        for d in self.devices:
            st = d.status()
            prev = self._dev_state.get(d.name)
            if prev is None:
                # give a device its stale_after_s to come up before calling it missing
                started = self._started_t if self._started_t is not None else t
                if st != "online" and t - started < d.cfg.stale_after_s:
                    continue
                self._dev_state[d.name] = st
                if st == "online":
                    continue
                prev = "online"
            if (st == "online") == (prev == "online"):
                self._dev_state[d.name] = st
                continue
            self._dev_state[d.name] = st
            if st != "online":
                self._dev_since_ts[d.name] = ts
            out.append(
                EventDraft(
                    kind="sensor_status",
                    phase="end" if st == "online" else "start",
                    key=f"sensor:{d.name}",
                    t=t,
                    ts=ts,
                    severity="info" if st == "online" else "minor",
                    severity_reason=f"{d.name} {st}"
                    + (f": {d.last_error}" if st != "online" and d.last_error else ""),
                    started_ts=self._dev_since_ts.get(d.name),
                    payload={"device": d.name, "status": st, "url": d.cfg.url, "reason": d.last_error[:200]},
                )
            )
        return out

    def features(self, t: float) -> list[FeatureValue]:
        out: list[FeatureValue] = []
        if self.radar is not None:
            s = self.radar.fresh()
            if s is not None:
                r = s.report
                pres = self.radar.presence()
                out.append(FeatureValue("radar.presence", None, 1.0 if pres else 0.0, "1", 0.0, t))
                if pres:
                    dists = [
                        d
                        for d, ok in (
                            (r.moving_distance_cm, r.target_state in (1, 3)),
                            (r.static_distance_cm, r.target_state in (2, 3)),
                        )
                        if ok
                    ]
                    out.append(FeatureValue("radar.distance_m", None, min(dists) / 100.0, "m", 0.0, t))
                out.append(FeatureValue("radar.moving_energy", None, float(r.moving_energy), "1", 0.0, t))
                out.append(FeatureValue("radar.static_energy", None, float(r.static_energy), "1", 0.0, t))
        if self.pir is not None:
            out.append(FeatureValue("pir.motion", None, 1.0 if self.motion_active() else 0.0, "1", 0.0, t))
        return out

    def enclosure_open(self) -> bool:
        """The enclosure door switch reads open (False without a switch)."""
        return bool(self.tamper is not None and self.tamper.state)

    def radar_presence(self) -> bool | None:
        """People present according to the radar; None when there is no fresh radar data.
        The lead fuses it: radar presence while the camera is blinded is still presence."""
        return None if self.radar is None else self.radar.presence()

    def geo(self) -> GeoConfig | None:
        """The GPS fix when fresh (it overrides the config geo in events), else None."""
        f = self.gps.fresh_fix() if self.gps else None
        return None if f is None else GeoConfig(lat=round(f.lat, 7), lon=round(f.lon, 7), alt_m=f.alt_m)

    def _ntp_synced(self) -> bool | None:
        now = self.clock()
        if self._ntp is None or now - self._ntp[0] > NTP_RECHECK_S:
            self._ntp = (now, self._ntp_status())
        return self._ntp[1]

    def clock_quality(self) -> str:
        """'ntp' when the system clock is NTP-synced, 'gps' when GPS time is available, else 'unsynced'."""
        if self._ntp_synced():
            return "ntp"
        if self.gps is not None and self.gps.fresh_offset() is not None:
            return "gps"
        return "unsynced"

    def time_offset_s(self) -> float | None:
        """Seconds to add to the local wall clock to get GPS UTC; None when NTP is synced or no GPS time."""
        if self._ntp_synced() or self.gps is None:
            return None
        return self.gps.fresh_offset()

    def set_status(self, state: str) -> None:
        """'healthy', 'degraded', 'offline' or 'tamper': the status LED's blink pattern."""
        if state not in gpio.LED_PATTERNS:
            raise ValueError(f"unknown status {state!r}; use one of {', '.join(gpio.LED_PATTERNS)}")
        with self._lock:
            self.status_state = state
            if self.led:
                self.led.set_state(state)

    def alarm(self, transition: EventDraft) -> None:
        if self.beacon:
            with self._lock:
                self.beacon.alarm(transition)

    def set_scene_brightness(self, luma: float) -> None:
        if self.ir:
            with self._lock:
                self.ir.set_brightness(luma)

    def heartbeat(self) -> None:
        if self.hb:
            with self._lock:
                self.hb.beat()

    def motion_active(self) -> bool:
        """PIR motion now or within ``pir.hold_s``; False without a PIR."""
        if self.pir is None or self.cfg.pir is None:
            return False
        if self.pir.state:
            return True
        if self._pir_last_active_t is None:
            return False
        now = self._last_t if self._last_t is not None else self.clock()
        return now - self._pir_last_active_t <= self.cfg.pir.hold_s

    def fallback_link(self) -> FallbackLink | None:
        return self._fallback

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {d.name: d.health() for d in self.devices}
        gpio_h: dict[str, Any] = {}
        if self.led:
            gpio_h["status_led"] = self.led.state
        if self.beacon:
            gpio_h["beacon"] = {
                "on": self.beacon.line.is_on,
                "activations": self.beacon.activations,
                "suppressed": self.beacon.suppressed,
            }
        if self.tamper:
            gpio_h["tamper_switch"] = "open" if self.tamper.state else "closed"
        if self.pir:
            gpio_h["pir"] = bool(self.pir.state)
        if self.ir:
            gpio_h["ir_relay"] = self.ir.line.is_on
        if self.hb:
            gpio_h["heartbeats"] = self.hb.beats
        if gpio_h:
            out["gpio"] = gpio_h
        if self._fallback is not None:
            out["fallback"] = self._fallback.health()
        out["clock"] = self.clock_quality()
        off = self.time_offset_s()
        if off is not None:
            out["time_offset_s"] = round(off, 3)
        return out
