"""Bike bays: counts and occupancy, overflow with dispatch tasks, bikes outside bays, livery and blacklist."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from edge.classes import BICYCLE, MOTORCYCLE, class_name
from edge.config.rules import BikeConfig
from edge.rules.context import StepContext, draft, fmt_duration
from edge.rules.dispatch import DispatchBook
from edge.rules.livery import ColourLivery, LiveryClassifier
from edge.types import EventDraft
from edge.zones.geometry import class_lut

log = logging.getLogger(__name__)

#: A bay's status lists at most this many bikes (box, operator, confidence); the count is always exact.
MAX_LISTED_BIKES = 100


@dataclass(slots=True)
class _Bay:
    zi: int
    id: str
    capacity: int
    reported: int | None = None
    pending_since: float | None = None
    over_since: float | None = None
    clear_since: float | None = None
    overflow_key: str | None = None
    overflow_start_ts: float = 0.0
    peak: int = 0
    count: int = 0
    by_class: dict[str, int] = field(default_factory=dict)
    by_operator: dict[str, int] = field(default_factory=dict)
    reported_ops: dict[str, int] | None = None
    ids: list[int] = field(default_factory=list)  # track ids in the bay now (membership-smoothed)


@dataclass(slots=True)
class _Outside:
    key: str
    track_id: int
    watch_id: str
    class_id: int
    since_t: float
    start_ts: float
    last_present_t: float


class BikeRule:
    def __init__(
        self,
        camera_id: str,
        bays: list[tuple[int, str, int]],
        watches: list[tuple[int, str]],
        cfg: BikeConfig,
        livery: LiveryClassifier | None = None,
        bay_operators: dict[str, str] | None = None,
    ) -> None:
        self.cfg = cfg
        self.bays = [_Bay(zi=zi, id=zid, capacity=cap) for zi, zid, cap in bays]
        self.watches = watches
        self.bike_lut = class_lut(frozenset([BICYCLE, MOTORCYCLE] if cfg.count_ebikes else [BICYCLE]))
        self.livery: LiveryClassifier = livery or ColourLivery(
            cfg.operators, cfg.livery_min_fraction, cfg.livery_background_discount
        )
        self.dispatch = DispatchBook(camera_id, cfg.verify_s, cfg.reopen_s, bay_operators)
        self.operator: dict[int, str] = {}
        self.confidence: dict[int, float] = {}  # of the settled operator: agreement x colour confidence
        self._votes: dict[int, Counter[str | None]] = {}
        self._vote_conf: dict[int, dict[str, float]] = {}  # summed colour confidence per operator
        self._box: dict[int, tuple[float, float, float, float]] = {}  # last seen box, normalised
        self._sampled_t: dict[int, float] = {}
        self._blacklisted: set[int] = set()
        self.outside: dict[int, _Outside] = {}
        self._prune_t = 0.0
        self.zone_idx = np.array([zi for zi, *_ in bays] + [zi for zi, _ in watches], np.intp)
        self.bay_idx = np.array([zi for zi, *_ in bays], np.intp)

    # -- livery -----------------------------------------------------------------------------
    def _sample_livery(self, ctx: StepContext, in_bike_zone: np.ndarray) -> list[EventDraft]:
        out: list[EventDraft] = []
        if ctx.image is None:
            return out
        tr = ctx.tracks
        cand = np.flatnonzero(in_bike_zone & self.bike_lut[tr.class_id + 1])
        for j in cand.tolist():
            tid = int(tr.track_id[j])
            if tid in self.operator or ctx.t - self._sampled_t.get(tid, -1e18) < self.cfg.livery_interval_s:
                continue
            self._sampled_t[tid] = ctx.t
            x1, y1, x2, y2 = (round(float(v)) for v in tr.xyxy[j])
            crop = ctx.image[max(0, y1) : max(0, y2), max(0, x1) : max(0, x2)]
            verdict = self.livery.classify(crop) if crop.size else None
            name = verdict.operator if verdict is not None else None
            votes = self._votes.setdefault(tid, Counter())
            votes[name] += 1
            if name is None or verdict is None:
                continue
            conf = self._vote_conf.setdefault(tid, {})
            conf[name] = conf.get(name, 0.0) + verdict.confidence
            if votes[name] >= self.cfg.livery_votes:
                self.operator[tid] = name
                # how sure: the share of samples that agreed, times their mean colour confidence
                self.confidence[tid] = round(
                    votes[name] / sum(votes.values()) * conf[name] / votes[name], 3
                )
                self._votes.pop(tid, None)
                self._vote_conf.pop(tid, None)
                if name in self.cfg.blacklist and tid not in self._blacklisted:
                    self._blacklisted.add(tid)
                    zone = self._zone_of(ctx, j)
                    out.append(
                        draft(
                            ctx,
                            kind="blacklisted_bike",
                            phase="instant",
                            key=f"blacklisted_bike:{ctx.camera_id}:{tid}:{int(ctx.ts)}",
                            zone_id=zone,
                            severity="minor",
                            severity_reason=f"{class_name(int(tr.class_id[j]))} of blacklisted operator {name} seen in {zone}",
                            track_id=tid,
                            payload={
                                "track_id": tid,
                                "operator": name,
                                "class": class_name(int(tr.class_id[j])),
                                "in_bay": bool(
                                    self.bay_idx.size and ctx.member.inside[j, self.bay_idx].any()
                                ),
                                "stationary_s": round(float(tr.stationary_s[j]), 1),
                            },
                        )
                    )
        return out

    def _zone_of(self, ctx: StepContext, j: int) -> str | None:
        for zi in self.zone_idx.tolist():
            if ctx.member.inside[j, zi]:
                return ctx.zones[zi].id
        return None

    # -- bays -------------------------------------------------------------------------------
    def _bay_counts(self, ctx: StepContext, bay: _Bay) -> None:
        inside = ctx.member.all_inside[:, bay.zi]
        ids = ctx.member.all_ids[inside].tolist()
        bay.ids = ids
        bay.count = len(ids)
        bay.by_class = dict(Counter(class_name(int(c)) for c in ctx.all_class[inside].tolist()))
        bay.by_operator = dict(Counter(self.operator[i] for i in ids if i in self.operator))

    def _bay_bikes(self, bay: _Bay) -> list[dict[str, object]]:
        """Each bike in the bay as the agent saw it: box (normalised, last seen), operator, confidence."""
        out: list[dict[str, object]] = []
        for tid in bay.ids[:MAX_LISTED_BIKES]:
            box = self._box.get(tid)
            out.append(
                {
                    "track_id": tid,
                    "box": list(box) if box is not None else None,
                    "operator": self.operator.get(tid),
                    "confidence": self.confidence.get(tid),
                }
            )
        return out

    def _bay_payload(self, bay: _Bay, **extra: object) -> dict[str, object]:
        return {
            "count": bay.count,
            "capacity": bay.capacity,
            "occupancy": round(bay.count / bay.capacity, 3) if bay.capacity else None,
            "by_class": dict(bay.by_class),
            "by_operator": dict(bay.by_operator),
            **extra,
        }

    def _update_bay(self, ctx: StepContext, bay: _Bay) -> list[EventDraft]:
        cfg = self.cfg
        out: list[EventDraft] = []
        self._bay_counts(ctx, bay)
        zid = bay.id
        # Status: a new count, or a new mix of operators (a bike's livery settled, one operator's
        # bike swapped for another's), is reported once it has held for status_debounce_s.
        if bay.count != bay.reported or bay.by_operator != bay.reported_ops:
            if bay.pending_since is None:
                bay.pending_since = ctx.t
            if ctx.t - bay.pending_since >= cfg.status_debounce_s - 1e-9:
                count_changed = bay.count != bay.reported
                bay.reported, bay.reported_ops, bay.pending_since = bay.count, dict(bay.by_operator), None
                out.append(
                    draft(
                        ctx,
                        kind="bike_bay_status",
                        phase="instant",
                        key=f"bike_bay_status:{ctx.camera_id}:{zid}",
                        zone_id=zid,
                        payload=self._bay_payload(
                            bay, outside_count=self._outside_count(), bikes=self._bay_bikes(bay)
                        ),
                    )
                )
                if bay.overflow_key is not None and count_changed:
                    bay.peak = max(bay.peak, bay.count)
                    out.append(self._overflow(ctx, bay, "update"))
        else:
            bay.pending_since = None
        # Overflow with hysteresis. over_since: how long the bay has been over capacity without a break.
        if bay.count > bay.capacity:
            bay.over_since = ctx.t if bay.over_since is None else bay.over_since
        else:
            bay.over_since = None
        over_long = bay.over_since is not None and ctx.t - bay.over_since >= cfg.overflow_s - 1e-9
        if bay.overflow_key is None:
            if over_long:
                bay.overflow_key = f"bike_bay_overflow:{ctx.camera_id}:{zid}:{int(ctx.ts)}"
                bay.overflow_start_ts = ctx.ts
                bay.peak = bay.count
                bay.clear_since = None
                out.append(self._overflow(ctx, bay, "start"))
                out.extend(
                    self.dispatch.overflow_started(
                        zid, bay.count, bay.capacity, bay.by_operator, ctx.t, ctx.ts
                    )
                )
        else:
            task = self.dispatch.by_bay.get(zid)
            if over_long and task is not None and task.state == "resolved":
                # Resolved, but the bay is over capacity again: the task re-opens (or a new one starts).
                out.extend(
                    self.dispatch.overflow_started(
                        zid, bay.count, bay.capacity, bay.by_operator, ctx.t, ctx.ts
                    )
                )
            if bay.count <= bay.capacity - cfg.hysteresis:
                bay.clear_since = ctx.t if bay.clear_since is None else bay.clear_since
                if ctx.t - bay.clear_since >= cfg.clear_s - 1e-9:
                    out.append(self._overflow(ctx, bay, "end"))
                    bay.overflow_key, bay.clear_since = None, None
            else:
                bay.clear_since = None
        out.extend(self.dispatch.observe(zid, bay.count, bay.by_operator, ctx.t, ctx.ts))
        return out

    def _overflow(self, ctx: StepContext, bay: _Bay, phase: str) -> EventDraft:
        excess = max(0, bay.count - bay.capacity)
        held = ctx.t - (bay.over_since if bay.over_since is not None else ctx.t)
        if phase == "end":
            sev, reason = (
                "info",
                f"cleared: count {bay.count} <= {bay.capacity - self.cfg.hysteresis} for {fmt_duration(self.cfg.clear_s)}",
            )
        else:
            ratio = bay.count / max(bay.capacity, 1)
            sev = "critical" if ratio >= 2.0 else "major" if ratio > 1.0 else "minor"
            if bay.count > bay.capacity:
                reason = f"count {bay.count} > capacity {bay.capacity} for {fmt_duration(held)}"
            else:
                reason = (
                    f"count {bay.count} back within capacity {bay.capacity}; "
                    f"clears at <= {bay.capacity - self.cfg.hysteresis} for {fmt_duration(self.cfg.clear_s)}"
                )
        return draft(
            ctx,
            kind="bike_bay_overflow",
            phase=phase,
            key=bay.overflow_key or "",
            zone_id=bay.id,
            severity=sev,
            severity_reason=reason,
            started_ts=bay.overflow_start_ts,
            payload=self._bay_payload(bay, excess=excess, peak=bay.peak),
        )

    # -- bikes outside bays -----------------------------------------------------------------------
    def _outside_count(self, watch_id: str | None = None) -> int:
        return sum(1 for o in self.outside.values() if watch_id is None or o.watch_id == watch_id)

    def _update_outside(self, ctx: StepContext) -> list[EventDraft]:
        out: list[EventDraft] = []
        if not self.watches:
            return out
        tr = ctx.tracks
        m = ctx.member.inside
        w_idx = np.array([zi for zi, _ in self.watches], np.intp)
        in_watch = m[:, w_idx].any(axis=1)
        in_bay = m[:, self.bay_idx].any(axis=1) if self.bay_idx.size else np.zeros(len(tr), bool)
        ok = in_watch & ~in_bay & self.bike_lut[tr.class_id + 1]
        for j in np.flatnonzero(ok).tolist():
            tid = int(tr.track_id[j])
            o = self.outside.get(tid)
            if o is not None:
                o.last_present_t = ctx.t
                continue
            if tr.stationary[j] and tr.stationary_s[j] >= self.cfg.dwell_s - 1e-6:
                wid = self.watches[int(np.argmax(m[j, w_idx]))][1]
                since = ctx.t - float(tr.stationary_s[j])
                o = _Outside(
                    key=f"bike_outside_bay:{ctx.camera_id}:{wid}:{tid}:{int(ctx.ts)}",
                    track_id=tid,
                    watch_id=wid,
                    class_id=int(tr.class_id[j]),
                    since_t=since,
                    start_ts=ctx.ts,
                    last_present_t=ctx.t,
                )
                self.outside[tid] = o
                out.append(self._outside_tr(ctx, o, "start", j))
        for tid, o in list(self.outside.items()):
            if ctx.t - o.last_present_t >= self.cfg.leave_s - 1e-9:
                del self.outside[tid]
                out.append(self._outside_tr(ctx, o, "end", None))
        return out

    def _outside_tr(self, ctx: StepContext, o: _Outside, phase: str, j: int | None) -> EventDraft:
        dwell = (ctx.t if phase != "end" else o.last_present_t) - o.since_t
        cls = class_name(o.class_id)
        return draft(
            ctx,
            kind="bike_outside_bay",
            phase=phase,
            key=o.key,
            zone_id=o.watch_id,
            severity="minor" if phase == "start" else "info",
            severity_reason=f"{cls} parked {fmt_duration(dwell)} outside every bay",
            started_ts=o.start_ts,
            track_id=o.track_id,
            payload={
                "track_id": o.track_id,
                "class": cls,
                "dwell_s": round(dwell, 1),
                "operator": self.operator.get(o.track_id),
                "outside_count": self._outside_count(o.watch_id),
            },
        )

    # -- step ---------------------------------------------------------------------------------
    def update(self, ctx: StepContext) -> list[EventDraft]:
        out: list[EventDraft] = []
        in_bike_zone: np.ndarray
        if self.zone_idx.size:
            in_bike_zone = np.asarray(ctx.member.inside[:, self.zone_idx].any(axis=1))
        else:
            in_bike_zone = np.ones(len(ctx.tracks), bool)
        self._remember_boxes(ctx, in_bike_zone)
        out.extend(self._sample_livery(ctx, in_bike_zone))
        out.extend(self._update_outside(ctx))
        for bay in self.bays:
            out.extend(self._update_bay(ctx, bay))
        if ctx.t - self._prune_t > 30.0:
            self._prune_t = ctx.t
            alive = set(ctx.member.all_ids.tolist()) | set(ctx.tracks.track_id.tolist()) | set(self.outside)
            for d in (self.operator, self.confidence, self._votes, self._vote_conf, self._sampled_t, self._box):
                for k in [k for k in d if k not in alive]:
                    del d[k]  # type: ignore[attr-defined]
            self._blacklisted &= alive
        return out

    def _remember_boxes(self, ctx: StepContext, in_bike_zone: np.ndarray) -> None:
        tr = ctx.tracks
        if not len(tr):
            return
        sx, sy = 1.0 / max(ctx.width, 1), 1.0 / max(ctx.height, 1)
        for j in np.flatnonzero(in_bike_zone & self.bike_lut[tr.class_id + 1]).tolist():
            x1, y1, x2, y2 = (float(v) for v in tr.xyxy[j])
            self._box[int(tr.track_id[j])] = (
                round(x1 * sx, 4),
                round(y1 * sy, 4),
                round(x2 * sx, 4),
                round(y2 * sy, 4),
            )

    def bay_views(self) -> dict[str, dict[str, object]]:
        return {
            b.id: self._bay_payload(b, overflow=b.overflow_key is not None, bikes=self._bay_bikes(b))
            for b in self.bays
        }
