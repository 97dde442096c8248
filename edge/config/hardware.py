"""GPIO lines and serial devices (owned by the hardware stage).

Pin numbers are BCM GPIO numbers (as gpiozero's ``GPIO17`` / plain ``17``). Every line is
optional: a device that is not configured is simply not used.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlparse

from pydantic import field_validator, model_validator

from edge.config.base import Field, StrictModel

Severity = Literal["info", "minor", "major", "critical"]
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_SERIAL_SCHEMES = ("socket", "loop", "rfc2217", "spy", "alt", "hwgrep")


def _check_pin(v: int) -> int:
    if not 0 <= v <= 27:
        raise ValueError(f"GPIO {v} is not a BCM pin of the 40-pin header; use 0..27 (e.g. 17 for GPIO17)")
    return v


def hhmm_to_minutes(v: str) -> int:
    """'22:30' -> 1350 minutes after midnight."""
    m = _HHMM.match(v)
    if not m:
        raise ValueError(f"{v!r} is not a time of day; write HH:MM in 24-hour form, e.g. 22:00")
    return int(m.group(1)) * 60 + int(m.group(2))


class OutputLineConfig(StrictModel):
    """A GPIO output line (LED, relay, heartbeat)."""

    pin: int = Field(..., description="BCM GPIO number of the line (0..27).")
    active_high: bool = Field(
        True,
        description="True if driving the pin high turns the device on; False for active-low relay boards.",
    )

    _pin = field_validator("pin")(classmethod(lambda cls, v: _check_pin(v)))


class InputLineConfig(StrictModel):
    """A GPIO input line (switch or sensor)."""

    pin: int = Field(..., description="BCM GPIO number of the line (0..27).")
    pull: Literal["up", "down", "none"] = Field(
        "up", description="Internal pull resistor: 'up', 'down', or 'none' when the board has its own."
    )
    active_high: bool = Field(
        True,
        description="True if the line reads high when the condition holds (door open, motion); False if it reads low.",
    )
    debounce_s: float = Field(
        0.05, ge=0, le=5, description="Ignore changes shorter than this (contact bounce)."
    )

    _pin = field_validator("pin")(classmethod(lambda cls, v: _check_pin(v)))


class QuietHoursConfig(StrictModel):
    """A daily window (local time of the site) in which the beacon/buzzer stays off."""

    start: str = Field("22:00", description="Start of quiet hours, HH:MM local time.")
    end: str = Field(
        "07:00",
        description="End of quiet hours, HH:MM local time; may be earlier than start (wraps midnight).",
    )
    allow: list[Severity] = Field(
        default_factory=list, description="Severities that still sound during quiet hours (e.g. [critical])."
    )

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        hhmm_to_minutes(v)
        return v

    @model_validator(mode="after")
    def _nonempty(self) -> QuietHoursConfig:
        if self.start == self.end:
            raise ValueError(
                "start and end are equal; remove quiet_hours to disable them, or give a real window"
            )
        return self


class LedConfig(OutputLineConfig):
    """Status LED: healthy, degraded, offline and tamper are told apart by blink pattern (see docs/hardware.md)."""


class BeaconConfig(OutputLineConfig):
    """Alarm beacon / buzzer, switched on by events of chosen severities."""

    severities: list[Severity] = Field(
        default_factory=lambda: list[Severity](["critical"]),
        description="Event severities that switch the beacon on.",
    )
    kinds: list[str] = Field(
        default_factory=list, description="Only these event kinds switch it on; empty means any kind."
    )
    max_on_s: float = Field(
        30.0, gt=0, le=3600, description="The beacon switches itself off after this long."
    )
    quiet_hours: QuietHoursConfig | None = Field(
        None, description="Daily window in which the beacon stays off."
    )


class TamperSwitchConfig(InputLineConfig):
    """Enclosure door switch: opening it produces a `tamper` start event, closing it the end event."""

    severity: Severity = Field("major", description="Severity of the enclosure tamper events.")


class PirConfig(InputLineConfig):
    """PIR motion sensor: raises the detect rate while there is motion."""

    hold_s: float = Field(
        10.0, ge=0, le=600, description="Motion counts as active this long after the PIR goes quiet."
    )
    report_events: bool = Field(
        False,
        description="Also send `hardware_input` start/end events for PIR motion (chatty on a busy street).",
    )
    boost_factor: float = Field(
        2.0,
        ge=1.0,
        le=10.0,
        description="While the PIR sees motion, each camera runs at detect_fps x this factor (capped at 30 fps).",
    )


class IrRelayConfig(OutputLineConfig):
    """IR illuminator on a relay, switched by scene brightness with hysteresis."""

    on_below_luma: float = Field(
        40.0, ge=0, le=255, description="Switch the IR on when mean scene luma (0..255) falls below this."
    )
    off_above_luma: float = Field(
        70.0, ge=0, le=255, description="Switch it off again when luma rises above this."
    )

    @model_validator(mode="after")
    def _hysteresis(self) -> IrRelayConfig:
        if self.off_above_luma <= self.on_below_luma:
            raise ValueError(
                f"off_above_luma ({self.off_above_luma}) must be greater than on_below_luma ({self.on_below_luma}); "
                "the gap is the hysteresis that stops the relay chattering at dusk"
            )
        return self


class SerialDeviceConfig(StrictModel):
    """A serial device reached through a pyserial URL."""

    url: str = Field(
        ...,
        description="Port: /dev/ttyAMA0 on the box, socket://host:port for firmware_sim, loop:// in tests.",
    )
    baudrate: int = Field(9600, gt=0, description="Line speed in baud (ignored by socket:// and loop://).")
    timeout_s: float = Field(
        1.0, gt=0, le=60, description="How long one read or command waits for an answer."
    )
    stale_after_s: float = Field(
        5.0, gt=0, description="Data older than this is treated as missing and the device flagged."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.strip():
            raise ValueError(
                "is empty; give a device path like /dev/ttyAMA0 or a URL like socket://127.0.0.1:7001"
            )
        if "://" in v:
            scheme = urlparse(v).scheme
            if scheme not in _SERIAL_SCHEMES:
                raise ValueError(
                    f"serial URL scheme {scheme!r} is not supported; use a /dev path or one of {', '.join(_SERIAL_SCHEMES)}"
                )
        elif not v.startswith("/"):
            raise ValueError(f"{v!r} is neither a device path (/dev/...) nor a pyserial URL (socket://...)")
        return v


class RadarConfig(SerialDeviceConfig):
    """HLK-LD2410 24 GHz presence radar."""

    baudrate: int = Field(256000, gt=0, description="LD2410 factory default is 256000 baud.")
    engineering: bool = Field(False, description="Ask the radar for engineering frames (per-gate energies).")
    min_energy: int = Field(
        0, ge=0, le=100, description="Ignore targets whose energy is below this (0..100)."
    )


class GpsConfig(SerialDeviceConfig):
    """NMEA 0183 GPS (RMC and GGA sentences)."""

    stale_after_s: float = Field(5.0, gt=0, description="A fix older than this is dropped from events.")


class ModemFallbackConfig(StrictModel):
    """MQTT over the modem's own stack (AT+QMTOPEN/QMTCONN/QMTPUB): critical events while the broker is unreachable."""

    host: str = Field(..., min_length=1, description="Broker host reached over the cellular network.")
    port: int = Field(1883, gt=0, lt=65536, description="Broker TCP port.")
    client_id: str = Field(
        ..., min_length=1, max_length=64, description="MQTT client id for the modem session."
    )
    username: str | None = Field(None, description="MQTT user name, if the broker wants one.")
    password: str | None = Field(
        None, description="MQTT password; use ${ENV} in the YAML rather than the literal."
    )
    qos: Literal[0, 1, 2] = Field(
        1, description="QoS of fallback publishes; 1 means the modem waits for PUBACK."
    )
    open_timeout_s: float = Field(15.0, gt=0, description="How long to wait for +QMTOPEN / +QMTCONN.")
    publish_timeout_s: float = Field(
        15.0, gt=0, description="How long to wait for +QMTPUB after the payload is sent."
    )
    max_payload_bytes: int = Field(
        1500, gt=0, le=1548, description="Largest payload sent through the modem (BG96 limit 1548)."
    )


