"""``edge-agent calibrate``: a local web page to commission a pole without editing pixels by hand.

A stdlib ``http.server`` bound to 127.0.0.1 only serves ``static/calibrate.html`` (+ JS/CSS,
no CDN) and a small JSON API:

* ``GET  /api/config``              cameras with their zones/lines/calibration (as written in the
                                    YAML) and the JSON Schema of a zone, so the page offers every
                                    zone field the installed agent knows (kind, capacity, schedule...)
* ``GET  /api/snapshot?camera=ID``  a JPEG grabbed now from the camera via ``edge.capture.open_source``
* ``GET  /api/detect?camera=ID``    detections on a fresh frame, boxes normalised 0..1
* ``POST /api/homography``          image points (0..1) + metres -> reprojection error per point
* ``POST /api/save``                zones + calibration for one camera -> validated through
                                    ``edge.config.parse_config`` -> written to ``--out`` (a new
                                    file) or back to the config with a ``.bak`` backup

The config is edited as YAML data, so every other key is kept (YAML comments are not).
"""

from __future__ import annotations

import copy
import json
import logging
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

from edge.config import parse_config
from edge.config.site import CameraConfig, SiteConfig
from edge.config.zones import ZoneConfig
from edge.errors import CaptureError, ConfigError, EdgeError
from edge.geometry import Homography
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

GrabFn = Callable[[CameraConfig, float], np.ndarray]
DetectFn = Callable[[CameraConfig, float], list[dict[str, Any]]]


def grab_frames(cam: CameraConfig, timeout_s: float, count: int = 1) -> list[Frame]:
    """Up to ``count`` frames from the camera within ``timeout_s``; CaptureError if none arrive."""
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


def detect_preview(cam: CameraConfig, timeout_s: float) -> list[dict[str, Any]]:
    """Run the camera's configured detector on fresh frames; boxes normalised to 0..1."""
    from edge.classes import class_name

    if cam.model == "motion":
        from edge.vision.motion import MotionDetector

        detector: Any = MotionDetector(cam)
        frames = grab_frames(cam, timeout_s, 12)  # the motion backend needs a few frames of history
    else:
        from edge.vision.detector import build_detector

        detector = build_detector(cam)
        frames = grab_frames(cam, timeout_s, 1)
    dets = None
    for fr in frames:
        dets = detector.detect(fr)
    assert dets is not None
    h, w = frames[-1].image.shape[:2]
    out: list[dict[str, Any]] = []
    for i in range(len(dets)):
        x1, y1, x2, y2 = (float(v) for v in dets.xyxy[i])
        out.append(
            {
                "box": [round(x1 / w, 4), round(y1 / h, 4), round(x2 / w, 4), round(y2 / h, 4)],
                "class": class_name(int(dets.class_id[i])),
                "confidence": round(float(dets.confidence[i]), 3),
            }
        )
    return out


