"""Rule parameters: tracker, zone membership, parking, bikes and livery, crowds, features and lines.

Shared by every camera of a site (``rules:`` in the site config); the zones they apply to are in
``edge.config.zones``.
"""

from __future__ import annotations

import itertools
from typing import Literal

from pydantic import field_validator, model_validator

from edge.config.base import Field, StrictModel
from edge.config.zones import LosLevel, check_classes


class TrackerConfig(StrictModel):
    """ByteTrack-style tracker. All lifetimes are seconds."""

    high_score: float = Field(
        0.35,
        gt=0,
        le=1,
        description="Detections at or above this score take part in the first association (small models score far objects low).",
    )
    low_score: float = Field(
        0.1, ge=0, le=1, description="Detections between this and high_score only extend existing tracks."
    )
    new_track_score: float = Field(
        0.35, gt=0, le=1, description="Minimum score for an unmatched detection to start a track."
    )
    low_birth_score: float = Field(
        0.2,
        gt=0,
        le=1,
        description=(
            "Detections from this score up to new_track_score also start tracks, but only once seen in "
            "the same place for low_confirm_s (a parked bike or car a small model scores 0.3 every frame "
            "is real; a one-frame 0.3 is not). Set it equal to new_track_score to turn this off."
        ),
    )
    low_confirm_s: float = Field(
        1.5,
        ge=0,
        description="How long a track started by a low-score detection must be matched before it is confirmed.",
    )
    match_iou: float = Field(
        0.2, gt=0, le=1, description="Minimum IoU between prediction and detection in the first association."
    )
    low_match_iou: float = Field(
        0.4, gt=0, le=1, description="Minimum IoU in the second (low-score) association."
    )
    confirm_s: float = Field(
        0.3, ge=0, description="A new track is confirmed once it has been matched for this long."
    )
    lost_s: float = Field(
        2.0, gt=0, description="How long a moving track survives without detections (occlusion buffer)."
    )
    place_memory_s: float = Field(
        600.0,
        gt=0,
        description="How long the place of a vanished stationary object is remembered, so it continues the same track.",
    )
    place_iou: float = Field(
        0.45,
        gt=0,
        le=1,
        description="Minimum IoU between a remembered place and a detection to continue that track.",
    )
    stationary_ratio: float = Field(
        0.15,
        gt=0,
        description="An object is still while its anchor stays within this fraction of its box size of where it stopped.",
    )
    stationary_after_s: float = Field(3.0, ge=0, description="Still for this long makes a track stationary.")
    smoothing_s: float = Field(
        0.5, gt=0, description="Time constant of the anchor/velocity smoothing (rejects detector jitter)."
    )

    @model_validator(mode="after")
    def _scores(self) -> TrackerConfig:
        if self.low_score > self.high_score:
            raise ValueError("low_score: must be <= high_score")
        if not self.low_score <= self.low_birth_score <= self.new_track_score:
            raise ValueError(
                f"low_birth_score: {self.low_birth_score} must lie between low_score ({self.low_score}) "
                f"and new_track_score ({self.new_track_score})"
            )
        return self


class MembershipConfig(StrictModel):
    """Zone membership inertia, so a box wobbling on a zone edge does not flicker in and out."""

    enter_s: float = Field(
        1.0, ge=0, description="An object must be inside for this long before it counts as in the zone."
    )
    exit_s: float = Field(
        2.0, ge=0, description="A visible object must be outside for this long before it counts as out."
    )
    edge_margin: float = Field(
        0.15,
        ge=0,
        description="Once in, an object stays in until its anchor is this fraction of its box height outside the edge.",
    )
    hold_unseen_s: float = Field(
        5.0,
        ge=0,
        description=(
            "An object that vanishes (occluded, missed) still counts as a member of the zone for this long "
            "(may be shorter than exit_s). Crowd zones count what is visible now and do not hold anyone."
        ),
    )


