"""The only gpiozero import: choose a pin factory and open lines on it.

The factory is always passed to each device (``pin_factory=``); the global
``Device.pin_factory`` is never assigned, so tests need no save/restore dance.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Literal

from gpiozero import DigitalInputDevice, DigitalOutputDevice, GPIOZeroError
from gpiozero.pins.mock import MockFactory

from edge.config.hardware import InputLineConfig, OutputLineConfig
from edge.errors import HardwareError

log = logging.getLogger(__name__)

__all__ = ["InputLine", "MockFactory", "OutputLine", "make_pin_factory"]


def make_pin_factory(kind: Literal["auto", "mock", "lgpio"]) -> Any:
    """A new pin factory. 'auto' tries lgpio (Pi 5 / Bookworm), then RPi.GPIO; it never falls back
    to the mock silently, because a box whose outputs go nowhere must not look healthy."""
    if kind == "mock":
        return MockFactory()
    errors: list[str] = []
    if kind in ("lgpio", "auto"):
        try:
            from gpiozero.pins.lgpio import LGPIOFactory

            return LGPIOFactory()
        except (ImportError, OSError, GPIOZeroError, RuntimeError) as exc:
            errors.append(f"lgpio: {exc}")
            if kind == "lgpio":
                raise HardwareError(
                    f"cannot open the lgpio pin factory ({exc}); install python3-lgpio and run on a Raspberry Pi, "
                    "or set hardware.pin_factory: mock for a simulated box"
                ) from exc
    try:
        from gpiozero.pins.rpigpio import RPiGPIOFactory

        return RPiGPIOFactory()
    except (ImportError, OSError, GPIOZeroError, RuntimeError) as exc:
        errors.append(f"RPi.GPIO: {exc}")
    raise HardwareError(
        "no GPIO pin factory works here (" + "; ".join(errors) + "); on a Pi install python3-lgpio, "
        "elsewhere set hardware.pin_factory: mock"
    )


class OutputLine:
    """An output that is on or off (LED, relay, beacon, heartbeat)."""

    def __init__(self, name: str, cfg: OutputLineConfig, factory: Any) -> None:
        self.name = name
        self.pin = cfg.pin
        try:
            self._dev = DigitalOutputDevice(
                cfg.pin, active_high=cfg.active_high, initial_value=False, pin_factory=factory
            )
        except (GPIOZeroError, OSError, ValueError) as exc:
            raise HardwareError(f"{name}: cannot open GPIO{cfg.pin} as an output: {exc}") from exc

    @property
    def is_on(self) -> bool:
        return bool(self._dev.value)

    def set(self, on: bool) -> None:
        if on != self.is_on:
            self._dev.value = on

    def close(self) -> None:
        try:
            self.set(False)
        finally:
            self._dev.close()


class InputLine:
    """An input whose ``active`` means "the condition holds" (door open, motion), whatever the wiring.

    Edge callbacks only set a latch, so a pulse shorter than the poll interval is not lost.
    """

    def __init__(self, name: str, cfg: InputLineConfig, factory: Any) -> None:
        self.name = name
        self.pin = cfg.pin
        pull_up: bool | None = {"up": True, "down": False, "none": None}[cfg.pull]
        try:
            if pull_up is None:
                self._dev = DigitalInputDevice(
                    cfg.pin, pull_up=None, active_state=cfg.active_high, pin_factory=factory
                )
                self._invert = False
            else:
                self._dev = DigitalInputDevice(cfg.pin, pull_up=pull_up, pin_factory=factory)
                # gpiozero calls a pulled-up line active when low; we want active == condition
                self._invert = cfg.active_high == pull_up
        except (GPIOZeroError, OSError, ValueError) as exc:
            raise HardwareError(f"{name}: cannot open GPIO{cfg.pin} as an input: {exc}") from exc
        self._lock = threading.Lock()
        self._rose = False
        self._fell = False
        self._dev.when_activated = self._on_edge_active if not self._invert else self._on_edge_inactive
        self._dev.when_deactivated = self._on_edge_inactive if not self._invert else self._on_edge_active

    def _on_edge_active(self) -> None:
        with self._lock:
            self._rose = True

    def _on_edge_inactive(self) -> None:
        with self._lock:
            self._fell = True

    @property
    def active(self) -> bool:
        """The level read now (not an edge): correct even if the edge came before we started."""
        return bool(self._dev.is_active) != self._invert

    def take_edges(self) -> tuple[bool, bool]:
        """(became active, became inactive) since the last call."""
        with self._lock:
            out = (self._rose, self._fell)
            self._rose = self._fell = False
        return out

    def close(self) -> None:
        self._dev.close()
