"""``OnnxDetector``: manifest + onnxruntime + decoder adapter -> canonical ``Detections``.

Pipeline per pass: pre-process (letterbox/stretch, normalise) -> ``session.run`` -> the family
decoder -> boxes back to original pixels -> the output guard -> per-label thresholds -> NMS.
``detect_image`` is three stages that a pipeline may run on three threads (``prepare`` on the
frame's thread, ``infer`` on a shared inference worker, ``finish`` after it), so the inference
thread does nothing but ``session.run``; run in series they are the same computation.
Optional region-of-interest passes (crops around zones, or tiles) are fused with the full frame
(``fuse_passes``: boxes cut by a crop's inner edge dropped, IoU NMS, then a containment merge that
drops a box lying mostly inside a same-label box from another pass -- the fragment a crop sees of an
object the full frame sees whole); then boxes are clipped, mapped to canonical classes and filtered
by area, aspect and exclusion masks.

The output guard drops decoded rows that no sane model produces (a NaN/inf box or score, a score
outside 0..1, a box more than ``ABSURD_BOX_FACTOR`` image sizes away) and counts them; a model
that gives nothing but such rows (or NaN-filled outputs) for ``GARBAGE_AFTER_PASSES`` passes in a
row is reported once in the log and in ``OnnxDetector.output_health()``, instead of silently
handing the tracker nothing (or nonsense).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from edge.classes import PERSON, resolve
from edge.config.detector import DetectorConfig
from edge.config.site import CameraConfig
from edge.errors import ModelError
from edge.geometry import ios_matrix, pair_boxes, points_in_polygon, reach_frame_edges, same_top_parts
from edge.ports import Detector
from edge.types import Detections, Frame
from edge.vision.adapters import DecodeContext, Decoder, RawDetections, get_decoder
from edge.vision.manifest import Manifest, file_sha256, load_manifest, resolve_model_file
from edge.vision.nms import nms
from edge.vision.preprocess import InputPool, Preprocessor, Transform
from edge.vision.runtime import OnnxSession

log = logging.getLogger(__name__)

Polygon = Sequence[Sequence[float]]

ABSURD_BOX_FACTOR = 4.0  # a box reaching more than 4 image widths/heights outside is not an object
SCORE_TOLERANCE = 1e-3  # scores are probabilities: 0..1 (a little slack for float rounding)
GARBAGE_AFTER_PASSES = 3  # consecutive passes with nothing but garbage before the model is reported


@dataclass(frozen=True, slots=True)
class OutputCheck:
    """What the guard found in one pass: non-finite output values and the decoded rows it dropped."""

    nonfinite_values: int = 0  # NaN/inf values in the float outputs of the graph
    nonfinite_rows: int = 0  # decoded rows with a NaN/inf box or score
    score_rows: int = 0  # decoded rows whose score is outside 0..1
    huge_rows: int = 0  # decoded rows with an astronomic box
    example: str = ""  # one offending row or value, for the message

    @property
    def dropped(self) -> int:
        return self.nonfinite_rows + self.score_rows + self.huge_rows

    @property
    def bad(self) -> bool:
        return bool(self.dropped or self.nonfinite_values)


def screen_rows(
    outputs: Sequence[np.ndarray], xyxy: np.ndarray, score: np.ndarray, w: int, h: int
) -> tuple[np.ndarray, OutputCheck]:
    """(rows to keep, what was wrong) for decoded rows in the pass image's pixels."""
    nonfinite_values = 0
    for out in outputs:
        if out.dtype.kind == "f" and out.size and not np.isfinite(out).all():
            nonfinite_values += int(out.size - np.count_nonzero(np.isfinite(out)))
    n = score.shape[0]
    if n == 0:
        return np.ones(0, bool), OutputCheck(nonfinite_values=nonfinite_values)
    finite = np.isfinite(xyxy).all(1) & np.isfinite(score)
    in_score = (score >= -SCORE_TOLERANCE) & (score <= 1.0 + SCORE_TOLERANCE)
    k = ABSURD_BOX_FACTOR
    with np.errstate(invalid="ignore"):
        sane_box = (
            (xyxy[:, 0] >= -k * w)
            & (xyxy[:, 1] >= -k * h)
            & (xyxy[:, 2] <= (k + 1) * w)
            & (xyxy[:, 3] <= (k + 1) * h)
        )
    keep = finite & in_score & sane_box
    if keep.all() and not nonfinite_values:
        return keep, OutputCheck()
    bad_score = finite & ~in_score
    huge = finite & in_score & ~sane_box
    example = ""
    if not keep.all():
        i = int(np.argmax(~keep))
        box = ", ".join(f"{float(v):.4g}" for v in xyxy[i])
        example = f"box [{box}] score {float(score[i]):.4g}"
    return keep, OutputCheck(
        nonfinite_values=nonfinite_values,
        nonfinite_rows=int(n - np.count_nonzero(finite)),
        score_rows=int(np.count_nonzero(bad_score)),
        huge_rows=int(np.count_nonzero(huge)),
        example=example,
    )


