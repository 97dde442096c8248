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
from edge.config.zones import ZoneConfig
from edge.errors import CommandError
from edge.features.aggregator import FeatureAggregator, ZoneObservation
from edge.geometry import clip_polygon_to_rect, iou_matrix, points_in_polygon
from edge.rules.bikes import BikeRule
from edge.rules.context import Rule, StepContext
from edge.rules.crowd import CrowdRule
from edge.rules.lines import LineCounter
from edge.rules.livery import LiveryClassifier
from edge.rules.parking import ParkingRule
from edge.rules.redact import person_boxes, redacted_crop
from edge.types import Detections, EventDraft, Frame, Tracks
from edge.zones.calibration import GroundPlane, ground_plane
from edge.zones.geometry import CompiledZone, class_lut, compile_zones, region_px
from edge.zones.membership import ZoneMembership
from edge.zones.schedule import Schedule

log = logging.getLogger(__name__)

_NCOLS = len(CLASSES) + 1  # per-class count columns: 0 is 'other', c + 1 is class c
_COLUMN_NAMES = ("other", *CLASSES)
_TAKEN_IOU = 0.9  # a detection this close to a track's box is that track's (the tracker copies the box)


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
        ground: GroundPlane | None = None,
        evidence: EvidenceSink | None = None,
        livery: LiveryClassifier | None = None,
    ) -> None:
        """``ground`` is the camera's ground plane (built from ``camera.calibration`` when not given):
        the camera's construction hands the same one to the tracker."""
        self.camera = camera
        self.rules = rules
        self.timezone = timezone
        self.evidence = evidence
        self.ground = ground if ground is not None else ground_plane(camera.calibration, f"cameras[{camera.id}].calibration")
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
        self.crowd = CrowdRule(
            [(i, z, self._area_m2(z)) for i, z in enumerate(zones) if z.kind == "crowd"], rules.crowd
        )
        self.zone_rules: list[Rule] = [*self.parking, self.bikes, self.crowd]
        self.lines = LineCounter(
            list(camera.lines), rules.line_events, rules.line_band, hold_s=rules.line_hold_s
        )
        self.features = FeatureAggregator(zones, camera.lines, rules.features)
        self.grid_lut = class_lut(resolve(rules.features.grid_classes))
        self.size: tuple[int, int] | None = None
        self.zones: list[CompiledZone] = []
        self.masks_px: list[np.ndarray] = []
        self._active = np.ones(len(zones), bool)
        self._active_sec: int | None = None
        self._cls_ids = np.zeros(0, np.int64)
        self._cls_val = np.zeros(0, np.int32)
        self._last_ctx: StepContext | None = None
        # update() runs on the pipeline thread, command() on the uplink/command thread.
        self._lock = threading.RLock()

    def _area_m2(self, zone: ZoneConfig) -> float | None:
        """A crowd zone's ground area: configured, else from the ground plane (the zone's normalised
        polygon through the calibration's normalised homography: the same for every frame size)."""
        if zone.area_m2 is not None:
            return zone.area_m2
        if self.ground is not None:
            # Only the part of the zone in view is ground the camera counts people on.
            return self.ground.unit.area_m2(clip_polygon_to_rect(np.asarray(zone.polygon, np.float64), 0, 0, 1, 1))
        log.warning(
            "camera=%s zone=%s: no area_m2 and no calibration; density and LOS are not reported",
            self.camera.id,
            zone.id,
        )
        return None

    # -- geometry ---------------------------------------------------------------------------
    def _ensure_geometry(self, width: int, height: int) -> None:
        """Zones and masks in pixels of this frame size (compiled once per size)."""
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
        self.masks_px = [region_px(p, width, height) for p in cam.masks]
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
        dets = ctx.detections
        persons = person_boxes(
            ctx.tracks.xyxy[ctx.tracks.class_id == PERSON],
            dets.xyxy[dets.class_id == PERSON] if dets is not None else np.zeros((0, 4), np.float32),
        )
        return self.evidence.save(redacted_crop(ctx.image, box, persons), key, ctx.ts)

    # -- the step --------------------------------------------------------------------------
    def update(
        self,
        frame: Frame,
        tracks: Tracks,
        motion_energy: Mapping[str, float] | None = None,
        *,
        detections: Detections | None = None,
    ) -> list[EventDraft]:
        """One frame. ``detections`` (the frame's, as the tracker got them) let crowd zones count the
        people detected but not yet confirmed as tracks, so a restart does not report an empty plaza."""
        return self.update_at(
            frame.t, frame.ts, tracks, (frame.width, frame.height), frame.image, motion_energy, detections
        )

    def update_at(
        self,
        t: float,
        ts: float,
        tracks: Tracks,
        size: tuple[int, int],
        image: np.ndarray | None = None,
        motion_energy: Mapping[str, float] | None = None,
        detections: Detections | None = None,
    ) -> list[EventDraft]:
        """Same as ``update`` without a Frame (scenario tests, benchmarks): ``size`` is (width, height)."""
        with self._lock:
            return self._update_at(t, ts, tracks, size, image, motion_energy, detections)

    def _update_at(
        self,
        t: float,
        ts: float,
        tracks: Tracks,
        size: tuple[int, int],
        image: np.ndarray | None,
        motion_energy: Mapping[str, float] | None,
        detections: Detections | None = None,
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
        visible = self._visible(tracks, raw, detections)
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
            visible=visible,
            detections=detections,
        )
        self._last_ctx = ctx
        out: list[EventDraft] = []
        for rule in self.zone_rules:
            out.extend(rule.update(ctx))
        line_drafts, step_in, step_out = self.lines.update(ctx)
        out.extend(line_drafts)
        energy = motion_energy or {}
        self.features.add(
            ZoneObservation(
                t=t,
                member=member,
                class_id=all_class,
                density=self.crowd.densities(),
                motion={zi: float(energy[z.id]) for zi, z in enumerate(self.zones) if z.id in energy},
                line_in=step_in,
                line_out=step_out,
                grid_anchors=anchors[self.grid_lut[tracks.class_id + 1]],
                frame_size=(width, height),
                counts_now={cz.zi: visible[cz.zi] for cz in self.crowd.zones},
            )
        )
        return out

    def _visible(self, tracks: Tracks, raw: np.ndarray, detections: Detections | None) -> np.ndarray:
        """(Z, 1 + len(CLASSES)) objects visible in each zone now, by class: the confirmed tracks seen in
        this frame whose anchor is inside (``raw``), plus the frame's detections that no track has taken
        (tentative tracks, or people the tracker has not confirmed yet) whose anchor is inside."""
        out = np.zeros((len(self.zones), _NCOLS), np.int64)
        if len(tracks):
            cls = np.clip(tracks.class_id, -1, len(CLASSES) - 1) + 1
            for zi in range(len(self.zones)):
                out[zi] = np.bincount(cls[raw[:, zi]], minlength=_NCOLS)
        if detections is None or not len(detections):
            return out
        free = detections
        if len(tracks):
            same = iou_matrix(free.xyxy, tracks.xyxy) >= _TAKEN_IOU
            same &= free.class_id[:, None] == tracks.class_id[None, :]
            free = free[~same.any(axis=1)]
        if self.masks_px and len(free):
            masked = np.zeros(len(free), bool)
            for poly in self.masks_px:
                masked |= points_in_polygon(free.anchor, poly)
            free = free[~masked]
        if not len(free):
            return out
        anchors = free.anchor.astype(np.float64)
        cls = np.clip(free.class_id, -1, len(CLASSES) - 1) + 1
        for zi, z in enumerate(self.zones):
            out[zi] += np.bincount(cls[z.contains(anchors, free.class_id)], minlength=_NCOLS)
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
        los = {cz.zi: self.crowd.level_of_service(cz) for cz in self.crowd.zones}
        record = self.features.record(t, los)
        return EventDraft(
            kind="features",
            phase="instant",
            key=f"features:{self.camera.id}",
            t=t,
            ts=ts,
            camera_id=self.camera.id,
            payload=record.payload(),
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
        """Per zone: kind, in force, ``count`` and ``counts`` by class as the rules count them (zone members,
        held while briefly unseen; crowd zones: visible now), capacity and occupancy of count zones with a
        capacity, and each rule's state. What the box reports: replay draws it, ``eval`` measures it,
        the state topics publish it."""
        with self._lock:
            return self._zone_states()

    def _zone_states(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        ctx = self._last_ctx
        bays = self.bikes.bay_views()
        crowd = self.crowd.views()
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
                if z.kind == "crowd" and ctx.visible is not None:
                    by_class = ctx.visible[zi]  # what the crowd rule counts: visible now
                else:
                    cls = np.clip(ctx.all_class[inside], -1, len(CLASSES) - 1) + 1
                    by_class = np.bincount(cls, minlength=_NCOLS)
                st["counts"] = {_COLUMN_NAMES[c]: int(n) for c, n in enumerate(by_class) if n}
                if z.kind == "count" and z.capacity:
                    st["capacity"] = int(z.capacity)
                    st["occupancy"] = round(st["count"] / z.capacity, 3)
            if self.zones:
                st["polygon_px"] = self.zones[zi].polygon_px.tolist()
            st.update(bays.get(z.id, {}))
            st.update(crowd.get(z.id, {}))
            st.update(parking.get(z.id, {}))
            out[z.id] = st
        return out

    @property
    def occupancy_grid(self) -> np.ndarray:
        """The current feature window's grid (rows x cols) of object-seconds (a copy)."""
        with self._lock:
            return self.features.grid.cells.copy()

    @property
    def occupancy_total(self) -> np.ndarray:
        """Object-seconds per grid cell since start (a copy): what the replay's heat map shows."""
        with self._lock:
            return self.features.grid.total.copy()

    def open_tasks(self) -> list[dict[str, Any]]:
        return [task.payload() for task in self.bikes.dispatch.live()]
