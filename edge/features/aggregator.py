"""The feature stage: windowed, time-weighted per-zone numbers and a coarse occupancy grid.

``FeatureAggregator(zones, lines, cfg)`` is built from a camera's zone and line configs; each frame the
rules hand it one ``ZoneObservation`` (who is in which zone, densities, motion, line crossings);
every ``feature_interval_s`` it returns a typed ``FeatureRecord`` whose ``payload()`` is the
``features`` event. Everything accumulates with the time between frames (``dt``, capped so a
stalled camera does not inflate the numbers), never per frame, so values do not depend on the
frame rate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from edge.classes import CLASSES
from edge.config.rules import FeaturesConfig
from edge.config.zones import LineConfig, ZoneConfig
from edge.zones.membership import MembershipView

_NAMES = ("other", *CLASSES)
MAX_DT_S = 2.0


class OccupancyGrid:
    """cols x rows cells of object-seconds over the frame: the current window and the total since start."""

    def __init__(self, cols: int, rows: int) -> None:
        self.cols, self.rows = cols, rows
        self.cells = np.zeros((rows, cols), np.float64)  # this feature window
        self.total = np.zeros((rows, cols), np.float64)  # since start (replay's heat map)

    def add(self, anchors: np.ndarray, width: int, height: int, dt: float) -> None:
        """Add ``dt`` seconds to the cell under each (N,2) pixel anchor of a ``width`` x ``height`` frame."""
        if anchors.shape[0] == 0 or dt <= 0:
            return
        c = np.clip((anchors[:, 0] / max(width, 1) * self.cols).astype(np.intp), 0, self.cols - 1)
        r = np.clip((anchors[:, 1] / max(height, 1) * self.rows).astype(np.intp), 0, self.rows - 1)
        np.add.at(self.cells, (r, c), dt)
        np.add.at(self.total, (r, c), dt)

    def take(self) -> list[list[int]]:
        """The window's cells in whole seconds; starts the next window."""
        out = np.rint(self.cells).astype(np.int64).tolist()
        self.cells[:] = 0.0
        return out