class OutputGuard:
    """Counts what the guard dropped for one model and logs once per state change:
    the first dropped row, entering "garbage" (nothing but garbage for GARBAGE_AFTER_PASSES
    passes) and leaving it."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.passes = 0
        self.bad_passes = 0
        self.dropped_rows = {"non_finite": 0, "score_range": 0, "huge_box": 0}
        self.nonfinite_values = 0
        self.state = "ok"  # "ok" | "garbage"
        self._streak = 0
        self._warned = False

    def record(self, check: OutputCheck, kept: int) -> None:
        self.passes += 1
        if not check.bad:
            self._streak = 0
            self._set_state("ok", kept)
            return
        self.bad_passes += 1
        self.nonfinite_values += check.nonfinite_values
        self.dropped_rows["non_finite"] += check.nonfinite_rows
        self.dropped_rows["score_range"] += check.score_rows
        self.dropped_rows["huge_box"] += check.huge_rows
        if not self._warned:
            self._warned = True
            log.warning(
                "model=%s gave non-finite or absurd outputs (%s): %d NaN/inf output values, dropped %d "
                "rows (%d NaN/inf, %d scores outside 0..1, %d astronomic boxes); later ones are counted, "
                "not logged; check it with: edge-agent model check %s",
                self.model,
                check.example or "no row",
                check.nonfinite_values,
                check.dropped,
                check.nonfinite_rows,
                check.score_rows,
                check.huge_rows,
                self.model,
            )
        if kept:
            self._streak = 0
            self._set_state("ok", kept)
            return
        self._streak += 1
        if self._streak >= GARBAGE_AFTER_PASSES:
            self._set_state("garbage", kept)

    def _set_state(self, state: str, kept: int) -> None:
        if state == self.state:
            return
        self.state = state
        if state == "garbage":
            log.error(
                "model=%s produces only non-finite or absurd outputs (%d passes in a row): no detections "
                "reach the tracker; run edge-agent model check %s and replace the model",
                self.model,
                self._streak,
                self.model,
            )
        else:
            log.info("model=%s gives usable outputs again (%d detections in the last pass)", self.model, kept)

    def snapshot(self) -> dict[str, object]:
        return {
            "state": self.state,
            "passes": self.passes,
            "bad_passes": self.bad_passes,
            "nonfinite_values": self.nonfinite_values,
            "dropped_rows": dict(self.dropped_rows),
        }


@dataclass(frozen=True, slots=True)
class PassResult:
    """One inference pass (full frame or crop), boxes in the pass image's pixels before clipping."""

    raw: RawDetections  # in original pixels of the pass image, thresholded and NMS'd
    outputs: list[np.ndarray]
    pre_ms: float
    infer_ms: float
    post_ms: float
    check: OutputCheck = OutputCheck()  # what the output guard dropped in this pass


Rect = tuple[int, int, int, int]


@dataclass(slots=True)
class PassInput:
    """One pass between the stages: its feeds (an ``InputPool`` buffer until ``infer`` has run),
    box transform and pass image size; ``infer`` adds the outputs."""

    feeds: dict[str, np.ndarray]
    tf: Transform
    size: tuple[int, int]  # the pass image's (width, height)
    rect: Rect | None  # the crop in the frame, None for the full frame
    pre_ms: float
    outputs: list[np.ndarray] | None = None
    infer_ms: float = 0.0


@dataclass(slots=True)
class Prepared:
    """One image's inference passes on their way through ``prepare`` -> ``infer`` -> ``finish``."""

    size: tuple[int, int]  # the image's (width, height)
    passes: list[PassInput]

    @property
    def inferred(self) -> bool:
        return all(p.outputs is not None for p in self.passes)


