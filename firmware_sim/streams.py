"""What one simulated box reports over a simulated day: ``EventDraft``s in event-time order.

A ``BoxStream`` is built from a real site config (``configs/*.yaml``): its cameras, zones, lines,
grid, ``feature_interval_s``, ``health_interval_s``, ``crowd.report_s``, ``parking.update_s``,
``line_events`` and bike timings. ``advance(until_ts)`` returns every draft due up to that event time;
the fleet driver calls it with an accelerated clock, so a simulated hour takes a minute.

The rates are assumptions, stated here and in docs/fleet.md, chosen to be busy but plausible for a
Chengdu street on a weekday (activity follows a day curve: quiet 00-06, peaks at 08 and 18):

* every camera: a ``features`` record every ``feature_interval_s``; the box: ``device_health`` every
  ``health_interval_s`` and ``agent_status`` started at the beginning;
* no-parking zones: violations arrive at 3/h (school-gate zones, only inside their schedule) or 1/h
  (others) x activity; each lasts its limit + an exponential overstay (mean 6 min), reporting
  ``update`` every ``parking.update_s``;
* bike bays: the count moves +-1 at 30/h x activity with an upward drift at peaks (commuters), each
  change a ``bike_bay_status``; over capacity for ``overflow_s`` opens an overflow and a dispatch task;
  an ``ack_task`` command acknowledges it; a crew clears the bay 10-20 min later (``resolved``, then
  the overflow ends and the task closes after ``reopen_s``); bikes outside bays at 2/h x activity,
  blacklisted liveries at 0.3/h x activity;
* crowd zones: ``crowd_density`` every ``crowd.report_s``; crossings of each line at up to 600/h x
  activity (``line_crossing`` events when ``line_events``); one surge around each peak.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge.config.site import SiteConfig
from edge.types import EventDraft

LOCAL = dt.timezone(dt.timedelta(hours=8))  # Asia/Shanghai, no DST


def activity(ts: float) -> float:
    """0.05..1: how busy the street is at this local time (two peaks, quiet night)."""
    h = dt.datetime.fromtimestamp(ts, LOCAL)
    x = h.hour + h.minute / 60
    peak = max(math.exp(-((x - 8.0) ** 2) / 2.0), math.exp(-((x - 18.0) ** 2) / 3.0))
    day = 0.35 if 7 <= x <= 22 else 0.0
    return max(0.05, min(1.0, day + 0.65 * peak))


@dataclass
class Task:
    task_id: str
    key: str
    camera_id: str
    bay_id: str
    opened_ts: float
    count: int
    capacity: int
    acknowledged_ts: float | None = None
    acknowledged_by: str | None = None
    resolved_ts: float | None = None


@dataclass(order=True)
class _Due:
    ts: float
    order: int
    fn: Callable[[float], list[EventDraft]] = field(compare=False)


class BoxStream:
    """The event stream of one box at one site, driven by event time."""

    def __init__(self, cfg: SiteConfig, start_ts: float, seed: int) -> None:
        self.cfg = cfg
        self.rng = random.Random(seed)
        self.now = start_ts
        self._q: list[_Due] = []
        self._order = itertools.count()
        self._track = itertools.count(1)
        self.tasks: dict[str, Task] = {}
        self.bays: dict[tuple[str, str], int] = {}
        self.zone_counts: dict[tuple[str, str], dict[str, int]] = {}
        self.line_totals: dict[tuple[str, str], list[int]] = {}
        self.line_window: dict[tuple[str, str], list[int]] = {}
        self.health_extra: Callable[[], dict[str, Any]] = dict
        self.started = False
        self._t0 = start_ts
        r = cfg.rules
        for cam in cfg.cameras:
            self._every(start_ts + r.feature_interval_s * self.rng.random(), r.feature_interval_s,
                        lambda ts, c=cam: [self._features(c, ts)])  # fmt: skip
            for z in cam.zones:
                self.zone_counts[(cam.id, z.id)] = {}
                if z.kind == "no_parking":
                    self._poisson(3.0 if z.schedule is not None else 1.0, lambda ts, c=cam, z=z: self._violation(c, z, ts))
                elif z.kind == "bike_bay":
                    # bays fill towards the commuter peaks
                    self.bays[(cam.id, z.id)] = int((z.capacity or 10) * (0.4 + 0.55 * activity(start_ts)))
                    self._poisson(30.0, lambda ts, c=cam, z=z: self._bay_change(c, z, ts))
                elif z.kind == "bike_watch":
                    self._poisson(2.0, lambda ts, c=cam, z=z: self._outside(c, z, ts))
                    self._poisson(0.3, lambda ts, c=cam, z=z: self._blacklisted(c, z, ts))
                elif z.kind == "crowd":
                    self._every(start_ts + r.crowd.report_s * self.rng.random(), r.crowd.report_s,
                                lambda ts, c=cam, z=z: [self._density(c, z, ts)])  # fmt: skip
                    for peak_h in (8.2, 18.1):
                        self._at_local_hour(peak_h, lambda ts, c=cam, z=z: self._surge(c, z, ts))
            for ln in cam.lines:
                self.line_totals[(cam.id, ln.id)] = [0, 0]
                self.line_window[(cam.id, ln.id)] = [0, 0]
                self._poisson(600.0, lambda ts, c=cam, ln=ln: self._crossing(c, ln.id, ts), scale_by_activity=True)
        self._every(start_ts + cfg.health.health_interval_s * self.rng.random(), cfg.health.health_interval_s,
                    lambda ts: [self._health(ts)])  # fmt: skip

    # ---- scheduling ------------------------------------------------------------------------------
    def _push(self, ts: float, fn: Callable[[float], list[EventDraft]]) -> None:
        heapq.heappush(self._q, _Due(ts, next(self._order), fn))

    def _every(self, first: float, period: float, fn: Callable[[float], list[EventDraft]]) -> None:
        def tick(ts: float) -> list[EventDraft]:
            self._push(ts + period, tick)
            return fn(ts)

        self._push(first, tick)

    def _poisson(self, per_hour: float, fn: Callable[[float], list[EventDraft]], scale_by_activity: bool = True) -> None:
        """Thinning: candidate arrivals at ``per_hour``, each kept with probability activity(ts)."""
        def arrive(ts: float) -> list[EventDraft]:
            self._push(ts + self.rng.expovariate(per_hour / 3600.0), arrive)
            if scale_by_activity and self.rng.random() > activity(ts):
                return []
            return fn(ts)

        self._push(self.now + self.rng.expovariate(per_hour / 3600.0), arrive)

    def _at_local_hour(self, hour: float, fn: Callable[[float], list[EventDraft]]) -> None:
        d = dt.datetime.fromtimestamp(self.now, LOCAL).replace(hour=0, minute=0, second=0, microsecond=0)
        ts = d.timestamp() + hour * 3600 + self.rng.uniform(-600, 600)
        while ts < self.now:
            ts += 86400

        def fire(t: float) -> list[EventDraft]:
            self._push(t + 86400, fire)
            return fn(t)

        self._push(ts, fire)

    def advance(self, until_ts: float) -> list[EventDraft]:
        """Every draft with event time <= ``until_ts``, in time order."""
        out: list[EventDraft] = []
        if not self.started:
            self.started = True
            out.append(self._draft("agent_status", "instant", "agent", self.now, payload={"state": "started", "version": "0.1.0", "outbox_pending": 0}))
        while self._q and self._q[0].ts <= until_ts:
            due = heapq.heappop(self._q)
            self.now = due.ts
            out.extend(due.fn(due.ts))
        self.now = max(self.now, until_ts)
        return out

    # ---- drafts ----------------------------------------------------------------------------------
    def _draft(self, kind: str, phase: str, key: str, ts: float, *, camera_id: str | None = None,
               zone_id: str | None = None, severity: str = "info", reason: str = "",
               started_ts: float | None = None, payload: dict[str, Any]) -> EventDraft:  # fmt: skip
        return EventDraft(
            kind=kind, phase=phase, key=key, t=ts, ts=ts, camera_id=camera_id, zone_id=zone_id,  # type: ignore[arg-type]
            severity=severity, severity_reason=reason, started_ts=started_ts, payload=payload,  # type: ignore[arg-type]
        )

    def _features(self, cam: Any, ts: float) -> EventDraft:
        a = activity(ts)
        interval = self.cfg.rules.feature_interval_s
        zones: dict[str, Any] = {}
        for z in cam.zones:
            counts = dict(self.zone_counts[(cam.id, z.id)])
            if z.kind == "bike_bay":
                counts = {"bicycle": self.bays[(cam.id, z.id)]}
            elif z.kind == "crowd":
                counts = {"person": self._crowd_count(z, ts)}
            elif z.kind == "bike_watch":
                counts = {"bicycle": max(0, int(self.rng.gauss(4 * a, 1.5)))}
            counts = {k: v for k, v in counts.items() if v}
            mean = {k: round(max(0.0, v + self.rng.gauss(0, 0.4)), 2) for k, v in counts.items()}
            area = getattr(z, "area_m2", None) or (640.0 if z.kind == "crowd" else None)
            people = counts.get("person", 0)
            zones[z.id] = {
                "kind": z.kind,
                "count": counts,
                "count_mean": mean,
                "count_max": {k: v + self.rng.randint(0, 2) for k, v in counts.items()},
                "occupancy": round(sum(counts.values()) / z.capacity, 3) if getattr(z, "capacity", None) else round(min(1.0, a * self.rng.random() * (1 if counts else 0.2)), 3),
                "dwell_mean_s": round(self.rng.uniform(20, 400), 1) if counts else None,
                "dwell_max_s": round(self.rng.uniform(400, 3000), 1) if counts else None,
                "density": round(people / area, 3) if area and people else None,
                "density_max": round(people * 1.1 / area, 3) if area and people else None,
                "los": ("A" if people / (area or 1) < 0.3 else "B") if z.kind == "crowd" else None,
                "in": int(a * 8 * self.rng.random() * 2),
                "out": int(a * 8 * self.rng.random() * 2),
                "motion_energy": None,
            }
        cols, rows = self.cfg.rules.features.grid
        busy = a * (3 if any(z.kind == "crowd" for z in cam.zones) else 1)
        cells = [[int(self.rng.expovariate(1.0) * 20 * busy) if self.rng.random() < busy * 0.6 else 0 for _ in range(cols)] for _ in range(rows)]
        lines = {}
        for ln in cam.lines:
            w = self.line_window[(cam.id, ln.id)]
            lines[ln.id] = {"in": w[0], "out": w[1]}
            self.line_window[(cam.id, ln.id)] = [0, 0]
        payload = {"interval_s": float(interval), "zones": zones, "lines": lines, "grid": {"cols": cols, "rows": rows, "cells": cells}}
        return self._draft("features", "instant", f"features:{cam.id}", ts, camera_id=cam.id, payload=payload)

    def _crowd_count(self, z: Any, ts: float) -> int:
        base = 150 if getattr(z, "area_m2", None) is None else 25
        return max(0, int(self.rng.gauss(base * activity(ts), 3)))

    def _health(self, ts: float) -> EventDraft:
        uptime = ts - self._t0
        cams = [
            {"camera_id": c.id, "online": True, "fps_captured": 15.0, "fps_processed": float(c.detect_fps),
             "fps_dropped": round(self.rng.uniform(0, 0.3), 2), "inference_p50_ms": round(self.rng.gauss(38, 2), 1),
             "inference_p95_ms": round(self.rng.gauss(52, 3), 1), "skipped_fraction": round(self.rng.uniform(0.3, 0.8), 2),
             "tamper": {"active": [], "learning": False, "calibration_valid": True, "brightness": round(self.rng.uniform(60, 140), 1)}}
            for c in self.cfg.cameras
        ]  # fmt: skip
        extra = self.health_extra()
        payload = {
            "cpu_percent": round(self.rng.uniform(25, 60), 1),
            "load": [round(self.rng.uniform(0.5, 1.8), 2) for _ in range(3)],
            "temperature_c": round(self.rng.gauss(58, 3), 1),
            "throttled": {"raw": "0x0", "undervoltage": False, "freq_capped": False, "throttled": False,
                          "soft_temp_limit": False, "undervoltage_occurred": False, "freq_capped_occurred": False,
                          "throttled_occurred": False, "soft_temp_limit_occurred": False},
            "memory": {"total_bytes": 4156456960, "available_bytes": int(self.rng.uniform(2.5e9, 3.0e9))},
            "disk": {"path": "/var/lib/edge", "total_bytes": 31104958464, "free_bytes": 24187207680 - int(uptime) * 10},
            "uptime_s": round(uptime, 1),
            "cameras": cams,
            "outbox": {"depth": int(extra.get("depth", 0)), "oldest_age_s": float(extra.get("oldest_age_s", 0.0)),
                       "dropped": int(extra.get("dropped", 0))},
            "broker_connected": bool(extra.get("connected", True)),
            "clock": "ntp",
            "agent_version": "0.1.0",
            "config_hash": "0b7b5d0b574f",
        }  # fmt: skip
        return self._draft("device_health", "instant", "health", ts, payload=payload)

    # ---- parking ---------------------------------------------------------------------------------
    def _in_force(self, z: Any, ts: float) -> bool:
        if z.schedule is None:
            return True
        d = dt.datetime.fromtimestamp(ts, LOCAL)
        x = d.hour + d.minute / 60
        return d.weekday() < 5 and (7.0 <= x < 9.0 or 15.5 <= x < 17.5)

    def _violation(self, cam: Any, z: Any, ts: float) -> list[EventDraft]:
        if not self._in_force(z, ts):
            return []
        track = next(self._track)
        limit = float(z.limit_s or self.cfg.rules.parking.grace_s)
        arrived = ts - limit
        vid = f"parking_violation:{cam.id}:{z.id}:{track}:{int(arrived)}"
        over_total = self.rng.expovariate(1 / 360.0)
        sev = "major" if z.zone_type == "no_stopping" else "minor"
        counts = self.zone_counts[(cam.id, z.id)]
        counts["car"] = counts.get("car", 0) + 1
        update_s = self.cfg.rules.parking.update_s

        def draft(phase: str, t: float) -> EventDraft:
            dwell = t - arrived
            payload = {"violation_id": vid, "track_id": track, "class": "car", "dwell_s": round(dwell, 1),
                       "limit_s": limit, "over_s": round(dwell - limit, 1), "zone_type": z.zone_type,
                       "scheduled": z.schedule is not None, "schedule_in_force": self._in_force(z, t),
                       "box": [0.25, 0.55, 0.4, 0.75], "evidence": None}  # fmt: skip
            reason = f"parked {int(dwell // 60)} min in {z.zone_type} zone, limit {int(limit // 60)} min"
            return self._draft("parking_violation", phase, vid, t, camera_id=cam.id, zone_id=z.id,
                               severity=sev, reason=reason, started_ts=ts, payload=payload)  # fmt: skip

        t = ts
        while t + update_s < ts + over_total:
            t += update_s
            self._push(t, lambda tt, p="update": [draft(p, tt)])

        def end(tt: float) -> list[EventDraft]:
            counts["car"] = max(0, counts.get("car", 0) - 1)
            return [draft("end", tt)]

        self._push(ts + over_total + self.cfg.rules.parking.leave_s, end)
        return [draft("start", ts)]

    # ---- bikes -----------------------------------------------------------------------------------
    def _bay_payload(self, z: Any, count: int) -> dict[str, Any]:
        yellow = count * 2 // 3
        return {"count": count, "capacity": z.capacity, "occupancy": round(count / z.capacity, 3),
                "by_class": {"bicycle": count}, "by_operator": {"yellow": yellow, "blue": count - yellow},
                "outside_count": self.rng.randint(0, 3)}  # fmt: skip

    def _bay_change(self, cam: Any, z: Any, ts: float) -> list[EventDraft]:
        k = (cam.id, z.id)
        a = activity(ts)
        up = 0.5 + 0.25 * a  # commuters fill bays at the peaks
        self.bays[k] = max(0, self.bays[k] + (1 if self.rng.random() < up else -1))
        count = self.bays[k]
        out = [self._draft("bike_bay_status", "instant", f"bay:{cam.id}:{z.id}", ts, camera_id=cam.id,
                           zone_id=z.id, payload=self._bay_payload(z, count))]  # fmt: skip
        key = f"bike_bay_overflow:{cam.id}:{z.id}"
        over = count > z.capacity
        open_task = next((t for t in self.tasks.values() if t.bay_id == z.id and t.camera_id == cam.id and t.resolved_ts is None), None)
        if over and open_task is None and not getattr(self, f"_pending_{z.id}", False):
            setattr(self, f"_pending_{z.id}", True)
            self._push(ts + self.cfg.rules.bike.overflow_s, lambda tt: self._open_overflow(cam, z, tt, key))
        return out

    def _open_overflow(self, cam: Any, z: Any, ts: float, key: str) -> list[EventDraft]:
        setattr(self, f"_pending_{z.id}", False)
        count = self.bays[(cam.id, z.id)]
        if count <= z.capacity:
            return []
        ovf = dict(self._bay_payload(z, count))
        ovf.pop("outside_count", None)
        ovf.update(excess=count - z.capacity, peak=count)
        task_id = f"{cam.id}-{z.id}-{int(ts)}"
        tkey = f"dispatch_task:{cam.id}:{z.id}:{int(ts)}"
        task = Task(task_id, tkey, cam.id, z.id, ts, count, z.capacity)
        self.tasks[task_id] = task
        reason = f"count {count} > capacity {z.capacity} for {int(self.cfg.rules.bike.overflow_s)} s"
        return [
            self._draft("bike_bay_overflow", "start", key, ts, camera_id=cam.id, zone_id=z.id, severity="major",
                        reason=reason, payload=ovf),
            self._task_draft(task, "start", "open", ts),
        ]  # fmt: skip

    def _task_draft(self, task: Task, phase: str, state: str, ts: float) -> EventDraft:
        excess = max(0, task.count - task.capacity)
        payload = {
            "task_id": task.task_id, "bay_id": task.bay_id, "state": state, "count": task.count,
            "capacity": task.capacity, "excess": excess, "action": f"remove {excess} bikes from {task.bay_id}",
            "operators": ["yellow", "blue"], "opened_ts": task.opened_ts, "acknowledged_ts": task.acknowledged_ts,
            "acknowledged_by": task.acknowledged_by, "resolved_ts": task.resolved_ts, "resolved_by": None,
            "time_to_acknowledge_s": None if task.acknowledged_ts is None else round(task.acknowledged_ts - task.opened_ts, 1),
            "time_to_resolve_s": None if task.resolved_ts is None else round(task.resolved_ts - task.opened_ts, 1),
            "reopen_count": 0,
        }  # fmt: skip
        sev = "info" if phase == "end" else "major"
        return self._draft("dispatch_task", phase, task.key, ts, camera_id=task.camera_id, zone_id=task.bay_id,
                           severity=sev, reason=f"task {state}", started_ts=task.opened_ts, payload=payload)  # fmt: skip

    def acknowledge(self, task_id: str, by: str, ts: float) -> list[EventDraft]:
        """The ``ack_task`` command: the task becomes acknowledged; a crew clears the bay later.
        Raises KeyError for an unknown task; acknowledging twice changes nothing."""
        task = self.tasks[task_id]
        if task.acknowledged_ts is not None:
            return []
        task.acknowledged_ts = ts
        task.acknowledged_by = by[:128]
        self._push(ts + self.rng.uniform(600, 1200), lambda tt: self._crew_clears(task, tt))
        return [self._task_draft(task, "update", "acknowledged", ts)]

    def _crew_clears(self, task: Task, ts: float) -> list[EventDraft]:
        k = (task.camera_id, task.bay_id)
        z = next(z for c in self.cfg.cameras for z in c.zones if c.id == task.camera_id and z.id == task.bay_id)
        self.bays[k] = max(0, z.capacity - 4)
        task.resolved_ts = ts + self.cfg.rules.bike.verify_s
        resolved = self._task_draft(task, "update", "resolved", task.resolved_ts)
        ovf_end = dict(self._bay_payload(z, self.bays[k]))
        ovf_end.pop("outside_count", None)
        ovf_end.update(excess=0, peak=task.count)
        key = f"bike_bay_overflow:{task.camera_id}:{task.bay_id}"
        self._push(task.resolved_ts, lambda tt: [resolved, self._draft("bike_bay_overflow", "end", key, tt, camera_id=task.camera_id, zone_id=task.bay_id, payload=ovf_end)])
        self._push(task.resolved_ts + min(self.cfg.rules.bike.reopen_s, 1800.0), lambda tt: self._close(task, tt))
        return [self._draft("bike_bay_status", "instant", f"bay:{task.camera_id}:{task.bay_id}", ts, camera_id=task.camera_id,
                            zone_id=task.bay_id, payload=self._bay_payload(z, self.bays[k]))]  # fmt: skip

    def _close(self, task: Task, ts: float) -> list[EventDraft]:
        self.tasks.pop(task.task_id, None)
        return [self._task_draft(task, "end", "closed", ts)]

    def _outside(self, cam: Any, z: Any, ts: float) -> list[EventDraft]:
        track = next(self._track)
        key = f"bike_outside_bay:{cam.id}:{z.id}:{track}"
        dwell = float(self.cfg.rules.bike.dwell_s)
        pay = {"track_id": track, "class": "bicycle", "dwell_s": dwell, "operator": self.rng.choice(["yellow", "blue", "green"]), "outside_count": self.rng.randint(1, 4)}
        stay = self.rng.expovariate(1 / 1800.0)
        end_pay = dict(pay, dwell_s=round(dwell + stay, 1))
        self._push(ts + stay, lambda tt: [self._draft("bike_outside_bay", "end", key, tt, camera_id=cam.id, zone_id=z.id, started_ts=ts, payload=end_pay)])
        return [self._draft("bike_outside_bay", "start", key, ts, camera_id=cam.id, zone_id=z.id, severity="minor", reason="bicycle parked 5 min outside every bay", payload=pay)]

    def _blacklisted(self, cam: Any, z: Any, ts: float) -> list[EventDraft]:
        track = next(self._track)
        pay = {"track_id": track, "operator": "green", "class": "bicycle", "in_bay": self.rng.random() < 0.5, "stationary_s": round(self.rng.uniform(5, 60), 1)}
        return [self._draft("blacklisted_bike", "instant", f"blacklisted:{track}", ts, camera_id=cam.id, zone_id=z.id, severity="minor", reason="bicycle of blacklisted operator green", payload=pay)]

    # ---- crowds ----------------------------------------------------------------------------------
    def _density(self, cam: Any, z: Any, ts: float) -> EventDraft:
        count = self._crowd_count(z, ts)
        area = getattr(z, "area_m2", None) or 640.0
        d = count / area
        los = "ABCDEF"[min(5, int(d / 0.3))]
        table = z.los_table or self.cfg.rules.crowd.los_table
        pay = {"count": count, "count_smoothed": round(max(0.0, count + self.rng.gauss(0, 1)), 1), "area_m2": area, "density": round(d, 3), "los": los, "los_table": table}
        return self._draft("crowd_density", "instant", f"density:{cam.id}:{z.id}", ts, camera_id=cam.id, zone_id=z.id, payload=pay)

    def _surge(self, cam: Any, z: Any, ts: float) -> list[EventDraft]:
        key = f"crowd_surge:{cam.id}:{z.id}:{int(ts)}"
        area = getattr(z, "area_m2", None) or 640.0
        count = int(area * 1.3)
        pay = {"count": count, "density": 1.3, "los": "E", "rise": 0.8, "window_s": 30.0, "trigger": "rise", "peak_density": 1.3}
        dur = self.rng.uniform(120, 600)
        self._push(ts + dur / 2, lambda tt: [self._draft("crowd_surge", "update", key, tt, camera_id=cam.id, zone_id=z.id, severity="major", reason="density rising", started_ts=ts, payload=dict(pay, peak_density=1.5))])
        self._push(ts + dur, lambda tt: [self._draft("crowd_surge", "end", key, tt, camera_id=cam.id, zone_id=z.id, started_ts=ts, payload=dict(pay, density=0.6, los="C", peak_density=1.5))])
        return [self._draft("crowd_surge", "start", key, ts, camera_id=cam.id, zone_id=z.id, severity="major", reason="density +0.8/m2 within 30 s", payload=pay)]

    def _crossing(self, cam: Any, line_id: str, ts: float) -> list[EventDraft]:
        inward = self.rng.random() < (0.7 if dt.datetime.fromtimestamp(ts, LOCAL).hour < 12 else 0.3)
        tot = self.line_totals[(cam.id, line_id)]
        win = self.line_window[(cam.id, line_id)]
        i = 0 if inward else 1
        tot[i] += 1
        win[i] += 1
        if not self.cfg.rules.line_events:
            return []
        pay = {"line_id": line_id, "direction": "in" if inward else "out", "track_id": next(self._track), "class": "person", "in_total": tot[0], "out_total": tot[1]}
        return [self._draft("line_crossing", "instant", f"line:{cam.id}:{line_id}:{tot[0] + tot[1]}", ts, camera_id=cam.id, payload=pay)]
