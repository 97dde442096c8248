"""``edge-agent replay``: the full pipeline over a recording, with pictures a technician can check.

The site config's camera (zones, rules, model) runs unchanged except that its source is the
recording, played in *video time* (as fast as the CPU allows, with the file's own
timestamps). The agent's uplink is pointed at a private outbox in the output directory and
MQTT is switched off, so a replay never publishes. Written to ``--out``:

* ``events.jsonl``   every event the agent built (except ``features``), one JSON object a line
* ``features.jsonl`` the ``features`` records
* ``annotated.avi`` (MJPG) or ``annotated.mp4`` (mp4v) -- or ``frames/*.jpg`` with ``--no-video``
  -- zones with live state, tracks with ids/class/parked time, counts and recent events
* ``snapshot.png``   the annotated frame with the most tracks
* ``heatmap.png``    the occupancy grid over the last frame
* ``timeseries.png`` per-zone counts, density and occupancy over video time
* ``summary.json``
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.agent.pipeline import Analytics, StepResult
from edge.agent.runner import Agent
from edge.config.hardware import HardwareConfig
from edge.config.site import CameraConfig, SiteConfig
from edge.errors import CaptureError, ConfigError
from edge.tools.draw import annotate, class_counts, draw_zones
from edge.tools.heatmap import render_heatmap, save_png
from edge.tools.plots import ZoneSeries, render_timeseries
from edge.tools.progress import ProgressBar

log = logging.getLogger(__name__)

_IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
_QUIET_KINDS = ("device_health",)


@dataclass(frozen=True)
class ReplayOptions:
    source: str
    out_dir: str | Path = "replay-out"
    hold_s: float | None = None  # still images: simulated seconds
    camera_id: str | None = None  # default: the first camera
    video: bool = True  # False: annotated JPEG frames instead of a video file
    frames_every_s: float | None = None  # also write a JPEG every S seconds of video
    progress: bool = True


def replay_config(cfg: SiteConfig, opts: ReplayOptions, out_dir: Path) -> SiteConfig:
    """The site config with one camera reading ``opts.source`` in video time and a private, offline uplink."""
    cams = cfg.cameras
    if opts.camera_id is None:
        cam = cams[0]
    else:
        found = [c for c in cams if c.id == opts.camera_id]
        if not found:
            raise ConfigError(
                f"no camera {opts.camera_id!r}",
                [f"--camera: no camera {opts.camera_id!r}; this config has {', '.join(c.id for c in cams)}"],
            )
        cam = found[0]
    src = Path(opts.source)
    if "://" not in opts.source and not src.exists():
        raise CaptureError(f"{opts.source}: no such file; give a video or image recorded at the pole")
    update: dict[str, Any] = {"source": opts.source, "playback": "video_time", "loop": False}
    if opts.hold_s is not None:
        if opts.hold_s <= 0:
            raise ConfigError("--hold must be > 0", ["--hold: must be > 0 seconds"])
        update["hold_s"] = float(opts.hold_s)
    new_cam = cam.model_copy(update=update)
    # The agent's own outbox (and, with no broker, its events.jsonl sink) live in a sub-folder so
    # they never mix with the replay's events.jsonl; a fresh outbox per run.
    uplink_dir = out_dir / "uplink"
    uplink_dir.mkdir(parents=True, exist_ok=True)
    outbox = uplink_dir / "outbox.sqlite"
    for p in uplink_dir.iterdir():
        if p.is_file():
            p.unlink()
    uplink = cfg.uplink.model_copy(update={"mqtt": None, "outbox_path": str(outbox), "jsonl_path": None})
    health = cfg.health.model_copy(update={"health_interval_s": 1e9})
    return cfg.model_copy(
        update={
            "cameras": [new_cam],
            "uplink": uplink,
            "hardware": HardwareConfig.model_validate({}),
            "health": health,
        }
    )


def probe_duration(source: str, hold_s: float) -> float | None:
    """Seconds of video in the file (hold_s for a still image); None when unknown (streams)."""
    if Path(source).suffix.lower() in _IMAGE_EXT:
        return hold_s
    cap = cv2.VideoCapture(source)
    try:
        if not cap.isOpened():
            return None
        n = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        fps = cap.get(cv2.CAP_PROP_FPS)
        return float(n / fps) if n > 0 and fps > 0 else None
    finally:
        cap.release()


class _VideoOut:
    """MJPG .avi or mp4v .mp4 (whichever this cv2 can write), else JPEG frames."""

    def __init__(self, out_dir: Path, fps: float, enabled: bool) -> None:
        self.out_dir = out_dir
        self.fps = max(min(fps, 60.0), 1.0)
        self.enabled = enabled
        self.writer: Any = None
        self.path: Path | None = None
        self.frames_dir = out_dir / "frames"
        self.count = 0

    def write(self, image: np.ndarray) -> None:
        if self.enabled and self.writer is None and self.path is None:
            h, w = image.shape[:2]
            for name, fourcc in (("annotated.avi", "MJPG"), ("annotated.mp4", "mp4v")):
                p = self.out_dir / name
                wr = cv2.VideoWriter(str(p), cv2.VideoWriter.fourcc(*fourcc), self.fps, (w, h))
                if wr.isOpened():
                    self.writer, self.path = wr, p
                    break
                wr.release()
                p.unlink(missing_ok=True)
            if self.writer is None:
                log.warning(
                    "cv2 cannot write MJPG or mp4v video here; writing JPEG frames to %s", self.frames_dir
                )
                self.enabled = False
        if self.writer is not None:
            self.writer.write(image)
        else:
            self.write_jpeg(image, f"frame_{self.count:06d}.jpg")
        self.count += 1

    def write_jpeg(self, image: np.ndarray, name: str) -> Path:
        self.frames_dir.mkdir(parents=True, exist_ok=True)
        p = self.frames_dir / name
        cv2.imwrite(str(p), image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        return p

    def close(self) -> Path | None:
        if self.writer is not None:
            self.writer.release()
            return self.path
        return self.frames_dir if self.count else None


class ReplayRecorder:
    """Consumes the agent's ``on_event`` / ``on_step`` callbacks and writes the replay outputs."""

    def __init__(
        self,
        cam: CameraConfig,
        out_dir: Path,
        *,
        video: bool = True,
        frames_every_s: float | None = None,
        progress: ProgressBar | None = None,
    ) -> None:
        self.cam = cam
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        self._events = (out_dir / "events.jsonl").open("w", encoding="utf-8")
        self._features = (out_dir / "features.jsonl").open("w", encoding="utf-8")
        self._lock = threading.Lock()
        self.video = _VideoOut(out_dir, cam.detect_fps, video)
        self.frames_every_s = frames_every_s
        self.progress = progress
        self.series = ZoneSeries()
        self.events_by_kind: dict[str, int] = {}
        self.frames = 0
        self.t0: float | None = None
        self.last_t = 0.0
        self.last_image: np.ndarray | None = None
        self._analytics: Analytics | None = None
        self._recent: deque[tuple[float, str]] = deque(maxlen=4)
        self._hot: set[int] = set()
        self._next_still = 0.0
        self._best_tracks = -1
        self._best_image: np.ndarray | None = None
        self.errors: list[str] = []

    # -------------------------------------------------------------- callbacks
    def on_event(self, event: dict[str, Any]) -> None:
        kind = str(event.get("kind", "?"))
        with self._lock:
            self.events_by_kind[kind] = self.events_by_kind.get(kind, 0) + 1
            line = json.dumps(event, ensure_ascii=False, default=str) + "\n"
            (self._features if kind == "features" else self._events).write(line)
            if kind in ("features", *_QUIET_KINDS):
                return
            tid = event.get("track_id", (event.get("payload") or {}).get("track_id"))
            phase = event.get("phase")
            if isinstance(tid, int):
                if phase in ("start", "update"):
                    self._hot.add(tid)
                elif phase == "end":
                    self._hot.discard(tid)
            if event.get("camera_id"):
                zone = f" {event['zone_id']}" if event.get("zone_id") else ""
                self._recent.append((self.last_t, f"{kind} {phase}{zone}"))

    def on_step(self, result: StepResult) -> None:
        try:
            self._step(result)
        except Exception as exc:  # a drawing bug must not stop the agent's camera thread
            if len(self.errors) < 5:
                log.exception("replay drawing failed at frame %d", self.frames)
            self.errors.append(repr(exc))

    def _step(self, result: StepResult) -> None:
        frame = result.frame
        tracks = result.tracks
        with self._lock:
            if self.t0 is None:
                self.t0 = frame.t
            vt = frame.t - self.t0
            self.last_t = vt
            self.frames += 1
            self._analytics = result.analytics
            states = result.analytics.zone_states()
            self._sample(vt, states)
            counts = class_counts(tracks)
            hud = [
                f"{self.cam.id}  t={vt:7.1f}s  frame {self.frames}"
                + ("" if result.inferred else "  (gated)"),
                "tracks: " + (" ".join(f"{k}:{v}" for k, v in counts.items()) or "none"),
            ]
            hud += [f"{t:6.1f}s {text}" for t, text in self._recent if vt - t <= 10.0]
            image = annotate(
                frame.image,
                zones=self.cam.zones,
                lines=self.cam.lines,
                masks=self.cam.masks,
                tracks=tracks,
                states=states,
                hud=hud,
                highlight=self._hot,
            )
            self.last_image = frame.image
        if len(tracks) > self._best_tracks or self._best_image is None:
            self._best_tracks, self._best_image = len(tracks), image  # the busiest frame -> snapshot.png
        self.video.write(image)
        if self.frames_every_s and vt >= self._next_still:
            self.video.write_jpeg(image, f"still_{vt:08.1f}s.jpg")
            self._next_still = vt + self.frames_every_s
        if self.progress is not None:
            self.progress.update(vt)

    # -------------------------------------------------------------- helpers
    def _sample(self, vt: float, states: dict[str, dict[str, Any]]) -> None:
        """Per-zone count, density and occupancy as the rules hold them (the numbers the box reports)."""
        for zid, st in states.items():
            self.series.add(vt, zid, "count", float(st.get("count") or 0))
            for metric in ("density", "occupancy"):
                value = st.get(metric)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self.series.add(vt, zid, metric, float(value))

    def zone_max(self) -> dict[str, dict[str, float]]:
        """The peak of each metric per zone over the replay (for the summary)."""
        out: dict[str, dict[str, float]] = {}
        for metric in self.series.metrics():
            for zone in self.series.zones():
                _, vs = self.series.series(metric, zone)
                if vs.size:
                    out.setdefault(metric, {})[zone] = round(float(vs.max()), 4)
        return out

    def occupancy_grid(self) -> np.ndarray | None:
        """Object-seconds per cell since the start, as the rules' feature stage accumulated them."""
        return self._analytics.occupancy_total if self._analytics is not None else None

    def close(self) -> list[Path]:
        """Flush the JSONL files, finish the video, write the heat map and the plot."""
        with self._lock:
            self._events.close()
            self._features.close()
        files = [self.out_dir / "events.jsonl", self.out_dir / "features.jsonl"]
        vid = self.video.close()
        if vid is not None:
            files.append(vid)
        grid = self.occupancy_grid()
        if self.last_image is not None and grid is not None:
            background = draw_zones(self.last_image, self.cam.zones, lines=self.cam.lines)
            heat = render_heatmap(grid, background, title=f"{self.cam.id} occupancy")
            files.append(save_png(self.out_dir / "heatmap.png", heat))
        if self._best_image is not None:
            files.append(save_png(self.out_dir / "snapshot.png", self._best_image))
        plot = render_timeseries(self.series, title=f"{self.cam.id}: per-zone time series")
        files.append(save_png(self.out_dir / "timeseries.png", plot))
        return files