class ModemConfig(SerialDeviceConfig):
    """Quectel BG96 cellular modem driven by AT commands."""

    baudrate: int = Field(115200, gt=0, description="BG96 default is 115200 baud.")
    poll_interval_s: float = Field(
        30.0, gt=0, description="How often signal (AT+CSQ) and registration (AT+CEREG?) are read."
    )
    stale_after_s: float = Field(120.0, gt=0, description="Registration older than this counts as unknown.")
    fallback: ModemFallbackConfig | None = Field(
        None, description="Fallback uplink for critical events; None disables it."
    )


class HardwareConfig(StrictModel):
    """Hardware attached to the box. Everything is optional; an absent device is simply not used."""

    pin_factory: Literal["auto", "mock", "lgpio"] = Field(
        "auto",
        description="gpiozero pin factory: 'mock' for CI, 'lgpio' on a Pi 5 / Bookworm, 'auto' to let gpiozero pick.",
    )
    status_led: LedConfig | None = Field(None, description="Status LED.")
    beacon: BeaconConfig | None = Field(None, description="Alarm beacon or buzzer.")
    tamper_switch: TamperSwitchConfig | None = Field(None, description="Enclosure door (tamper) switch.")
    pir: PirConfig | None = Field(None, description="PIR motion sensor.")
    ir_relay: IrRelayConfig | None = Field(None, description="IR illuminator relay.")
    heartbeat: OutputLineConfig | None = Field(
        None, description="Heartbeat output toggled for an external hardware watchdog."
    )
    radar: RadarConfig | None = Field(None, description="HLK-LD2410 presence radar.")
    gps: GpsConfig | None = Field(None, description="NMEA GPS receiver.")
    modem: ModemConfig | None = Field(None, description="Quectel BG96 cellular modem.")
    reconnect_min_s: float = Field(
        1.0, gt=0, description="First delay before reopening a lost serial device."
    )
    reconnect_max_s: float = Field(
        30.0, gt=0, description="Longest delay between reopen attempts (backoff cap)."
    )
    mock_scenario: str | None = Field(
        None,
        description="Only with pin_factory: mock: a firmware_sim GPIO scenario (file or bundled name) that drives the mock pins on a timeline.",
    )
    disk_min_free_mb: float = Field(
        200.0, ge=0, description="`doctor` fails the outbox check below this much free space."
    )

    @model_validator(mode="after")
    def _checks(self) -> HardwareConfig:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s: must be >= reconnect_min_s")
        if self.mock_scenario is not None and self.pin_factory != "mock":
            raise ValueError("mock_scenario: only works with pin_factory: mock; remove it on a real box")
        used: dict[int, str] = {}
        for name in ("status_led", "beacon", "tamper_switch", "pir", "ir_relay", "heartbeat"):
            line = getattr(self, name)
            if line is None:
                continue
            if line.pin in used:
                raise ValueError(
                    f"{name}.pin: GPIO {line.pin} is already used by {used[line.pin]}; each line needs its own pin"
                )
            used[line.pin] = name
        return self

    def is_empty(self) -> bool:
        """True when no GPIO line and no serial device is configured (the agent then skips hardware)."""
        return not self.gpio_lines() and self.radar is None and self.gps is None and self.modem is None

    def gpio_lines(self) -> dict[str, OutputLineConfig | InputLineConfig]:
        """The configured GPIO lines by name."""
        out: dict[str, OutputLineConfig | InputLineConfig] = {}
        for name in ("status_led", "beacon", "tamper_switch", "pir", "ir_relay", "heartbeat"):
            line = getattr(self, name)
            if line is not None:
                out[name] = line
        return out
