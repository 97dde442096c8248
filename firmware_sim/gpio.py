"""GPIO scenario driver: toggles gpiozero MockFactory pins on a timeline.

Scenario file::

    device: gpio
    timeline:
      - {at_s: 0.0, pin: 17, level: high}     # PIR already high when the agent starts
      - {at_s: 5.0, pin: 27, level: high}     # enclosure door opens
      - {at_s: 9.0, pin: 27, level: low}

``advance(t)`` applies every step with ``at_s <= t`` that has not been applied yet; time is the
caller's (a fake clock in tests, the agent's monotonic clock since start in a simulated run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from firmware_sim.base import load_scenario


@dataclass(frozen=True, slots=True)
class PinStep:
    at_s: float
    pin: int
    high: bool


def parse_steps(sc: dict[str, Any]) -> list[PinStep]:
    steps: list[PinStep] = []
    for i, e in enumerate(sc.get("timeline", [])):
        level = str(e.get("level", "")).lower()
        if level not in ("high", "low", "1", "0", "true", "false"):
            raise ValueError(f"timeline[{i}].level: {e.get('level')!r} is not high or low")
        steps.append(PinStep(float(e.get("at_s", 0.0)), int(e["pin"]), level in ("high", "1", "true")))
    return sorted(steps, key=lambda s: s.at_s)


class GpioScenarioDriver:
    def __init__(self, factory: Any, scenario: dict[str, Any] | str | None) -> None:
        if not isinstance(scenario, dict):
            scenario = load_scenario(scenario, "gpio")
        self.factory = factory
        self.steps = parse_steps(scenario)
        self._i = 0

    def advance(self, t: float) -> list[PinStep]:
        done: list[PinStep] = []
        while self._i < len(self.steps) and self.steps[self._i].at_s <= t:
            s = self.steps[self._i]
            pin = self.factory.pin(s.pin)
            if s.high:
                pin.drive_high()
            else:
                pin.drive_low()
            done.append(s)
            self._i += 1
        return done

    @property
    def finished(self) -> bool:
        return self._i >= len(self.steps)