def placeholder_image(text: str, width: int = 768, height: int = 432) -> np.ndarray:
    """A grey frame carrying an error message, so the page still lets you edit zones."""
    img = np.full((height, width, 3), 64, np.uint8)
    y = 40
    for chunk in [text[i : i + 70] for i in range(0, len(text), 70)][:12]:
        cv2.putText(img, chunk, (12, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        y += 24
    return img


def reprojection(
    image_points: list[list[float]], ground_m: list[list[float]], width: int, height: int
) -> dict[str, Any]:
    """Fit the image->ground homography (pixels -> metres) and report the error per point in metres."""
    if len(image_points) != len(ground_m):
        raise ValueError(
            f"{len(image_points)} image points but {len(ground_m)} ground points; give one metre pair per point"
        )
    if len(image_points) < 4:
        raise ValueError(f"need at least 4 ground points, got {len(image_points)}")
    src = np.asarray(image_points, np.float64).reshape(-1, 2) * np.array([width, height], np.float64)
    dst = np.asarray(ground_m, np.float64).reshape(-1, 2)
    try:
        err = Homography.fit(src, dst).residuals_m(src, dst)
    except ValueError:
        raise ValueError(
            "the points do not define a homography (are 3 of them on one line?); pick spread-out points"
        ) from None
    return {"errors_m": [round(float(e), 3) for e in err], "max_error_m": round(float(err.max()), 3)}


@dataclass
class CalibrateState:
    """What the server edits: the raw YAML data of the config and where saving goes."""

    config_path: Path
    out_path: Path | None
    data: dict[str, Any]
    grab: GrabFn = grab_snapshot
    detect: DetectFn = detect_preview
    timeout_s: float = 10.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    snapshots: dict[str, tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def load(cls, config_path: str | Path, out_path: str | Path | None = None, **kw: Any) -> CalibrateState:
        p = Path(config_path)
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{p}: no such file; pass the site config to calibrate") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: YAML syntax error: {exc}") from None
        parse_config(data, source=str(p))  # start only from a config that validates
        return cls(config_path=p, out_path=Path(out_path) if out_path else None, data=data, **kw)

    def site(self) -> SiteConfig:
        return parse_config(copy.deepcopy(self.data), source=str(self.config_path))

    def camera(self, camera_id: str) -> CameraConfig:
        for cam in self.site().cameras:
            if cam.id == camera_id:
                return cam
        raise KeyError(camera_id)

    def api_config(self) -> dict[str, Any]:
        cams = []
        for raw in self.data.get("cameras", []):
            cams.append(
                {
                    "id": raw.get("id"),
                    "source": str(raw.get("source")),
                    "model": raw.get("model", CameraConfig.model_fields["model"].default),
                    "zones": raw.get("zones") or [],
                    "lines": raw.get("lines") or [],
                    "calibration": raw.get("calibration"),
                }
            )
        return {
            "config_path": str(self.config_path),
            "save_path": str(self.out_path or self.config_path),
            "backup": self.out_path is None,
            "cameras": cams,
            "zone_schema": ZoneConfig.model_json_schema(),
        }

    def save(self, body: dict[str, Any]) -> dict[str, Any]:
        """Merge one camera's zones/calibration into the YAML data, validate, write. ConfigError if invalid."""
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
        cam["zones"] = [_clean_zone(z) for z in zones]
        if "calibration" in body:
            calib = body["calibration"]
            if calib:
                cam["calibration"] = {
                    "image_points": [
                        [round(float(x), 4), round(float(y), 4)] for x, y in calib["image_points"]
                    ],
                    "ground_points_m": [[float(x), float(y)] for x, y in calib["ground_points_m"]],
                }
            else:
                cam.pop("calibration", None)
        target = self.out_path or self.config_path
        parse_config(copy.deepcopy(data), source=str(target))  # raises ConfigError with one line per problem
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None)
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
        log.info("calibrate: saved camera=%s zones=%d to %s", camera_id, len(zones), target)
        return {"ok": True, "path": str(target), "backup": str(backup) if backup else None}


def _clean_zone(z: Any) -> Any:
    """Round polygon coordinates to 4 decimals (0.1 px at 1000 px); drop empty optional fields."""
    if not isinstance(z, dict):
        return z
    out = {k: v for k, v in z.items() if v is not None and v != ""}
    poly = out.get("polygon")
    if isinstance(poly, list):
        out["polygon"] = [
            [round(float(p[0]), 4), round(float(p[1]), 4)] for p in poly if isinstance(p, list | tuple)
        ]
    return out


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("calibrate http: " + format, *args)

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def do_GET(self) -> None:
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        st = self.server.state
        if url.path in ("/", "/index.html"):
            return self._static("calibrate.html")
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
                return self._snapshot(cam)
            try:
                dets = st.detect(cam, st.timeout_s)
            except (EdgeError, OSError, ImportError, ValueError) as exc:
                return self._json({"error": f"detection preview failed: {exc}"}, 503)
            return self._json({"camera": cam.id, "detections": dets})
        return self._json({"error": f"not found: {url.path}"}, 404)

    def _snapshot(self, cam: CameraConfig) -> None:
        st = self.server.state
        err = ""
        try:
            image = st.grab(cam, st.timeout_s)
        except (EdgeError, OSError, ImportError) as exc:
            err = str(exc)
            image = placeholder_image(f"no snapshot: {err}")
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 88])
        if not ok:
            return self._json({"error": "could not encode the snapshot"}, 500)
        st.snapshots[cam.id] = (int(image.shape[1]), int(image.shape[0]))
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(buf)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Frame-Size", f"{image.shape[1]}x{image.shape[0]}")
        if err:
            self.send_header("X-Snapshot-Error", err.encode("ascii", "replace").decode()[:300])
        self.end_headers()
        self.wfile.write(buf.tobytes())

    def _static(self, name: str) -> None:
        p = (STATIC_DIR / name).resolve()
        if STATIC_DIR.resolve() not in p.parents or not p.is_file() or p.suffix not in _STATIC_TYPES:
            return self._json({"error": f"not found: {name}"}, 404)
        self._send(200, p.read_bytes(), _STATIC_TYPES[p.suffix])

    def do_POST(self) -> None:
        url = urlparse(self.path)
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
                return self._json(reprojection(body["image_points"], body["ground_points_m"], w, h))
            except (KeyError, TypeError, ValueError) as exc:
                return self._json({"error": str(exc)}, 400)
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

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._httpd.server_address[1]}/"

    def start(self) -> CalibrateServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="calibrate-http", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)
