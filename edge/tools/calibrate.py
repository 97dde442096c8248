"""``edge-agent calibrate``: a local web page to commission a pole by drawing, not by typing pixels.

A stdlib ``http.server`` bound to 127.0.0.1 only serves ``static/calibrate.html`` (+ JS/CSS,
no CDN) and a small JSON API. Every ``/api/`` request must carry the page's per-session token
(``X-Edge-Token``, handed to the page inside its HTML) and a ``Host`` (and ``Origin``, when the
browser sends one) of this server itself, so another web page open in the technician's browser --
or a DNS-rebinding trick -- can neither read the camera nor rewrite the config:

* ``GET  /api/config``              cameras with zones/lines/calibration as written in the YAML,
                                    which fields each zone kind uses, the class names, and for a
                                    file source its length and current position
* ``GET  /api/snapshot?camera=ID[&at=S]`` a JPEG of the camera now, or of a video file at its
                                    current position (``at`` moves it to S seconds)
* ``GET  /api/detect?camera=ID``    detections on that same frame, boxes normalised 0..1
* ``POST /api/live``                the next frame with tracks and zone counts drawn, for the zones
                                    and lines being edited (the page polls it 1-2 times a second;
                                    a file plays on from its current position in real time)
* ``POST /api/homography``          ground points -> a leave-one-out check that needs >= 5 points
                                    and names the point that does not fit the others
* ``POST /api/save``                zones, lines, calibration of one camera -> validated through
                                    ``edge.config.parse_config`` -> written to ``--out`` or back to the
                                    config (``.bak`` kept), editing only those keys so the YAML's
                                    comments and layout stay (``edge.tools.yaml_merge``)
"""

from __future__ import annotations

import copy
import hmac
import json
import logging
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import cv2
import numpy as np
import yaml

from edge.classes import CLASSES, GROUPS
from edge.config import parse_config
from edge.config.site import CameraConfig, SiteConfig
from edge.config.zones import DEFAULT_ZONE_CLASSES, LineConfig, ZoneConfig
from edge.errors import CaptureError, ConfigError, EdgeError
from edge.geometry import Homography
from edge.tools.yaml_merge import SpliceError, splice_camera_keys
from edge.types import Frame, SourceState, SourceStatus

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
STATIC_DIR = Path(__file__).with_name("static")
_STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css",
}
_MAX_BODY = 1 << 20
TOKEN_HEADER = "X-Edge-Token"
FEED_IDLE_S = 20.0  # a live source nobody polled for this long is closed
MIN_CHECK_POINTS = 5  # 4 points always fit a homography exactly: a check needs a fifth
SUSPECT_M = 0.3  # a point predicted further off than this by the others is flagged

# The fields each zone kind uses (besides id, kind, polygon and exclude, drawn on the picture).
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "no_parking": ("zone_type", "limit_s", "classes", "schedule"),
    "bike_bay": ("capacity", "operator", "classes", "schedule"),
    "bike_watch": ("classes", "schedule"),
    "crowd": ("area_m2", "los_table", "classes", "schedule"),
    "count": ("classes", "schedule"),
}

# The shapes a zone kind may carry besides its polygon and exclusions, drawn on the picture too.
KIND_SHAPES: dict[str, tuple[str, ...]] = {"no_parking": ("lanes",)}

GrabFn = Callable[[CameraConfig, float], np.ndarray]


def grab_frames(cam: CameraConfig, timeout_s: float, count: int = 1) -> list[Frame]:
    """Up to ``count`` frames from a live camera within ``timeout_s``; CaptureError if none arrive."""
    from edge.capture import open_source

    source = open_source(cam)
    frames: list[Frame] = []
    last_reason = ""
    deadline = time.monotonic() + timeout_s
    try:
        while len(frames) < count and time.monotonic() < deadline:
            item = source.read(timeout_s=min(0.5, max(deadline - time.monotonic(), 0.01)))
            if isinstance(item, Frame):
                frames.append(item)
            elif isinstance(item, SourceStatus):
                last_reason = item.reason or item.state.value
                if item.state == SourceState.ENDED:
                    break
    finally:
        source.close()
    if not frames:
        why = f" ({last_reason})" if last_reason else ""
        raise CaptureError(
            f"camera {cam.id}: no frame from {cam.source!r} within {timeout_s:.0f} s{why}; "
            "check the cable/URL and that no other process holds the camera"
        )
    return frames


