"""Parking violations in ``no_parking`` zones: one episode (start/update/end, one key) per vehicle stay.

A queue is not parking. When the zone names its through-traffic ``lanes``, a stationary vehicle in a
lane is *queuing* (no violation starts, however long it stands, up to ``queue_max_s``) while another
vehicle of the same lane stands stopped next to it (ahead or behind, within ``queue_gap`` box lengths)
and no neighbour of that lane has moved off away from it more than ``queue_follow_s`` ago while it
stayed. In a queue at a light the cars ahead move off and the car follows within seconds; a car
standing at the kerb (outside the lanes), a car alone in the lane, or one the lane's traffic moves
past or pulls out round, is parked. When queuing ends, a violation starts at once if the vehicle has
already been stationary for the zone's limit: its dwell counts from when it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge.classes import class_name, resolve
from edge.config.rules import ParkingConfig
from edge.config.zones import ZoneConfig
from edge.geometry import points_in_polygon, to_pixels
from edge.rules.context import StepContext, draft, fmt_duration
from edge.types import SEVERITIES, EventDraft, Severity
from edge.zones.geometry import class_lut

log = logging.getLogger(__name__)

_BASE_LEVEL = {"no_stopping": 2, "no_parking": 1, "loading_bay": 1, "time_limited": 0}
_TYPE_WORDS = {
    "no_stopping": "no-stopping zone",
    "no_parking": "no-parking zone",
    "loading_bay": "loading bay",
    "time_limited": "time-limited zone",
}

# Called at violation start with (track box xyxy px, key, ts); returns an evidence reference or None.
EvidenceHook = Callable[[StepContext, np.ndarray, str], str | None]


def grade(
    dwell_s: float, limit_s: float, zone: ZoneConfig, schedule_in_force: bool, step_s: float
) -> tuple[Severity, str]:
    """Severity from overstay, zone type and schedule, with the reason in words."""
    over = max(0.0, dwell_s - limit_s)
    level = _BASE_LEVEL[zone.zone_type] + min(2, int(over // step_s))
    words = [
        f"parked {fmt_duration(dwell_s)} in {_TYPE_WORDS[zone.zone_type]}",
        f"{fmt_duration(over)} over the {fmt_duration(limit_s)} limit",
    ]
    if zone.schedule is not None and schedule_in_force:
        level += 1
        words.append("schedule in force")
    return SEVERITIES[min(level, len(SEVERITIES) - 1)], ", ".join(words)


@dataclass(slots=True)
class _Violation:
    key: str
    track_id: int
    class_id: int
    since_t: float  # start of the counted stay
    since_ts: float
    start_t: float
    start_ts: float
    last_update_t: float
    last_present_t: float
    box: np.ndarray
    evidence: str | None


MOVING_OFF_LENGTHS_PER_S = 0.1  # a neighbour drives off: at least this many of its lengths a second


@dataclass(slots=True)
class _Queuing:
    """A stationary vehicle in one of the zone's lanes, while it may be waiting in traffic."""

    lane: int
    neighbour_t: float  # last time a neighbour in its lane stood stopped next to it
    mates: dict[int, float]  # track id -> last time it stood stopped next to it (its queue-mates)
    left_behind_t: float | None = None  # first time a queue-mate drove off away from it


