"""The vendor conformance kit behind ``edge-agent model check``.

Loads the graph, compares its real inputs and outputs with the manifest, runs a warm-up and the
given images, checks outputs are finite and of sane magnitude, that every decoded candidate (not
only those above threshold) has a finite box, a score in 0..1 and a box of plausible size, that
the detections fall inside the image, and measures latency. Every mismatch becomes one readable
line; the check passes only with none.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.errors import ModelError
from edge.vision.adapters import get_decoder
from edge.vision.detector import ABSURD_BOX_FACTOR, OnnxDetector
from edge.vision.manifest import Manifest, load_manifest, resolve_model_file
from edge.vision.runtime import OnnxSession, TensorInfo

_NP_NAMES = {"float32": "float32", "uint8": "uint8", "int64": "int64", "int32": "int32"}
# No detector's raw outputs (logits, probabilities, pixel coordinates) come near this.
ABSURD_OUTPUT = 1e6


@dataclass
class ConformanceReport:
    """Result of ``check_model``: ``ok`` only when ``problems`` is empty."""

    model: str
    problems: list[str] = field(default_factory=list)
    info: list[str] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)
    detections: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        lines = [f"model check: {self.model}", *(f"  {ln}" for ln in self.info)]
        if self.ok:
            lines.append("PASS")
        else:
            lines.append(f"FAIL: {len(self.problems)} problem(s)")
            lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


def _expected_input_shape(m: Manifest) -> tuple[int, ...]:
    w, h = m.input.size
    return (1, 3, h, w) if m.input.layout == "NCHW" else (1, h, w, 3)


def _check_inputs(m: Manifest, graph_inputs: list[TensorInfo]) -> list[str]:
    problems: list[str] = []
    by_name = {i.name: i for i in graph_inputs}
    listing = ", ".join(f"{i.name} {i.shape_text()} {i.dtype}" for i in graph_inputs)
    img = by_name.get(m.input.name)
    if img is None:
        problems.append(
            f"input {m.input.name!r} (input.name) is not in the graph; the graph inputs are: {listing}"
        )
    else:
        want = _expected_input_shape(m)
        if len(img.shape) != 4 or any(
            g is not None and g != w for g, w in zip(img.shape, want, strict=False)
        ):
            w_, h_ = m.input.size
            problems.append(
                f"input {img.name} has shape {img.shape_text()}; the manifest says {m.input.layout} "
                f"{w_}x{h_}, i.e. [{','.join(map(str, want))}] - fix input.size / input.layout"
            )
        if img.dtype != _NP_NAMES[m.input.dtype]:
            problems.append(f"input {img.name} is {img.dtype}; the manifest says input.dtype {m.input.dtype}")
    listed = {m.input.name}
    for ex in m.input.extra:
        listed.add(ex.name)
        g = by_name.get(ex.name)
        if g is None:
            problems.append(f"input.extra {ex.name!r} is not a graph input; the graph inputs are: {listing}")
            continue
        if g.dtype != ex.dtype:
            problems.append(f"input {ex.name} is {g.dtype}; the manifest says {ex.dtype}")
        want_rank = 2 if ex.batched else 1
        if len(g.shape) != want_rank or (g.shape[-1] not in (2, None)):
            problems.append(
                f"input {ex.name} has shape {g.shape_text()}; extra input of kind {ex.kind} feeds {'[1,2]' if ex.batched else '[2]'}"
            )
    for g in graph_inputs:
        if g.name not in listed:
            problems.append(
                f"graph input {g.name} {g.shape_text()} {g.dtype} is not fed: add it to input.extra "
                "(kind scale_factor, orig_size_wh, orig_size_hw or input_size_hw)"
            )
    return problems


def _check_outputs(m: Manifest, graph_outputs: list[TensorInfo]) -> tuple[list[str], list[str]]:
    info = [f"output {i} {o.name} {o.shape_text()} {o.dtype}" for i, o in enumerate(graph_outputs)]
    try:
        dec = get_decoder(m.decoder.family, m.decoder.params, m.input.size)
    except ModelError as exc:
        return [str(exc)], info
    outs = graph_outputs
    if m.decoder.outputs is not None:
        names = [o.name for o in graph_outputs]
        missing = [n for n in m.decoder.outputs if n not in names]
        if missing:
            return [f"decoder.outputs {missing} are not graph outputs; the graph has {names}"], info
        outs = [graph_outputs[names.index(n)] for n in m.decoder.outputs]
    problems = dec.bind(outs)
    if not problems and dec.num_classes is not None and dec.num_classes != m.num_classes:
        problems.append(
            f"the outputs carry {dec.num_classes} classes but the manifest lists {m.num_classes} labels; "
            "the label list must match the model's output order"
        )
    return problems, info


def _check_pass(det: OnnxDetector, image: np.ndarray, name: str) -> tuple[list[str], int, Counter[str]]:
    problems: list[str] = []
    try:
        # every candidate row is decoded and screened, not only those above the thresholds
        res = det.run_pass(image, score_floor=-np.inf)
    except ModelError as exc:
        return [f"{name}: {exc}"], 0, Counter()
    for i, out in enumerate(res.outputs):
        if out.dtype.kind != "f" or not out.size:
            continue
        finite = np.isfinite(out)
        bad = int(out.size - np.count_nonzero(finite))
        if bad:
            problems.append(f"{name}: output {i} has {bad} NaN/inf values of {out.size}; the graph is broken")
        big = float(np.abs(out[finite]).max()) if bad < out.size else 0.0
        if big > ABSURD_OUTPUT:
            problems.append(
                f"{name}: output {i} has values as large as {big:.3g}; no detector output (logit, "
                "probability or pixel coordinate) is that large: the graph is broken"
            )
    c = res.check
    if c.nonfinite_rows:
        problems.append(
            f"{name}: {c.nonfinite_rows} decoded boxes or scores are NaN/inf (e.g. {c.example}); the raw "
            "box outputs overflow when decoded"
        )
    if c.score_rows:
        problems.append(
            f"{name}: {c.score_rows} decoded scores are outside 0..1 (e.g. {c.example}); scores must be "
            "probabilities: if the graph outputs logits set the decoder's sigmoid (or activation) "
            "parameter, otherwise the graph is broken"
        )
    if c.huge_rows:
        h0, w0 = image.shape[:2]
        problems.append(
            f"{name}: {c.huge_rows} boxes are of astronomic size, more than {ABSURD_BOX_FACTOR:g} image "
            f"sizes beyond the {w0}x{h0} image (e.g. {c.example}); check input.size, resize mode and "
            "decoder params"
        )
    h, w = image.shape[:2]
    b = res.raw.xyxy
    if b.size:
        tol_x, tol_y = 0.1 * w + 4, 0.1 * h + 4
        finite = np.isfinite(b).all(1)
        outside = (
            ~finite
            | (b[:, 0] < -tol_x)
            | (b[:, 2] > w + tol_x)
            | (b[:, 1] < -tol_y)
            | (b[:, 3] > h + tol_y)
            | (b[:, 2] < b[:, 0])
            | (b[:, 3] < b[:, 1])
        )
        if outside.any():
            k = int(np.argmax(outside))
            problems.append(
                f"{name}: {int(outside.sum())} of {b.shape[0]} boxes fall outside the {w}x{h} image or are "
                f"inverted (e.g. {np.round(b[k], 1).tolist()}); check input.size, resize mode and decoder params"
            )
    counts = Counter(det.manifest.labels[i] for i in res.raw.label)
    return problems, int(res.raw.label.size), counts


def check_model(
    ref: str, images: Sequence[tuple[str, np.ndarray]] = (), *, threads: int | None = None, repeats: int = 10
) -> ConformanceReport:
    """Run the conformance kit for a manifest name or path on the given (name, BGR image) pairs."""
    report = ConformanceReport(model=ref)
    try:
        m = load_manifest(ref)
    except ModelError as exc:
        report.problems.append(str(exc))
        return report
    report.model = m.name
    report.info.append(f"manifest {m.source_path}")
    try:
        path = resolve_model_file(m)
    except ModelError as exc:
        report.problems.append(str(exc))
        return report
    report.info.append(f"file {path} sha256 {m.file.sha256[:8]} ok")
    try:
        sess = OnnxSession(Path(path), threads=threads)
    except ModelError as exc:
        report.problems.append(str(exc))
        return report
    report.info += [f"input {i.name} {i.shape_text()} {i.dtype}" for i in sess.inputs]
    report.problems += _check_inputs(m, sess.inputs)
    out_problems, out_info = _check_outputs(m, sess.outputs)
    report.info += out_info
    report.problems += out_problems
    if report.problems:
        return report
    from edge.config.detector import DetectorConfig

    try:
        det = OnnxDetector(
            m, DetectorConfig(threads=threads, keep_other=True), model_path=Path(path), warmup=False
        )
    except ModelError as exc:
        report.problems.append(str(exc))
        return report
    w, h = m.input.size
    rng = np.random.default_rng(0)
    warm = [
        ("warm-up (grey)", np.full((h, w, 3), 114, np.uint8)),
        ("warm-up (noise)", rng.integers(0, 256, (h, w, 3), dtype=np.uint8)),
    ]
    for name, img in [*warm, *images]:
        problems, n, counts = _check_pass(det, img, name)
        report.problems += problems
        if not name.startswith("warm-up"):
            report.detections[name] = n
            summary = ", ".join(f"{k} {v}" for k, v in counts.most_common()) or "none"
            report.info.append(f"image {name} ({img.shape[1]}x{img.shape[0]}): {n} detections ({summary})")
    if report.problems:
        return report
    bench_img = images[0][1] if images else warm[1][1]
    pre, inf, post = [], [], []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        det.detect_image(bench_img)
        _ = time.perf_counter() - t0
        pre.append(det.last_timing_ms["pre"])
        inf.append(det.last_timing_ms["infer"])
        post.append(det.last_timing_ms["post"])
    report.latency_ms = {
        "pre": statistics.median(pre),
        "infer": statistics.median(inf),
        "post": statistics.median(post),
    }
    lat = report.latency_ms
    report.info.append(
        f"latency (median of {max(1, repeats)}, {det.session.threads} thread(s)): inference {lat['infer']:.2f} ms, "
        f"pre-processing {lat['pre']:.2f} ms, decoding {lat['post']:.2f} ms"
    )
    return report