def grab_snapshot(cam: CameraConfig, timeout_s: float) -> np.ndarray:
    return grab_frames(cam, timeout_s, 1)[-1].image


def source_kind_of(cam: CameraConfig) -> str:
    from edge.capture.opencv import source_kind

    kind = source_kind(cam.source)
    return kind if kind in ("file", "image") else "live"


class FrameFeed:
    """Frames of one camera for the page.

    A video file is read at a *position* the page controls (the slider, or the live view playing on
    in real time), so a snapshot, a detection preview and the live view all show the same moment of
    the file -- not frame 0. A still image is the image. A live camera is opened once and read
    latest-first while the page polls; it is closed after ``FEED_IDLE_S`` without a request.
    """

    def __init__(self, cam: CameraConfig, timeout_s: float = 10.0) -> None:
        self.cam = cam
        self.kind = source_kind_of(cam)
        self.timeout_s = timeout_s
        self.position_s = 0.0
        self.duration_s: float | None = None
        self.fps = 0.0
        self.last_used = time.monotonic()
        self._cap: Any = None
        self._next_pos = -1.0  # position of the frame a sequential read() returns next
        self._source: Any = None
        self._seq = 0
        self._closed = False
        self._lock = threading.Lock()
        if self.kind == "file":
            self._open_file()

    # -- files -------------------------------------------------------------------------------
    def _open_file(self) -> None:
        cap = cv2.VideoCapture(str(self.cam.source))
        if not cap.isOpened():
            cap.release()
            raise CaptureError(f"camera {self.cam.id}: {self.cam.source} cannot be opened as a video file")
        self._cap = cap
        self.fps = float(cap.get(cv2.CAP_PROP_FPS)) or 25.0
        n = float(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.duration_s = n / self.fps if n > 0 else None
        self._next_pos = 0.0

    def _read_file_at(self, position_s: float) -> np.ndarray:
        """The file's frame at ``position_s``: read on when it is just ahead, else seek."""
        cap = self._cap
        if self.duration_s:
            position_s = min(max(position_s, 0.0), max(self.duration_s - 1.0 / self.fps, 0.0))
        ahead = position_s - self._next_pos
        if not (0.0 <= ahead < 2.0):
            cap.set(cv2.CAP_PROP_POS_MSEC, position_s * 1000.0)
            self._next_pos = position_s
        image = None
        while True:
            ok, img = cap.read()
            if not ok or img is None:
                break
            image = img
            self._next_pos += 1.0 / self.fps
            if self._next_pos > position_s + 1e-6:
                break
        if image is None:
            raise CaptureError(f"camera {self.cam.id}: no frame at {position_s:.1f} s of {self.cam.source}")
        self.position_s = position_s
        return image

    # -- all kinds ---------------------------------------------------------------------------
    def frame(self, at_s: float | None = None) -> Frame:
        """The frame the page is on: the file at ``at_s`` (default: the current position), the image,
        or the camera's latest frame."""
        with self._lock:
            if self._closed:
                raise CaptureError(f"camera {self.cam.id}: released after being idle; ask again")
            self.last_used = time.monotonic()
            self._seq += 1
            if self.kind == "file":
                pos = self.position_s if at_s is None else float(at_s)
                return Frame(self._read_file_at(pos), self._seq, self.position_s, time.time(), self.cam.id)
            if self.kind == "image":
                image = cv2.imread(str(self.cam.source), cv2.IMREAD_COLOR)
                if image is None:
                    raise CaptureError(f"camera {self.cam.id}: {self.cam.source} cannot be read as an image")
                return Frame(image, self._seq, time.monotonic(), time.time(), self.cam.id)
            return self._latest()

    def frames_up_to_now(self, count: int, step_s: float) -> list[Frame]:
        """``count`` frames ``step_s`` apart ending at the current position (history for the motion
        backend); for a live camera the next ``count`` frames."""
        if self.kind != "file":
            return [self.frame() for _ in range(count)]
        end = self.position_s
        times = [max(end - (count - 1 - k) * step_s, 0.0) for k in range(count)]
        frames = [self.frame(t) for t in times]
        self.position_s = end
        return frames

    def advance(self, dt_s: float) -> None:
        """Move a file on by ``dt_s`` (the live view plays it in real time); wraps at the end."""
        if self.kind == "file":
            pos = self.position_s + max(dt_s, 0.0)
            if self.duration_s and pos >= self.duration_s - 1.0 / max(self.fps, 1.0):
                pos = 0.0
            self.position_s = pos

    def _latest(self) -> Frame:
        from edge.capture import open_source

        if self._source is None:
            self._source = open_source(self.cam)
        deadline = time.monotonic() + self.timeout_s
        reason = ""
        while time.monotonic() < deadline:
            item = self._source.read(timeout_s=0.5)
            if isinstance(item, Frame):
                return item
            if isinstance(item, SourceStatus):
                reason = item.reason or item.state.value
        raise CaptureError(
            f"camera {self.cam.id}: no frame from {self.cam.source!r} within {self.timeout_s:.0f} s"
            + (f" ({reason})" if reason else "")
            + "; check the cable/URL and that no other process holds the camera"
        )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._cap is not None:
                self._cap.release()
                self._cap = None
            if self._source is not None:
                self._source.close()
                self._source = None


def _detector(cam: CameraConfig) -> Any:
    from edge.zones.calibration import ground_plane

    if cam.model == "motion":
        from edge.vision.motion import MotionDetector

        return MotionDetector(cam, ground=ground_plane(cam.calibration, f"cameras[{cam.id}].calibration"))
    from edge.vision.detector import build_detector

    return build_detector(cam)


def detections_json(dets: Any, width: int, height: int) -> list[dict[str, Any]]:
    from edge.classes import class_name

    out: list[dict[str, Any]] = []
    for i in range(len(dets)):
        x1, y1, x2, y2 = (float(v) for v in dets.xyxy[i])
        out.append(
            {
                "box": [
                    round(x1 / width, 4),
                    round(y1 / height, 4),
                    round(x2 / width, 4),
                    round(y2 / height, 4),
                ],
                "class": class_name(int(dets.class_id[i])),
                "confidence": round(float(dets.confidence[i]), 3),
            }
        )
    return out


class LiveView:
    """Detector, tracker and the zone rules of one camera over the frames the page polls: each poll
    is one step of the real pipeline, drawn with the tracks and each zone's live count."""

    def __init__(self, cfg: SiteConfig, cam: CameraConfig) -> None:
        from edge.agent.pipeline import CameraPipeline
        from edge.rules import CameraAnalytics
        from edge.tracking import ByteTracker
        from edge.zones.calibration import ground_plane

        self.cfg = cfg
        self.cam = cam
        ground = ground_plane(cam.calibration, f"cameras[{cam.id}].calibration")
        self.pipeline = CameraPipeline(
            cam.id,
            _detector(cam),
            ByteTracker(cfg.rules.tracker, ground=ground),
            CameraAnalytics(cam, cfg.rules, cfg.timezone, ground=ground),
        )
        self.key = self._key(cam)
        self.last_poll: float | None = None

    @staticmethod
    def _key(cam: CameraConfig) -> str:
        return json.dumps(
            [[z.model_dump(mode="json") for z in cam.zones], [ln.model_dump(mode="json") for ln in cam.lines]]
        )

    def set_geometry(self, cam: CameraConfig) -> None:
        """New zones or lines from the page: new rules (tracks carry on)."""
        from edge.rules import CameraAnalytics
        from edge.zones.calibration import ground_plane

        key = self._key(cam)
        if key != self.key:
            ground = ground_plane(cam.calibration, f"cameras[{cam.id}].calibration")
            self.pipeline.analytics = CameraAnalytics(cam, self.cfg.rules, self.cfg.timezone, ground=ground)
            self.cam, self.key = cam, key

    def step(self, frame: Frame) -> np.ndarray:
        from edge.tools.draw import annotate

        result = self.pipeline.step(frame)
        states = result.analytics.zone_states()
        when = (
            f"file at {frame.t:6.1f} s" if source_kind_of(self.cam) == "file" else time.strftime("%H:%M:%S")
        )
        counted = sum(int(st.get("count") or 0) for st in states.values())
        hud = [f"LIVE  {self.cam.id}  {when}", f"{len(result.tracks)} tracked, {counted} counted in zones"]
        return annotate(
            frame.image,
            zones=self.cam.zones,
            lines=self.cam.lines,
            masks=self.cam.masks,
            tracks=result.tracks,
            states=states,
            hud=hud,
        )


def placeholder_image(text: str, width: int = 768, height: int = 432) -> np.ndarray:
    """A grey frame carrying an error message, so the page still lets you edit zones."""
    img = np.full((height, width, 3), 64, np.uint8)
    y = 40
    for chunk in [text[i : i + 70] for i in range(0, len(text), 70)][:12]:
        cv2.putText(img, chunk, (12, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        y += 24
    return img


def check_ground_points(
    image_points: list[list[float]], ground_m: list[list[float]], width: int, height: int
) -> dict[str, Any]:
    """Check a ground calibration by leave-one-out, with ``Homography.fit`` (the one homography).

    Any 4 points fit a homography exactly, so a check needs 5: each point is then predicted from a
    fit on the *others*, and ``loo_errors_m`` says how far from where it was typed. One mistyped
    distance makes the points disagree; with 6 or more, the culprit is the point whose removal leaves
    the others agreeing (``suspect``). With exactly 5 the disagreement is found but cannot be pinned
    on one point (the fit has too few spare equations): the message asks for a sixth.
    """
    if len(image_points) != len(ground_m):
        raise ValueError(
            f"{len(image_points)} image points but {len(ground_m)} ground points; give one metre pair per point"
        )
    n = len(image_points)
    if n < MIN_CHECK_POINTS:
        raise ValueError(
            f"{n} ground points: at least {MIN_CHECK_POINTS} are needed to check them "
            f"(any 4 points fit exactly, so a mistyped one could not be caught); click {MIN_CHECK_POINTS - n} more"
        )
    src = np.asarray(image_points, np.float64).reshape(-1, 2) * np.array([width, height], np.float64)
    dst = np.asarray(ground_m, np.float64).reshape(-1, 2)
    try:
        full = Homography.fit(src, dst).residuals_m(src, dst)
    except ValueError:
        raise ValueError(
            "the points do not define a homography (are 3 of them on one line?); pick spread-out points"
        ) from None
    loo = np.full(n, np.inf)  # each point predicted by the others
    rest = np.full(n, np.inf)  # how well the others agree among themselves without it
    for i in range(n):
        keep = np.arange(n) != i
        try:
            h = Homography.fit(src[keep], dst[keep])
        except ValueError:
            continue  # the others alone are degenerate: this point cannot be checked
        loo[i] = float(h.residuals_m(src[i : i + 1], dst[i : i + 1])[0])
        rest[i] = float(h.residuals_m(src[keep], dst[keep]).max())
    finite = loo[np.isfinite(loo)]
    worst = float(finite.max()) if finite.size else 0.0
    suspect: int | None = None
    if worst > SUSPECT_M and n >= MIN_CHECK_POINTS + 1 and np.isfinite(rest).any():
        best = int(np.argmin(rest))
        if rest[best] <= SUSPECT_M / 2 and loo[best] > SUSPECT_M:
            suspect = best
    # What the page shows per point: with a culprit found, how far each point is from the fit of
    # the points that agree (the culprit: from its prediction) -- not predictions spoiled by it.
    off_by = loo.copy()
    if suspect is not None:
        keep = np.arange(n) != suspect
        off_by = Homography.fit(src[keep], dst[keep]).residuals_m(src, dst)
    if suspect is not None:
        message = (
            f"G{suspect + 1} does not fit: the other points put it {loo[suspect]:.2f} m from where you typed; "
            "check its metres, or that you clicked the right spot"
        )
    elif worst > SUSPECT_M and n == MIN_CHECK_POINTS:
        message = (
            f"the points disagree by up to {worst:.2f} m; with 5 points the check cannot tell which one is "
            "wrong: click a sixth point"
        )
    elif worst > SUSPECT_M:
        message = (
            f"the points disagree by up to {worst:.2f} m and no single one is to blame; "
            "re-measure them, or check they are all on the flat ground"
        )
    else:
        message = f"OK: each point agrees with the others to {worst:.2f} m"
    return {
        "errors_m": [round(float(e), 3) for e in full],
        "max_error_m": round(float(full.max()), 3),
        "loo_errors_m": [round(float(e), 3) if np.isfinite(e) else None for e in loo],
        "off_by_m": [round(float(e), 3) if np.isfinite(e) else None for e in off_by],
        "suspect": suspect,
        "ok": worst <= SUSPECT_M and bool(finite.size),
        "message": message,
    }


@dataclass
class CalibrateState:
    """What the server edits: the YAML text and data of the config and where saving goes."""

    config_path: Path
    out_path: Path | None
    data: dict[str, Any]
    text: str = ""
    timeout_s: float = 10.0
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    lock: threading.Lock = field(default_factory=threading.Lock)
    snapshots: dict[str, tuple[int, int]] = field(default_factory=dict)
    feeds: dict[str, FrameFeed] = field(default_factory=dict)
    lives: dict[str, LiveView] = field(default_factory=dict)
    detectors: dict[str, Any] = field(default_factory=dict)
    grab: GrabFn | None = None  # tests: a stand-in for a live camera

    @classmethod
    def load(cls, config_path: str | Path, out_path: str | Path | None = None, **kw: Any) -> CalibrateState:
        p = Path(config_path)
        try:
            text = p.read_text(encoding="utf-8")
            data = yaml.safe_load(text)
        except FileNotFoundError:
            raise ConfigError(f"{p}: no such file; pass the site config to calibrate") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: YAML syntax error: {exc}") from None
        parse_config(data, source=str(p))  # start only from a config that validates
        return cls(config_path=p, out_path=Path(out_path) if out_path else None, data=data, text=text, **kw)

    def site(self) -> SiteConfig:
        return parse_config(copy.deepcopy(self.data), source=str(self.config_path))

    def camera(self, camera_id: str) -> CameraConfig:
        for cam in self.site().cameras:
            if cam.id == camera_id:
                return cam
        raise KeyError(camera_id)

    def close_idle(self, idle_s: float = FEED_IDLE_S) -> None:
        """Close live cameras nobody asked for in ``idle_s`` (the agent may want the device back)."""
        now = time.monotonic()
        with self.lock:
            for cid, f in list(self.feeds.items()):
                if f.kind == "live" and now - f.last_used > idle_s:
                    f.close()
                    del self.feeds[cid]
                    self.lives.pop(cid, None)

    def feed(self, cam: CameraConfig) -> FrameFeed:
        """The camera's frame feed (created on first use)."""
        old = self.feeds.get(cam.id)
        if old is not None and str(old.cam.source) == str(cam.source):
            return old
        if old is not None:
            old.close()
        f = self.feeds[cam.id] = FrameFeed(cam, self.timeout_s)
        return f

    def image(self, cam: CameraConfig, at_s: float | None = None) -> np.ndarray:
        if self.grab is not None and source_kind_of(cam) == "live":
            return self.grab(cam, self.timeout_s)
        return self.feed(cam).frame(at_s).image

    def detect(self, cam: CameraConfig) -> tuple[list[dict[str, Any]], float | None]:
        """Detections on the frame the page shows (a file's current position); boxes 0..1."""
        det = self.detectors.get(cam.id)
        if det is None:
            det = self.detectors[cam.id] = _detector(cam)
        feed = self.feed(cam)
        if cam.model == "motion":  # the motion backend needs a few frames of history
            frames = feed.frames_up_to_now(12, 1.0 / cam.detect_fps)
        else:
            frames = [feed.frame()]
        dets = None
        for fr in frames:
            dets = det.detect(fr)
        h, w = frames[-1].image.shape[:2]
        return detections_json(dets, w, h), (feed.position_s if feed.kind == "file" else None)

    def live(self, cam_id: str, zones: Any, lines: Any) -> tuple[np.ndarray, float | None]:
        """One live-view step with the page's current zones and lines (the saved ones if invalid)."""
        site = self.site()
        cam = next((c for c in site.cameras if c.id == cam_id), None)
        if cam is None:
            raise KeyError(cam_id)
        try:
            edited = cam.model_copy(
                update={
                    "zones": [ZoneConfig.model_validate(z) for z in zones]
                    if isinstance(zones, list)
                    else cam.zones,
                    "lines": [LineConfig.model_validate(ln) for ln in lines]
                    if isinstance(lines, list)
                    else cam.lines,
                }
            )
        except ValueError:
            edited = cam  # a zone being drawn is not valid yet: count with the saved ones
        view = self.lives.get(cam_id)
        if view is None:
            view = self.lives[cam_id] = LiveView(site, edited)
        view.set_geometry(edited)
        feed = self.feed(cam)
        now = time.monotonic()
        if view.last_poll is not None:
            feed.advance(min(now - view.last_poll, 2.0))
        view.last_poll = now
        frame = feed.frame()
        return view.step(frame), (feed.position_s if feed.kind == "file" else None)

    def api_config(self) -> dict[str, Any]:
        cams = []
        for raw, cam in zip(self.data.get("cameras", []), self.site().cameras, strict=False):
            kind = source_kind_of(cam)
            entry: dict[str, Any] = {
                "id": raw.get("id"),
                "source": str(raw.get("source")),
                "source_kind": kind,
                "model": raw.get("model", CameraConfig.model_fields["model"].default),
                "zones": raw.get("zones") or [],
                "lines": raw.get("lines") or [],
                "calibration": raw.get("calibration"),
            }
            if kind == "file":
                try:
                    f = self.feed(cam)
                    entry.update(duration_s=f.duration_s, position_s=f.position_s)
                except EdgeError as exc:
                    entry["source_error"] = str(exc)
            cams.append(entry)
        return {
            "config_path": str(self.config_path),
            "save_path": str(self.out_path or self.config_path),
            "backup": self.out_path is None,
            "cameras": cams,
            "zone_schema": ZoneConfig.model_json_schema(),
            "line_schema": LineConfig.model_json_schema(),
            "kind_fields": {k: list(v) for k, v in KIND_FIELDS.items()},
            "kind_shapes": {k: list(v) for k, v in KIND_SHAPES.items()},
            "default_classes": {k: list(v) for k, v in DEFAULT_ZONE_CLASSES.items()},
            "class_names": [*CLASSES, *GROUPS],
            "min_check_points": MIN_CHECK_POINTS,
        }

    def save(self, body: dict[str, Any]) -> dict[str, Any]:
        """Merge one camera's zones/lines/calibration into the config, validate, write. ConfigError if invalid."""
        camera_id = body.get("camera")
        zones = body.get("zones")
        if not isinstance(camera_id, str) or not isinstance(zones, list):
            raise ConfigError(
                "save needs {'camera': id, 'zones': [...]}",
                ["request: give camera (string) and zones (list)"],
            )
        data = copy.deepcopy(self.data)
        cams = data.get("cameras") or []
        idx = next((i for i, c in enumerate(cams) if isinstance(c, dict) and c.get("id") == camera_id), None)
        if idx is None:
            raise ConfigError(f"no camera {camera_id!r}", [f"camera: no camera {camera_id!r} in this config"])
        cam = cams[idx]
        edits: dict[str, Any] = {
            "zones": [_clean_zone(z, cam_zone_kinds(self.data, camera_id)) for z in zones]
        }
        if "lines" in body:
            lines = body["lines"]
            if not isinstance(lines, list):
                raise ConfigError("lines must be a list", ["lines: give a list of counting lines"])
            edits["lines"] = [_clean_line(ln) for ln in lines] or None
        if "calibration" in body:
            calib = body["calibration"]
            edits["calibration"] = (
                {
                    "image_points": [
                        [round(float(x), 4), round(float(y), 4)] for x, y in calib["image_points"]
                    ],
                    "ground_points_m": [[float(x), float(y)] for x, y in calib["ground_points_m"]],
                }
                if calib
                else None
            )
        for key, value in edits.items():
            if value is None:
                cam.pop(key, None)
            else:
                cam[key] = value
        target = self.out_path or self.config_path
        parse_config(copy.deepcopy(data), source=str(target))  # raises ConfigError with one line per problem
        comments_kept = True
        try:
            text = splice_camera_keys(self.text, camera_id, edits)
        except SpliceError as exc:
            log.warning(
                "calibrate: cannot keep the layout of %s (%s); writing it plainly", self.config_path, exc
            )
            text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None)
            comments_kept = False
        backup: Path | None = None
        with self.lock:
            if target.exists() and target.resolve() == self.config_path.resolve():
                backup = target.with_name(target.name + ".bak")
                shutil.copy2(target, backup)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(target)
            self.data = data
            if target.resolve() == self.config_path.resolve():
                self.text = text
        for view in self.lives.values():
            view.last_poll = None
        log.info("calibrate: saved camera=%s zones=%d to %s", camera_id, len(zones), target)
        return {
            "ok": True,
            "path": str(target),
            "backup": str(backup) if backup else None,
            "comments_kept": comments_kept,
        }

    def close(self) -> None:
        for f in self.feeds.values():
            f.close()
        self.feeds.clear()


def cam_zone_kinds(data: dict[str, Any], camera_id: str) -> dict[str, str]:
    cam = next((c for c in data.get("cameras") or [] if isinstance(c, dict) and c.get("id") == camera_id), {})
    return {str(z.get("id")): str(z.get("kind")) for z in cam.get("zones") or [] if isinstance(z, dict)}


def _round_poly(poly: Any) -> Any:
    if not isinstance(poly, list):
        return poly
    return [
        [round(float(p[0]), 4), round(float(p[1]), 4)]
        for p in poly
        if isinstance(p, list | tuple) and len(p) == 2
    ]


def _clean_zone(z: Any, _old_kinds: dict[str, str] | None = None) -> Any:
    """Round coordinates to 4 decimals (0.1 px at 1000 px); drop empty optional fields and the fields
    the zone's kind does not use (a crowd zone keeps no capacity left over from being a bike bay, and only
    a no-parking zone keeps traffic lanes)."""
    if not isinstance(z, dict):
        return z
    out = {k: v for k, v in z.items() if v is not None and v != "" and v != []}
    kind = out.get("kind")
    if isinstance(kind, str) and kind in KIND_FIELDS:
        allowed = {"id", "kind", "polygon", "exclude", *KIND_FIELDS[kind], *KIND_SHAPES.get(kind, ())}
        out = {k: v for k, v in out.items() if k in allowed}
    if "polygon" in out:
        out["polygon"] = _round_poly(out["polygon"])
    for shapes in ("exclude", "lanes"):
        if isinstance(out.get(shapes), list):
            out[shapes] = [_round_poly(p) for p in out[shapes]]
    return out


def _clean_line(ln: Any) -> Any:
    if not isinstance(ln, dict):
        return ln
    out = {k: v for k, v in ln.items() if v is not None and v != "" and v != []}
    for end in ("a", "b"):
        p = out.get(end)
        if isinstance(p, list | tuple) and len(p) == 2:
            out[end] = [round(float(p[0]), 4), round(float(p[1]), 4)]
    return out


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("calibrate http: " + format, *args)

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _jpeg(self, image: np.ndarray, headers: dict[str, str]) -> None:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            return self._json({"error": "could not encode the frame"}, 500)
        self._send(200, buf.tobytes(), "image/jpeg", headers)

    # -- who may ask ---------------------------------------------------------------------------
    def _own_origins(self) -> set[str]:
        port = self.server.server_address[1]
        return {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}

    def _refused(self, api: bool) -> str | None:
        """Why this request is refused, or None. The Host must be this server (DNS rebinding), an
        Origin the page's own, and an API call must carry the page's token."""
        hosts = self._own_origins()
        if self.headers.get("Host", "") not in hosts:
            return "wrong Host: open the page as http://127.0.0.1:PORT/ (through an SSH tunnel from a laptop)"
        origin = self.headers.get("Origin")
        if origin is not None and origin not in {f"http://{h}" for h in hosts}:
            return (
                f"requests from {origin} are not accepted; only the calibration page itself may call this API"
            )
        if api:
            sent = self.headers.get(TOKEN_HEADER, "")
            if not hmac.compare_digest(sent.encode(), self.server.state.token.encode()):
                return "missing or wrong session token; reload the calibration page"
        return None

    def do_GET(self) -> None:
        url = urlparse(self.path)
        api = url.path.startswith("/api/")
        why = self._refused(api)
        if why:
            return self._json({"error": why}, HTTPStatus.FORBIDDEN)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        st = self.server.state
        if url.path in ("/", "/index.html"):
            return self._page()
        if url.path.startswith("/static/"):
            return self._static(url.path[len("/static/") :])
        if url.path == "/api/config":
            return self._json(st.api_config())
        if url.path in ("/api/snapshot", "/api/detect"):
            try:
                cam = st.camera(q.get("camera", ""))
            except KeyError:
                return self._json({"error": f"no camera {q.get('camera')!r}"}, 404)
            except ConfigError as exc:
                return self._json({"error": str(exc), "problems": exc.problems}, 400)
            if url.path == "/api/snapshot":
                at = q.get("at")
                try:
                    at_s = float(at) if at is not None else None
                except ValueError:
                    return self._json({"error": f"at={at!r}: give seconds into the file"}, 400)
                return self._snapshot(cam, at_s)
            try:
                dets, pos = st.detect(cam)
            except (EdgeError, OSError, ImportError, ValueError) as exc:
                return self._json({"error": f"detection preview failed: {exc}"}, 503)
            return self._json({"camera": cam.id, "detections": dets, "position_s": pos})
        return self._json({"error": f"not found: {url.path}"}, 404)

    def _snapshot(self, cam: CameraConfig, at_s: float | None) -> None:
        st = self.server.state
        err = ""
        try:
            image = st.image(cam, at_s)
        except (EdgeError, OSError, ImportError) as exc:
            err = str(exc)
            image = placeholder_image(f"no snapshot: {err}")
        st.snapshots[cam.id] = (int(image.shape[1]), int(image.shape[0]))
        headers = {"X-Frame-Size": f"{image.shape[1]}x{image.shape[0]}"}
        feed = st.feeds.get(cam.id)
        if feed is not None and feed.kind == "file":
            headers["X-Position"] = f"{feed.position_s:.2f}"
        if err:
            headers["X-Snapshot-Error"] = err.encode("ascii", "replace").decode()[:300]
        self._jpeg(image, headers)

    def _page(self) -> None:
        html = (STATIC_DIR / "calibrate.html").read_text(encoding="utf-8")
        html = html.replace("{{TOKEN}}", self.server.state.token)
        self._send(200, html.encode(), _STATIC_TYPES[".html"])

    def _static(self, name: str) -> None:
        p = (STATIC_DIR / name).resolve()
        if STATIC_DIR.resolve() not in p.parents or not p.is_file() or p.suffix not in _STATIC_TYPES:
            return self._json({"error": f"not found: {name}"}, 404)
        if p.suffix == ".html":
            return self._page()
        self._send(200, p.read_bytes(), _STATIC_TYPES[p.suffix])

    def do_POST(self) -> None:
        url = urlparse(self.path)
        why = self._refused(api=True)
        if why:
            return self._json({"error": why}, HTTPStatus.FORBIDDEN)
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            return self._json({"error": "send JSON (Content-Type: application/json)"}, 415)
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            return self._json({"error": "request too large"}, HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError as exc:
            return self._json({"error": f"bad JSON: {exc}"}, 400)
        if not isinstance(body, dict):
            return self._json({"error": "the request body must be a JSON object"}, 400)
        st = self.server.state
        if url.path == "/api/save":
            try:
                return self._json(st.save(body))
            except ConfigError as exc:
                return self._json({"ok": False, "error": str(exc), "problems": exc.problems}, 400)
            except (KeyError, TypeError, ValueError) as exc:
                return self._json(
                    {"ok": False, "error": f"malformed save request: {exc}", "problems": [str(exc)]}, 400
                )
            except OSError as exc:
                return self._json(
                    {"ok": False, "error": f"could not write: {exc}", "problems": [str(exc)]}, 500
                )
        if url.path == "/api/homography":
            cam_id = str(body.get("camera", ""))
            w, h = st.snapshots.get(cam_id, (1000, 1000))
            try:
                return self._json(check_ground_points(body["image_points"], body["ground_points_m"], w, h))
            except (KeyError, TypeError, ValueError) as exc:
                return self._json({"error": str(exc).strip("'\"")}, 400)
        if url.path == "/api/live":
            cam_id = str(body.get("camera", ""))
            try:
                image, pos = st.live(cam_id, body.get("zones"), body.get("lines"))
            except KeyError:
                return self._json({"error": f"no camera {cam_id!r}"}, 404)
            except (EdgeError, OSError, ImportError, ValueError) as exc:
                return self._json({"error": f"live view failed: {exc}"}, 503)
            headers = {"X-Frame-Size": f"{image.shape[1]}x{image.shape[0]}"}
            if pos is not None:
                headers["X-Position"] = f"{pos:.2f}"
            return self._jpeg(image, headers)
        return self._json({"error": f"not found: {url.path}"}, 404)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: CalibrateState, port: int) -> None:
        self.state = state
        super().__init__((HOST, port), _Handler)


class CalibrateServer:
    """The calibration page on http://127.0.0.1:PORT/ (port 0 = pick a free one)."""

    def __init__(self, state: CalibrateState, port: int = 8470) -> None:
        self.state = state
        self._httpd = _Server(state, port)
        self._thread: threading.Thread | None = None
        self._reaper: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._httpd.server_address[1]}/"

    def start(self) -> CalibrateServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="calibrate-http", daemon=True)
        self._thread.start()
        self._start_reaper()
        return self

    def serve_forever(self) -> None:
        self._start_reaper()
        self._httpd.serve_forever()

    def _start_reaper(self) -> None:
        def reap() -> None:
            while not self._stopping.wait(FEED_IDLE_S / 4):
                self.state.close_idle()

        if self._reaper is None:
            self._reaper = threading.Thread(target=reap, name="calibrate-reaper", daemon=True)
            self._reaper.start()

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)
        self.state.close()