class OnnxDetector:
    """A loaded model. ``detect(frame)`` returns Detections in original-image pixels."""

    def __init__(
        self,
        manifest: Manifest,
        cfg: DetectorConfig | None = None,
        *,
        zones: Sequence[Polygon] = (),
        masks: Sequence[Polygon] = (),
        model_path: Path | None = None,
        warmup: bool = True,
        session: OnnxSession | None = None,
    ) -> None:
        self.manifest = manifest
        self.cfg = cfg or DetectorConfig()
        path = model_path or resolve_model_file(manifest)
        self.name = manifest.name
        self.sha256 = manifest.file.sha256 if model_path is None else file_sha256(path)
        # ``session``: one loaded by the caller for this file, shared with other cameras' detectors.
        self.session = session or OnnxSession(path, threads=self.cfg.threads, provider=self.cfg.provider)
        self.decoder: Decoder = get_decoder(
            manifest.decoder.family, manifest.decoder.params, manifest.input.size
        )
        self.output_order = self._output_order()
        problems = self.decoder.bind([self.session.outputs[i] for i in self.output_order])
        if problems:
            raise ModelError(f"model {self.name}: " + "; ".join(problems))
        self.pre = Preprocessor(manifest.input)
        self.inputs = InputPool(self.pre)
        self.label_class = manifest.class_of_label()
        self.paired_labels = np.isin(self.label_class, sorted(resolve(self.cfg.roi_pair_classes)))
        self.person_labels = self.label_class == PERSON
        self.label_thr = manifest.label_thresholds(self.cfg.threshold, self.cfg.thresholds)
        self.score_floor = float(self.label_thr.min())
        mode = manifest.decoder.nms if self.cfg.nms == "manifest" else self.cfg.nms
        self.nms_mode = mode
        self.nms_iou = self.cfg.nms_iou or manifest.decoder.nms_iou
        self.zones = [np.asarray(z, np.float64) for z in zones]
        # Normalised anchors are tested against the masks: a mask drawn to the frame's border covers it.
        self.masks = [reach_frame_edges(np.asarray(m, np.float64), 1.0, 1.0, 1e-3) for m in masks]
        self.last_timing_ms: dict[str, float] = {"pre": 0.0, "infer": 0.0, "post": 0.0}
        self._roi_cache: dict[tuple[int, int], list[tuple[int, int, int, int]]] = {}
        self.guard = OutputGuard(self.name)
        if warmup:
            w, h = manifest.input.size
            self.detect_image(np.zeros((h, w, 3), np.uint8))

    # ---- identity ------------------------------------------------------------------
    @property
    def sha256_short(self) -> str:
        return self.sha256[:8]

    def identity(self) -> dict[str, str]:
        """What goes into every event's ``model`` field."""
        return {"name": self.name, "sha256": self.sha256_short}

    def _output_order(self) -> list[int]:
        names = [o.name for o in self.session.outputs]
        wanted = self.manifest.decoder.outputs
        if wanted is None:
            return list(range(len(names)))
        missing = [n for n in wanted if n not in names]
        if missing:
            raise ModelError(
                f"model {self.name}: decoder.outputs {missing} are not graph outputs; the graph has {names}"
            )
        return [names.index(n) for n in wanted]

    # ---- health ---------------------------------------------------------------------------
    def output_health(self) -> dict[str, object]:
        """The output guard's counters and state ("ok" or "garbage") for health records."""
        return self.guard.snapshot()

    # ---- one pass ----------------------------------------------------------------------
    def run_pass(self, image: np.ndarray, *, score_floor: float | None = None) -> PassResult:
        """Pre-process, infer, decode, guard, threshold and NMS one image (boxes in its pixels).

        ``score_floor`` overrides the decoders' early cut (``model check`` passes -inf so that every
        candidate row is screened); such passes are not counted by the run-time guard."""
        p = self._prepare_pass(image, None)
        self._infer_pass(p)
        return self._decode_pass(p, score_floor)

    def _prepare_pass(self, image: np.ndarray, rect: Rect | None) -> PassInput:
        t0 = time.perf_counter()
        feeds, tf = self.pre(image, out=self.inputs.take())
        h, w = image.shape[:2]
        return PassInput(feeds, tf, (w, h), rect, (time.perf_counter() - t0) * 1e3)

    def _infer_pass(self, p: PassInput) -> None:
        if p.outputs is not None:
            raise ValueError("infer() twice on one pass: its input buffer has gone back to the pool")
        t1 = time.perf_counter()
        try:
            p.outputs = self.session.run(p.feeds)
        finally:  # the input buffer is free again once the session has read it
            self.inputs.give(p.feeds[self.pre.spec.name])
            p.feeds = {}
        p.infer_ms = (time.perf_counter() - t1) * 1e3

    def _decode_pass(self, p: PassInput, score_floor: float | None) -> PassResult:
        if p.outputs is None:
            raise ValueError("finish() before infer(): the pass has no outputs yet")
        t2 = time.perf_counter()
        outs, tf = p.outputs, p.tf
        ordered = [outs[i] for i in self.output_order]
        w, h = p.size
        floor = self.score_floor if score_floor is None else score_floor
        ctx = DecodeContext(self.pre.in_w, self.pre.in_h, w, h, floor)
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is what the guard catches
            raw = self.decoder.decode(ordered, ctx)
            xyxy = tf.to_original(raw.xyxy) if raw.space == "input" else raw.xyxy.astype(np.float32)
        label = raw.label
        if label.size and (label.min() < 0 or label.max() >= self.manifest.num_classes):
            raise ModelError(
                f"model {self.name}: decoded label id {int(label.max())} but the manifest lists "
                f"{self.manifest.num_classes} labels; fix the manifest's labels"
            )
        good, check = screen_rows(outs, xyxy, raw.score, w, h)
        keep = good & (raw.score >= self.label_thr[label])
        xyxy, score, label = xyxy[keep], raw.score[keep], label[keep]
        if self.nms_mode != "none" and score.size > 1:
            k = nms(xyxy, score, self.nms_iou, label if self.nms_mode == "class_aware" else None)
            xyxy, score, label = xyxy[k], score[k], label[k]
        t3 = time.perf_counter()
        if score_floor is None:
            self.guard.record(check, int(score.size))
        return PassResult(
            RawDetections(xyxy, score, label, "original"),
            outs,
            p.pre_ms,
            p.infer_ms,
            (t3 - t2) * 1e3,
            check,
        )

    # ---- regions of interest -------------------------------------------------------------
    def roi_rects(self, width: int, height: int) -> list[tuple[int, int, int, int]]:
        """Crops (x1, y1, x2, y2) in pixels for the configured ROI mode."""
        m = self.cfg.roi_margin
        rects: list[tuple[float, float, float, float]] = []
        if self.cfg.roi == "zones":
            for z in self.zones:
                x1, y1 = z.min(0) * (width, height)
                x2, y2 = z.max(0) * (width, height)
                rects.append((x1, y1, x2, y2))
        elif self.cfg.roi == "tiles":
            cols, rows = self.cfg.tile_grid
            tw, th = width / cols, height / rows
            rects = [(c * tw, r * th, (c + 1) * tw, (r + 1) * th) for r in range(rows) for c in range(cols)]
        out: list[tuple[int, int, int, int]] = []
        for x1, y1, x2, y2 in rects:
            mx, my = (x2 - x1) * m, (y2 - y1) * m
            a = (
                max(0, int(x1 - mx)),
                max(0, int(y1 - my)),
                min(width, int(np.ceil(x2 + mx))),
                min(height, int(np.ceil(y2 + my))),
            )
            if a[2] - a[0] >= 8 and a[3] - a[1] >= 8:
                out.append(a)
        if self.cfg.roi == "zones":
            out = _merge_overlapping(out)
        return out

    # ---- whole detection -----------------------------------------------------------------
    def detect(self, frame: Frame) -> Detections:
        return self.detect_image(frame.image)

    def detect_image(self, image: np.ndarray) -> Detections:
        """Detections for a BGR uint8 image, in its pixels. Sets ``last_timing_ms``."""
        work = self.prepare(image)
        self.infer(work)
        return self.finish(work)

    def detect_traced(self, image: np.ndarray) -> tuple[Detections, np.ndarray]:
        """Detections and, for each, the pass it came from (the index into ``run_passes``' list)."""
        work = self.prepare(image)
        self.infer(work)
        return self.finish_traced(work)

    def run_passes(self, image: np.ndarray) -> list[tuple[PassResult, Rect | None]]:
        """The inference passes of one image: the full frame (unless ``roi_full_frame`` is off) and one per
        crop of ``roi_rects``, each with its rect (None for the full frame)."""
        work = self.prepare(image)
        self.infer(work)
        return [(self._decode_pass(p, None), p.rect) for p in work.passes]

    def prepare(self, image: np.ndarray) -> Prepared:
        """Stage 1: pre-process every pass (full frame and ROI crops) into pooled input buffers.

        Reads ``image`` (never copies it); a pipeline runs this on the frame's own thread."""
        h, w = image.shape[:2]
        rects: list[Rect] = []
        if self.cfg.roi != "none":
            if (w, h) not in self._roi_cache:
                self._roi_cache[(w, h)] = self.roi_rects(w, h)
            rects = self._roi_cache[(w, h)]
        passes: list[PassInput] = []
        if not rects or self.cfg.roi_full_frame:
            passes.append(self._prepare_pass(image, None))
        for r in rects:
            passes.append(self._prepare_pass(image[r[1] : r[3], r[0] : r[2]], r))
        return Prepared((w, h), passes)

    def infer(self, work: Prepared) -> None:
        """Stage 2: ``session.run`` on every pass, nothing else. Safe to call from another thread
        while this detector prepares or finishes other frames."""
        for p in work.passes:
            self._infer_pass(p)

    def finish(self, work: Prepared) -> Detections:
        """Stage 3: decode, guard, thresholds and NMS per pass, the ROI fusion (``combine``), clipping,
        classes and filters. Call in frame order (the output guard counts passes). Sets ``last_timing_ms``."""
        return self.finish_traced(work)[0]

    def finish_traced(self, work: Prepared) -> tuple[Detections, np.ndarray]:
        """``finish`` with, for each detection, the pass it came from (its index in ``work.passes``)."""
        w, h = work.size
        passes = [(self._decode_pass(p, None), p.rect) for p in work.passes]
        t0 = time.perf_counter()
        det, origin = self.combine([(p.raw.xyxy, p.raw.score, p.raw.label, r) for p, r in passes], w, h)
        post_extra = (time.perf_counter() - t0) * 1e3
        self.last_timing_ms = {
            "pre": sum(p.pre_ms for p, _ in passes),
            "infer": sum(p.infer_ms for p, _ in passes),
            "post": sum(p.post_ms for p, _ in passes) + post_extra,
        }
        return det, origin

    def combine(self, passes: Sequence[PassBoxes], w: int, h: int) -> tuple[Detections, np.ndarray]:
        """One image's passes (boxes in each pass image's pixels) -> its Detections and each one's pass:
        fused (``fuse_passes``), person parts merged, clipped, mapped to canonical classes, filtered."""
        if len(passes) == 1:
            xyxy, score, label, _ = passes[0]
            origin = np.zeros(len(score), np.int32)
        else:
            iou = self.nms_iou if self.nms_mode != "none" else 0.5
            xyxy, score, label, origin = fuse_passes(
                passes,
                (w, h),
                iou=iou,
                merge_ios=self.cfg.roi_merge_ios,
                class_aware=self.nms_mode != "agnostic",
                paired_labels=self.paired_labels,
            )
        xyxy = np.clip(xyxy, 0, [w, h, w, h]).astype(np.float32)
        label = np.asarray(label).astype(np.int64)
        keep = np.ones(score.size, bool)
        if self.cfg.merge_person_parts and score.size > 1:
            person = self.person_labels[label]
            keep[np.nonzero(person)[0][same_top_parts(xyxy[person])]] = False
        cls = self.label_class[label] if label.size else np.zeros(0, np.int32)
        keep &= self._filters(xyxy, cls, w, h)
        det = Detections(
            xyxy=xyxy[keep],
            confidence=np.asarray(score)[keep].astype(np.float32),
            class_id=cls[keep].astype(np.int32),
            label_id=label[keep].astype(np.int32),
        )
        return det, np.asarray(origin)[keep].astype(np.int32)

    def _filters(self, xyxy: np.ndarray, cls: np.ndarray, w: int, h: int) -> np.ndarray:
        keep = np.ones(xyxy.shape[0], bool)
        if not self.cfg.keep_other:
            keep &= cls >= 0
        bw = xyxy[:, 2] - xyxy[:, 0]
        bh = xyxy[:, 3] - xyxy[:, 1]
        keep &= (bw > 0) & (bh > 0)
        c = self.cfg
        if c.min_area_px > 0 or c.max_area_frac < 1.0:
            area = bw * bh
            keep &= (area >= c.min_area_px) & (area <= c.max_area_frac * w * h)
        if c.min_aspect > 0 or c.max_aspect > 0:
            aspect = bw / np.maximum(bh, 1e-6)
            keep &= aspect >= c.min_aspect
            if c.max_aspect:
                keep &= aspect <= c.max_aspect
        if self.masks and keep.any():
            anchor = np.stack([(xyxy[:, 0] + xyxy[:, 2]) * 0.5 / w, xyxy[:, 3] / h], 1)
            for poly in self.masks:
                keep &= ~points_in_polygon(anchor, poly)
        return keep


