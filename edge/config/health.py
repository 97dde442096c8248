"""Health, camera tamper, motion gating and supervision settings (owned by the health stage)."""

from __future__ import annotations

from edge.config.base import Field, StrictModel


class HealthConfig(StrictModel):
    """Device health reporting."""

    health_interval_s: float = Field(60.0, gt=0, description="How often a health record is published and logged.")


class TamperConfig(StrictModel):
    """Camera tamper and blind detection for one camera."""

    enabled: bool = Field(True, description="Detect covered, defocused, moved, frozen and badly exposed views.")
