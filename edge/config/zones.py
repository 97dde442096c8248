"""Zones, lines and the ground calibration of a camera (rule parameters are in ``edge.config.rules``).

Zone kinds:

- ``no_parking``: parkable vehicles stationary longer than the grace time become violations.
- ``bike_bay``: a marked bay with a ``capacity``; counts, occupancy, overflow, dispatch tasks.
- ``bike_watch``: an area around bays; bicycles parked here but outside every bay are reported.
- ``crowd``: people count, density (persons/m2), level of service, surges.
- ``count``: counts by class (features); with a ``capacity`` (a car park, a rack) also occupancy =
  count / capacity.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Literal

from pydantic import field_validator, model_validator

from edge.classes import resolve
from edge.config.base import Field, Point, StrictModel, check_point, check_polygon

ZoneKind = Literal["no_parking", "bike_bay", "bike_watch", "crowd", "count"]
ZoneType = Literal["no_stopping", "no_parking", "loading_bay", "time_limited"]
LosLevel = Literal["A", "B", "C", "D", "E", "F"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")

#: Default class filter of each zone kind (names or groups of ``edge.classes``).
DEFAULT_ZONE_CLASSES: dict[str, tuple[str, ...]] = {
    "no_parking": ("parkable",),
    "bike_bay": ("bicycle",),
    "bike_watch": ("bicycle",),
    "crowd": ("person",),
    "count": ("any",),
}


def _all_days() -> list[Weekday]:
    return ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def check_classes(v: list[str] | None) -> list[str] | None:
    if v is not None:
        if not v:
            raise ValueError(
                "is empty; list class names or groups, or leave it out to use the zone kind's default"
            )
        resolve(v)
    return v


def hhmm_minutes(v: str) -> int:
    """'07:30' -> 450 minutes after midnight ('24:00' -> 1440)."""
    h, m = v.split(":")
    return int(h) * 60 + int(m)


class TimeWindow(StrictModel):
    """Weekdays and a local time window, e.g. mon..fri 07:00-09:00."""

    days: list[Weekday] = Field(
        default_factory=_all_days, description="Weekdays the window applies to: mon, tue, ... sun."
    )
    start: str = Field(..., description="Local start time HH:MM (inclusive).")
    end: str = Field(
        ...,
        description="Local end time HH:MM (exclusive); '24:00' for midnight. An end before the start wraps past midnight.",
    )

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError(f"{v!r} is not a time; write HH:MM in 24-hour local time, e.g. '07:00'")
        return v

    @model_validator(mode="after")
    def _order(self) -> TimeWindow:
        if self.start == self.end:
            raise ValueError("end: equals start, so the window is empty; give different start and end times")
        if not self.days:
            raise ValueError("days: is empty; list at least one weekday (mon..sun)")
        return self


class ScheduleConfig(StrictModel):
    """When a zone is in force: weekday + time windows in the site's time zone, minus exception dates."""

    windows: list[TimeWindow] = Field(
        ..., min_length=1, description="Time windows in force (any one suffices)."
    )
    except_dates: list[_dt.date] = Field(
        default_factory=list,
        description="Local dates (YYYY-MM-DD) the schedule is NOT in force, e.g. school holidays.",
    )