class ParkingConfig(StrictModel):
    """Parking violations in no_parking zones."""

    classes: list[str] = Field(
        default_factory=lambda: ["car", "bus", "truck", "motorcycle"],
        description="Vehicle classes or groups that can violate.",
    )
    grace_s: float = Field(
        300.0, ge=0, description="Stationary this long in an active zone starts a violation."
    )
    update_s: float = Field(60.0, gt=0, description="How often an ongoing violation reports its dwell.")
    leave_s: float = Field(
        60.0, gt=0, description="A violation ends once the vehicle has been gone (or outside) this long."
    )
    severity_step_s: float = Field(
        600.0,
        gt=0,
        description="Each step of this much overstay raises the severity one level (at most two steps).",
    )
    evidence: bool = Field(
        True, description="Attach a redacted crop at violation start when site evidence is enabled."
    )
    queue_gap: float = Field(
        1.5,
        gt=0,
        description=(
            "In a zone's lanes: two vehicles are neighbours in one queue when their ground points are at most "
            "this many box lengths (the longer side of the vehicle's box) apart."
        ),
    )
    queue_follow_s: float = Field(
        10.0,
        ge=0,
        description=(
            "A queued vehicle whose neighbour in the lane moves off (or pulls out round it) and which has not "
            "followed within this long is parked, not queuing; so is one left without a stopped neighbour."
        ),
    )
    queue_max_s: float = Field(
        180.0,
        gt=0,
        description=(
            "Longest stop a queue explains (a light cycle, a jam): a vehicle stationary in a lane longer than "
            "this is parked, whatever stands around it."
        ),
    )

    @field_validator("classes")
    @classmethod
    def _classes(cls, v: list[str]) -> list[str]:
        check_classes(v)
        return v


class OperatorConfig(StrictModel):
    """A bike-share operator recognised by the dominant colour of its livery."""

    name: str = Field(
        ..., min_length=1, description="Operator name as reported in events and dispatch tasks."
    )
    hue_deg: tuple[float, float] = Field(
        ...,
        description="Hue range [from, to] in degrees 0..360 of the livery colour; from > to wraps through 0 (reds).",
    )
    min_saturation: float = Field(
        0.35, ge=0, le=1, description="Pixels less saturated than this are not livery."
    )
    min_value: float = Field(0.25, ge=0, le=1, description="Pixels darker than this are not livery.")
    min_fraction: float | None = Field(
        None,
        gt=0,
        le=1,
        description=(
            "This operator's livery must cover at least this share of a bike's box (background discounted) "
            "to name it; None uses rules.bike.livery_min_fraction. edge-agent livery learn measures it."
        ),
    )

    @field_validator("hue_deg")
    @classmethod
    def _hue(cls, v: tuple[float, float]) -> tuple[float, float]:
        for h in v:
            if not 0 <= h <= 360:
                raise ValueError(f"hue {h} is outside 0..360 degrees")
        return v


def _default_operators() -> list[OperatorConfig]:
    return [
        OperatorConfig(name="yellow", hue_deg=(40.0, 70.0)),
        OperatorConfig(name="blue", hue_deg=(190.0, 250.0)),
        OperatorConfig(name="green", hue_deg=(80.0, 160.0)),
    ]


class BikeConfig(StrictModel):
    """Bike bays, bikes outside bays, dispatch tasks and operator livery."""

    count_ebikes: bool = Field(
        True, description="Count motorcycles (e-bikes, scooters) in bays alongside bicycles."
    )
    overflow_s: float = Field(120.0, ge=0, description="count > capacity for this long starts an overflow.")
    clear_s: float = Field(
        60.0, ge=0, description="count <= capacity - hysteresis for this long clears the overflow."
    )
    hysteresis: int = Field(
        1, ge=0, description="How far under capacity the count must fall to clear an overflow."
    )
    dwell_s: float = Field(
        300.0,
        ge=0,
        description="A bike stationary outside every bay (inside a watch area) this long is reported.",
    )
    leave_s: float = Field(
        30.0,
        gt=0,
        description="A bike_outside_bay report ends once the bike has been gone (or moved into a bay) this long.",
    )
    verify_s: float = Field(
        60.0, ge=0, description="A task resolves once the bay has been seen at or under capacity this long."
    )
    reopen_s: float = Field(
        1800.0,
        ge=0,
        description="A resolved task re-opens if the overflow returns within this; after it, it closes.",
    )
    status_debounce_s: float = Field(
        5.0, ge=0, description="A bay count must hold this long before a new bike_bay_status is sent."
    )
    operators: list[OperatorConfig] = Field(
        default_factory=_default_operators, description="Livery colour table: operator name and hue range."
    )
    blacklist: list[str] = Field(
        default_factory=list, description="Operators whose bikes are banned here (blacklisted_bike events)."
    )
    livery_min_fraction: float = Field(
        0.06,
        gt=0,
        le=1,
        description=(
            "The livery colour must cover at least this share of the bike's box (after the background "
            "discount) to name an operator, unless the operator sets its own min_fraction."
        ),
    )
    livery_background_discount: float = Field(
        0.5,
        ge=0,
        le=1,
        description=(
            "How much of the box border's colour statistics is subtracted from the inside before colours "
            "are counted (grass, poles, pavement behind the bike fill the border too); 0 turns it off."
        ),
    )
    livery_interval_s: float = Field(
        1.0, gt=0, description="How often a bike's livery is re-sampled while its operator is uncertain."
    )
    livery_votes: int = Field(3, ge=1, description="Samples agreeing on one operator before it is settled.")
    livery_model: str | None = Field(
        None,
        description="Optional vendor ONNX livery classifier manifest (used instead of the colour table when installed).",
    )

    @model_validator(mode="after")
    def _blacklist(self) -> BikeConfig:
        names = [o.name for o in self.operators]
        if len(set(names)) != len(names):
            raise ValueError("operators: operator names must be unique")
        for i, b in enumerate(self.blacklist):
            if b not in names:
                raise ValueError(
                    f"blacklist[{i}]: {b!r} is not an operator; add it to operators or use one of {names}"
                )
        return self