class QueueWatch:
    """Which stationary vehicles of a zone's lanes are queuing (see the module docstring)."""

    def __init__(self, lanes: list[list[list[float]]], cfg: ParkingConfig) -> None:
        self.lanes = [np.asarray(p, np.float64) for p in lanes]
        self.cfg = cfg
        self._px: list[np.ndarray] = []
        self._size: tuple[int, int] | None = None
        self.state: dict[int, _Queuing] = {}

    def update(self, ctx: StepContext, vehicles: np.ndarray) -> set[int]:
        """Track ids (of ``vehicles``, row indices into ctx.tracks) queuing now."""
        if not self.lanes:
            return set()
        if self._size != (ctx.width, ctx.height):
            self._size = (ctx.width, ctx.height)
            self._px = [to_pixels(p, ctx.width, ctx.height) for p in self.lanes]
        tr = ctx.tracks
        idx = np.asarray(vehicles, np.intp)
        if idx.size == 0:
            self.state.clear()
            return set()
        anchor = ctx.anchors[idx]
        lane = np.full(idx.size, -1)
        for li, poly in enumerate(self._px):
            lane[(lane < 0) & points_in_polygon(anchor, poly)] = li
        box = tr.xyxy[idx].astype(np.float64)
        length = np.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1])
        still = tr.stationary[idx]
        vel = tr.velocity[idx].astype(np.float64)
        ids = tr.track_id[idx].tolist()
        d = np.linalg.norm(anchor[:, None, :] - anchor[None, :, :], axis=2)
        near = (d <= self.cfg.queue_gap * np.maximum(length[:, None], length[None, :])) & (
            lane[:, None] == lane[None, :]
        )
        np.fill_diagonal(near, False)
        # Driving away from i: faster than a tenth of its length a second (not detector jitter), its
        # velocity pointing away from i; in the lane or pulling out of it.
        away = np.einsum("jk,ijk->ij", vel, anchor[None, :, :] - anchor[:, None, :]) > 0
        driving = ~still & (np.linalg.norm(vel, axis=1) >= MOVING_OFF_LENGTHS_PER_S * length)
        t, cfg = ctx.t, self.cfg
        pos = {tid: k for k, tid in enumerate(ids)}
        queued: set[int] = set()
        alive: set[int] = set()
        for k in np.flatnonzero((lane >= 0) & still).tolist():
            tid = ids[k]
            alive.add(tid)
            q = self.state.get(tid)
            if q is None or q.lane != lane[k]:
                q = self.state[tid] = _Queuing(lane=int(lane[k]), neighbour_t=-np.inf, mates={})
            for j in np.flatnonzero(near[k] & still).tolist():
                q.neighbour_t = t
                q.mates[ids[j]] = t
            for mate, seen_t in list(q.mates.items()):
                m = pos.get(mate)
                if t - seen_t > cfg.queue_follow_s:
                    del q.mates[mate]  # long gone from its side
                elif q.left_behind_t is None and m is not None and driving[m] and away[k, m]:
                    q.left_behind_t = t  # a queue-mate drives off; a queuing car follows soon
            if (
                float(tr.stationary_s[idx[k]]) < cfg.queue_max_s
                and t - q.neighbour_t <= cfg.queue_follow_s + 1e-9
                and (q.left_behind_t is None or t - q.left_behind_t < cfg.queue_follow_s - 1e-9)
            ):
                queued.add(tid)
        for tid in [tid for tid in self.state if tid not in alive]:
            del self.state[tid]  # moved (or gone): a new stop is a new question
        return queued