class ZoneConfig(StrictModel):
    """A region of the image, as a normalised polygon (0..1 of width/height)."""

    id: str = Field(..., min_length=1, description="Zone id, unique within the camera; appears in events.")
    kind: ZoneKind = Field(..., description="What the zone is for.")
    polygon: list[Point] = Field(..., description="Vertices as [x, y] in 0..1 of the frame; at least 3.")
    classes: list[str] | None = Field(
        None,
        description="Class names or groups (person, bicycle, vehicle, parkable, ...) this zone watches; None uses the kind's default.",
    )
    exclude: list[list[Point]] = Field(
        default_factory=list,
        description="Exclusion polygons inside this zone (normalised); objects anchored there are ignored.",
    )
    schedule: ScheduleConfig | None = Field(None, description="When the zone is in force; None means always.")
    zone_type: ZoneType = Field(
        "no_parking",
        description="For no_parking zones: no_stopping, no_parking, loading_bay or time_limited (grades severity).",
    )
    limit_s: float | None = Field(
        None,
        gt=0,
        description="For no_parking zones: allowed stay before a violation; None uses rules.parking.grace_s.",
    )
    capacity: int | None = Field(
        None,
        ge=0,
        description=(
            "How many objects the zone holds: required for bike_bay zones; optional for count zones (a car "
            "park, a rack), which then report occupancy = count / capacity."
        ),
    )
    area_m2: float | None = Field(
        None,
        gt=0,
        description="Declared ground area in m2 (crowd density); None computes it from the calibration.",
    )
    los_table: Literal["walkway", "queuing"] | None = Field(
        None,
        description="For crowd zones: Fruin table to grade level of service; None uses rules.crowd.los_table.",
    )
    operator: str | None = Field(
        None, description="For bike_bay zones: the operator the bay belongs to (named in dispatch tasks)."
    )
    lanes: list[list[Point]] = Field(
        default_factory=list,
        description=(
            "For no_parking zones: polygons (normalised) of the through-traffic lanes that run through the "
            "zone, one per lane. A vehicle stopped in a lane behind or ahead of other stopped vehicles of "
            "that lane is queuing (a light, congestion), not parked: see rules.parking.queue_*."
        ),
    )

    @field_validator("polygon")
    @classmethod
    def _polygon(cls, v: list[Point]) -> list[Point]:
        return check_polygon(v)

    @field_validator("exclude")
    @classmethod
    def _exclude(cls, v: list[list[Point]]) -> list[list[Point]]:
        for poly in v:
            check_polygon(poly)
        return v

    @field_validator("classes")
    @classmethod
    def _classes(cls, v: list[str] | None) -> list[str] | None:
        return check_classes(v)

    @field_validator("lanes")
    @classmethod
    def _lanes(cls, v: list[list[Point]]) -> list[list[Point]]:
        for poly in v:
            check_polygon(poly)
        return v

    @model_validator(mode="after")
    def _kind_params(self) -> ZoneConfig:
        if self.lanes and self.kind != "no_parking":
            raise ValueError(f"lanes: only no_parking zones have traffic lanes; this zone is {self.kind}")
        if self.kind == "bike_bay" and self.capacity is None:
            raise ValueError("capacity: a bike_bay zone needs a capacity (how many bikes the bay holds)")
        if self.kind not in ("bike_bay", "count") and self.capacity is not None:
            raise ValueError(
                f"capacity: only bike_bay and count zones have a capacity; this zone is {self.kind}"
            )
        if self.kind == "count" and self.capacity == 0:
            raise ValueError("capacity: a count zone's capacity must be at least 1 (or leave it out)")
        return self

    def class_names(self) -> list[str]:
        return list(self.classes) if self.classes is not None else list(DEFAULT_ZONE_CLASSES[self.kind])


class LineConfig(StrictModel):
    """A counting line; crossing it from left to right (seen from a to b) counts as 'in'."""

    id: str = Field(..., min_length=1, description="Line id, unique within the camera.")
    a: Point = Field(..., description="First end [x, y], normalised 0..1.")
    b: Point = Field(..., description="Second end [x, y], normalised 0..1.")
    classes: list[str] = Field(
        default_factory=lambda: ["person"],
        description="Class names or groups counted when crossing this line.",
    )

    @field_validator("a", "b")
    @classmethod
    def _point(cls, v: Point) -> Point:
        return check_point(v)

    @field_validator("classes")
    @classmethod
    def _classes(cls, v: list[str]) -> list[str]:
        check_classes(v)
        return v

    @model_validator(mode="after")
    def _length(self) -> LineConfig:
        if self.a == self.b:
            raise ValueError("b: equals a, so the line has no length; give two different end points")
        return self


class CalibrationConfig(StrictModel):
    """Ground-plane calibration: image points (normalised) and their positions in metres."""

    image_points: list[Point] = Field(..., description="At least 4 points [x, y] in 0..1 of the frame.")
    ground_points_m: list[Point] = Field(..., description="The same points on the ground, [x, y] in metres.")

    @field_validator("image_points")
    @classmethod
    def _img(cls, v: list[Point]) -> list[Point]:
        if len(v) < 4:
            raise ValueError(f"needs at least 4 points for a homography, got {len(v)}")
        for p in v:
            check_point(p)
        return v

    @model_validator(mode="after")
    def _same_len(self) -> CalibrationConfig:
        if len(self.ground_points_m) != len(self.image_points):
            raise ValueError(
                f"ground_points_m: has {len(self.ground_points_m)} points but image_points has "
                f"{len(self.image_points)}; give one ground position per image point"
            )
        return self
