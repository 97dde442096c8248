"""Windowed, time-weighted per-zone features and a coarse occupancy grid (person-seconds per cell).

Everything accumulates with the time between frames (``dt``, capped so a stalled camera does not
inflate the numbers), never per frame, so the values do not depend on the frame rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.classes import CLASSES
from edge.types import FeatureValue

_NAMES = ("other", *CLASSES)
MAX_DT_S = 2.0


class OccupancyGrid:
    """cols x rows cells of object-seconds over the frame (a heat-map feature)."""

    def __init__(self, cols: int, rows: int) -> None:
        self.cols, self.rows = cols, rows
        self.cells = np.zeros((rows, cols), np.float64)

    def add(self, anchors: np.ndarray, width: int, height: int, dt: float) -> None:
        if anchors.shape[0] == 0 or dt <= 0:
            return
        c = np.clip((anchors[:, 0] / max(width, 1) * self.cols).astype(np.intp), 0, self.cols - 1)
        r = np.clip((anchors[:, 1] / max(height, 1) * self.rows).astype(np.intp), 0, self.rows - 1)
        np.add.at(self.cells, (r, c), dt)

    def take(self) -> list[list[int]]:
        out = np.rint(self.cells).astype(np.int64).tolist()
        self.cells[:] = 0.0
        return out


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


class FeatureAggregator:
    def __init__(
        self, zones: list[tuple[str, str, int | None]], line_ids: list[str], grid: tuple[int, int]
    ) -> None:
        self.zone_ids = [z for z, _, _ in zones]
        self.acc = [_ZoneAcc(kind=k, capacity=c) for _, k, c in zones]
        self.line_ids = list(line_ids)
        self.line_in = np.zeros(len(line_ids), np.int64)
        self.line_out = np.zeros(len(line_ids), np.int64)
        self.grid = OccupancyGrid(*grid)
        self.window_start_t: float | None = None
        self._last_t: float | None = None

    def step_dt(self, t: float) -> float:
        dt = 0.0 if self._last_t is None else min(max(t - self._last_t, 0.0), MAX_DT_S)
        self._last_t = t
        if self.window_start_t is None:
            self.window_start_t = t
        return dt

    def add_zones(
        self,
        dt: float,
        t: float,
        all_inside: np.ndarray,
        all_class: np.ndarray,
        all_entered: np.ndarray,
        entries: np.ndarray,
        exits: np.ndarray,
        densities: dict[int, float],
        motion: dict[int, float],
    ) -> None:
        """One step of per-zone accumulation; (K,Z) membership of every held object."""
        cls = np.clip(all_class, -1, len(CLASSES) - 1) + 1
        for zi, acc in enumerate(self.acc):
            inside = all_inside[:, zi]
            counts = np.bincount(cls[inside], minlength=len(_NAMES))
            acc.count_now = counts
            acc.count_max = np.maximum(acc.count_max, counts)
            acc.entries += int(entries[zi])
            acc.exits += int(exits[zi])
            n = int(counts.sum())
            if n:
                dwell = t - all_entered[inside, zi]
                acc.dwell_max = max(acc.dwell_max, float(dwell.max()))
                if dt > 0:
                    acc.dwell_sum += float(dwell.mean()) * dt
                    acc.dwell_w += dt
            if zi in densities:
                d = densities[zi]
                acc.density_max = d if acc.density_max is None else max(acc.density_max, d)
                acc.density_s += d * dt
                acc.density_w += dt
            if zi in motion and dt > 0:
                acc.motion_s += motion[zi] * dt
                acc.motion_w += dt
            if dt > 0:
                acc.weight_s += dt
                acc.count_s += counts * dt
                acc.total_s += n * dt
                acc.occupied_s += dt if n else 0.0

    def add_lines(self, step_in: np.ndarray, step_out: np.ndarray) -> None:
        self.line_in += step_in
        self.line_out += step_out

    def due(self, t: float, interval_s: float) -> bool:
        return self.window_start_t is not None and t - self.window_start_t >= interval_s - 1e-9

    def record(self, t: float, los: dict[int, str | None]) -> dict[str, object]:
        """The payload of one ``features`` record; resets the window."""
        interval = t - (self.window_start_t if self.window_start_t is not None else t)
        zones: dict[str, object] = {}
        for zi, (zid, acc) in enumerate(zip(self.zone_ids, self.acc, strict=True)):
            w = acc.weight_s
            mean_count = acc.total_s / w if w else 0.0
            if acc.capacity:
                occupancy = mean_count / acc.capacity
            else:
                occupancy = acc.occupied_s / w if w else 0.0
            zones[zid] = {
                "kind": acc.kind,
                "count": {_NAMES[i]: int(c) for i, c in enumerate(acc.count_now) if c},
                "count_mean": {
                    _NAMES[i]: round(float(c) / w, 2) for i, c in enumerate(acc.count_s) if c and w
                },
                "count_max": {_NAMES[i]: int(c) for i, c in enumerate(acc.count_max) if c},
                "occupancy": round(occupancy, 3),
                "dwell_mean_s": round(acc.dwell_sum / acc.dwell_w, 1) if acc.dwell_w else None,
                "dwell_max_s": round(acc.dwell_max, 1) if acc.dwell_max else None,
                "density": round(acc.density_s / acc.density_w, 3) if acc.density_w else None,
                "density_max": round(acc.density_max, 3) if acc.density_max is not None else None,
                "los": los.get(zi),
                "in": acc.entries,
                "out": acc.exits,
                "motion_energy": round(acc.motion_s / acc.motion_w, 4) if acc.motion_w else None,
            }
            acc.reset()
        lines = {
            lid: {"in": int(self.line_in[i]), "out": int(self.line_out[i])}
            for i, lid in enumerate(self.line_ids)
        }
        self.line_in[:] = 0
        self.line_out[:] = 0
        payload: dict[str, object] = {
            "interval_s": round(interval, 3),
            "zones": zones,
            "lines": lines,
            "grid": {"cols": self.grid.cols, "rows": self.grid.rows, "cells": self.grid.take()},
        }
        self.window_start_t = t
        return payload

    @staticmethod
    def values(payload: dict[str, object], t: float) -> list[FeatureValue]:
        """The record as flat ``FeatureValue`` rows (for local storage or metrics)."""
        out: list[FeatureValue] = []
        window = float(payload["interval_s"])  # type: ignore[arg-type]
        zones = payload["zones"]
        assert isinstance(zones, dict)
        for zid, z in zones.items():
            for cls, c in z["count_mean"].items():
                out.append(FeatureValue(f"count.{cls}", zid, float(c), "1", window, t))
            out.append(FeatureValue("occupancy", zid, float(z["occupancy"]), "ratio", window, t))
            for key, unit in (
                ("dwell_mean_s", "s"),
                ("dwell_max_s", "s"),
                ("density", "persons/m2"),
                ("motion_energy", "1"),
            ):
                if z[key] is not None:
                    out.append(FeatureValue(key, zid, float(z[key]), unit, window, t))
            out.append(FeatureValue("in", zid, float(z["in"]), "1", window, t))
            out.append(FeatureValue("out", zid, float(z["out"]), "1", window, t))
        lines = payload["lines"]
        assert isinstance(lines, dict)
        for lid, v in lines.items():
            out.append(FeatureValue("in", lid, float(v["in"]), "1", window, t))
            out.append(FeatureValue("out", lid, float(v["out"]), "1", window, t))
        return out
