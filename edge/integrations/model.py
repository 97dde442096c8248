"""The box's current state in typed form: what the state topics, Home Assistant and /metrics show.

``ZoneState.from_view`` reads a zone's view from ``CameraAnalytics.zone_states()`` defensively: the
rules own those dicts and may add or rename keys, so a missing or oddly typed value becomes None
(left out of what is published) rather than an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edge.classes import CLASSES, resolve
from edge.config.zones import ZoneConfig

LOS_LEVELS: tuple[str, ...] = ("A", "B", "C", "D", "E", "F")


def _int(v: Any) -> int | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return int(v) if math.isfinite(v) else None


def _num(v: Any, ndigits: int = 3) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return round(float(v), ndigits)


def _counts(view: Mapping[str, Any]) -> dict[str, int]:
    """Objects in the zone by class: the rule's own breakdown (a bay's ``by_class``, consistent with the
    bay's count) when it has one, else ``counts`` (every zone's members by class)."""
    raw = view.get("by_class")
    if not isinstance(raw, Mapping):
        raw = view.get("counts")
    if not isinstance(raw, Mapping):
        return {}
    out: dict[str, int] = {}
    for k, v in raw.items():
        n = _int(v)
        if isinstance(k, str) and n is not None and n > 0:
            out[k] = n
    return dict(sorted(out.items()))


def zone_classes(zone: ZoneConfig) -> tuple[str, ...]:
    """The canonical classes a zone watches, in canonical order (groups expanded)."""
    ids = resolve(zone.class_names())
    return tuple(CLASSES[i] for i in sorted(ids))


@dataclass(frozen=True, slots=True)
class ZoneState:
    """One zone now. ``count`` is None until the camera has processed a frame."""

    camera_id: str
    zone_id: str
    kind: str
    classes: tuple[str, ...]  # what the zone watches
    active: bool = True  # schedule in force
    count: int | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    capacity: int | None = None
    occupancy: float | None = None  # count / capacity
    density: float | None = None  # persons per m2 (crowd zones with an area)
    los: str | None = None  # level of service A-F
    overflow: bool | None = None  # bike bays
    violations: int | None = None  # no-parking zones: open violations

    @classmethod
    def from_view(cls, camera_id: str, zone: ZoneConfig, view: Mapping[str, Any]) -> ZoneState:
        los = view.get("los")
        overflow = view.get("overflow")
        violations = view.get("violations")
        active = view.get("active", True)
        return cls(
            camera_id=camera_id,
            zone_id=zone.id,
            kind=str(view.get("kind", zone.kind)),
            classes=zone_classes(zone),
            active=bool(active) if isinstance(active, bool) else True,
            count=_int(view.get("count")),
            counts=_counts(view),
            capacity=_int(view.get("capacity")),
            occupancy=_num(view.get("occupancy")),
            density=_num(view.get("density"), 4),
            los=los if isinstance(los, str) and los in LOS_LEVELS else None,
            overflow=overflow if isinstance(overflow, bool) else None,
            violations=len(violations) if isinstance(violations, list | tuple) else _int(violations),
        )

    @property
    def has_density(self) -> bool:
        return self.density is not None


@dataclass(frozen=True, slots=True)
class CameraState:
    """One camera now: delivering frames, its tamper faults, its zones."""

    camera_id: str
    online: bool
    tamper_checked: bool  # a tamper monitor runs on this camera
    faults: tuple[str, ...] = ()  # active tamper faults
    ts: float | None = None  # UTC epoch of the last processed frame (the camera's own clock)
    zones: tuple[ZoneState, ...] = ()

    @property
    def tampered(self) -> bool:
        return bool(self.faults)


@dataclass(frozen=True, slots=True)
class BoxState:
    """The box now: its cameras and the enclosure door (None: no door switch)."""

    cameras: tuple[CameraState, ...]
    door_open: bool | None = None
