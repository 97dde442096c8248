"""``edge-agent model quantize``: a static int8 (QDQ) model calibrated on frames from the site.

The float model's graph is brought to opset 13 (per-channel weights need DequantizeLinear's
``axis``) and through onnxruntime's pre-processing, then ``quantize_static`` inserts
QuantizeLinear/DequantizeLinear pairs: int8 weights per output channel, uint8 activations whose
ranges come from the site's own frames, pre-processed exactly as the manifest says (the same
``Preprocessor`` the agent runs). Defaults, chosen by measurement (docs/models.md):

* calibration ``minmax-avg``: the mean over frames of each tensor's per-frame minimum and
  maximum, so one unusual frame cannot stretch a range alone. The global min/max agreed no
  better; the histogram methods (percentile, entropy) took 5-11x longer and hold every
  activation of every frame in memory (8.6 GB peak at 64 frames) for no better agreement;
* the **head** stays float: the last convolutions and everything after them (sigmoids,
  reshapes, the concatenation of box offsets with scores). One int8 scale for box offsets and
  scores together is what loses most agreement, and these layers are a small part of the time;
* the **stem** (the first convolution and any depthwise convolution before the next full one,
  which see raw pixels at full resolution) is kept float only when that gains agreement on the
  calibration frames: unless the head-only candidate matches every float detection there, the
  candidate with the stem float too is tried and kept if it matches more, or as many with a mean
  IoU at least 0.01 higher. int8 costs YOLOX-Nano a lot in the stem (its agreement on unseen
  scenes drops most there), NanoDet nothing, and a float stem costs NanoDet most of its speed-up.
  ``--keep-float`` fixes the choice.

Agreement is measured the way the agent sees detections (manifest thresholds, canonical classes):
each float detection is paired one-to-one with an int8 detection of the same label, highest IoU
first; a pair with IoU >= 0.7 is a match. Onnxruntime's quantization tools are imported only here
(and need the ``onnx`` package: ``pip install edge[quantize]``); inference goes through
``edge.vision.runtime`` like everything else.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from edge.capture.opencv import IMAGE_EXT, iter_video_frames, video_frame_count
from edge.config.detector import DetectorConfig
from edge.errors import CaptureError, ModelError
from edge.types import Detections
from edge.vision.agreement import IOU_MATCH, Agreement, measure_agreement
from edge.vision.detector import OnnxDetector
from edge.vision.manifest import Manifest, file_sha256, load_manifest, resolve_model_file
from edge.vision.preprocess import Preprocessor, read_image
from edge.vision.runtime import OnnxSession

log = logging.getLogger(__name__)

METHODS = ("minmax-avg", "minmax", "percentile", "entropy")
PARTS = ("stem", "head")
_LADDER: tuple[tuple[str, ...], ...] = (("head",), ("stem", "head"))  # tried in order by --keep-float auto
_FIT_FRAMES = 64  # at most this many calibration frames choose between the ladder's candidates
_FIT_IOU_GAIN = 0.01  # mean IoU a slower candidate must gain, at equal matched fraction, to be chosen
_MIN_OPSET = 13
INSTALL_HINT = "pip install edge[quantize]"


class QuantizeUnavailable(ModelError):
    """The ``onnx`` package (the quantizer's dependency) is not installed."""


def require_onnx() -> Any:
    """The ``onnx`` module, or QuantizeUnavailable naming the extra to install."""
    try:
        import onnx
    except ImportError:
        raise QuantizeUnavailable(
            f"edge-agent model quantize needs the onnx package, which is not installed: {INSTALL_HINT}"
        ) from None
    return onnx


# ---- frames from the site ----------------------------------------------------------------------


@dataclass(frozen=True)
class SiteFrames:
    """Frames sampled from one source: a video (ids are frame indices) or a folder (file names).

    Iterating reads them again from the source, one frame in memory at a time: 128 frames of a
    1080p camera would otherwise hold 800 MB on a box with 2-4 GB.
    """

    origin: str
    kind: str  # "video" or "images"
    total: int  # frames (or images) in the source
    ids: list[int | str]

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.kind == "images":
            for name in self.ids:
                try:
                    yield read_image(str(Path(self.origin) / str(name)))
                except ValueError as exc:
                    raise CaptureError(str(exc)) from None
        else:
            for _, image in iter_video_frames(self.origin, [int(i) for i in self.ids]):
                yield image

    def subset(self, n: int) -> SiteFrames:
        """At most ``n`` of these frames, spread evenly."""
        keep = even_split(len(self.ids), n, 0)[0]
        return SiteFrames(self.origin, self.kind, self.total, [self.ids[k] for k in keep])


def even_split(total: int, n_calib: int, n_hold: int) -> tuple[list[int], list[int]]:
    """Positions 0..total-1 for calibration and hold-out, spread evenly and interleaved.

    ``n_calib + n_hold`` positions are spread over the whole source (so both sets see every part
    of it: morning and evening, empty and busy); every ``(n_calib + n_hold) / n_hold``-th one is
    held out. When the source has fewer frames, both counts shrink in proportion.
    """
    want = n_calib + n_hold
    if total <= 0 or want <= 0:
        return [], []
    n = min(total, want)
    hold = round(n * n_hold / want) if n < want else n_hold
    if n_hold and n_calib and n >= 2:
        hold = min(max(hold, 1), n - 1)
    picks = [round(float(x)) for x in np.linspace(0, total - 1, n)] if n > 1 else [0]
    held = [k for k in range(n) if (k + 1) * hold // n > k * hold // n]
    held_set = set(held)
    return [picks[k] for k in range(n) if k not in held_set], [picks[k] for k in held]


def list_images(folder: str) -> list[Path]:
    d = Path(folder)
    if not d.is_dir():
        raise CaptureError(f"--images {folder}: not a folder")
    files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXT)
    if not files:
        raise CaptureError(
            f"--images {folder}: no images ({', '.join(sorted(IMAGE_EXT))}) in the folder; "
            "save frames from the site's camera there"
        )
    return files


def take_frames(path: str, kind: str, n_calib: int, n_hold: int) -> tuple[SiteFrames, SiteFrames]:
    """Calibration and hold-out frames sampled evenly from a video file or an image folder.

    Every sampled frame is read once here, so an unreadable file or a video shorter than its
    container states is found before any work is done.
    """
    if kind == "images":
        files = list_images(path)
        cal, hold = even_split(len(files), n_calib, n_hold)
        out = (
            SiteFrames(path, kind, len(files), [files[i].name for i in cal]),
            SiteFrames(path, kind, len(files), [files[i].name for i in hold]),
        )
        for frames in out:
            for _ in frames:  # raises CaptureError naming an unreadable image
                pass
        return out
    total = video_frame_count(path)
    cal, hold = even_split(total, n_calib, n_hold)
    got = {i for i, _ in iter_video_frames(path, cal + hold)}
    if len(got) < len(cal) + len(hold):
        # the container over-stated its length: sample again within what was really there
        real = max(got) + 1 if got else 0
        log.warning("video=%s states %d frames but %d could be read", path, total, real)
        if real == 0:
            raise CaptureError(f"{path}: no frame could be decoded")
        total = real
        cal, hold = even_split(total, n_calib, n_hold)
        got = {i for i, _ in iter_video_frames(path, cal + hold)}
    return (
        SiteFrames(path, kind, total, [i for i in cal if i in got]),
        SiteFrames(path, kind, total, [i for i in hold if i in got]),
    )


# ---- the graph ---------------------------------------------------------------------------------


def _prepare(float_path: Path, work: Path) -> Path:
    """Opset >= 13, every node named, onnxruntime's quantization pre-processing applied."""
    onnx = require_onnx()
    from onnxruntime.quantization import quant_pre_process

    model = onnx.load(str(float_path))
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < _MIN_OPSET:
        from onnx import version_converter

        try:
            model = version_converter.convert_version(model, _MIN_OPSET)
        except Exception as exc:
            raise ModelError(
                f"{float_path.name}: cannot convert from opset {opset} to {_MIN_OPSET} for per-channel "
                f"int8 ({_first_line(exc)}); export the model at opset >= {_MIN_OPSET}"
            ) from None
    step = work / "opset.onnx"
    onnx.save(model, str(step))
    prepared = work / "prepared.onnx"
    try:
        # the symbolic shape pass needs sympy; these detectors have static shapes, onnx's own pass suffices
        quant_pre_process(str(step), str(prepared), skip_symbolic_shape=True)
    except Exception as exc:
        raise ModelError(
            f"{float_path.name}: onnxruntime cannot prepare it for quantization: {_first_line(exc)}"
        ) from None
    model = onnx.load(str(prepared))
    renamed = False
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
            renamed = True
    if renamed:
        onnx.save(model, str(prepared))
    return prepared


def float_nodes(model: Any, parts: Sequence[str]) -> dict[str, list[str]]:
    """Names of the nodes that stay float for each part ('stem', 'head') of a prepared graph."""
    nodes = list(model.graph.node)
    out: dict[str, list[str]] = {}
    if "stem" in parts:
        full = [i for i, n in enumerate(nodes) if n.op_type == "Conv" and _conv_group(n) == 1]
        cut = full[1] if len(full) > 1 else (full[0] + 1 if full else 0)
        out["stem"] = [n.name for n in nodes[:cut]]
    if "head" in parts:
        producer = {o: n for n in nodes for o in n.output}
        keep: set[str] = set()
        stack = [o.name for o in model.graph.output]
        while stack:
            node = producer.get(stack.pop())
            if node is None or node.name in keep:
                continue
            keep.add(node.name)
            if node.op_type != "Conv":  # walk back to (and including) the last convolutions
                stack.extend(node.input)
        out["head"] = [n.name for n in nodes if n.name in keep]
    return out


def ladder_step(fits: Sequence[tuple[float, float] | None]) -> tuple[int, bool]:
    """(best candidate so far, whether to try the next) from the fits seen in ladder order.

    A fit is (matched fraction, mean IoU) on the calibration frames, None when the float model
    found nothing there. A later (slower) candidate beats the best so far with a higher matched
    fraction, or the same fraction and a mean IoU higher by at least ``_FIT_IOU_GAIN``. The next is
    tried unless the last matched everything or had nothing to be judged on.
    """
    best = 0
    for k in range(1, len(fits)):
        f, b = fits[k], fits[best]
        if f is not None and (b is None or f[0] > b[0] or (f[0] == b[0] and f[1] >= b[1] + _FIT_IOU_GAIN)):
            best = k
    last = fits[-1]
    return best, last is not None and last[0] < 1.0


def _conv_group(node: Any) -> int:
    return next((int(a.i) for a in node.attribute if a.name == "group"), 1)


def _quantize(
    prepared: Path, out: Path, feeds: list[dict[str, np.ndarray]], method: str, exclude: list[str]
) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class SiteFeeds(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._it: Iterator[dict[str, np.ndarray]] = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    calib = {
        "minmax-avg": CalibrationMethod.MinMax,
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }[method]
    try:
        # the histogram calibrators print progress: keep stdout for the report
        with contextlib.redirect_stdout(sys.stderr), _quiet_root_logger():
            quantize_static(
                str(prepared),
                str(out),
                SiteFeeds(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=exclude,
                calibrate_method=calib,
                extra_options={"CalibMovingAverage": method == "minmax-avg"},
            )
    except Exception as exc:
        raise ModelError(f"onnxruntime could not quantize {prepared.name}: {_first_line(exc)}") from None


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime.quantization logs through the root logger (INFO per step): keep it to errors."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ---- the whole command -------------------------------------------------------------------------


@dataclass(frozen=True)
class QuantizeOptions:
    calib: int = 64
    holdout: int = 64
    method: str = "minmax-avg"
    keep_float: tuple[str, ...] | None = None  # None: chosen on the calibration frames (see _LADDER)
    threads: tuple[int | None, ...] = (None,)
    repeats: int = 20
    min_agreement: float = 0.95
    name: str | None = None

    def check(self) -> None:
        if self.calib < 1:
            raise ValueError(f"--calib {self.calib}: need at least 1 calibration frame (64 is a good start)")
        if self.holdout < 1:
            raise ValueError(f"--holdout {self.holdout}: need at least 1 held-out frame to judge agreement")
        if self.method not in METHODS:
            raise ValueError(f"--calibration {self.method}: use one of {', '.join(METHODS)}")
        bad = [p for p in self.keep_float or () if p not in PARTS]
        if bad:
            raise ValueError(
                f"--keep-float {','.join(bad)}: parts are {', '.join(PARTS)} (or 'none', 'auto')"
            )
        if self.min_agreement < 0:
            raise ValueError(f"--min-agreement {self.min_agreement}: a fraction, e.g. 0.95")
        if any(t is not None and not 1 <= t <= 64 for t in self.threads):
            raise ValueError(f"--threads {list(self.threads)}: each within 1..64")
        if self.repeats < 1:
            raise ValueError(f"--repeats {self.repeats}: at least 1")


@dataclass
class QuantizeReport:
    float_model: Manifest
    name: str
    onnx_path: Path
    manifest_path: Path
    sha256: str
    calibration: SiteFrames
    holdout: SiteFrames
    method: str
    keep_float: tuple[str, ...]
    kept_float_nodes: dict[str, int]
    selection: list[dict[str, Any]]
    agreement: Agreement
    speed: list[dict[str, Any]]
    min_agreement: float
    quantize_s: float
    installed: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        frac = self.agreement.fraction
        return frac is not None and frac >= self.min_agreement

    def verdict(self) -> str:
        """One line: why it passes or fails, with the figure."""
        a = self.agreement
        if a.fraction is None:
            return (
                f"the float model finds nothing on the {a.frames} {self._held()} frames, so agreement cannot be "
                "judged; use footage with traffic or more --holdout frames"
            )
        word = "at or above" if self.passed else "below"
        return (
            f"int8 matches {a.fraction:.1%} of float detections ({a.matched}/{a.float_detections}) at IoU >= "
            f"{IOU_MATCH} on {a.frames} {self._held()} frames, {word} --min-agreement {self.min_agreement:.0%}"
        )

    def _held(self) -> str:
        return "held-out" if self.holdout.origin == self.calibration.origin else "test"

    def as_dict(self) -> dict[str, Any]:
        fm = self.float_model
        return {
            "model": self.name,
            "onnx": str(self.onnx_path),
            "manifest": str(self.manifest_path),
            "sha256": self.sha256,
            "float_model": {"name": fm.name, "file": fm.file.name, "sha256": fm.file.sha256},
            "calibration": {
                "source": self.calibration.origin,
                "kind": self.calibration.kind,
                "source_frames": self.calibration.total,
                "frames": self.calibration.ids,
                "method": self.method,
                "weights": "int8, symmetric, per output channel",
                "activations": "uint8, asymmetric, per tensor",
                "keep_float": list(self.keep_float),
                "kept_float_nodes": self.kept_float_nodes,
                "selection": self.selection,
                "seconds": round(self.quantize_s, 1),
            },
            "holdout": {
                "source": self.holdout.origin,
                "kind": self.holdout.kind,
                "source_frames": self.holdout.total,
                "frames": self.holdout.ids,
            },
            "agreement": self.agreement.as_dict(),
            "speed": self.speed,
            "min_agreement": self.min_agreement,
            "passed": self.passed,
            "verdict": self.verdict(),
            "installed": self.installed,
        }

    def text(self) -> str:
        a = self.agreement
        kept = ", ".join(f"{p} ({self.kept_float_nodes[p]} nodes)" for p in self.keep_float) or "nothing"
        lines = [
            f"{self.float_model.name} -> {self.name}: int8 QDQ, {len(self.calibration.ids)} calibration frames "
            f"of {self.calibration.origin}, {self.method}, per-channel int8 weights, uint8 activations; "
            f"kept float: {kept} ({self.quantize_s:.0f} s)",
        ]
        for s in self.selection:
            fit = (
                "n/a"
                if s["fit_agreement"] is None
                else f"{s['fit_agreement']:.1%} matched, mean IoU {s['fit_mean_iou']:.3f}"
            )
            lines.append(
                f"  candidate keep-float {'+'.join(s['keep_float']) or 'none'}: {fit} on calibration frames"
            )
        for s in self.speed:
            lines.append(
                f"speed: session.run {s['float_ms']:.2f} ms float vs {s['int8_ms']:.2f} ms int8 at "
                f"{s['threads']} thread(s): {s['speedup']:.2f}x (medians of {s['repeats']}, interleaved)"
            )
        held = self._held()
        miou = "n/a" if a.mean_iou is None else f"{a.mean_iou:.3f}"
        frac = "n/a" if a.fraction is None else f"{a.fraction:.1%}"
        lines.append(
            f"agreement on {a.frames} {held} frames of {self.holdout.origin}: {a.matched}/{a.float_detections} "
            f"float detections matched at IoU >= {IOU_MATCH} with the same class ({frac}), mean IoU {miou}, "
            f"{a.int8_detections} int8 detections"
        )
        if a.per_class:
            lines.append("  class        float   int8")
            lines += [f"  {k:<11} {f:>6} {q:>6}" for k, (f, q) in a.per_class.items()]
        if 0 < a.float_detections < 20:
            lines.append(
                f"  note: only {a.float_detections} float detections: a weak figure; use more --holdout frames"
            )
        lines.append(f"wrote {self.onnx_path} and {self.manifest_path}")
        return "\n".join(lines)


def _feeds(pre: Preprocessor, image: np.ndarray) -> dict[str, np.ndarray]:
    feeds, _ = pre(image)
    return {k: v.copy() for k, v in feeds.items()}  # the pre-processor may reuse its buffers


def _detect_both(
    a: OnnxDetector, b: OnnxDetector | None, frames: SiteFrames
) -> tuple[list[Detections], list[Detections]]:
    """Detections of ``a`` and ``b`` (if given) on every frame, in one pass over the source."""
    da: list[Detections] = []
    db: list[Detections] = []
    for img in frames:
        da.append(a.detect_image(img))
        if b is not None:
            db.append(b.detect_image(img))
    return da, db


def bench_pair(
    float_path: Path, int8_path: Path, feeds: dict[str, np.ndarray], threads: int | None, repeats: int
) -> dict[str, Any]:
    """Median bare ``session.run`` ms of both models, runs interleaved so both see the same load."""
    fs = OnnxSession(float_path, threads=threads)
    qs = OnnxSession(int8_path, threads=threads)
    for _ in range(3):
        fs.run(feeds)
        qs.run(feeds)
    ft: list[float] = []
    qt: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fs.run(feeds)
        t1 = time.perf_counter()
        qs.run(feeds)
        t2 = time.perf_counter()
        ft.append((t1 - t0) * 1e3)
        qt.append((t2 - t1) * 1e3)
    f, q = statistics.median(ft), statistics.median(qt)
    return {
        "threads": fs.threads,
        "repeats": repeats,
        "float_ms": round(f, 3),
        "int8_ms": round(q, 3),
        "speedup": round(f / q, 3),
    }


def quantize_model(
    ref: str,
    calibration: SiteFrames,
    holdout: SiteFrames,
    out_dir: Path,
    opts: QuantizeOptions,
) -> QuantizeReport:
    """Quantize model ``ref`` on ``calibration`` frames; judge it on ``holdout``; write .onnx + manifest."""
    opts.check()
    require_onnx()
    manifest = load_manifest(ref)
    float_path = resolve_model_file(manifest)
    if not len(calibration):
        raise CaptureError(f"no calibration frames could be taken from {calibration.origin}")
    if not len(holdout):
        raise CaptureError(f"no held-out frames could be taken from {holdout.origin}")
    name = opts.name or f"{manifest.name}_int8_site"
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / f"{name}.onnx"
    manifest_path = out_dir / f"{name}.yaml"
    pre = Preprocessor(manifest.input)
    cal_feeds = [_feeds(pre, img) for img in calibration]
    cfg = DetectorConfig(threads=opts.threads[0])
    float_det = OnnxDetector(manifest, cfg)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edge-quantize-") as tmp:
        work = Path(tmp)
        prepared = _prepare(float_path, work)
        ladder = [opts.keep_float] if opts.keep_float is not None else list(_LADDER)
        job = _Job(prepared, work, cal_feeds, opts.method)
        selection, chosen = _climb(ladder, job, float_det, calibration.subset(_FIT_FRAMES))
        tmp_out = out_dir / f".{name}.onnx.part"
        shutil.copyfile(work / f"candidate{chosen}.onnx", tmp_out)
        os.replace(tmp_out, onnx_path)
    quantize_s = time.perf_counter() - t0
    keep = tuple(selection[chosen]["keep_float"])
    sha = file_sha256(onnx_path)

    int8_det = OnnxDetector(manifest, cfg, model_path=onnx_path)
    agreement = measure_agreement(*_detect_both(float_det, int8_det, holdout))
    bench_feeds = _feeds(pre, next(iter(holdout)))
    speed = [bench_pair(float_path, onnx_path, bench_feeds, t, opts.repeats) for t in opts.threads]
    report = QuantizeReport(
        float_model=manifest,
        name=name,
        onnx_path=onnx_path,
        manifest_path=manifest_path,
        sha256=sha,
        calibration=calibration,
        holdout=holdout,
        method=opts.method,
        keep_float=keep,
        kept_float_nodes=selection[chosen]["nodes"],
        selection=selection,
        agreement=agreement,
        speed=speed,
        min_agreement=opts.min_agreement,
        quantize_s=quantize_s,
    )
    write_manifest(report)
    (out_dir / f"{name}.report.json").write_text(
        json.dumps(report.as_dict(), indent=1) + "\n", encoding="utf-8"
    )
    return report


@dataclass(frozen=True)
class _Job:
    """A prepared graph, a scratch folder, the calibration feeds and the range method."""

    prepared: Path
    work: Path
    feeds: list[dict[str, np.ndarray]] = field(repr=False)
    method: str


def _climb(
    ladder: list[tuple[str, ...]], job: _Job, float_det: OnnxDetector, fit_frames: SiteFrames
) -> tuple[list[dict[str, Any]], int]:
    """Quantize each candidate of the ladder in turn (``work/candidate<k>.onnx``) until
    ``ladder_step`` says stop; with more than one candidate, each is judged on ``fit_frames`` (the
    calibration frames). Returns what was tried (for the report) and the index of the one kept."""
    manifest = float_det.manifest
    graph = require_onnx().load(str(job.prepared))
    fit_float = _detect_both(float_det, None, fit_frames)[0] if len(ladder) > 1 else []
    selection: list[dict[str, Any]] = []
    fits: list[tuple[float, float] | None] = []
    chosen = 0
    for k, parts in enumerate(ladder):
        groups = float_nodes(graph, parts)
        exclude = sorted({n for names in groups.values() for n in names})
        cand = job.work / f"candidate{k}.onnx"
        _quantize(job.prepared, cand, job.feeds, job.method, exclude)
        fit: tuple[float, float] | None = None
        if len(ladder) > 1:
            det = OnnxDetector(manifest, float_det.cfg, model_path=cand, warmup=False)
            a = measure_agreement(fit_float, _detect_both(det, None, fit_frames)[0])
            if a.fraction is not None and a.mean_iou is not None:
                fit = (a.fraction, a.mean_iou)
        selection.append(
            {
                "keep_float": list(parts),
                "nodes": {p: len(v) for p, v in groups.items()},
                "fit_agreement": None if fit is None else fit[0],
                "fit_mean_iou": None if fit is None else fit[1],
            }
        )
        fits.append(fit)
        chosen, go_on = ladder_step(fits)
        if not go_on:
            break
    return selection, chosen


def write_manifest(report: QuantizeReport) -> None:
    """The int8 model's manifest: the float model's, renamed, with the new file and its origin."""
    fm = report.float_model
    n_cal = len(report.calibration.ids)
    origin = f"{n_cal} frames of {Path(report.calibration.origin).name}"
    data = fm.model_dump(mode="json", exclude={"source_path"})
    data["name"] = report.name
    data["description"] = f"int8 (QDQ) of {fm.name}, calibrated on {origin}. {fm.description}".strip()
    data["file"] = {
        "name": report.onnx_path.name,
        "sha256": report.sha256,
        "licence": fm.file.licence,
        "source": (
            f"edge-agent model quantize of {fm.name} ({fm.file.name}, sha256 {fm.file.sha256}); "
            f"calibrated on {origin}; weights of the float model from: {fm.file.source}"
        ),
    }
    Manifest.model_validate(data)  # what we write must load
    a = report.agreement
    frac = "n/a" if a.fraction is None else f"{a.fraction:.1%}"
    speed = ", ".join(f"{s['speedup']:.2f}x at {s['threads']} thread(s)" for s in report.speed)
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    header = [
        f"# int8 model made by `edge-agent model quantize {fm.name}` on {today}.",
        f"# Float model: {fm.name} ({fm.file.name}, sha256 {fm.file.sha256[:12]}...).",
        f"# Calibration: {n_cal} frames of {report.calibration.origin}, {report.method}, "
        f"kept float: {', '.join(report.keep_float) or 'nothing'}.",
        f"# Agreement with the float model on {a.frames} frames of {report.holdout.origin}: {frac} of "
        f"{a.float_detections} detections matched at IoU >= {IOU_MATCH}. Speed-up here: {speed}.",
        f"# Check it with: edge-agent model check {report.manifest_path}",
    ]
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)
    report.manifest_path.write_text("\n".join(header) + "\n" + body, encoding="utf-8")


def install(report: QuantizeReport, dest: Path) -> list[str]:
    """Copy the .onnx, then the manifest (so no manifest ever names a missing file), into ``dest``."""
    try:
        dest.mkdir(parents=True, exist_ok=True)
        placed = []
        for src in (report.onnx_path, report.manifest_path):
            target = dest / src.name
            part = dest / f".{src.name}.part"
            shutil.copyfile(src, part)
            os.replace(part, target)
            placed.append(str(target))
    except PermissionError:
        raise ModelError(
            f"cannot install into {dest}: permission denied; run as the agent's user or root, or pass --install-dir"
        ) from None
    except OSError as exc:
        raise ModelError(f"cannot install into {dest}: {exc.strerror or exc}") from None
    return placed