PassBoxes = tuple[np.ndarray, np.ndarray, np.ndarray, "tuple[int, int, int, int] | None"]
CUT_TOL_PX = 2.0  # a box within this of a crop's inner edge is cut by it


class Fused(NamedTuple):
    """The fused boxes of all passes, best score first, and the pass each came from (its index)."""

    xyxy: np.ndarray
    score: np.ndarray
    label: np.ndarray
    origin: np.ndarray


def fuse_passes(
    passes: Sequence[PassBoxes],
    size: tuple[int, int],
    *,
    iou: float,
    merge_ios: float,
    class_aware: bool = True,
    paired_labels: np.ndarray | None = None,
) -> Fused:
    """Fuse the detections of a full-frame pass and crop passes into one set of boxes.

    ``passes`` are (xyxy in the crop's pixels, score, label, crop rect or None for the full frame).
    As sliced-inference tools do:

    1. with a full-frame pass, a crop's box touching one of the crop's *inner* edges (not the frame's)
       is cut by it: dropped, the full frame (or the neighbouring, overlapping crop) sees it whole;
    2. greedy IoU NMS over everything (same-size duplicates of one object from two passes);
    3. containment merge: best score first, a box from *another* pass whose intersection over the
       smaller box's area with a kept box of the same label is at least ``merge_ios`` is the same
       object (a head-and-shoulders fragment a tile sees inside the person the full frame sees, or
       the other way round) and is dropped. Boxes of one pass never merge this way: the model's own NMS
       already separated them, and in a crowd a small person often stands inside a near person's box.
       ``merge_ios`` >= 1 turns the step off.

    Labels flagged in ``paired_labels`` (a bool per model label: bikes) skip steps 2 and 3: a box of a
    later pass is the same object as at most one box already kept (``pair_boxes``: IoU >= ``iou`` or
    intersection over the smaller >= ``merge_ios``), and the pair keeps its better-scored box. Bikes stand
    overlapping in racks and are seen through: a crop's bike lying inside the full frame's bike box is
    usually the next bike of the row, which a containment merge would drop (docs/accuracy.md).
    """
    w, h = size
    boxes, scores, labels, origin = [], [], [], []
    has_full = any(r is None for *_, r in passes)
    for k, (xyxy, score, label, r) in enumerate(passes):
        b = np.asarray(xyxy, np.float32).reshape(-1, 4)
        keep = np.ones(b.shape[0], bool)
        if r is not None:
            b = b + np.array([r[0], r[1], r[0], r[1]], np.float32)
            if has_full:
                tol = CUT_TOL_PX
                cut = (
                    ((b[:, 0] <= r[0] + tol) & (r[0] > 0))
                    | ((b[:, 1] <= r[1] + tol) & (r[1] > 0))
                    | ((b[:, 2] >= r[2] - tol) & (r[2] < w))
                    | ((b[:, 3] >= r[3] - tol) & (r[3] < h))
                )
                keep = ~cut
        boxes.append(b[keep])
        scores.append(np.asarray(score, np.float32)[keep])
        labels.append(np.asarray(label)[keep].astype(np.int64))
        origin.append(np.full(int(keep.sum()), k, np.int32))
    xyxy, score, label = np.concatenate(boxes), np.concatenate(scores), np.concatenate(labels)
    src = np.concatenate(origin)
    paired = np.zeros(score.size, bool)
    if paired_labels is not None and score.size:
        paired = np.asarray(paired_labels, bool)[label]
    parts = [
        _merge_fragments(xyxy[~paired], score[~paired], label[~paired], src[~paired], iou, merge_ios, class_aware),
        _pair_across_passes(xyxy[paired], score[paired], label[paired], src[paired], iou, merge_ios, class_aware),
    ]
    out = Fused(*(np.concatenate([getattr(p, f) for p in parts]) for f in Fused._fields))
    order = np.argsort(-out.score, kind="stable")
    return Fused(out.xyxy[order], out.score[order], out.label[order], out.origin[order])


