"""``CameraAnalytics``: every street rule and the feature record of one camera, behind one call per frame."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Protocol

import numpy as np

from edge.classes import CLASSES, PERSON, resolve
from edge.config.rules import RulesConfig
from edge.config.site import CameraConfig
from edge.errors import CommandError
from edge.features.aggregator import FeatureAggregator
from edge.rules.bikes import BikeRule
from edge.rules.context import StepContext
from edge.rules.crowd import CrowdRule
from edge.rules.lines import LineCounter
from edge.rules.livery import LiveryClassifier
from edge.rules.parking import ParkingRule
from edge.rules.redact import redacted_crop
from edge.types import EventDraft, Frame, Tracks
from edge.zones.calibration import Homography
from edge.zones.geometry import CompiledZone, class_lut, compile_zones, points_in_polygon, to_pixels
from edge.zones.membership import ZoneMembership
from edge.zones.schedule import Schedule

log = logging.getLogger(__name__)


class EvidenceSink(Protocol):
    """Stores a redacted evidence crop on the box and returns a reference (file name) for the event."""

    def save(self, crop_bgr: np.ndarray, key: str, ts: float) -> str | None: ...


class CameraAnalytics:
    """Tracks in, transitions out. Pure: time only from the frame (``t`` monotonic, ``ts`` UTC epoch)."""

    def __init__(
        self,
        camera: CameraConfig,
        rules: RulesConfig,
        timezone: str,
        *,
        evidence: EvidenceSink | None = None,
        livery: LiveryClassifier | None = None,
    ) -> None:
        self.camera = camera
        self.rules = rules
        self.timezone = timezone
        self.evidence = evidence
        zones = camera.zones
        self.schedules = [Schedule(z.schedule, timezone) for z in zones]
        m = rules.membership
        self.membership = ZoneMembership(len(zones), m.enter_s, m.exit_s, m.hold_unseen_s)
        self.parking = [
            ParkingRule(i, z, rules.parking, self._evidence_hook if evidence is not None else None)
            for i, z in enumerate(zones)
            if z.kind == "no_parking"
        ]
        self.bikes = BikeRule(
            camera.id,
            [(i, z.id, int(z.capacity or 0)) for i, z in enumerate(zones) if z.kind == "bike_bay"],
            [(i, z.id) for i, z in enumerate(zones) if z.kind == "bike_watch"],
            rules.bike,
            livery,
            {z.id: z.operator for z in zones if z.kind == "bike_bay" and z.operator},
        )
        self.crowd: CrowdRule | None = None
        self.lines = LineCounter(
            list(camera.lines), rules.line_events, rules.line_band, hold_s=rules.line_hold_s
        )
        self.features = FeatureAggregator(
            [(z.id, z.kind, z.capacity) for z in zones], [ln.id for ln in camera.lines], rules.features.grid
        )
        self.grid_lut = class_lut(resolve(rules.features.grid_classes))
        self.size: tuple[int, int] | None = None
        self.zones: list[CompiledZone] = []
        self.homography: Homography | None = None
        self.masks_px: list[np.ndarray] = []
        self._active = np.ones(len(zones), bool)
        self._active_sec: int | None = None
        self._cls_ids = np.zeros(0, np.int64)
        self._cls_val = np.zeros(0, np.int32)
        self._last_ctx: StepContext | None = None
        self._trackers: list[Any] = []
        # update() runs on the pipeline thread, command() on the uplink/command thread.
        self._lock = threading.RLock()

    def bind_tracker(self, tracker: Any) -> None:
        """Give ``tracker`` (``ByteTracker``) this camera's ground-plane homography as soon as the frame
        size is known (and again if it changes), so ``Tracks.speed_mps`` is filled where calibrated."""
        self._trackers.append(tracker)
        if self.homography is not None:
            tracker.set_homography(self.homography)

    # -- geometry ---------------------------------------------------------------------------
    def _ensure_geometry(self, width: int, height: int) -> None:
        if self.size == (width, height):
            return
        self.size = (width, height)
        cam = self.camera
        self.zones = compile_zones(cam.zones, width, height)
        if self.rules.bike.count_ebikes:
            ebike = resolve(["bicycle", "motorcycle"])
            self.zones = [
                CompiledZone(z.config, z.polygon_px, z.exclude_px, ebike, z.area_px, z.edges)
                if z.kind in ("bike_bay", "bike_watch") and z.config.classes is None
                else z
                for z in self.zones
            ]
        self.masks_px = [to_pixels(p, width, height) for p in cam.masks]
        self.homography = Homography.from_config(cam.calibration, width, height) if cam.calibration else None
        for tracker in self._trackers:
            tracker.set_homography(self.homography)
        crowd = []
        for i, z in enumerate(self.zones):
            if z.kind != "crowd":
                continue
            area = z.config.area_m2
            if area is None and self.homography is not None:
                area = self.homography.area_m2(z.polygon_px)
            if area is None:
                log.warning(
                    "camera=%s zone=%s: no area_m2 and no calibration; density and LOS are not reported",
                    cam.id,
                    z.id,
                )
            crowd.append((i, z.config, area))
        if self.crowd is None:
            self.crowd = CrowdRule(crowd, self.rules.crowd)
        else:  # frame size changed: only the areas may change
            for cz, (_, _, area) in zip(self.crowd.zones, crowd, strict=True):
                cz.area_m2 = area
        log.info("camera=%s analytics compiled %d zones for %dx%d", cam.id, len(self.zones), width, height)

    def _schedule_active(self, ts: float) -> np.ndarray:
        sec = int(ts)
        if sec != self._active_sec:
            self._active_sec = sec
            self._active = np.array([s.active(ts) for s in self.schedules], bool)
        return self._active

    def _classes_for(self, all_ids: np.ndarray, tracks: Tracks) -> np.ndarray:
        """Last known class of every held id (aligned with ``all_ids``, which holds every current track)."""
        val = np.full(all_ids.size, -1, np.int32)
        if self._cls_ids.size and all_ids.size:
            pos = np.minimum(np.searchsorted(self._cls_ids, all_ids), self._cls_ids.size - 1)
            hit = self._cls_ids[pos] == all_ids
            val[hit] = self._cls_val[pos[hit]]
        if len(tracks):
            val[np.searchsorted(all_ids, tracks.track_id)] = tracks.class_id
        self._cls_ids, self._cls_val = all_ids, val
        return val

    def _evidence_hook(self, ctx: StepContext, box: np.ndarray, key: str) -> str | None:
        if self.evidence is None or ctx.image is None:
            return None
        persons = ctx.tracks.xyxy[ctx.tracks.class_id == PERSON]
        return self.evidence.save(redacted_crop(ctx.image, box, persons), key, ctx.ts)

    # -- the step --------------------------------------------------------------------------
    def update(
        self, frame: Frame, tracks: Tracks, motion_energy: Mapping[str, float] | None = None
    ) -> list[EventDraft]:
        return self.update_at(
            frame.t, frame.ts, tracks, (frame.width, frame.height), frame.image, motion_energy
        )

    def update_at(
        self,
        t: float,
        ts: float,
        tracks: Tracks,
        size: tuple[int, int],
        image: np.ndarray | None = None,
        motion_energy: Mapping[str, float] | None = None,
    ) -> list[EventDraft]:
        """Same as ``update`` without a Frame (scenario tests, benchmarks): ``size`` is (width, height)."""
        with self._lock:
            return self._update_at(t, ts, tracks, size, image, motion_energy)

    def _update_at(
        self,
        t: float,
        ts: float,
        tracks: Tracks,
        size: tuple[int, int],
        image: np.ndarray | None,
        motion_energy: Mapping[str, float] | None,
    ) -> list[EventDraft]:
        width, height = size
        if len(tracks) and (tracks.class_id.min() < -1 or tracks.class_id.max() >= len(CLASSES)):
            bad = (tracks.class_id < -1) | (tracks.class_id >= len(CLASSES))
            log.warning(
                "camera=%s: %d tracks with non-canonical class ids treated as 'other'",
                self.camera.id,
                int(bad.sum()),
            )
            tracks = replace(tracks, class_id=np.where(bad, -1, tracks.class_id).astype(np.int32))
        self._ensure_geometry(width, height)
        if self.masks_px and len(tracks):
            a = tracks.anchor
            masked = np.zeros(len(tracks), bool)
            for poly in self.masks_px:
                masked |= points_in_polygon(a, poly)
            tracks = tracks[~masked]
        anchors = tracks.anchor.astype(np.float64)
        raw = np.zeros((len(tracks), len(self.zones)), bool)
        stay = np.zeros_like(raw)
        margin = (tracks.xyxy[:, 3] - tracks.xyxy[:, 1]).astype(
            np.float64
        ) * self.rules.membership.edge_margin
        use_margin = margin if self.rules.membership.edge_margin else None
        members = self.membership.members(tracks.track_id)
        for zi, z in enumerate(self.zones):
            raw[:, zi], stay[:, zi] = z.contains_with_margin(
                anchors, tracks.class_id, use_margin, members[:, zi]
            )
        member = self.membership.update(tracks.track_id, raw, t, stay)
        all_class = self._classes_for(member.all_ids, tracks)
        active = self._schedule_active(ts)
        ctx = StepContext(
            camera_id=self.camera.id,
            t=t,
            ts=ts,
            width=width,
            height=height,
            image=image,
            tracks=tracks,
            anchors=anchors,
            zones=tuple(self.zones),
            active=active,
            member=member,
            all_class=all_class,
        )
        self._last_ctx = ctx
        out: list[EventDraft] = []
        for rule in self.parking:
            out.extend(rule.update(ctx))
        out.extend(self.bikes.update(ctx))
        assert self.crowd is not None
        out.extend(self.crowd.update(ctx))
        line_tr, step_in, step_out = self.lines.update(ctx)
        out.extend(line_tr)
        # Features.
        dt = self.features.step_dt(t)
        densities: dict[int, float] = {}
        for cz in self.crowd.zones:
            if cz.area_m2 and cz.count_s is not None:
                densities[cz.zi] = cz.count_s / cz.area_m2
        motion: dict[int, float] = {}
        if motion_energy:
            for zi, z in enumerate(self.zones):
                if z.id in motion_energy:
                    motion[zi] = float(motion_energy[z.id])
        self.features.add_zones(
            dt,
            t,
            member.all_inside,
            all_class,
            member.all_entered_t,
            member.entries,
            member.exits,
            densities,
            motion,
        )
        self.features.add_lines(step_in, step_out)
        g = self.grid_lut[tracks.class_id + 1]
        self.features.grid.add(anchors[g], width, height, dt)
        return out

    def feature_record(self, t: float, ts: float) -> EventDraft | None:
        """A ``features`` record when ``feature_interval_s`` has passed since the last one, else None."""
        with self._lock:
            return self._feature_record(t, ts)

    def flush(self, t: float, ts: float) -> list[EventDraft]:
        """At the end of a recording: the last, partial feature window, so no count is lost."""
        with self._lock:
            start = self.features.window_start_t
            if start is None or t - start <= 1e-9:
                return []
            record = self._feature_record(t, ts, force=True)
            return [record] if record is not None else []

    def _feature_record(self, t: float, ts: float, force: bool = False) -> EventDraft | None:
        if not self.rules.features.enabled:
            return None
        if not force and not self.features.due(t, self.rules.feature_interval_s):
            return None
        los: dict[int, str | None] = {}
        if self.crowd is not None:
            for cz in self.crowd.zones:
                los[cz.zi] = self.crowd.state(cz)["los"]  # type: ignore[assignment]
        payload = self.features.record(t, los)
        return EventDraft(
            kind="features",
            phase="instant",
            key=f"features:{self.camera.id}",
            t=t,
            ts=ts,
            camera_id=self.camera.id,
            payload=payload,
        )

    # -- commands ----------------------------------------------------------------------------
    def command(
        self, name: str, args: Mapping[str, Any], t: float, ts: float
    ) -> tuple[dict[str, Any], list[EventDraft]]:
        """``ack_task`` / ``resolve_task`` with ``{"task_id": ..., "by": optional operator}``. Raises CommandError."""
        if name not in ("ack_task", "resolve_task"):
            raise CommandError(f"unknown analytics command {name!r}; use ack_task or resolve_task")
        if not isinstance(args, Mapping) or not isinstance(args.get("task_id"), str) or not args["task_id"]:
            raise CommandError(
                f'{name} needs a string \'task_id\' argument, e.g. {{"task_id": "cam0-bay-3-1763798400"}}'
            )
        extra = set(args) - {"task_id", "by"}
        if extra:
            raise CommandError(f"{name}: unknown argument(s) {sorted(extra)}; allowed: task_id, by")
        by = args.get("by")
        if by is not None and not isinstance(by, str):
            raise CommandError(f"{name}: 'by' must be a string (who did it)")
        with self._lock:
            if name == "ack_task":
                return self.bikes.dispatch.acknowledge(args["task_id"], by, t, ts)
            return self.bikes.dispatch.resolve(args["task_id"], by, t, ts)

    # -- read-only views ------------------------------------------------------------------------
    def zone_states(self) -> dict[str, dict[str, Any]]:
        """Per zone: kind, in force, held count and rule state (for drawing and the replay tool)."""
        with self._lock:
            return self._zone_states()

    def _zone_states(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        ctx = self._last_ctx
        bays = self.bikes.bay_views()
        crowd = self.crowd.views() if self.crowd is not None else {}
        parking = {r.zone.id: r.state() for r in self.parking}
        for zi, z in enumerate(self.camera.zones):
            st: dict[str, Any] = {
                "kind": z.kind,
                "active": bool(self._active[zi]) if zi < self._active.size else True,
            }
            if ctx is not None:
                inside = ctx.member.all_inside[:, zi]
                st["count"] = int(inside.sum())
                st["track_ids"] = ctx.member.all_ids[inside].tolist()
            if self.zones:
                st["polygon_px"] = self.zones[zi].polygon_px.tolist()
            st.update(bays.get(z.id, {}))
            st.update(crowd.get(z.id, {}))
            st.update(parking.get(z.id, {}))
            out[z.id] = st
        return out

    @property
    def occupancy_grid(self) -> np.ndarray:
        """The current window's grid (rows x cols) of person-seconds (a copy)."""
        return self.features.grid.cells.copy()

    def open_tasks(self) -> list[dict[str, Any]]:
        return [task.payload() for task in self.bikes.dispatch.live()]