class CrowdConfig(StrictModel):
    """Crowd density, level of service and surges in crowd zones."""

    los_table: Literal["walkway", "queuing"] = Field(
        "walkway", description="Fruin table used to grade level of service A-F."
    )
    los_thresholds: list[float] | None = Field(
        None,
        description="Custom upper density bounds (persons/m2) of levels A..E (5 rising numbers); overrides los_table.",
    )
    smoothing_s: float = Field(
        2.0, gt=0, description="Time constant of the count/density smoothing (no flicker)."
    )
    report_s: float = Field(30.0, gt=0, description="How often each crowd zone reports crowd_density.")
    surge_delta: float = Field(0.5, gt=0, description="A density rise of this many persons/m2 ...")
    surge_window_s: float = Field(30.0, gt=0, description="... within this many seconds is a surge.")
    surge_los: LosLevel = Field("E", description="Reaching this level of service is also a surge.")
    clear_s: float = Field(
        30.0, ge=0, description="A surge ends after this long below the trigger (minus hysteresis)."
    )
    clear_hysteresis: float = Field(
        0.2,
        ge=0,
        description="Density (persons/m2) below the surge start density needed to count as clearing.",
    )

    @field_validator("los_thresholds")
    @classmethod
    def _thr(cls, v: list[float] | None) -> list[float] | None:
        if v is not None:
            if len(v) != 5 or any(b <= a for a, b in itertools.pairwise(v)) or v[0] <= 0:
                raise ValueError("needs 5 rising positive densities: upper bounds of levels A, B, C, D, E")
        return v


class FeaturesConfig(StrictModel):
    """The per-camera feature record."""

    enabled: bool = Field(True, description="Emit a features record every feature_interval_s.")
    grid: tuple[int, int] = Field(
        (16, 9), description="Occupancy grid size [columns, rows] of person-seconds."
    )
    grid_classes: list[str] = Field(
        default_factory=lambda: ["person"], description="Classes accumulated in the grid."
    )

    @field_validator("grid")
    @classmethod
    def _grid(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not (1 <= v[0] <= 64 and 1 <= v[1] <= 64):
            raise ValueError(f"columns and rows must be 1..64, got {v[0]}x{v[1]}")
        return v

    @field_validator("grid_classes")
    @classmethod
    def _classes(cls, v: list[str]) -> list[str]:
        check_classes(v)
        return v


class RulesConfig(StrictModel):
    """Parameters of the street rules, shared by every camera unless a zone overrides them."""

    feature_interval_s: float = Field(60.0, gt=0, description="How often each camera emits a feature record.")
    tracker: TrackerConfig = Field(default_factory=TrackerConfig, description="Multi-object tracker.")
    membership: MembershipConfig = Field(
        default_factory=MembershipConfig, description="Zone membership inertia."
    )
    parking: ParkingConfig = Field(default_factory=ParkingConfig, description="Parking violations.")
    bike: BikeConfig = Field(default_factory=BikeConfig, description="Bike bays, dispatch and livery.")
    crowd: CrowdConfig = Field(default_factory=CrowdConfig, description="Crowd density and surges.")
    features: FeaturesConfig = Field(default_factory=FeaturesConfig, description="Feature records.")
    line_events: bool = Field(
        True, description="Emit a line_crossing event per crossing (counts are always in features)."
    )
    line_band: float = Field(
        0.03,
        ge=0,
        description="A crossing counts once the anchor is this fraction of its box height past the line (no double counts from jitter).",
    )
    line_hold_s: float = Field(
        0.5,
        ge=0,
        le=10,
        description="A crossing counts once the anchor has stayed on the other side this long (no counts from a box jittering on the line or clipped by the frame edge).",
    )
