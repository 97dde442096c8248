"""Zones, lines, calibration and rule parameters (owned by the analytics stage)."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from edge.config.base import Field, Point, StrictModel, check_point, check_polygon


class ZoneConfig(StrictModel):
    """A region of the image, as a normalised polygon (0..1 of width/height)."""

    id: str = Field(..., min_length=1, description="Zone id, unique within the camera; appears in events.")
    kind: Literal["no_parking", "bike_bay", "bike_watch", "crowd", "count"] = Field(
        ..., description="What the zone is for."
    )
    polygon: list[Point] = Field(..., description="Vertices as [x, y] in 0..1 of the frame; at least 3.")

    @field_validator("polygon")
    @classmethod
    def _polygon(cls, v: list[Point]) -> list[Point]:
        return check_polygon(v)


class LineConfig(StrictModel):
    """A counting line; crossing it from left to right (seen from a to b) counts as 'in'."""

    id: str = Field(..., min_length=1, description="Line id, unique within the camera.")
    a: Point = Field(..., description="First end [x, y], normalised 0..1.")
    b: Point = Field(..., description="Second end [x, y], normalised 0..1.")

    @field_validator("a", "b")
    @classmethod
    def _point(cls, v: Point) -> Point:
        return check_point(v)


class CalibrationConfig(StrictModel):
    """Ground-plane calibration: image points (normalised) and their positions in metres."""

    image_points: list[Point] = Field(..., description="At least 4 points [x, y] in 0..1 of the frame.")
    ground_points_m: list[Point] = Field(..., description="The same points on the ground, [x, y] in metres.")


class RulesConfig(StrictModel):
    """Parameters of the street rules, shared by every camera unless a zone overrides them."""

    feature_interval_s: float = Field(60.0, gt=0, description="How often each camera emits a feature record.")
