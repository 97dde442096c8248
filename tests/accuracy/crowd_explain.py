"""Where a crowd count's error comes from: the detections matched to the head points of the photos.

    .venv/bin/python -m tests.accuracy.crowd_explain tests/accuracy/sets/crowd-photos.yaml [--config SITE]
        [--markdown] [--draw DIR] [--sweep 0.25:0.45:0.01]

For every case of a crowd spec (a still whose truth is a person count in one zone) it runs the camera's
detector exactly as the agent does (``OnnxDetector.detect_traced``: the same passes, fusion and filters)
and reads the head points annotated beside the photo (``<photo>_heads.csv``: ``x,y`` in pixels). Each
detection of a person whose ground point lies in the zone is then one of:

* ``matched``    paired one to one with a head point inside the top part of its box (down to 0.35 of its
                 height or 0.75 of its width, whichever is lower: a close person is often boxed from the
                 waist up), greedily, nearest to where the head of that box would be;
* ``duplicate``  not paired, but a head point lies in its top part: a second box on a person already counted;
* ``cut_top``    no head in it and its box touches the frame's top edge: a person whose head is above the
                 frame (the head-point truth does not count them; the crowd zone does, docs/accuracy.md);
* ``fragment``   no head in it and it lies mostly (>= 0.6 of its area) inside another detection: a limb,
                 a torso, legs of someone already boxed;
* ``other``      none of those: something that is not a person, or a person the truth does not mark;

and every head point left unpaired is ``missed``. So count - truth = duplicate + cut_top + fragment + other
- missed, per photo. ``from_crops`` counts the unpaired detections that came from a crop pass (tiles).

``--sweep LO:HI:STEP`` measures the count MAE at every score threshold of the range (one threshold for all
labels; the passes are inferred once at LO and filtered, which gives the same boxes as inferring at each
threshold), and a leave-one-out estimate: for each photo the threshold that is best on the *other* photos,
measured on that photo.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.classes import PERSON
from edge.config import load_config
from edge.config.site import CameraConfig
from edge.geometry import ios_matrix
from edge.tools.eval_spec import CaseSpec, LoadedSpec, load_spec
from edge.types import Detections
from edge.vision.detector import OnnxDetector, PassResult
from edge.vision.manifest import load_manifest
from edge.vision.preprocess import read_image
from edge.zones.geometry import compile_zones

KINDS = ("matched", "duplicate", "cut_top", "fragment", "other")
HEAD_TOP_H, HEAD_TOP_W = 0.35, 0.75  # a box's top part: down to 0.35 of its height or 0.75 of its width,
HEAD_SLACK = 0.05  # whichever is lower (upper bodies); widened by this fraction of its width / height
FRAGMENT_IOS = 0.6
TOP_EDGE_PX = 2.0


@dataclass
class PhotoExplained:
    case: str
    truth: int
    heads: int
    kinds: Counter[str] = field(default_factory=Counter)
    missed: int = 0
    from_crops: int = 0  # unpaired detections from a crop pass

    @property
    def count(self) -> int:
        return sum(self.kinds.values())

    @property
    def error(self) -> int:
        return self.count - self.truth


def head_candidates(xyxy: np.ndarray, heads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,H) bool: head point j lies in the top part of box i; (N,H) its distance, in box widths, from
    where the head of that box would be (its centre, 0.3 of its width or height, the smaller, below its top)."""
    x1, y1, x2, y2 = (xyxy[:, k : k + 1].astype(np.float64) for k in range(4))
    w, h = np.maximum(x2 - x1, 1.0), np.maximum(y2 - y1, 1.0)
    hx, hy = heads[None, :, 0], heads[None, :, 1]
    inside = (hx >= x1 - HEAD_SLACK * w) & (hx <= x2 + HEAD_SLACK * w)
    inside &= (hy >= y1 - HEAD_SLACK * h) & (hy <= y1 + np.minimum(np.maximum(HEAD_TOP_H * h, HEAD_TOP_W * w), h))
    dist = np.hypot(hx - (x1 + x2) / 2, hy - (y1 + 0.3 * np.minimum(w, h))) / w
    return inside, dist


def match_heads(xyxy: np.ndarray, heads: np.ndarray) -> tuple[dict[int, int], np.ndarray]:
    """One-to-one detection -> head pairs (greedy by distance), and the candidate matrix."""
    ok, dist = head_candidates(xyxy, heads)
    pairs: dict[int, int] = {}
    taken: set[int] = set()
    cost = np.where(ok, dist, np.inf)
    for flat in np.argsort(cost, axis=None):
        i, j = divmod(int(flat), heads.shape[0])
        if not np.isfinite(cost[i, j]):
            break
        if i in pairs or j in taken:
            continue
        pairs[i] = j
        taken.add(j)
    return pairs, ok


