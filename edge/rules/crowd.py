"""Crowd density, Fruin level of service and surges in ``crowd`` zones.

A crowd zone's count is what is visible now: the confirmed tracks seen in this frame whose anchor is in
the zone plus the frame's detections no track has taken yet (``StepContext.visible``), so a person whose
track was lost and found again under a new id is counted once, and a restart counts the people in view
at once instead of waiting for their tracks to be confirmed. ``smoothing_s`` smooths it over time for
density, level of service and surges.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from edge.config.rules import CrowdConfig
from edge.config.zones import ZoneConfig
from edge.rules.context import StepContext, draft, fmt_duration
from edge.types import EventDraft

LEVELS = ("A", "B", "C", "D", "E", "F")
# Upper density bounds (persons/m2) of levels A..E; above the last is F.
# Fruin walkway: A > 3.25 m2/p, B 2.32-3.25, C 1.39-2.32, D 0.93-1.39, E 0.46-0.93, F < 0.46 m2/p.
# Fruin queuing: A > 1.21 m2/p, B 0.93-1.21, C 0.65-0.93, D 0.28-0.65, E 0.19-0.28, F < 0.19 m2/p.
LOS_TABLES: dict[str, tuple[float, ...]] = {
    "walkway": (1 / 3.25, 1 / 2.32, 1 / 1.39, 1 / 0.93, 1 / 0.46),
    "queuing": (1 / 1.21, 1 / 0.93, 1 / 0.65, 1 / 0.28, 1 / 0.19),
}


def level_of_service(density: float, bounds: tuple[float, ...] | list[float]) -> str:
    return LEVELS[int(np.searchsorted(np.asarray(bounds), density, side="left"))]


@dataclass(slots=True)
class _CrowdZone:
    zi: int
    zone: ZoneConfig
    area_m2: float | None
    bounds: tuple[float, ...]
    table: str
    count_s: float | None = None  # smoothed count
    last_t: float | None = None
    history: deque[tuple[float, float]] = field(default_factory=deque)
    last_report_t: float | None = None
    surge_key: str | None = None
    surge_start_ts: float = 0.0
    surge_density: float = 0.0
    surge_peak: float = 0.0
    surge_los: str = "A"  # highest level of service reached in this surge
    clear_since: float | None = None
    raw_count: int = 0


class CrowdRule:
    def __init__(self, zones: list[tuple[int, ZoneConfig, float | None]], cfg: CrowdConfig) -> None:
        self.cfg = cfg
        self.zones: list[_CrowdZone] = []
        for zi, z, area in zones:
            table = z.los_table or cfg.los_table
            bounds = tuple(cfg.los_thresholds) if cfg.los_thresholds is not None else LOS_TABLES[table]
            self.zones.append(_CrowdZone(zi=zi, zone=z, area_m2=area, bounds=bounds, table=table))
        self.surge_level = LEVELS.index(cfg.surge_los)

    @staticmethod
    def level_of_service(cz: _CrowdZone) -> str | None:
        """The zone's level of service now (smoothed count over its area), None without an area."""
        if not cz.area_m2:
            return None
        return level_of_service((cz.count_s or 0.0) / cz.area_m2, cz.bounds)

    def state(self, cz: _CrowdZone) -> dict[str, object]:
        count = cz.count_s or 0.0
        density = count / cz.area_m2 if cz.area_m2 else None
        return {
            "count": cz.raw_count,
            "count_smoothed": round(float(count), 2),
            "area_m2": round(float(cz.area_m2), 2) if cz.area_m2 else None,
            "density": round(float(density), 3) if density is not None else None,
            "los": self.level_of_service(cz),
            "los_table": cz.table,
        }

    def update(self, ctx: StepContext) -> list[EventDraft]:
        out: list[EventDraft] = []
        cfg = self.cfg
        for cz in self.zones:
            # What is visible now (seen tracks and not-yet-confirmed detections inside the zone), never the
            # members held while unseen: a lost or fragmented track would count one person twice.
            if ctx.visible is not None:
                raw = int(ctx.visible[cz.zi].sum())
            else:
                raw = int(ctx.member.inside[:, cz.zi].sum())
            cz.raw_count = raw
            if cz.count_s is None or cz.last_t is None:
                cz.count_s = float(raw)
            else:
                k = 1.0 - float(np.exp(-max(ctx.t - cz.last_t, 0.0) / cfg.smoothing_s))
                cz.count_s += k * (raw - cz.count_s)
            cz.last_t = ctx.t
            if cz.last_report_t is None or ctx.t - cz.last_report_t >= cfg.report_s - 1e-9:
                cz.last_report_t = ctx.t
                st = self.state(cz)
                out.append(
                    draft(
                        ctx,
                        kind="crowd_density",
                        phase="instant",
                        key=f"crowd_density:{ctx.camera_id}:{cz.zone.id}",
                        zone_id=cz.zone.id,
                        payload=st,
                    )
                )
            if not cz.area_m2:
                continue
            density = cz.count_s / cz.area_m2
            # Sliding-window minimum: a deque of increasing densities (amortised O(1)).
            while cz.history and cz.history[-1][1] >= density:
                cz.history.pop()
            cz.history.append((ctx.t, density))
            while ctx.t - cz.history[0][0] > cfg.surge_window_s:
                cz.history.popleft()
            low = cz.history[0][1]
            rise = density - low
            los = level_of_service(density, cz.bounds)
            by_rise = rise >= cfg.surge_delta - 1e-9
            by_los = LEVELS.index(los) >= self.surge_level
            if cz.surge_key is None:
                if by_rise or by_los:
                    cz.surge_key = f"crowd_surge:{ctx.camera_id}:{cz.zone.id}:{int(ctx.ts)}"
                    cz.surge_start_ts, cz.surge_density, cz.surge_peak, cz.surge_los = (
                        ctx.ts,
                        density,
                        density,
                        los,
                    )
                    cz.clear_since = None
                    trig = "rise" if by_rise else "los"
                    reason = (
                        f"density rose {rise:.2f}/m2 to {density:.2f}/m2 within {fmt_duration(cfg.surge_window_s)}"
                        if by_rise
                        else f"level of service {los} reached ({density:.2f}/m2)"
                    )
                    out.append(self._surge(ctx, cz, "start", density, los, rise, trig, reason))
            else:
                cz.surge_peak = max(cz.surge_peak, density)
                if LEVELS.index(los) > LEVELS.index(cz.surge_los):  # report escalation only
                    cz.surge_los = los
                    out.append(
                        self._surge(
                            ctx, cz, "update", density, los, rise, None, f"level of service now {los}"
                        )
                    )
                calm = (
                    density <= cz.surge_density - cfg.clear_hysteresis
                    and LEVELS.index(los) < self.surge_level
                    and not by_rise
                )
                if calm:
                    cz.clear_since = ctx.t if cz.clear_since is None else cz.clear_since
                    if ctx.t - cz.clear_since >= cfg.clear_s - 1e-9:
                        out.append(
                            self._surge(
                                ctx,
                                cz,
                                "end",
                                density,
                                los,
                                rise,
                                None,
                                f"cleared: {density:.2f}/m2, level {los} for {fmt_duration(cfg.clear_s)}",
                            )
                        )
                        cz.surge_key, cz.clear_since = None, None
                else:
                    cz.clear_since = None
        return out

    def _surge(
        self,
        ctx: StepContext,
        cz: _CrowdZone,
        phase: str,
        density: float,
        los: str,
        rise: float,
        trigger: str | None,
        reason: str,
    ) -> EventDraft:
        lvl = LEVELS.index(los)
        sev = (
            "info"
            if phase == "end"
            else "critical"
            if lvl >= 5
            else "major"
            if lvl >= self.surge_level
            else "minor"
        )
        return draft(
            ctx,
            kind="crowd_surge",
            phase=phase,
            key=cz.surge_key or "",
            zone_id=cz.zone.id,
            severity=sev,
            severity_reason=reason,
            started_ts=cz.surge_start_ts,
            payload={
                "count": cz.raw_count,
                "density": round(float(density), 3),
                "los": los,
                "rise": round(float(rise), 3),
                "window_s": self.cfg.surge_window_s,
                "trigger": trigger,
                "peak_density": round(float(cz.surge_peak), 3),
            },
        )

    def densities(self) -> dict[int, float]:
        """Zone index -> smoothed persons/m2 of every crowd zone with an area."""
        return {cz.zi: cz.count_s / cz.area_m2 for cz in self.zones if cz.area_m2 and cz.count_s is not None}

    def views(self) -> dict[str, dict[str, object]]:
        return {cz.zone.id: self.state(cz) for cz in self.zones}