@dataclass(frozen=True, slots=True)
class ZoneObservation:
    """What the feature stage takes from one frame of the rules stage."""

    t: float
    member: MembershipView  # every held object's zones, entry times, this step's entries/exits
    class_id: np.ndarray  # (K,) last known class of each id in member.all_ids
    density: Mapping[int, float]  # zone index -> persons/m2 (crowd zones with an area)
    motion: Mapping[int, float]  # zone index -> motion energy (0..1)
    line_in: np.ndarray  # (L,) crossings this step
    line_out: np.ndarray  # (L,)
    grid_anchors: np.ndarray  # (M,2) px anchors of the objects the grid accumulates
    frame_size: tuple[int, int]  # (width, height) px
    # zone index -> (1 + len(CLASSES),) counts by class that replace the members' count (crowd zones
    # count what is visible now; column 0 is 'other')
    counts_now: Mapping[int, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ZoneFeatures:
    """One zone's numbers over one feature window."""

    kind: str
    count: dict[str, int]  # by class, now
    count_mean: dict[str, float]  # by class, time-weighted over the window
    count_max: dict[str, int]
    occupancy: float  # mean count / capacity (zones with a capacity), else the fraction of time occupied
    dwell_mean_s: float | None
    dwell_max_s: float | None
    density: float | None  # persons/m2, time-weighted
    density_max: float | None
    los: str | None
    entries: int
    exits: int
    motion_energy: float | None
    capacity: int | None = None  # bays and count zones with a capacity

    def payload(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "count": self.count,
            "count_mean": self.count_mean,
            "count_max": self.count_max,
            "occupancy": self.occupancy,
            **({"capacity": self.capacity} if self.capacity is not None else {}),
            "dwell_mean_s": self.dwell_mean_s,
            "dwell_max_s": self.dwell_max_s,
            "density": self.density,
            "density_max": self.density_max,
            "los": self.los,
            "in": self.entries,
            "out": self.exits,
            "motion_energy": self.motion_energy,
        }


@dataclass(frozen=True, slots=True)
class FeatureRecord:
    """One camera's feature window: per zone, per line, and the occupancy grid."""

    interval_s: float
    zones: dict[str, ZoneFeatures]
    lines: dict[str, tuple[int, int]]  # line id -> (in, out)
    grid_cols: int
    grid_rows: int
    grid_cells: list[list[int]]  # object-seconds per cell, rows x cols

    def payload(self) -> dict[str, object]:
        """The ``features`` event payload (``edge/events/schemas/kinds/features.json``)."""
        return {
            "interval_s": round(self.interval_s, 3),
            "zones": {zid: z.payload() for zid, z in self.zones.items()},
            "lines": {lid: {"in": i, "out": o} for lid, (i, o) in self.lines.items()},
            "grid": {"cols": self.grid_cols, "rows": self.grid_rows, "cells": self.grid_cells},
        }


@dataclass(slots=True)
class _ZoneAcc:
    kind: str
    capacity: int | None
    weight_s: float = 0.0
    count_s: np.ndarray = field(default_factory=lambda: np.zeros(len(_NAMES)))
    count_max: np.ndarray = field(default_factory=lambda: np.zeros(len(_NAMES), np.int64))
    count_now: np.ndarray = field(default_factory=lambda: np.zeros(len(_NAMES), np.int64))
    total_s: float = 0.0
    occupied_s: float = 0.0
    dwell_sum: float = 0.0
    dwell_w: float = 0.0
    dwell_max: float = 0.0
    density_s: float = 0.0
    density_max: float | None = None
    density_w: float = 0.0
    entries: int = 0
    exits: int = 0
    motion_s: float = 0.0
    motion_w: float = 0.0

    def reset(self) -> None:
        fresh = _ZoneAcc(kind=self.kind, capacity=self.capacity)
        fresh.count_now = self.count_now.copy()
        for name in self.__slots__:  # type: ignore[attr-defined]
            setattr(self, name, getattr(fresh, name))

    def add(self, counts: np.ndarray, dwell: np.ndarray, dt: float) -> None:
        self.count_now = counts
        self.count_max = np.maximum(self.count_max, counts)
        n = int(counts.sum())
        if dwell.size:  # the members' time in the zone (a crowd zone's visible count may differ from them)
            self.dwell_max = max(self.dwell_max, float(dwell.max()))
            if dt > 0:
                self.dwell_sum += float(dwell.mean()) * dt
                self.dwell_w += dt
        if dt > 0:
            self.weight_s += dt
            self.count_s += counts * dt
            self.total_s += n * dt
            self.occupied_s += dt if n else 0.0

    def features(self, los: str | None) -> ZoneFeatures:
        w = self.weight_s
        mean_count = self.total_s / w if w else 0.0
        occupancy = mean_count / self.capacity if self.capacity else (self.occupied_s / w if w else 0.0)
        return ZoneFeatures(
            kind=self.kind,
            count={_NAMES[i]: int(c) for i, c in enumerate(self.count_now) if c},
            count_mean={_NAMES[i]: round(float(c) / w, 2) for i, c in enumerate(self.count_s) if c and w},
            count_max={_NAMES[i]: int(c) for i, c in enumerate(self.count_max) if c},
            occupancy=round(occupancy, 3),
            dwell_mean_s=round(self.dwell_sum / self.dwell_w, 1) if self.dwell_w else None,
            dwell_max_s=round(self.dwell_max, 1) if self.dwell_max else None,
            density=round(self.density_s / self.density_w, 3) if self.density_w else None,
            density_max=round(self.density_max, 3) if self.density_max is not None else None,
            los=los,
            entries=self.entries,
            exits=self.exits,
            motion_energy=round(self.motion_s / self.motion_w, 4) if self.motion_w else None,
            capacity=self.capacity,
        )


class FeatureAggregator:
    """Accumulates ``ZoneObservation``s; ``record()`` closes a window into a ``FeatureRecord``."""

    def __init__(self, zones: Sequence[ZoneConfig], lines: Sequence[LineConfig], cfg: FeaturesConfig) -> None:
        self.zone_ids = [z.id for z in zones]
        self.acc = [_ZoneAcc(kind=z.kind, capacity=z.capacity) for z in zones]
        self.line_ids = [ln.id for ln in lines]
        self.line_in = np.zeros(len(self.line_ids), np.int64)
        self.line_out = np.zeros(len(self.line_ids), np.int64)
        self.grid = OccupancyGrid(*cfg.grid)
        self.window_start_t: float | None = None
        self._last_t: float | None = None

    def add(self, obs: ZoneObservation) -> None:
        """One frame: per-zone counts by class, dwell, density, motion, crossings and the grid."""
        t = obs.t
        dt = 0.0 if self._last_t is None else min(max(t - self._last_t, 0.0), MAX_DT_S)
        self._last_t = t
        if self.window_start_t is None:
            self.window_start_t = t
        m = obs.member
        cls = np.clip(obs.class_id, -1, len(CLASSES) - 1) + 1
        for zi, acc in enumerate(self.acc):
            inside = m.all_inside[:, zi]
            counts = obs.counts_now.get(zi)
            if counts is None:
                counts = np.bincount(cls[inside], minlength=len(_NAMES))
            acc.add(np.asarray(counts, np.int64), t - m.all_entered_t[inside, zi], dt)
            acc.entries += int(m.entries[zi])
            acc.exits += int(m.exits[zi])
            if zi in obs.density:
                d = obs.density[zi]
                acc.density_max = d if acc.density_max is None else max(acc.density_max, d)
                acc.density_s += d * dt
                acc.density_w += dt
            if zi in obs.motion and dt > 0:
                acc.motion_s += obs.motion[zi] * dt
                acc.motion_w += dt
        self.line_in += obs.line_in
        self.line_out += obs.line_out
        self.grid.add(obs.grid_anchors, *obs.frame_size, dt)

    def due(self, t: float, interval_s: float) -> bool:
        return self.window_start_t is not None and t - self.window_start_t >= interval_s - 1e-9

    def record(self, t: float, los: Mapping[int, str | None]) -> FeatureRecord:
        """Close the window at ``t`` (``los``: zone index -> level of service) and start the next."""
        interval = t - (self.window_start_t if self.window_start_t is not None else t)
        zones = {}
        for zi, (zid, acc) in enumerate(zip(self.zone_ids, self.acc, strict=True)):
            zones[zid] = acc.features(los.get(zi))
            acc.reset()
        lines = {
            lid: (int(self.line_in[i]), int(self.line_out[i])) for i, lid in enumerate(self.line_ids)
        }
        self.line_in[:] = 0
        self.line_out[:] = 0
        record = FeatureRecord(
            interval_s=interval,
            zones=zones,
            lines=lines,
            grid_cols=self.grid.cols,
            grid_rows=self.grid.rows,
            grid_cells=self.grid.take(),
        )
        self.window_start_t = t
        return record
