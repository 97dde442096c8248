"""The model-free motion backend: background subtraction and per-zone motion energy.

Two small parts, both cheap enough for a Pi without a model:

``MotionEnergy(cam).update(frame) -> {zone_id: fraction, ..., "*": fraction}``
    The fraction (0..1) of pixels that changed since the previous frame, on a downscaled
    grey copy, per zone and for the whole frame (``"*"``). About 0 on a static scene.
    The motion gate (``edge.vision.gating``) uses it to skip inference when nothing moves.

``MotionDetector(cam)``
    A ``Detector`` without a model: a selective running-average background (foreground
    pixels are not learned, so a parked car stays foreground for ``absorb_tau_s``), the
    foreground split into connected blobs, and each blob classified by its *ground
    footprint* in metres — projected through the camera's ground-plane calibration — into
    person, bicycle, car, truck or bus. Footprints assume a roughly top-down view (the
    blob's box is projected onto the ground); on a strongly oblique view tall objects
    look longer than they are, so prefer a real model there. When most of the view changes at
    once (lights, exposure) the background is re-learned, so objects standing still at that
    moment become background until they move: another reason to install a model where it counts.

Time enters only through ``Frame.t``: learning rates are per second, not per frame.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge.classes import BICYCLE, BUS, CAR, OTHER, PERSON, TRUCK
from edge.config.site import CameraConfig
from edge.errors import ConfigError
from edge.geometry import Homography
from edge.types import Detections, Frame
from edge.zones.calibration import GroundPlane

log = logging.getLogger(__name__)

__all__ = [
    "FootprintClasses",
    "MotionDetector",
    "MotionEnergy",
    "MotionParams",
]


@dataclass(frozen=True, slots=True)
class FootprintClasses:
    """Ground-footprint size bands in metres (length = long side, width = short side)."""

    person_max_len_m: float = 1.1
    person_max_area_m2: float = 1.0
    bicycle_len_m: tuple[float, float] = (1.2, 2.5)
    bicycle_max_width_m: float = 1.1
    car_len_m: tuple[float, float] = (3.0, 6.5)
    car_width_m: tuple[float, float] = (1.3, 2.7)
    truck_max_len_m: float = 10.0  # longer than a car up to this: truck; longer still: bus
    large_width_m: tuple[float, float] = (1.8, 3.4)

    def classify(self, length_m: np.ndarray, width_m: np.ndarray, area_m2: np.ndarray) -> np.ndarray:
        """Canonical class per footprint (vectorised); ``OTHER`` where no band fits."""
        out = np.full(length_m.shape, OTHER, np.int32)
        person = (length_m <= self.person_max_len_m) & (area_m2 <= self.person_max_area_m2)
        bike = (
            (length_m >= self.bicycle_len_m[0])
            & (length_m <= self.bicycle_len_m[1])
            & (width_m <= self.bicycle_max_width_m)
        )
        car = (
            (length_m >= self.car_len_m[0])
            & (length_m <= self.car_len_m[1])
            & (width_m >= self.car_width_m[0])
            & (width_m <= self.car_width_m[1])
        )
        large = (
            (length_m > self.car_len_m[1])
            & (width_m >= self.large_width_m[0])
            & (width_m <= self.large_width_m[1])
        )
        out[person] = PERSON
        out[bike & ~person] = BICYCLE
        out[car] = CAR
        out[large & (length_m <= self.truck_max_len_m)] = TRUCK
        out[large & (length_m > self.truck_max_len_m)] = BUS
        return out


@dataclass(frozen=True, slots=True)
class MotionParams:
    """Tuning of the motion backend. Durations in seconds, thresholds in 0..255 grey/colour levels."""

    diff_threshold: int = 28  # colour distance from the background that counts as foreground
    background_tau_s: float = 20.0  # how fast background pixels follow slow changes (light)
    absorb_tau_s: float = 3600.0  # how slowly a still foreground object fades into the background
    min_blob_px: int = 24  # smaller blobs are noise
    open_px: int = 3  # morphological opening kernel (removes speckle); 0 disables
    energy_width_px: int = 160  # MotionEnergy works on a grey copy this wide
    energy_threshold: int = 18  # grey-level change that counts as motion for MotionEnergy
    keep_unclassified: bool = False  # also return blobs that fit no class, as OTHER (-1)
    max_foreground_frac: float = 0.5  # more of the view than this changed at once: light switched, re-learn
    footprints: FootprintClasses = FootprintClasses()


def _zone_masks(cam: CameraConfig, width: int, height: int) -> dict[str, np.ndarray]:
    masks: dict[str, np.ndarray] = {}
    scale = np.array([width, height], np.float64)
    for zone in cam.zones:
        m = np.zeros((height, width), np.uint8)
        poly = np.round(np.asarray(zone.polygon, np.float64) * scale).astype(np.int32)
        cv2.fillPoly(m, [poly], 1)
        masks[zone.id] = m.astype(bool)
    return masks


class MotionEnergy:
    """Per-zone motion energy: the fraction of pixels that changed since the previous frame.

    ``update(frame)`` returns ``{zone_id: 0..1, "*": 0..1}``; the first frame (and the first
    after a size change) returns zeros. Works on a grey copy ``energy_width_px`` wide.
    """

    def __init__(self, cam: CameraConfig, params: MotionParams | None = None) -> None:
        self.cam = cam
        self.params = params or MotionParams()
        self._prev: np.ndarray | None = None
        self._size: tuple[int, int] | None = None  # source frame (w, h)
        self._masks: dict[str, np.ndarray] = {}
        self._mask_px: dict[str, int] = {}

    def _small(self, frame: Frame) -> np.ndarray:
        w = min(self.params.energy_width_px, frame.width)
        h = max(1, round(frame.height * w / frame.width))
        grey = cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY)
        small = cv2.resize(grey, (w, h), interpolation=cv2.INTER_AREA)
        if (frame.width, frame.height) != self._size:
            self._size = (frame.width, frame.height)
            self._masks = _zone_masks(self.cam, w, h)
            self._mask_px = {k: int(m.sum()) for k, m in self._masks.items()}
            self._prev = None
        return small

    def update(self, frame: Frame) -> dict[str, float]:
        small = self._small(frame)
        prev, self._prev = self._prev, small
        out: dict[str, float] = {}
        if prev is None:
            out = dict.fromkeys(self._masks, 0.0)
            out["*"] = 0.0
            return out
        moved = cv2.absdiff(small, prev) > self.params.energy_threshold
        for zid, mask in self._masks.items():
            n = self._mask_px[zid]
            out[zid] = float(np.count_nonzero(moved & mask)) / n if n else 0.0
        out["*"] = float(np.count_nonzero(moved)) / moved.size
        return out


class MotionDetector:
    """A ``Detector`` from background subtraction, classifying blobs by ground footprint.

    Needs ``cam.calibration`` (at least 4 ground points): without metres there is no way to
    tell a bicycle from a car. The first frame seeds the background, so start it on a scene
    without the objects you want found (a parked car present at start-up stays background
    until it leaves, then shows as a ghost until ``background_tau_s`` has passed).
    """

    name = "motion"
    sha256 = ""

    def __init__(
        self, cam: CameraConfig, params: MotionParams | None = None, ground: GroundPlane | None = None
    ) -> None:
        if cam.calibration is None:
            raise ConfigError(
                f"cameras[{cam.id}]: model 'motion' needs a ground-plane calibration to tell persons, "
                "bicycles and cars apart by size; add cameras[].calibration with >= 4 image_points "
                "and their ground_points_m (edge-agent calibrate helps)"
            )
        self.cam = cam
        self.params = params or MotionParams()
        self.ground = ground or GroundPlane(cam.calibration, where=f"cameras[{cam.id}].calibration")
        self.last_timing_ms: dict[str, float] = {"pre": 0.0, "infer": 0.0, "post": 0.0}
        self._bg: np.ndarray | None = None
        self._last_t: float | None = None
        self._h: Homography | None = None
        self._size: tuple[int, int] | None = None
        k = self.params.open_px
        self._kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)) if k > 0 else None
        self.foreground: np.ndarray | None = None  # last foreground mask (uint8 0/1), for drawing

    def reset(self) -> None:
        """Forget the background (e.g. after the camera moved); the next frame seeds it again."""
        self._bg = None
        self._last_t = None

    def _alpha(self, dt: float, tau: float) -> float:
        return 1.0 - math.exp(-max(dt, 0.0) / tau) if tau > 0 else 1.0

    def detect(self, frame: Frame) -> Detections:
        t0 = time.perf_counter()
        img = frame.image
        if (frame.width, frame.height) != self._size:
            self._size = (frame.width, frame.height)
            self._h = self.ground.at(frame.width, frame.height)
            self._bg = None
        if self._bg is None or self._last_t is None:
            self._bg = img.astype(np.float32)
            self._last_t = frame.t
            self.foreground = np.zeros(img.shape[:2], np.uint8)
            self.last_timing_ms = {"pre": (time.perf_counter() - t0) * 1e3, "infer": 0.0, "post": 0.0}
            return Detections.empty()
        dt = frame.t - self._last_t
        self._last_t = frame.t
        bg = self._bg
        t1 = time.perf_counter()
        diff = cv2.absdiff(img, cv2.convertScaleAbs(bg))
        dist = cv2.max(cv2.max(diff[..., 0], diff[..., 1]), diff[..., 2])
        fg: np.ndarray = (dist > self.params.diff_threshold).astype(np.uint8)
        if self._kernel is not None:
            fg = np.asarray(cv2.morphologyEx(fg, cv2.MORPH_OPEN, self._kernel), np.uint8)
        if np.count_nonzero(fg) > self.params.max_foreground_frac * fg.size:
            # The whole view changed (lights, exposure, camera knocked): no object is that big. Re-learn.
            log.info(
                "motion background re-learned camera=%s: %.0f%% of the view changed",
                self.cam.id,
                100.0 * np.count_nonzero(fg) / fg.size,
            )
            self._bg = img.astype(np.float32)
            self.foreground = np.zeros(img.shape[:2], np.uint8)
            self.last_timing_ms = {
                "pre": (t1 - t0) * 1e3,
                "infer": (time.perf_counter() - t1) * 1e3,
                "post": 0.0,
            }
            return Detections.empty()
        # Selective update: background pixels follow the scene, foreground only very slowly.
        a_bg = self._alpha(dt, self.params.background_tau_s)
        a_fg = self._alpha(dt, self.params.absorb_tau_s)
        cv2.accumulateWeighted(img, bg, a_bg, mask=1 - fg)
        if a_fg > 0:
            cv2.accumulateWeighted(img, bg, a_fg, mask=fg)
        self.foreground = fg
        t2 = time.perf_counter()
        contours, _ = cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        dets = self._classify(contours)
        t3 = time.perf_counter()
        self.last_timing_ms = {"pre": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3, "post": (t3 - t2) * 1e3}
        return dets

    def _classify(self, contours: Sequence[np.ndarray]) -> Detections:
        """Blob outlines -> detections classed by their projected ground footprint."""
        if not contours or self._h is None:
            return Detections.empty()
        rects = np.array([cv2.boundingRect(c) for c in contours], np.float64).reshape(-1, 4)
        areas = np.array([cv2.contourArea(c) for c in contours], np.float64)
        keep_size = rects[:, 2] * rects[:, 3] >= self.params.min_blob_px
        rects, areas = rects[keep_size], areas[keep_size]
        if rects.shape[0] == 0:
            return Detections.empty()
        x, y, w, h = rects[:, 0], rects[:, 1], rects[:, 2], rects[:, 3]
        corners = np.stack(
            [
                np.stack([x, y], 1),
                np.stack([x + w, y], 1),
                np.stack([x + w, y + h], 1),
                np.stack([x, y + h], 1),
            ],
            axis=1,
        )  # (N, 4, 2)
        g = self._h.to_ground(corners)
        side_a = np.linalg.norm(g[:, 1] - g[:, 0], axis=1)
        side_b = np.linalg.norm(g[:, 2] - g[:, 1], axis=1)
        gx, gy = g[..., 0], g[..., 1]
        nxt = [1, 2, 3, 0]
        quad_area = 0.5 * np.abs(np.sum(gx * gy[:, nxt] - gx[:, nxt] * gy, axis=1))
        # the outline's polygon runs through the edge pixels' centres: a full w x h block has area (w-1)(h-1)
        fill = np.clip((areas + w + h - 1.0) / np.maximum(w * h, 1.0), 0.0, 1.0)
        area_m2 = quad_area * fill
        length = np.maximum(side_a, side_b)
        width = np.minimum(side_a, side_b)
        cls = self.params.footprints.classify(length, width, area_m2)
        keep = np.ones(cls.shape, bool) if self.params.keep_unclassified else cls != OTHER
        xyxy = np.stack([x, y, x + w, y + h], 1)[keep]
        conf = (0.55 + 0.4 * np.clip(fill, 0.0, 1.0))[keep]
        return Detections.from_arrays(xyxy, conf, cls[keep])
