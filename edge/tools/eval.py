"""``edge-agent eval SPEC.yaml``: measured accuracy of the whole pipeline on a labelled set.

Each case runs the real ``Agent`` the way ``replay`` does: the spec's site config with the camera's
source replaced by the case's media, in video time (a still is held for ``hold_s`` simulated
seconds), a private offline uplink. The figures are read from what the box reports, never
re-derived: zone counts from the rules' ``zone_states()`` (``counts`` by class; crowd zones count
what is visible now), episodes from the events, line totals from the ``features`` records,
attributed bikes from the bike bays' state. ``--baseline`` puts the bare detector beside every count:
the camera's model on the same frames at the model's own thresholds (no tiles, no tracking, no rules),
counting the detections of the class whose anchor lies in the zone.

Identical frames (a held still) are detected once: the detector is deterministic, so the pipeline
sees the same detections it would compute again; ``--cache DIR`` keeps detections on disk between runs
(keyed by the model's sha256, the detector settings and the frame's bytes), for tuning rules.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import numpy as np

from edge.agent.camera import CameraRuntime
from edge.agent.pipeline import StepResult
from edge.agent.runner import Agent
from edge.classes import CLASS_ID
from edge.config import load_config
from edge.config.detector import DetectorConfig
from edge.config.site import CameraConfig, SiteConfig
from edge.errors import CaptureError, ConfigError
from edge.geometry import iou_matrix
from edge.ports import Detector
from edge.tools.eval_report import aggregates
from edge.tools.eval_spec import CaseSpec, FrameLabel, LoadedSpec, load_spec
from edge.tools.replay import ProgressBar, ReplayOptions, probe_duration, replay_config
from edge.types import Detections, Frame
from edge.zones.geometry import compile_zones

log = logging.getLogger(__name__)

_IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
START_PHASES = ("start", "instant")
OPERATOR_IOU = 0.3


# ------------------------------------------------------------------------------ detections


_STAGES = frozenset({"prepare", "infer", "finish"})  # a staged detector's methods (edge.agent.pipeline)


class CachedDetector:
    """The camera's detector, remembering the detections of frames it has already seen (by content).

    A still held for ``hold_s`` is one image many times: it is inferred once. With ``cache_dir`` the
    detections persist between runs, keyed by the detector's identity (model sha256, its settings, the
    zones and masks it crops or masks by) and the frame's bytes."""

    def __init__(self, inner: Detector, identity: str, cache_dir: Path | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.sha256 = inner.sha256
        self.identity = hashlib.sha256(identity.encode()).hexdigest()[:16]
        self.cache_dir = cache_dir / self.identity if cache_dir is not None else None
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._memo: dict[str, Detections] = {}
        self.inferred = 0
        self.reused = 0

    def __getattr__(self, name: str) -> Any:  # timing, output health ... of the real detector
        if name in _STAGES:  # memoised by whole frames: the pipeline must call detect(), not the stages
            raise AttributeError(name)
        return getattr(self.inner, name)

    def detect(self, frame: Frame) -> Detections:
        img = np.ascontiguousarray(frame.image)
        key = hashlib.blake2b(img.data, digest_size=16).hexdigest() + f"-{img.shape[1]}x{img.shape[0]}"
        hit = self._memo.get(key)
        if hit is None and self.cache_dir is not None:
            p = self.cache_dir / f"{key}.npz"
            if p.exists():
                with np.load(p) as z:
                    hit = Detections(z["xyxy"], z["confidence"], z["class_id"], z["label_id"])
        if hit is not None:
            self.reused += 1
            self._memo.setdefault(key, hit)
            return hit
        det = self.inner.detect(frame)
        self.inferred += 1
        if len(self._memo) < 64:  # stills and short loops; a video's frames are all different
            self._memo[key] = det
        if self.cache_dir is not None:
            np.savez(
                self.cache_dir / f"{key}.npz",
                xyxy=det.xyxy,
                confidence=det.confidence,
                class_id=det.class_id,
                label_id=det.label_id,
            )
        return det


def detector_identity(cam: CameraConfig, sha256: str) -> str:
    return json.dumps(
        {
            "model": cam.model,
            "sha256": sha256,
            "detector": cam.detector.model_dump(mode="json"),
            "zones": [z.polygon for z in cam.zones],
            "masks": cam.masks,
            "resolution": cam.resolution,
        },
        sort_keys=True,
        default=str,
    )


class _EvalAgent(Agent):
    """The agent, its camera's ONNX detector wrapped in ``CachedDetector`` before the camera starts."""

    cache_dir: Path | None = None
    wrapped: CachedDetector | None = None

    def _start_camera(self, cr: CameraRuntime) -> None:
        det = cr.pipeline.detector
        if cr.cam.model != "motion":  # the motion backend keeps state from frame to frame: never memoised
            self.wrapped = CachedDetector(det, detector_identity(cr.cam, det.sha256), self.cache_dir)
            cr.pipeline.detector = self.wrapped
        super()._start_camera(cr)


class BareDetector:
    """The baseline: a model run bare (whole frame, the manifest's thresholds, no ROI, no masks)."""

    def __init__(self, model: str, threads: int | None) -> None:
        from edge.vision.detector import OnnxDetector
        from edge.vision.manifest import load_manifest

        self.model = model
        self.det = OnnxDetector(load_manifest(model), DetectorConfig(threads=threads, merge_person_parts=False))
        self.zones_for: dict[tuple[int, int], Any] = {}

    def counts(self, image: np.ndarray, cam: CameraConfig) -> dict[tuple[str, str], int]:
        """(zone, class name) -> detections of that class anchored in the zone, for every zone and class."""
        h, w = image.shape[:2]
        key = (w, h)
        if key not in self.zones_for:
            self.zones_for[key] = compile_zones(cam.zones, w, h)
        det = self.det.detect_image(image)
        out: dict[tuple[str, str], int] = {}
        a = det.anchor.astype(np.float64)
        for z in self.zones_for[key]:
            inside = z.contains(a, None)
            for name, cid in CLASS_ID.items():
                out[(z.id, name)] = int((inside & (det.class_id == cid)).sum())
        return out


# ------------------------------------------------------------------------------ one case


@dataclass
class Row:
    """One figure beside its truth (and the bare detector's figure when measured)."""

    group: str  # counts | frames | lines
    case: str
    what: str
    figure: float | None
    truth: float
    baseline: float | None = None
    t_s: float | None = None

    @property
    def error(self) -> float | None:
        return None if self.figure is None else self.figure - self.truth

    @property
    def baseline_error(self) -> float | None:
        return None if self.baseline is None else self.baseline - self.truth


@dataclass
class EpisodeResult:
    case: str
    kind: str
    zone: str
    window: tuple[float, float] | None  # None: spurious (found, not in the truth)
    found_s: float | None


@dataclass
class OperatorResult:
    case: str
    box: tuple[float, float, float, float]
    truth: str | None
    found: str | None  # operator the agent attributed (None: attributed to nobody)
    detected: bool  # a bike box matched the truth box
    confidence: float | None = None


@dataclass
class CaseResult:
    id: str
    media: str
    frames: int = 0
    video_s: float = 0.0
    wall_s: float = 0.0
    inferred: int | None = 0  # model inferences run (None: the model-free backend, every frame)
    rows: list[Row] = field(default_factory=list)
    episodes: list[EpisodeResult] = field(default_factory=list)
    episodes_checked: bool = False  # the case labels episodes (possibly none)
    operators: list[OperatorResult] = field(default_factory=list)


def _event_s(event: dict[str, Any], ts0: float) -> float:
    ts = event.get("ts")
    if isinstance(ts, int | float):
        return float(ts) - ts0
    return datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp() - ts0


class CaseRecorder:
    """``on_step``/``on_event`` of one case's agent: the states, events and frames the truth needs."""

    def __init__(
        self,
        cam: CameraConfig,
        labels: Sequence[FrameLabel],
        baseline: BareDetector | None,
        progress: ProgressBar | None,
    ) -> None:
        self.cam = cam
        self.labels = sorted(labels, key=lambda lb: lb.t_s)
        self.label_t = [lb.t_s for lb in self.labels]
        self.half_period = 0.5 / cam.detect_fps + 1e-6
        self.baseline = baseline
        self.progress = progress
        self.t0: float | None = None
        self.ts0: float | None = None
        self.frames = 0
        self.video_s = 0.0
        self.states: dict[str, dict[str, Any]] = {}
        self.last_image: np.ndarray | None = None
        self.frame_rows: dict[int, Row] = {}  # label index -> row (first frame within half a period)
        self.events: list[dict[str, Any]] = []
        self.line_totals: dict[str, list[int]] = {}

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("kind")
        if kind == "features":
            for lid, v in ((event.get("payload") or {}).get("lines") or {}).items():
                tot = self.line_totals.setdefault(lid, [0, 0])
                tot[0] += int(v.get("in", 0))
                tot[1] += int(v.get("out", 0))
        elif event.get("phase") in START_PHASES:
            self.events.append(event)

    def on_step(self, result: StepResult) -> None:
        frame = result.frame
        if self.t0 is None:
            self.t0, self.ts0 = frame.t, frame.ts
        vt = frame.t - self.t0
        self.frames += 1
        self.video_s = vt
        self.states = result.analytics.zone_states()
        self.last_image = frame.image
        if self.labels:
            self._match_labels(vt, frame.image)
        if self.progress is not None:
            self.progress.update(vt)

    def _match_labels(self, vt: float, image: np.ndarray) -> None:
        lo = bisect.bisect_left(self.label_t, vt - self.half_period)
        hi = bisect.bisect_right(self.label_t, vt + self.half_period)
        todo = [i for i in range(lo, hi) if i not in self.frame_rows]
        if not todo:
            return
        bare = self.baseline.counts(image, self.cam) if self.baseline is not None else None
        for i in todo:
            lb = self.labels[i]
            self.frame_rows[i] = Row(
                group="frames",
                case="",
                what=f"{lb.zone}/{lb.cls}",
                figure=float(zone_count(self.states, lb.zone, lb.cls)),
                truth=float(lb.count),
                baseline=float(bare[(lb.zone, lb.cls)]) if bare is not None else None,
                t_s=lb.t_s,
            )


def zone_count(states: dict[str, dict[str, Any]], zone: str, cls: str) -> int:
    """The zone's count of ``cls`` as the rules report it (``counts`` by class in ``zone_states()``)."""
    st = states.get(zone)
    if st is None:
        raise ConfigError(f"zone {zone!r} is not in the site config; it has {', '.join(states) or 'no zones'}")
    return int((st.get("counts") or {}).get(cls, 0))


def attributed_bikes(states: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every bike the bike rules attributed (``bikes`` in a zone's state: box normalised, operator, confidence)."""
    out: list[dict[str, Any]] = []
    for st in states.values():
        for b in st.get("bikes") or []:
            if isinstance(b, dict) and isinstance(b.get("box"), list | tuple) and len(b["box"]) == 4:
                out.append(b)
    return out


def _check_truth(case: CaseSpec, cam: CameraConfig, labels: Sequence[FrameLabel]) -> None:
    zones = {z.id for z in cam.zones}
    lines = {ln.id for ln in cam.lines}
    where = f"case {case.id}"
    named = [(z, c) for z, by in case.truth.counts.items() for c in by] + [(lb.zone, lb.cls) for lb in labels]
    for z, c in named:
        if z not in zones:
            raise ConfigError(f"{where}: truth names zone {z!r}; camera {cam.id} has {', '.join(sorted(zones)) or 'no zones'}")
        if c not in CLASS_ID:
            raise ConfigError(f"{where}: truth names class {c!r}; use one of {', '.join(CLASS_ID)}")
    for lid in case.truth.lines:
        if lid not in lines:
            raise ConfigError(f"{where}: truth names line {lid!r}; camera {cam.id} has {', '.join(sorted(lines)) or 'no lines'}")


def run_case(
    spec: LoadedSpec,
    cfg: SiteConfig,
    case: CaseSpec,
    *,
    baseline: Callable[[CameraConfig], BareDetector | None],
    cache_dir: Path | None,
    progress: bool,
) -> CaseResult:
    """Run one case through the agent and compare what it reported with the truth."""
    media = spec.media(case)
    if "://" not in media and not Path(media).exists():
        raise CaptureError(
            f"case {case.id}: media {media} not found (media_root {spec.media_root}); set EDGE_ASSETS to the "
            "shared assets folder"
        )
    labels = spec.frame_labels(case)
    with tempfile.TemporaryDirectory(prefix="edge-eval-") as tmp:
        opts = ReplayOptions(source=media, out_dir=tmp, hold_s=spec.hold_s(case), camera_id=spec.camera(case))
        rcfg = replay_config(cfg, opts, Path(tmp))
        cam = rcfg.cameras[0]
        _check_truth(case, cam, labels)
        bare = baseline(cam)
        is_still = Path(media).suffix.lower() in _IMAGE_EXT
        bar = None
        if progress and not is_still:
            bar = ProgressBar(probe_duration(media, cam.hold_s))
        rec = CaseRecorder(cam, labels, bare, bar)
        agent = _EvalAgent(rcfg, on_event=rec.on_event, on_step=rec.on_step)
        agent.cache_dir = cache_dir
        started = time.monotonic()
        try:
            code = int(agent.run())
        finally:
            if bar is not None:
                bar.close()
        wall = time.monotonic() - started
    if code != 0:
        raise CaptureError(f"case {case.id}: the agent stopped with exit code {code}; see the log above")
    if rec.frames == 0:
        raise CaptureError(f"case {case.id}: {media} gave no frames")
    res = CaseResult(
        id=case.id,
        media=case.media,
        frames=rec.frames,
        video_s=round(rec.video_s, 3),
        wall_s=round(wall, 3),
        inferred=agent.wrapped.inferred if agent.wrapped is not None else None,
    )
    end_bare = bare.counts(rec.last_image, cam) if bare is not None and rec.last_image is not None else None
    for zone, by_class in case.truth.counts.items():
        for cls, n in by_class.items():
            res.rows.append(
                Row(
                    "counts",
                    case.id,
                    f"{zone}/{cls}",
                    float(zone_count(rec.states, zone, cls)),
                    float(n),
                    float(end_bare[(zone, cls)]) if end_bare is not None else None,
                )
            )
    for i, lb in enumerate(rec.labels):
        row = rec.frame_rows.get(i)
        if row is None:  # the label's time is past the end of the media, or between sub-sampled frames
            row = Row("frames", case.id, f"{lb.zone}/{lb.cls}", None, float(lb.count), None, lb.t_s)
        row.case = case.id
        res.rows.append(row)
    for lid, want in case.truth.lines.items():
        got = rec.line_totals.get(lid, [0, 0])
        res.rows.append(Row("lines", case.id, f"{lid} in", float(got[0]), float(want.in_)))
        res.rows.append(Row("lines", case.id, f"{lid} out", float(got[1]), float(want.out)))
    if case.truth.episodes is not None:
        res.episodes_checked = True
        res.episodes = match_episodes(case, rec.events, rec.ts0 or 0.0, spec.episode_kinds)
    if case.truth.operators:
        res.operators = match_operators(case, attributed_bikes(rec.states))
    return res


def match_episodes(
    case: CaseSpec, events: list[dict[str, Any]], ts0: float, kinds: frozenset[str]
) -> list[EpisodeResult]:
    """Truth episodes against the starts the agent emitted: same kind and zone, start inside the window
    (earliest start first, each used once); starts of a labelled kind matching nothing are spurious."""
    truth = list(case.truth.episodes or [])
    out = [EpisodeResult(case.id, e.kind, e.zone, e.start_s, None) for e in truth]
    for ev in sorted(events, key=lambda e: _event_s(e, ts0)):
        kind, zone = str(ev.get("kind")), ev.get("zone_id")
        if kind not in kinds:
            continue
        t = round(_event_s(ev, ts0), 2)
        for r in out:
            if r.window is not None and r.found_s is None and (r.kind, r.zone) == (kind, zone):
                if r.window[0] - 1e-6 <= t <= r.window[1] + 1e-6:
                    r.found_s = t
                    break
        else:
            out.append(EpisodeResult(case.id, kind, str(zone), None, t))
    return out


def match_operators(case: CaseSpec, bikes: list[dict[str, Any]]) -> list[OperatorResult]:
    """Truth bikes against attributed bikes by IoU >= 0.3, best pairs first, each used once."""
    truth = case.truth.operators
    out = [OperatorResult(case.id, t.box, t.operator, None, False) for t in truth]
    if not bikes:
        return out
    tb = np.array([t.box for t in truth], np.float32)
    bb = np.array([b["box"] for b in bikes], np.float32)
    iou = iou_matrix(tb, bb)
    used_t: set[int] = set()
    used_b: set[int] = set()
    for flat in np.argsort(-iou, axis=None):
        i, j = divmod(int(flat), len(bikes))
        if iou[i, j] < OPERATOR_IOU:
            break
        if i in used_t or j in used_b:
            continue
        used_t.add(i)
        used_b.add(j)
        op = bikes[j].get("operator")
        conf = bikes[j].get("confidence")
        out[i].found = str(op) if op is not None else None
        out[i].detected = True
        out[i].confidence = float(conf) if isinstance(conf, int | float) else None
    return out


# ------------------------------------------------------------------------------ the set


@dataclass(frozen=True)
class EvalOptions:
    spec: str
    baseline: bool = False
    cases: tuple[str, ...] = ()
    cache_dir: str | None = None
    config: str | None = None  # run this site config instead of the spec's
    baseline_model: str | None = None
    progress: bool = True


def run_eval(opts: EvalOptions, stream: IO[str] | None = None) -> dict[str, Any]:
    """Run a labelled set; returns the report (what ``--json`` prints)."""
    err = stream if stream is not None else sys.stderr
    spec = load_spec(opts.spec)
    config_path = Path(opts.config) if opts.config else spec.config_path
    cfg = load_config(config_path)
    cases = list(spec.spec.cases)
    if opts.cases:
        known = {c.id for c in cases}
        unknown = [c for c in opts.cases if c not in known]
        if unknown:
            raise ConfigError(f"--case {', '.join(unknown)}: not in {spec.path}; it has {', '.join(sorted(known))}")
        cases = [c for c in cases if c.id in opts.cases]
    bare: dict[str, BareDetector] = {}

    def baseline(cam: CameraConfig) -> BareDetector | None:
        if not opts.baseline:
            return None
        model = opts.baseline_model or cam.model
        if model == "motion":
            return None  # the model-free backend has no bare counterpart
        if model not in bare:
            bare[model] = BareDetector(model, cam.detector.threads)
        return bare[model]

    quiet = logging.getLogger("edge")
    old_level = quiet.level
    if quiet.getEffectiveLevel() >= logging.INFO:
        quiet.setLevel(logging.WARNING)  # one agent per case: its lifecycle lines would bury the table
    started = time.monotonic()
    results: list[CaseResult] = []
    try:
        for k, case in enumerate(cases, start=1):
            if opts.progress:
                err.write(f"eval {spec.spec.name} [{k}/{len(cases)}] {case.id} ...\n")
                err.flush()
            res = run_case(
                spec,
                cfg,
                case,
                baseline=baseline,
                cache_dir=Path(opts.cache_dir) if opts.cache_dir else None,
                progress=opts.progress,
            )
            results.append(res)
            if opts.progress:
                inferred = "" if res.inferred is None else f", {res.inferred} inferred"
                err.write(f"    {res.frames} frames ({res.video_s:.1f} s) in {res.wall_s:.1f} s{inferred}\n")
                err.flush()
    finally:
        quiet.setLevel(old_level)
    cam0 = cfg.cameras[0]
    return {
        "name": spec.spec.name,
        "spec": str(spec.path),
        "config": str(config_path),
        "model": cam0.model,
        "detector": cam0.detector.model_dump(mode="json"),
        "baseline_model": (opts.baseline_model or cam0.model) if opts.baseline else None,
        "wall_s": round(time.monotonic() - started, 2),
        "cases": [_case_json(r) for r in results],
        "aggregates": aggregates(results),
    }


def _case_json(r: CaseResult) -> dict[str, Any]:
    d = asdict(r)
    d["rows"] = [{**asdict(row), "error": row.error, "baseline_error": row.baseline_error} for row in r.rows]
    return d
