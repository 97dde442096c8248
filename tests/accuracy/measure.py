"""A small accuracy runner for the bike, livery and parking sets, until ``edge-agent eval`` lands.

It reads a labelled set in the harness's spec format (``tests/accuracy/sets/*.yaml``), runs every
case through the agent's own pipeline (the camera's source opened as the agent opens it, the real
detector of the camera's config, the tracker, the rules) and scores what the rules hold at the end
of the case and the events they emitted against the truth:

* ``counts``    zone -> class -> count at the end of the case (also for the bare detector: the
                detections of that class whose ground point is in the zone, same model, same
                threshold, same frame);
* ``operators`` truth boxes matched one-to-one (IoU >= 0.3, best first) to the bikes the bay
                reports in its ``bikes`` list; a shared bike is *right* when the bike matched to it
                names its operator; a private bike matched to a bike named as any operator is a
                *private read as shared*;
* ``episodes``  each expected episode start (kind, zone, start window in seconds of case time) is
                found by one start of that kind in that zone inside the window; other starts of a
                checked kind are spurious.

    .venv/bin/python -m tests.accuracy.measure tests/accuracy/sets/bikes-dev.yaml [--json OUT] [--cache DIR]

``--cache DIR`` keeps detector outputs per (model, detector settings, image) on disk, so repeated
experiments on the same stills do not re-run the model (the detections are the model's, unchanged).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from edge.agent.pipeline import CameraPipeline
from edge.capture import open_source
from edge.classes import class_name, resolve
from edge.config import CameraConfig, SiteConfig
from edge.config.loader import load_config
from edge.geometry import iou_matrix, points_in_polygon
from edge.ports import Detector
from edge.rules import CameraAnalytics
from edge.tracking import ByteTracker
from edge.types import Detections, EventDraft, Frame, SourceState, SourceStatus
from edge.vision.detector import build_detector
from edge.zones.calibration import ground_plane

MATCH_IOU = 0.3
SHARED_NONE = None  # the truth of a private bike: no operator


@dataclass(frozen=True)
class Case:
    id: str
    media: str
    camera: str
    hold_s: float | None
    truth: Mapping[str, Any]


@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    config_path: Path
    cases: list[Case]


def _expand(text: str) -> str:
    def sub(m: re.Match[str]) -> str:
        name, _, default = m.group(1).partition(":-")
        return os.environ.get(name, default)

    return re.sub(r"\$\{([^}]+)\}", sub, text)


def load_spec(path: str | Path) -> Spec:
    p = Path(path)
    data = yaml.safe_load(p.read_text(encoding="utf-8"))
    root = p.parent
    media_root = Path(_expand(str(data.get("media_root", "")))) if data.get("media_root") else root
    defaults = data.get("defaults") or {}
    cases = []
    for c in data["cases"]:
        media = str(c["media"])
        if "://" not in media:
            media = str((media_root / _expand(media)).resolve())
        cases.append(
            Case(
                id=str(c["id"]),
                media=media,
                camera=str(c.get("camera", defaults.get("camera", "cam0"))),
                hold_s=c.get("hold_s", defaults.get("hold_s")),
                truth=c.get("truth") or {},
            )
        )
    return Spec(
        name=str(data.get("name", p.stem)),
        description=str(data.get("description", "")),
        config_path=(root / str(data["config"])).resolve(),
        cases=cases,
    )


class CachedDetector:
    """The camera's real detector, its outputs kept per image (in memory, and on disk with ``cache_dir``)."""

    def __init__(self, inner: Any, key: str, cache_dir: Path | None) -> None:
        self.inner = inner
        self.name = inner.name
        self.sha256 = inner.sha256
        self.key = key
        self.cache_dir = cache_dir
        self._mem: dict[str, Detections] = {}

    def detect(self, frame: Frame) -> Detections:
        img = frame.image
        digest = hashlib.sha1(img.tobytes()[:: max(1, img.size // 200_000)]).hexdigest()
        digest = hashlib.sha1(f"{digest}:{img.shape}:{self.key}".encode()).hexdigest()
        if digest in self._mem:
            return self._mem[digest]
        f = self.cache_dir / f"{digest}.npz" if self.cache_dir else None
        if f is not None and f.exists():
            z = np.load(f)
            det = Detections(z["xyxy"], z["confidence"], z["class_id"], z["label_id"])
        else:
            det = self.inner.detect(frame)
            if f is not None:
                np.savez(
                    f, xyxy=det.xyxy, confidence=det.confidence, class_id=det.class_id, label_id=det.label_id
                )
        self._mem[digest] = det
        return det


@dataclass
class CaseRun:
    """What the pipeline held at the end of one case, and what it emitted."""

    case: Case
    size: tuple[int, int] = (0, 0)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    bare_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    bikes: list[dict[str, Any]] = field(
        default_factory=list
    )  # {zone, box (normalised), operator, confidence}
    starts: list[tuple[str, str | None, float]] = field(default_factory=list)  # (kind, zone, case time)
    events: list[EventDraft] = field(default_factory=list)
    frames: int = 0
    wall_s: float = 0.0


def _camera(cfg: SiteConfig, case: Case) -> CameraConfig:
    cams = {c.id: c for c in cfg.cameras}
    if case.camera not in cams:
        raise SystemExit(f"case {case.id}: camera {case.camera!r} is not in the config ({', '.join(cams)})")
    update: dict[str, Any] = {"source": case.media, "playback": "video_time", "loop": False}
    if case.hold_s is not None:
        update["hold_s"] = float(case.hold_s)
    return cams[case.camera].model_copy(update=update)


def _detector(cam: CameraConfig, cache_dir: Path | None, pool: dict[str, Detector]) -> Detector:
    key = json.dumps(
        [cam.model, cam.detector.model_dump(mode="json"), [z.polygon for z in cam.zones]], sort_keys=True
    )
    if key not in pool:
        inner = build_detector(cam)
        pool[key] = inner if cam.model == "motion" else CachedDetector(inner, key, cache_dir)  # type: ignore[assignment]
    return pool[key]


def bare_counts(
    cam: CameraConfig, det: Detections, size: tuple[int, int], count_ebikes: bool
) -> dict[str, dict[str, int]]:
    """Per zone and class: the detections whose ground point is inside the zone (no tracking, no rules)."""
    w, h = size
    out: dict[str, dict[str, int]] = {}
    anchors = det.anchor / np.array([w, h], np.float32) if len(det) else np.zeros((0, 2))
    for z in cam.zones:
        names = z.class_names()
        if count_ebikes and z.kind in ("bike_bay", "bike_watch") and z.classes is None:
            names = ["bicycle", "motorcycle"]
        ids = resolve(names)
        inside = points_in_polygon(anchors, np.asarray(z.polygon)) if len(det) else np.zeros(0, bool)
        for ex in z.exclude:
            inside &= ~points_in_polygon(anchors, np.asarray(ex))
        keep = inside & np.isin(det.class_id, list(ids))
        counts: dict[str, int] = {}
        for c in det.class_id[keep].tolist():
            counts[class_name(int(c))] = counts.get(class_name(int(c)), 0) + 1
        out[z.id] = counts
    return out


def run_case(
    cfg: SiteConfig, case: Case, *, cache_dir: Path | None = None, pool: dict[str, Detector] | None = None
) -> CaseRun:
    cam = _camera(cfg, case)
    pool = {} if pool is None else pool
    detector = _detector(cam, cache_dir, pool)
    ground = ground_plane(cam.calibration, f"cameras[{cam.id}].calibration")
    analytics = CameraAnalytics(cam, cfg.rules, cfg.timezone, ground=ground)
    pipeline = CameraPipeline(cam.id, detector, ByteTracker(cfg.rules.tracker, ground=ground), analytics)
    source = open_source(cam)
    run = CaseRun(case)
    t_start = time.monotonic()
    t0: float | None = None
    last: Frame | None = None
    last_det = Detections.empty()
    try:
        while True:
            item = source.read(5.0)
            if item is None:
                if getattr(source, "_closed", False):
                    break
                continue
            if isinstance(item, SourceStatus):
                if item.state is SourceState.ENDED:
                    break
                if item.state is SourceState.OFFLINE:
                    raise SystemExit(f"case {case.id}: source {case.media} went offline: {item.reason}")
                continue
            frame = item
            t0 = frame.t if t0 is None else t0
            step = pipeline.step(frame)
            run.frames += 1
            last, last_det = frame, step.detections
            for d in step.drafts:
                run.events.append(d)
                if d.phase in ("start", "instant") and d.kind not in (
                    "features",
                    "bike_bay_status",
                    "crowd_density",
                    "line_crossing",
                ):
                    run.starts.append((d.kind, d.zone_id, round(d.t - t0, 2)))
    finally:
        source.close()
    run.wall_s = time.monotonic() - t_start
    if last is None:
        raise SystemExit(f"case {case.id}: no frame from {case.media}")
    run.size = (last.width, last.height)
    states = analytics.zone_states()
    for z in cam.zones:
        st = states.get(z.id, {})
        if z.kind in ("bike_bay",):
            run.counts[z.id] = {k: int(v) for k, v in (st.get("by_class") or {}).items()}
            for b in st.get("bikes") or []:
                run.bikes.append({"zone": z.id, **b})
        else:
            ids = set(st.get("track_ids") or [])
            tr = pipeline.last_tracks
            counts: dict[str, int] = {}
            for tid, c in zip(tr.track_id.tolist(), tr.class_id.tolist(), strict=True):
                if tid in ids:
                    counts[class_name(int(c))] = counts.get(class_name(int(c)), 0) + 1
            run.counts[z.id] = counts
    run.bare_counts = bare_counts(cam, last_det, run.size, cfg.rules.bike.count_ebikes)
    return run


# ---------------------------------------------------------------------------------------- scoring
def match_boxes(
    truth: list[list[float]], found: list[list[float]], min_iou: float = MATCH_IOU
) -> list[tuple[int, int]]:
    """One-to-one (truth index, found index) pairs with IoU >= min_iou, best IoU first."""
    if not truth or not found:
        return []
    iou = iou_matrix(np.asarray(truth, np.float64), np.asarray(found, np.float64))
    pairs: list[tuple[int, int]] = []
    used_t: set[int] = set()
    used_f: set[int] = set()
    for flat in np.argsort(-iou, axis=None).tolist():
        i, j = divmod(flat, iou.shape[1])
        if iou[i, j] < min_iou:
            break
        if i in used_t or j in used_f:
            continue
        used_t.add(i)
        used_f.add(j)
        pairs.append((i, j))
    return pairs


def score_case(run: CaseRun, episode_kinds: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Scores of one case; ``episode_kinds``: every kind the set labels (``episodes: []`` checks them)."""
    truth = run.case.truth
    out: dict[str, Any] = {"id": run.case.id, "counts": [], "operators": None, "episodes": None}
    for zone, per_class in (truth.get("counts") or {}).items():
        for cls, n in per_class.items():
            got = run.counts.get(zone, {}).get(cls, 0)
            bare = run.bare_counts.get(zone, {}).get(cls, 0)
            out["counts"].append({"zone": zone, "class": cls, "truth": n, "pipeline": got, "bare": bare})
    ops = truth.get("operators")
    if ops is not None:
        tboxes = [o["box"] for o in ops]
        fboxes = [b["box"] for b in run.bikes]
        pairs = match_boxes(tboxes, fboxes)
        rows = []
        matched = {i: j for i, j in pairs}
        for i, o in enumerate(ops):
            j = matched.get(i)
            got = run.bikes[j] if j is not None else None
            rows.append(
                {
                    "truth": o["operator"],
                    "box": o["box"],
                    "detected": got is not None,
                    "operator": None if got is None else got.get("operator"),
                    "confidence": None if got is None else got.get("confidence"),
                }
            )
        out["operators"] = rows
    eps = truth.get("episodes")
    if eps is not None:
        kinds = {e["kind"] for e in eps} | set(episode_kinds)
        starts = [s for s in run.starts if s[0] in kinds]
        found, used = [], set()
        for e in eps:
            lo, hi = e["start_s"]
            hit = next(
                (
                    k
                    for k, s in enumerate(starts)
                    if k not in used and s[0] == e["kind"] and s[1] == e["zone"] and lo <= s[2] <= hi
                ),
                None,
            )
            if hit is not None:
                used.add(hit)
            found.append({**e, "found_s": None if hit is None else starts[hit][2]})
        spurious = [s for k, s in enumerate(starts) if k not in used]
        out["episodes"] = {"expected": found, "spurious": spurious}
    return out


def aggregate(scores: Iterable[dict[str, Any]]) -> dict[str, Any]:
    scores = list(scores)
    counts = [c for s in scores for c in s["counts"]]
    agg: dict[str, Any] = {}
    if counts:
        for who in ("pipeline", "bare"):
            err = np.array([c[who] - c["truth"] for c in counts], float)
            agg[who] = {
                "mae": round(float(np.abs(err).mean()), 3),
                "mean_signed": round(float(err.mean()), 3),
            }
    rows = [r for s in scores for r in (s["operators"] or [])]
    if rows:
        shared = [r for r in rows if r["truth"] != SHARED_NONE]
        det_shared = [r for r in shared if r["detected"]]
        right = [r for r in det_shared if r["operator"] == r["truth"]]
        private = [r for r in rows if r["truth"] == SHARED_NONE]
        det_private = [r for r in private if r["detected"]]
        confused = [r for r in det_private if r["operator"] is not None]
        agg["operators"] = {
            "shared_bikes": len(shared),
            "shared_detected": len(det_shared),
            "shared_right": len(right),
            "attribution_accuracy": round(len(right) / len(det_shared), 3) if det_shared else None,
            "shared_unattributed": sum(1 for r in det_shared if r["operator"] is None),
            "shared_wrong_operator": sum(1 for r in det_shared if r["operator"] not in (None, r["truth"])),
            "private_bikes": len(private),
            "private_detected": len(det_private),
            "private_read_as_shared": len(confused),
        }
    eps = [e for s in scores if s["episodes"] for e in s["episodes"]["expected"]]
    spur = [x for s in scores if s["episodes"] for x in s["episodes"]["spurious"]]
    if eps or spur:
        tp = sum(1 for e in eps if e["found_s"] is not None)
        fp = len(spur)
        agg["episodes"] = {
            "expected": len(eps),
            "found": tp,
            "spurious": fp,
            "precision": round(tp / (tp + fp), 3) if tp + fp else None,
            "recall": round(tp / len(eps), 3) if eps else None,
        }
    return agg


def format_table(spec: Spec, scores: list[dict[str, Any]], agg: dict[str, Any]) -> str:
    lines = [f"{spec.name}: {len(scores)} cases ({spec.config_path.name})"]
    for s in scores:
        parts = []
        for c in s["counts"]:
            parts.append(f"{c['zone']}.{c['class']} {c['pipeline']}/{c['truth']} (bare {c['bare']})")
        if s["operators"] is not None:
            rows = s["operators"]
            sh = [r for r in rows if r["truth"] != SHARED_NONE and r["detected"]]
            pr = [r for r in rows if r["truth"] == SHARED_NONE and r["detected"]]
            parts.append(
                f"shared right {sum(1 for r in sh if r['operator'] == r['truth'])}/{len(sh)} detected "
                f"of {sum(1 for r in rows if r['truth'] != SHARED_NONE)}; private as shared "
                f"{sum(1 for r in pr if r['operator'] is not None)}/{len(pr)}"
            )
        if s["episodes"] is not None:
            e = s["episodes"]
            got = [f"{x['kind']}@{x['zone']}:{x['found_s']}" for x in e["expected"]]
            parts.append(f"episodes {got} spurious {e['spurious']}")
        lines.append(f"  {s['id']:<24} " + "; ".join(parts))
    lines.append("  aggregate: " + json.dumps(agg))
    return "\n".join(lines)


def run_spec(
    spec: Spec, *, cache_dir: Path | None = None
) -> tuple[list[CaseRun], list[dict[str, Any]], dict[str, Any]]:
    cfg = load_config(spec.config_path)
    pool: dict[str, Detector] = {}
    runs = [run_case(cfg, c, cache_dir=cache_dir, pool=pool) for c in spec.cases]
    kinds = frozenset(e["kind"] for c in spec.cases for e in (c.truth.get("episodes") or []))
    scores = [score_case(r, kinds) for r in runs]
    return runs, scores, aggregate(scores)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("spec")
    ap.add_argument("--json", help="also write the per-case scores and the aggregate here")
    ap.add_argument("--cache", help="directory for cached detector outputs")
    a = ap.parse_args(argv)
    spec = load_spec(a.spec)
    cache = Path(a.cache) if a.cache else None
    if cache:
        cache.mkdir(parents=True, exist_ok=True)
    _, scores, agg = run_spec(spec, cache_dir=cache)
    print(format_table(spec, scores, agg))
    if a.json:
        Path(a.json).write_text(
            json.dumps({"spec": spec.name, "cases": scores, "aggregate": agg}, indent=1) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
