"""GPIO lines and serial devices (owned by the hardware stage)."""

from __future__ import annotations

from typing import Literal

from edge.config.base import Field, StrictModel


class HardwareConfig(StrictModel):
    """Hardware attached to the box. Everything is optional; an absent device is simply not used."""

    pin_factory: Literal["auto", "mock", "lgpio"] = Field(
        "auto", description="gpiozero pin factory: 'mock' for CI, 'lgpio' on a Pi 5 / Bookworm, 'auto' to let gpiozero pick."
    )