def replay(
    cfg: SiteConfig, opts: ReplayOptions, *, agent_factory: Callable[..., Any] | None = None
) -> dict[str, Any]:
    """Run the agent over ``opts.source``; returns a summary (also written to ``summary.json``)."""
    from edge.capture.opencv import check_decodable

    # A recording that is missing or cannot be decoded is an error, not a camera to wait for:
    # fail here with one line instead of letting the capture retry it forever.
    check_decodable(opts.source)
    out_dir = Path(opts.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rcfg = replay_config(cfg, opts, out_dir)
    cam = rcfg.cameras[0]
    bar = ProgressBar(probe_duration(opts.source, cam.hold_s)) if opts.progress else None
    rec = ReplayRecorder(cam, out_dir, video=opts.video, frames_every_s=opts.frames_every_s, progress=bar)
    agent = (agent_factory or Agent)(rcfg, on_event=rec.on_event, on_step=rec.on_step)
    started = time.monotonic()
    try:
        code = int(agent.run())
    finally:
        wall = time.monotonic() - started
        if bar is not None:
            bar.close()
        files = rec.close()
    if code != 0:
        raise CaptureError(f"replay of {opts.source} stopped with exit code {code}; see the log above")
    summary: dict[str, Any] = {
        "source": opts.source,
        "camera": cam.id,
        "frames": rec.frames,
        "video_s": round(rec.last_t, 3),
        "wall_s": round(wall, 3),
        "fps": round(rec.frames / wall, 2) if wall > 0 else 0.0,
        "events": sum(v for k, v in rec.events_by_kind.items() if k != "features"),
        "events_by_kind": dict(sorted(rec.events_by_kind.items())),
        "drawing_errors": len(rec.errors),
        "zone_max": rec.zone_max(),
        "files": [str(p) for p in files],
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    summary["files"].append(str(out_dir / "summary.json"))
    if rec.errors:
        log.error("replay: %d frame(s) could not be drawn, first: %s", len(rec.errors), rec.errors[0])
    return summary