class ParkingRule:
    def __init__(
        self, zone_index: int, zone: ZoneConfig, cfg: ParkingConfig, evidence: EvidenceHook | None
    ) -> None:
        self.zi = zone_index
        self.zone = zone
        self.cfg = cfg
        self.limit_s = zone.limit_s if zone.limit_s is not None else cfg.grace_s
        self.classes = class_lut(resolve(cfg.classes))
        self.evidence = evidence
        self.active_since_t: float | None = None
        self.open: dict[int, _Violation] = {}
        self.queue = QueueWatch([[list(p) for p in lane] for lane in zone.lanes], cfg)
        self.queued: set[int] = set()

    def _payload(self, v: _Violation, ctx: StepContext, dwell: float, **extra: object) -> dict[str, object]:
        h, w = float(ctx.height), float(ctx.width)
        b = v.box
        return {
            "violation_id": v.key,
            "track_id": v.track_id,
            "class": class_name(v.class_id),
            "dwell_s": round(dwell, 1),
            "limit_s": self.limit_s,
            "over_s": round(max(0.0, dwell - self.limit_s), 1),
            "zone_type": self.zone.zone_type,
            "scheduled": self.zone.schedule is not None,
            "schedule_in_force": bool(ctx.active[self.zi]),
            "box": [
                round(float(b[0]) / w, 4),
                round(float(b[1]) / h, 4),
                round(float(b[2]) / w, 4),
                round(float(b[3]) / h, 4),
            ],
            "evidence": v.evidence,
            **extra,
        }

    def _emit(
        self, v: _Violation, ctx: StepContext, phase: str, until_t: float | None = None, **extra: object
    ) -> EventDraft:
        dwell = (ctx.t if until_t is None else until_t) - v.since_t
        sev, reason = grade(
            dwell, self.limit_s, self.zone, bool(ctx.active[self.zi]), self.cfg.severity_step_s
        )
        return draft(
            ctx,
            kind="parking_violation",
            phase=phase,
            key=v.key,
            zone_id=self.zone.id,
            severity=sev,
            severity_reason=reason,
            started_ts=v.start_ts,
            track_id=v.track_id,
            payload=self._payload(v, ctx, dwell, **extra),
        )

    def update(self, ctx: StepContext) -> list[EventDraft]:
        out: list[EventDraft] = []
        active = bool(ctx.active[self.zi])
        if not active:
            self.active_since_t = None
            for v in list(self.open.values()):
                out.append(self._emit(v, ctx, "end", end_reason="schedule ended"))
            self.open.clear()
            return out
        if self.active_since_t is None:
            self.active_since_t = ctx.t
        tr = ctx.tracks
        vehicle = self.classes[tr.class_id + 1]
        present = ctx.member.inside[:, self.zi] & vehicle
        idx = np.flatnonzero(present)
        ids = tr.track_id[idx]
        # Vehicles waiting in traffic in the zone's lanes (neighbours may stand outside the zone).
        self.queued = self.queue.update(ctx, np.flatnonzero(vehicle))
        # Open violations whose vehicle is here now.
        for j, tid in zip(idx.tolist(), ids.tolist(), strict=True):
            cur = self.open.get(tid)
            if cur is not None:
                cur.last_present_t = ctx.t
                cur.box = tr.xyxy[j].copy()
                if ctx.t - cur.last_update_t >= self.cfg.update_s - 1e-9:
                    cur.last_update_t = ctx.t
                    out.append(self._emit(cur, ctx, "update"))
        # New violations: stationary in the zone, while it is in force, longer than the limit.
        since = np.maximum.reduce(
            [
                ctx.t - tr.stationary_s[idx].astype(np.float64),
                ctx.member.entered_t[idx, self.zi],
                np.full(idx.size, self.active_since_t),
            ]
        )
        due = tr.stationary[idx] & (ctx.t - since >= self.limit_s - 1e-9)
        for j, tid, s in zip(idx[due].tolist(), ids[due].tolist(), since[due].tolist(), strict=True):
            if tid in self.open or tid in self.queued:
                continue
            key = f"parking_violation:{ctx.camera_id}:{self.zone.id}:{tid}:{int(ctx.ts)}"
            nv = _Violation(
                key=key,
                track_id=tid,
                class_id=int(tr.class_id[j]),
                since_t=s,
                since_ts=ctx.ts - (ctx.t - s),
                start_t=ctx.t,
                start_ts=ctx.ts,
                last_update_t=ctx.t,
                last_present_t=ctx.t,
                box=tr.xyxy[j].copy(),
                evidence=None,
            )
            if self.evidence is not None and self.cfg.evidence:
                try:
                    nv.evidence = self.evidence(ctx, nv.box, key)
                except Exception:  # evidence is optional; it must never stop the rule
                    log.exception("evidence crop failed for %s", key)
            self.open[tid] = nv
            out.append(self._emit(nv, ctx, "start"))
        # Vehicles gone for leave_s end their violation.
        for tid, v in list(self.open.items()):
            if ctx.t - v.last_present_t >= self.cfg.leave_s - 1e-9:
                out.append(self._emit(v, ctx, "end", until_t=v.last_present_t, end_reason="vehicle left"))
                del self.open[tid]
        return out

    def state(self) -> dict[str, object]:
        return {"violations": sorted(self.open), "queued": sorted(self.queued)}
