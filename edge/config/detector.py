"""Detector settings for one camera (owned by the vision stage)."""

from __future__ import annotations

from edge.config.base import Field, StrictModel


class DetectorConfig(StrictModel):
    """How the camera's model is run. The model itself is ``cameras[].model``."""

    threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="Score threshold for every class; None uses the manifest's per-class defaults."
    )
    threads: int | None = Field(None, ge=1, le=64, description="onnxruntime intra-op threads; None means all cores.")
