"""Detector settings for one camera (owned by the vision stage)."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator, model_validator

from edge.classes import resolve
from edge.config.base import Field, StrictModel


class DetectorConfig(StrictModel):
    """How the camera's model is run. The model itself is ``cameras[].model``."""

    threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Score threshold for every class; None uses the manifest's per-class defaults.",
    )
    threads: int | None = Field(
        default=None, ge=1, le=64, description="onnxruntime intra-op threads; None means all cores."
    )
    thresholds: dict[str, float] = Field(
        default_factory=dict,
        description=(
            "Per-class score thresholds overriding the manifest's, keyed by canonical class, group "
            "(vehicle, two_wheeler...) or the model's own label; e.g. {person: 0.4, vehicle: 0.3}."
        ),
    )
    provider: str = Field(
        default="CPUExecutionProvider",
        description="onnxruntime execution provider (e.g. CPUExecutionProvider); must be installed on the box.",
    )
    nms: Literal["manifest", "class_aware", "agnostic"] = Field(
        default="manifest",
        description="Non-maximum suppression across classes: 'class_aware', 'agnostic', or 'manifest' (the model's default).",
    )
    nms_iou: float | None = Field(
        default=None, gt=0.0, le=1.0, description="NMS IoU threshold; None uses the manifest's value."
    )
    keep_other: bool = Field(
        default=False,
        description="Keep detections whose label maps to no canonical class (class 'other'); off for the agent.",
    )
    min_area_px: float = Field(
        default=0.0, ge=0.0, description="Drop boxes smaller than this many square pixels."
    )
    max_area_frac: float = Field(
        default=1.0, gt=0.0, le=1.0, description="Drop boxes covering more than this fraction of the frame."
    )
    min_aspect: float = Field(
        default=0.0, ge=0.0, description="Drop boxes whose width/height ratio is below this."
    )
    max_aspect: float = Field(
        default=0.0, ge=0.0, description="Drop boxes whose width/height ratio is above this; 0 = no limit."
    )
    roi: Literal["none", "zones", "tiles"] = Field(
        default="none",
        description=(
            "Extra inference on crops so small far objects are found: 'zones' crops around each configured zone, "
            "'tiles' splits the frame in tile_grid tiles; detections are fused with the full frame's (boxes cut by a crop edge dropped, NMS, then fragments inside another pass's box merged: roi_merge_ios)."
        ),
    )
    tile_grid: tuple[int, int] = Field(default=(2, 2), description="Tiles [columns, rows] for roi='tiles'.")
    roi_margin: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="Margin added around each zone crop / tile, as a fraction of its size.",
    )
    roi_merge_ios: float = Field(
        default=0.6,
        gt=0.0,
        le=1.0,
        description=(
            "With roi set: a box lying this much (intersection over the smaller box's area) inside a box of the "
            "same class from another pass is a fragment of that object and is dropped; 1 turns it off."
        ),
    )
    roi_pair_classes: list[str] = Field(
        default_factory=lambda: ["two_wheeler"],
        description=(
            "With roi set: classes (or groups) whose boxes from different passes are paired one to one (the same "
            "object is one box of each pass) instead of merged by containment: bikes stand overlapping in racks "
            "and are seen through, so a crop's bike inside the full frame's bike box is usually the next bike."
        ),
    )
    merge_person_parts: bool = Field(
        default=True,
        description=(
            "Drop a person box lying inside a larger person box with the same top edge and centre: the same person "
            "boxed whole and in part (full body and upper body); false keeps the model's boxes as they are."
        ),
    )
    roi_full_frame: bool = Field(
        default=True,
        description="With roi set, also run on the whole frame (finds large objects that cross crops).",
    )

    @field_validator("provider")
    @classmethod
    def _provider(cls, v: str) -> str:
        if not v.endswith("ExecutionProvider"):
            raise ValueError(f"{v!r} is not an onnxruntime provider name; use e.g. CPUExecutionProvider")
        return v

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, v: dict[str, float]) -> dict[str, float]:
        for k, t in v.items():
            if not 0.0 <= t <= 1.0:
                raise ValueError(f"threshold for {k!r} is {t}; use a score within 0..1")
        return v

    @field_validator("roi_pair_classes")
    @classmethod
    def _pair_classes(cls, v: list[str]) -> list[str]:
        resolve(v)  # ValueError naming the unknown class or group
        return v

    @field_validator("tile_grid")
    @classmethod
    def _grid(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not (1 <= v[0] <= 8 and 1 <= v[1] <= 8):
            raise ValueError(f"tile_grid {list(v)} must have 1..8 columns and rows, e.g. [2, 2]")
        return v

    @model_validator(mode="after")
    def _aspect(self) -> DetectorConfig:
        if self.max_aspect and self.max_aspect < self.min_aspect:
            raise ValueError("max_aspect: must be >= min_aspect (or 0 for no limit)")
        return self
