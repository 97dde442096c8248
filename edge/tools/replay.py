"""``edge-agent replay``: the full pipeline over a recording, with pictures a technician can check.

The site config's camera (zones, rules, model) runs unchanged except that its source is the
recording, played in *video time* (as fast as the CPU allows, with the file's own
timestamps). The agent's uplink is pointed at a private outbox in the output directory and
MQTT is switched off, so a replay never publishes. Written to ``--out``:

* ``report.html``    the page an operator reads (``edge.tools.report``)
* ``events.jsonl``   every event the agent built (except ``features``), one JSON object a line
* ``features.jsonl`` the ``features`` records
* ``annotated.avi`` (MJPG) or ``annotated.mp4`` (mp4v) -- or ``frames/*.jpg`` with ``--no-video``
  -- zones with live state, tracks with ids/class/parked time, counts and recent events
* ``snapshot.png``   the busiest moment (most objects counted in the zones)
* ``heatmap.png``    seconds of presence per grid cell, summed over the replay, over the last frame
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
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.agent.pipeline import Analytics, StepResult
from edge.agent.runner import Agent
from edge.config.hardware import HardwareConfig
from edge.config.rules import RulesConfig
from edge.config.site import CameraConfig, SiteConfig
from edge.errors import CaptureError, ConfigError
from edge.rules.crowd import LOS_TABLES
from edge.tools.draw import annotate, class_counts, draw_zones, zone_summary
from edge.tools.heatmap import render_heatmap, save_png
from edge.tools.loops import build_report as build_loop_report
from edge.tools.plots import ZoneSeries, render_timeseries
from edge.tools.progress import ProgressBar
from edge.tools.report import (
    EVENT_WORDS,
    PERIODIC_KINDS,
    KeyFrame,
    ReportData,
    ReportEvent,
    plural,
    write_report,
)

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

    MAX_EVENT_FRAMES = 4

    def __init__(
        self,
        cam: CameraConfig,
        out_dir: Path,
        *,
        video: bool = True,
        frames_every_s: float | None = None,
        progress: ProgressBar | None = None,
        rules: RulesConfig | None = None,
        source: str = "",
        total_s: float | None = None,
    ) -> None:
        self.cam = cam
        # Candidate key frames through the recording (every sixth of it), for a report with few events.
        self._spaced_every = (total_s / 6.0) if total_s and total_s > 0 else 20.0
        self._next_spaced = self._spaced_every / 2.0
        self._spaced: list[tuple[int, KeyFrame]] = []
        self.rules = rules or RulesConfig()
        self.source = source or str(cam.source)
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        self._events = (out_dir / "events.jsonl").open("w", encoding="utf-8")
        self._features = (out_dir / "features.jsonl").open("w", encoding="utf-8")
        self._lock = threading.Lock()
        self.video = _VideoOut(out_dir, cam.detect_fps, video)
        self.frames_every_s = frames_every_s
        self.progress = progress
        self.series = ZoneSeries()
        self.los: dict[str, list[tuple[float, str]]] = {}
        self.area_m2: dict[str, float | None] = {}
        self.events_by_kind: dict[str, int] = {}
        self.frames = 0
        self.t0: float | None = None
        self.ts0: float | None = None  # wall-clock stamp of the first frame: event ts -> video time
        self.last_t = 0.0
        self.last_image: np.ndarray | None = None
        self._analytics: Analytics | None = None
        self._recent: deque[tuple[float, str]] = deque(maxlen=4)
        self._hot: set[int] = set()
        self._next_still = 0.0
        self._best_count = -1
        self._best: KeyFrame | None = None
        self._raw_events: list[tuple[float | None, dict[str, Any]]] = []
        self._pending_captions: list[str] = []
        self._event_frames: list[KeyFrame] = []
        self.errors: list[str] = []
        self.wall_s = 0.0

    # -------------------------------------------------------------- callbacks
    def on_event(self, event: dict[str, Any]) -> None:
        kind = str(event.get("kind", "?"))
        with self._lock:
            self.events_by_kind[kind] = self.events_by_kind.get(kind, 0) + 1
            line = json.dumps(event, ensure_ascii=False, default=str) + "\n"
            (self._features if kind == "features" else self._events).write(line)
            if kind in ("features", *_QUIET_KINDS):
                return
            self._raw_events.append((_epoch(event.get("ts")), event))
            tid = event.get("track_id", (event.get("payload") or {}).get("track_id"))
            phase = event.get("phase")
            if isinstance(tid, int):
                if phase in ("start", "update"):
                    self._hot.add(tid)
                elif phase == "end":
                    self._hot.discard(tid)
            if event.get("camera_id") and kind in EVENT_WORDS:
                zone = f" {event['zone_id']}" if event.get("zone_id") else ""
                words = EVENT_WORDS[kind]
                self._recent.append((self.last_t, f"{words} {phase if phase != 'instant' else ''}{zone}".strip()))
                first_crossing = kind == "line_crossing" and self.events_by_kind[kind] == 1
                room = len(self._event_frames) + len(self._pending_captions) < self.MAX_EVENT_FRAMES
                if (phase == "start" or first_crossing) and room:
                    reason = str(event.get("severity_reason") or "")
                    where = f" {event['zone_id']}" if event.get("zone_id") else ""
                    self._pending_captions.append(
                        f"first crossing of{where}"
                        if first_crossing
                        else f"{words} started{' in' + where if where else ''}" + (f": {reason}" if reason else "")
                    )

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
                self.t0, self.ts0 = frame.t, frame.ts
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
                "in view: " + (", ".join(f"{v} {k}" for k, v in counts.items()) or "nothing"),
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
            captions, self._pending_captions = self._pending_captions, []
        counted = sum(int(st.get("count") or 0) for st in states.values())
        if counted > self._best_count or self._best is None:  # the zones held the most -> snapshot.png
            self._best_count = counted
            per_zone = ", ".join(f"{z}: {int(st.get('count') or 0)}" for z, st in states.items() if st.get("count"))
            self._best = KeyFrame(vt, f"busiest moment: {counted} counted in the zones ({per_zone or 'none'})", image)
        for caption in captions:
            self._event_frames.append(KeyFrame(vt, caption, image))
        if vt >= self._next_spaced:
            self._next_spaced = vt + self._spaced_every
            summary = "; ".join(
                f"{z.id}: {zone_summary(z.kind, states.get(z.id))}" for z in self.cam.zones if z.id in states
            )
            self._spaced.append((counted, KeyFrame(vt, summary or "the scene", image)))
        self.video.write(image)
        if self.frames_every_s and vt >= self._next_still:
            self.video.write_jpeg(image, f"still_{vt:08.1f}s.jpg")
            self._next_still = vt + self.frames_every_s
        if self.progress is not None:
            self.progress.update(vt)

    # -------------------------------------------------------------- helpers
    def _sample(self, vt: float, states: dict[str, dict[str, Any]]) -> None:
        """Per-zone numbers exactly as the rules hold them (the numbers the box reports)."""
        for zid, st in states.items():
            self.series.add(vt, zid, "count", float(st.get("count") or 0))
            for metric in ("count_smoothed", "density", "occupancy"):
                value = st.get(metric)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self.series.add(vt, zid, metric, float(value))
            # The state's density is rounded to 0.001 /m2 (the event payload's precision): a person or
            # two in a large zone would plot as a staircase. Draw it from the same state's smoothed
            # count and area -- the rule's own definition -- so the density panel follows the count's.
            smoothed, area = st.get("count_smoothed"), st.get("area_m2")
            if isinstance(smoothed, int | float) and isinstance(area, int | float) and area > 0:
                self.series.replace_last(zid, "density", float(smoothed) / float(area))
            if isinstance(st.get("area_m2"), int | float):
                self.area_m2[zid] = float(st["area_m2"])
            if isinstance(st.get("los"), str):
                self.los.setdefault(zid, []).append((vt, str(st["los"])))

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
        """Seconds of presence per cell since the start, as the rules' feature stage summed them."""
        return self._analytics.occupancy_total if self._analytics is not None else None

    def report_events(self) -> list[ReportEvent]:
        out: list[ReportEvent] = []
        for epoch, ev in self._raw_events:
            kind = str(ev.get("kind", "?"))
            if kind not in EVENT_WORDS and kind not in PERIODIC_KINDS:
                continue
            t = epoch - self.ts0 if epoch is not None and self.ts0 is not None else self.last_t
            out.append(
                ReportEvent(
                    t=max(float(t), 0.0),
                    kind=kind,
                    phase=str(ev.get("phase", "instant")),
                    zone_id=ev.get("zone_id"),
                    severity=str(ev.get("severity") or "info"),
                    reason=str(ev.get("severity_reason") or ""),
                    incident_id=str(ev.get("incident_id") or ""),
                    payload=dict(ev.get("payload") or {}),
                )
            )
        return out

    def report_data(self, model: str = "") -> ReportData:
        crowd_cfg = self.rules.crowd
        tables: dict[str, str] = {
            z.id: str(z.los_table or crowd_cfg.los_table) for z in self.cam.zones if z.kind == "crowd"
        }
        bounds = {
            z: tuple(crowd_cfg.los_thresholds) if crowd_cfg.los_thresholds is not None else LOS_TABLES[t]
            for z, t in tables.items()
        }
        busiest = [self._best] if self._best is not None and self._best_count > 0 else []
        chosen = [*self._event_frames[: self.MAX_EVENT_FRAMES], *busiest]
        # Fewer than four moments from events: add frames spread through the recording, busiest first.
        for _, kf in sorted(self._spaced, key=lambda p: -p[0]):
            if len(chosen) >= 4:
                break
            if all(abs(kf.t - c.t) > self._spaced_every / 2 for c in chosen):
                chosen.append(kf)
        key_frames = sorted(chosen, key=lambda k: k.t)
        background = (
            draw_zones(self.last_image, self.cam.zones, lines=self.cam.lines) if self.last_image is not None else None
        )
        return ReportData(
            camera_id=self.cam.id,
            source=self.source,
            video_s=self.last_t,
            frames=self.frames,
            wall_s=self.wall_s,
            model=model or self.cam.model,
            zones=list(self.cam.zones),
            lines=list(self.cam.lines),
            series=self.series,
            los=self.los,
            events=self.report_events(),
            grid=self.occupancy_grid(),
            grid_classes=list(self.rules.features.grid_classes),
            background=background,
            key_frames=key_frames,
            loops=build_loop_report(ev for _, ev in self._raw_events),
            area_m2=dict(self.area_m2),
            los_bounds=bounds,
            los_table=tables,
        )

    def close(self) -> list[Path]:
        """Flush the JSONL files, finish the video, write the pictures and report.html."""
        with self._lock:
            self._events.close()
            self._features.close()
        files = [self.out_dir / "events.jsonl", self.out_dir / "features.jsonl"]
        vid = self.video.close()
        if vid is not None:
            files.append(vid)
        data = self.report_data()
        if data.background is not None and data.grid is not None:
            heat = render_heatmap(
                data.grid, data.background, title=f"{self.cam.id}: where {plural(data.grid_classes)} stood",
                label_s=data.video_s,
            )
            files.append(save_png(self.out_dir / "heatmap.png", heat))
        if self._best is not None:
            files.append(save_png(self.out_dir / "snapshot.png", self._best.image))
        plot = render_timeseries(self.series, title=f"{self.cam.id}: per-zone numbers over time")
        files.append(save_png(self.out_dir / "timeseries.png", plot))
        try:
            files.append(write_report(data, self.out_dir / "report.html"))
        except (ValueError, OSError) as exc:  # the other outputs stand without the page
            log.error("replay: could not write report.html: %s", exc)
            self.errors.append(repr(exc))
        return files


def _epoch(ts: Any) -> float | None:
    """An event's ISO-8601 ``ts`` (``...Z``) as epoch seconds; None if absent or unreadable."""
    if isinstance(ts, int | float):
        return float(ts)
    if not isinstance(ts, str):
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


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
    rec = ReplayRecorder(
        cam,
        out_dir,
        video=opts.video,
        frames_every_s=opts.frames_every_s,
        progress=bar,
        rules=rcfg.rules,
        source=opts.source,
        total_s=bar.total_s if bar is not None else probe_duration(opts.source, cam.hold_s),
    )
    agent = (agent_factory or Agent)(rcfg, on_event=rec.on_event, on_step=rec.on_step)
    started = time.monotonic()
    try:
        code = int(agent.run())
    finally:
        wall = time.monotonic() - started
        rec.wall_s = wall
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