def _merge_fragments(
    xyxy: np.ndarray, score: np.ndarray, label: np.ndarray, src: np.ndarray, iou: float, merge_ios: float, class_aware: bool
) -> Fused:
    """Steps 2 and 3 of ``fuse_passes``: NMS, then fragments inside another pass's box dropped."""
    if score.size == 0:
        return Fused(xyxy, score, label, src)
    kept = nms(xyxy, score, iou, label if class_aware else None)
    xyxy, score, label, src = xyxy[kept], score[kept], label[kept], src[kept]  # best score first
    if merge_ios >= 1.0 or score.size < 2:
        return Fused(xyxy, score, label, src)
    inside = ios_matrix(xyxy, xyxy) >= merge_ios
    inside &= src[:, None] != src[None, :]
    if class_aware:
        inside &= label[:, None] == label[None, :]
    alive = np.ones(score.size, bool)
    for i in range(score.size):  # rows are in descending score: a kept box removes what it contains
        if alive[i]:
            alive &= ~inside[i]
    return Fused(xyxy[alive], score[alive], label[alive], src[alive])


def _pair_across_passes(
    xyxy: np.ndarray, score: np.ndarray, label: np.ndarray, src: np.ndarray, iou: float, merge_ios: float, class_aware: bool
) -> Fused:
    """Pass by pass, each box is paired with at most one box kept so far (the same object); a pair keeps
    the better-scored box, an unpaired box is another object."""
    kept = np.zeros(0, np.int64)
    for k in np.unique(src):
        new = np.nonzero(src == k)[0]
        if kept.size and new.size:
            rows, cols = pair_boxes(xyxy[new], xyxy[kept], iou=iou, ios=merge_ios)
            if class_aware:
                same = label[new[rows]] == label[kept[cols]]
                rows, cols = rows[same], cols[same]
            better = score[new[rows]] > score[kept[cols]]
            kept[cols[better]] = new[rows[better]]
            new = np.delete(new, rows)
        kept = np.concatenate([kept, new])
    return Fused(xyxy[kept], score[kept], label[kept], src[kept])