def explain(det: Detections, origin: np.ndarray, heads: np.ndarray, inside_zone: np.ndarray) -> tuple[list[str], Counter[str], int, int]:
    """Per person detection in the zone its kind; the kinds counted; heads missed; unpaired from crops."""
    keep = (det.class_id == PERSON) & inside_zone
    xyxy, org = det.xyxy[keep], origin[keep]
    pairs, cand = match_heads(xyxy, heads)
    ios = ios_matrix(xyxy, xyxy)
    np.fill_diagonal(ios, 0.0)
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    kinds: list[str] = []
    for i in range(len(xyxy)):
        if i in pairs:
            kinds.append("matched")
        elif cand[i].any():
            kinds.append("duplicate")
        elif xyxy[i, 1] <= TOP_EDGE_PX:
            kinds.append("cut_top")
        elif ((ios[i] >= FRAGMENT_IOS) & (area > area[i])).any():
            kinds.append("fragment")
        else:
            kinds.append("other")
    crops = sum(1 for i, k in enumerate(kinds) if k != "matched" and org[i] != 0)
    return kinds, Counter(kinds), int(heads.shape[0] - len(pairs)), crops


# ----------------------------------------------------------------------------------- the set


@dataclass
class CrowdCase:
    case: CaseSpec
    image: np.ndarray
    heads: np.ndarray
    zone: str
    truth: int


def crowd_cases(spec: LoadedSpec) -> list[CrowdCase]:
    out = []
    for case in spec.spec.cases:
        media = Path(spec.media(case))
        heads_csv = media.with_name(media.stem + "_heads.csv")
        if not heads_csv.exists():
            raise SystemExit(f"case {case.id}: no head points at {heads_csv} (x,y per head, in pixels)")
        with heads_csv.open(encoding="utf-8") as f:
            heads = np.array([[float(r["x"]), float(r["y"])] for r in csv.DictReader(f)], np.float64).reshape(-1, 2)
        (zone, by_class), *rest = case.truth.counts.items()
        if rest or list(by_class) != ["person"]:
            raise SystemExit(f"case {case.id}: expected a person count in one zone, got {case.truth.counts}")
        image = read_image(str(media))
        out.append(CrowdCase(case, image, heads, zone, int(by_class["person"])))
    return out


def _zone_mask(cam: CameraConfig, zone: str, det: Detections, w: int, h: int) -> np.ndarray:
    z = next(z for z in compile_zones(cam.zones, w, h) if z.id == zone)
    return np.asarray(z.contains(det.anchor.astype(np.float64), None), bool)


def run(spec: LoadedSpec, cam: CameraConfig, draw: Path | None = None) -> list[PhotoExplained]:
    det = OnnxDetector(load_manifest(cam.model), cam.detector, zones=[z.polygon for z in cam.zones], masks=cam.masks)
    rows = []
    for c in crowd_cases(spec):
        h, w = c.image.shape[:2]
        d, origin = det.detect_traced(c.image)
        kinds, counted, missed, crops = explain(d, origin, c.heads, _zone_mask(cam, c.zone, d, w, h))
        rows.append(PhotoExplained(c.case.id, c.truth, len(c.heads), counted, missed, crops))
        if draw is not None:
            _draw(draw / f"{c.case.id}.jpg", c, d, kinds, _zone_mask(cam, c.zone, d, w, h))
    return rows


def table(rows: list[PhotoExplained], markdown: bool = False) -> str:
    cols = ["photo", "truth", "count", "error", *KINDS, "missed", "from_crops"]
    body = [
        [r.case, r.truth, r.count, f"{r.error:+d}", *(r.kinds[k] for k in KINDS), r.missed, r.from_crops] for r in rows
    ]
    tot = ["all", sum(r.truth for r in rows), sum(r.count for r in rows), f"{sum(r.error for r in rows):+d}"]
    tot += [sum(r.kinds[k] for r in rows) for k in KINDS] + [sum(r.missed for r in rows), sum(r.from_crops for r in rows)]
    body.append(tot)
    mae = np.mean([abs(r.error) for r in rows])
    no_top = np.mean([abs(r.error - r.kinds["cut_top"]) for r in rows])
    tail = f"MAE {mae:.2f}; without the cut_top detections (people whose head is above the frame) {no_top:.2f}"
    if markdown:
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in body]
        return "\n".join(lines) + "\n\n" + tail
    lines = ["  ".join(f"{c:>10}" for c in cols)]
    lines += ["  ".join(f"{v!s:>10}" for v in row) for row in body]
    return "\n".join(lines) + "\n" + tail