def _merge_overlapping(rects: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Union zone crops that mostly overlap (>50 % of the smaller), so no area is inferred twice."""
    rects = list(dict.fromkeys(rects))
    merged = True
    while merged and len(rects) > 1:
        merged = False
        for i in range(len(rects)):
            for j in range(i + 1, len(rects)):
                a, b = rects[i], rects[j]
                iw = min(a[2], b[2]) - max(a[0], b[0])
                ih = min(a[3], b[3]) - max(a[1], b[1])
                small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
                if iw > 0 and ih > 0 and iw * ih > 0.5 * small:
                    rects[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    del rects[j]
                    merged = True
                    break
            if merged:
                break
    return rects


def build_detector(cam: CameraConfig, session: OnnxSession | None = None) -> Detector:
    """The camera's detector: the ONNX model of ``cam.model`` or the model-free motion backend.

    ``session``: an already loaded session of the model's file to share (several cameras, one model)."""
    if cam.model == "motion":
        from edge.vision.motion import MotionDetector  # engineer F1's backend

        return MotionDetector(cam)  # type: ignore[no-any-return]
    manifest = load_manifest(cam.model)
    det = OnnxDetector(
        manifest,
        cam.detector,
        zones=[z.polygon for z in cam.zones],
        masks=cam.masks,
        session=session,
    )
    log.info(
        "camera=%s model=%s sha256=%s threads=%d provider=%s roi=%s",
        cam.id,
        det.name,
        det.sha256_short,
        det.session.threads,
        det.session.provider,
        cam.detector.roi,
    )
    return det


def model_identity(det: Detector) -> dict[str, str]:
    """``{"name", "sha256"}`` (8-hex prefix) of any detector, for events."""
    return {"name": det.name, "sha256": det.sha256[:8]}