# ----------------------------------------------------------------------------------- sweep


def sweep(spec: LoadedSpec, cam: CameraConfig, thresholds: np.ndarray) -> str:
    """Count MAE per score threshold and the leave-one-out estimate (see the module docstring)."""
    lo = float(thresholds.min())
    cfg = cam.detector.model_copy(update={"threshold": lo, "thresholds": {}})
    det = OnnxDetector(load_manifest(cam.model), cfg, zones=[z.polygon for z in cam.zones], masks=cam.masks)
    cases = crowd_cases(spec)
    err = np.zeros((len(thresholds), len(cases)))
    for j, c in enumerate(cases):
        h, w = c.image.shape[:2]
        passes: list[tuple[PassResult, tuple[int, int, int, int] | None]] = det.run_passes(c.image)
        for i, t in enumerate(thresholds):
            kept = [(p.raw.xyxy[p.raw.score >= t], p.raw.score[p.raw.score >= t], p.raw.label[p.raw.score >= t], r) for p, r in passes]
            d, _ = det.combine(kept, w, h)
            n = int(((d.class_id == PERSON) & _zone_mask(cam, c.zone, d, w, h)).sum())
            err[i, j] = n - c.truth
    mae = np.abs(err).mean(axis=1)
    loo, picked = [], []
    for j in range(len(cases)):
        rest = np.abs(np.delete(err, j, axis=1)).mean(axis=1)
        best = np.flatnonzero(np.isclose(rest, rest.min()))
        k = int(best[len(best) // 2])  # the middle of a tie
        picked.append(float(thresholds[k]))
        loo.append(abs(err[k, j]))
    lines = ["threshold  MAE    mean signed"]
    lines += [f"{t:9.2f}  {m:5.2f}  {s:+6.2f}" for t, m, s in zip(thresholds, mae, err.mean(axis=1), strict=True)]
    best = int(np.argmin(mae))
    lines.append(
        f"best on all photos: {thresholds[best]:.2f} (MAE {mae[best]:.2f}); leave-one-out: MAE {np.mean(loo):.2f} "
        f"(thresholds picked {min(picked):.2f}-{max(picked):.2f}; per photo {', '.join(f'{v:.0f}' for v in loo)})"
    )
    return "\n".join(lines)


def _draw(path: Path, c: CrowdCase, det: Detections, kinds: list[str], inside: np.ndarray) -> None:
    import cv2

    colours = {"matched": (0, 200, 0), "duplicate": (0, 140, 255), "cut_top": (255, 0, 255), "fragment": (255, 120, 0), "other": (0, 0, 255)}
    img = c.image.copy()
    boxes = det.xyxy[(det.class_id == PERSON) & inside]
    for b, k in zip(boxes, kinds, strict=True):
        x1, y1, x2, y2 = (int(v) for v in b)
        cv2.rectangle(img, (x1, y1), (x2, y2), colours[k], 2)
        cv2.putText(img, k, (x1 + 2, y1 + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colours[k], 1)
    for x, y in c.heads:
        cv2.circle(img, (int(x), int(y)), 4, (255, 255, 255), -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("spec", help="a crowd spec, e.g. tests/accuracy/sets/crowd-photos.yaml")
    ap.add_argument("--config", help="run this site config instead of the spec's")
    ap.add_argument("--markdown", action="store_true", help="the table as Markdown (docs/accuracy.md)")
    ap.add_argument("--draw", help="write each photo with its detections coloured by kind to this folder")
    ap.add_argument("--sweep", help="LO:HI:STEP score thresholds: MAE per threshold and leave-one-out")
    a = ap.parse_args(argv)
    spec = load_spec(a.spec)
    cfg = load_config(Path(a.config) if a.config else spec.config_path)
    cam_id = spec.spec.defaults.camera
    cam = next((c for c in cfg.cameras if c.id == cam_id), cfg.cameras[0])
    if a.sweep:
        lo, hi, step = (float(v) for v in a.sweep.split(":"))
        print(sweep(spec, cam, np.round(np.arange(lo, hi + step / 2, step), 4)))
        return 0
    print(table(run(spec, cam, Path(a.draw) if a.draw else None), a.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
