"""``edge-agent model quantize``: a real int8 YOLOX-Nano calibrated on frames of a real clip, its
agreement checked against a figure computed here independently, the refusal paths, and the inputs
a technician can get wrong."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.types import Detections
from edge.vision.agreement import measure_agreement
from edge.vision.cli import register
from edge.vision.quantize import even_split, ladder_step
from tests.fixtures.assets import require_asset

PERSON_CLIP = "media/intel_one-by-one-person-detection.mp4"
CAR_CLIP = "media/intel_car-detection.mp4"


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="edge-agent")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    rc = int(args.func(args))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


# ---- sampling ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "n_calib", "n_hold", "want_calib", "want_hold"),
    [
        (377, 64, 64, 64, 64),
        (1394, 64, 32, 64, 32),
        (10, 64, 64, 5, 5),  # short source: both shrink in proportion
        (3, 1, 1, 1, 1),
        (100, 8, 0, 8, 0),
        (100, 0, 8, 0, 8),
        (2, 64, 64, 1, 1),  # never an empty side when both were asked for
    ],
)
def test_even_split_is_disjoint_spread_and_sized(
    total: int, n_calib: int, n_hold: int, want_calib: int, want_hold: int
) -> None:
    cal, hold = even_split(total, n_calib, n_hold)
    assert (len(cal), len(hold)) == (want_calib, want_hold)
    assert not set(cal) & set(hold)
    both = sorted(cal + hold)
    assert both[0] == 0 and both[-1] == total - 1 if len(both) > 1 else both == [0]
    assert all(0 <= i < total for i in both)
    if len(hold) > 1 and len(cal) > 1:
        # held-out frames interleave with calibration frames rather than forming one block
        assert min(hold) < max(cal) and max(hold) > min(cal)


# ---- agreement ---------------------------------------------------------------------------------


def dets(*rows: tuple[float, float, float, float, int]) -> Detections:
    if not rows:
        return Detections.empty()
    a = np.asarray(rows, np.float64)
    labels = a[:, 4].astype(np.int32)
    return Detections.from_arrays(a[:, :4], np.full(len(rows), 0.9), labels, labels)


BOX = (100.0, 100.0, 200.0, 200.0)


@pytest.mark.parametrize(
    ("float_d", "int8_d", "matched", "mean_iou"),
    [
        ([dets((*BOX, 0))], [dets((*BOX, 0))], 1, 1.0),
        ([dets((*BOX, 0))], [dets((100, 100, 200, 170, 0))], 1, 0.7),  # IoU exactly 0.7 counts
        ([dets((*BOX, 0))], [dets((100, 100, 200, 160, 0))], 0, 0.6),  # IoU 0.6: paired, not matched
        ([dets((*BOX, 0))], [dets((*BOX, 2))], 0, 0.0),  # another class never pairs
        ([dets((*BOX, 0))], [dets()], 0, 0.0),
        ([dets((*BOX, 0), (300, 300, 400, 400, 0))], [dets((*BOX, 0))], 1, 0.5),
        # one int8 box cannot serve two float boxes; the better pair wins
        ([dets((*BOX, 0), (100, 100, 200, 190, 0))], [dets((*BOX, 0))], 1, 0.5),
        ([dets((*BOX, 0)), dets((*BOX, 3))], [dets((*BOX, 0)), dets((*BOX, 3))], 2, 1.0),
    ],
)
def test_agreement_table(
    float_d: list[Detections], int8_d: list[Detections], matched: int, mean_iou: float
) -> None:
    a = measure_agreement(float_d, int8_d)
    assert a.matched == matched
    assert a.mean_iou == pytest.approx(mean_iou, abs=1e-9)
    assert a.float_detections == sum(len(d.xyxy) for d in float_d)
    assert a.fraction == pytest.approx(matched / a.float_detections)


def test_agreement_without_float_detections_is_undefined() -> None:
    a = measure_agreement([dets()], [dets((*BOX, 0))])
    assert a.fraction is None and a.mean_iou is None and a.int8_detections == 1
    assert a.per_class == {"person": (0, 1)}


@pytest.mark.parametrize(
    ("fits", "best", "try_next"),
    [
        ([(1.0, 0.95)], 0, False),  # head alone matches everything on the calibration frames: stop
        ([(0.98, 0.90)], 0, True),  # not everything: try the stem float too
        ([(0.98, 0.90), (1.0, 0.90)], 1, False),  # more matched
        ([(0.98, 0.90), (0.98, 0.95)], 1, True),  # as many matched, boxes closer by >= 0.01
        ([(0.98, 0.90), (0.98, 0.905)], 0, True),  # a hair closer is not worth the slower stem
        ([(0.98, 0.90), (0.90, 0.99)], 0, True),
        ([None], 0, False),  # nothing to judge by (no detections on the calibration frames)
        ([(0.2, 0.2), None], 0, False),
    ],
)
def test_ladder_step(fits: list[tuple[float, float] | None], best: int, try_next: bool) -> None:
    assert ladder_step(fits) == (best, try_next)


# ---- inputs a technician gets wrong ------------------------------------------------------------


@pytest.fixture
def frames_dir(tmp_path: Path) -> Path:
    d = tmp_path / "frames"
    d.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):
        cv2.imwrite(str(d / f"f{i}.png"), rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    return d


def test_missing_onnx_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, frames_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    rc, _, err = cli(
        ["model", "quantize", "yolox_nano_416", "--images", str(frames_dir), "--out", str(tmp_path / "o")],
        capsys,
    )
    assert rc == 2
    assert err.strip().count("\n") == 0, err
    assert "onnx" in err and "pip install edge[quantize]" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no_such_model", "--images", "{frames}"], "unknown model 'no_such_model'"),
        (["yolox_nano_416", "--images", "{tmp}/empty"], "no images"),
        (["yolox_nano_416", "--images", "{tmp}/absent"], "not a folder"),
        (["yolox_nano_416", "--images", "{tmp}/bad"], "x.png: cannot read as an image"),
        (["yolox_nano_416", "--source", "{tmp}/absent.mp4"], "absent.mp4 not found"),
        (["yolox_nano_416", "--images", "{frames}", "--calib", "0"], "--calib 0"),
        (["yolox_nano_416", "--images", "{frames}", "--keep-float", "neck"], "--keep-float neck"),
        (["yolox_nano_416", "--images", "{frames}", "--calibration", "kl"], "--calibration kl"),
        (["yolox_nano_416", "--images", "{frames}", "--threads", "0"], "--threads"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], message: str, frames_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"not a png at all")
    argv = [a.format(frames=frames_dir, tmp=tmp_path) for a in args]
    rc, out, err = cli(["model", "quantize", *argv, "--out", str(tmp_path / "o")], capsys)
    assert rc == 2, out + err
    assert message in err and err.startswith("error: ") and err.strip().count("\n") == 0, err
    assert not (tmp_path / "o").exists()  # refused before anything was written


# ---- video frames ------------------------------------------------------------------------------


def sequential_frames(path: Path, wanted: list[int]) -> dict[int, np.ndarray]:
    """The wanted frames by plain decoding from the start: the reference for every sampled frame."""
    cap = cv2.VideoCapture(str(path))
    out: dict[int, np.ndarray] = {}
    i = 0
    want = set(wanted)
    while len(out) < len(want):
        ok, img = cap.read()
        assert ok, f"{path} ended at frame {i}"
        if i in want:
            out[i] = img
        i += 1
    cap.release()
    return out


@pytest.mark.assets
def test_read_video_frames_matches_plain_decoding_also_after_a_seek() -> None:
    from edge.capture.opencv import read_video_frames, video_frame_count

    clip = require_asset(PERSON_CLIP)
    assert video_frame_count(str(clip)) == 1394
    wanted = [0, 7, 8, 400, 1100, 1393]  # 400 and 1100 are reached by seeking
    got = read_video_frames(str(clip), wanted)
    ref = sequential_frames(clip, wanted)
    assert [i for i, _ in got] == wanted
    for i, img in got:
        assert np.array_equal(img, ref[i]), f"frame {i} differs from plain decoding"
    # frames past the real end are left out, not invented
    assert [i for i, _ in read_video_frames(str(clip), [1393, 5000])] == [1393]


# ---- the real thing ----------------------------------------------------------------------------


def py_iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def independent_agreement(float_d: list[Detections], int8_d: list[Detections]) -> tuple[int, int, int, float]:
    """(float count, int8 count, matched at IoU >= 0.7, mean IoU) in plain Python: every same-label
    pair sorted by IoU, taken greedily one-to-one."""
    n_f = n_q = matched = 0
    iou_sum = 0.0
    for f, q in zip(float_d, int8_d, strict=True):
        fb, qb = f.xyxy.tolist(), q.xyxy.tolist()
        n_f += len(fb)
        n_q += len(qb)
        cands = sorted(
            (
                (py_iou(fb[i], qb[j]), i, j)
                for i in range(len(fb))
                for j in range(len(qb))
                if int(f.label_id[i]) == int(q.label_id[j])
            ),
            key=lambda t: -t[0],
        )
        taken_f: set[int] = set()
        taken_q: set[int] = set()
        for v, i, j in cands:
            if v <= 0 or i in taken_f or j in taken_q:
                continue
            taken_f.add(i)
            taken_q.add(j)
            iou_sum += v
            matched += v >= 0.7
    return n_f, n_q, matched, iou_sum / n_f


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """YOLOX-Nano quantized on 32 frames of the person clip, judged on 32 others, installed."""
    from tests.fixtures.assets import assets_dir

    clip = require_asset(PERSON_CLIP)
    base = tmp_path_factory.mktemp("quantize")
    out, inst = base / "out", base / "installed"
    parser = argparse.ArgumentParser(prog="edge-agent")
    register(parser.add_subparsers(dest="command"))
    argv = [
        "model", "quantize", "yolox_nano_416", "--source", str(clip), "--calib", "32", "--holdout", "32",
        "--out", str(out), "--threads", "1", "--repeats", "3", "--json",
        "--install", "--install-dir", str(inst), "--min-agreement", "0.9",
    ]  # fmt: skip
    buf_out, buf_err = io.StringIO(), io.StringIO()
    args = parser.parse_args(argv)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGE_MODEL_PATH", str(assets_dir() / "models"))
        with contextlib.redirect_stdout(buf_out), contextlib.redirect_stderr(buf_err):
            rc = int(args.func(args))
    return {
        "rc": rc,
        "out": out,
        "inst": inst,
        "clip": clip,
        "stdout": buf_out.getvalue(),
        "stderr": buf_err.getvalue(),
    }


@pytest.mark.assets
@pytest.mark.slow
def test_quantize_writes_a_loadable_int8_model_and_installs_it(quantized: dict[str, Any]) -> None:
    from edge.vision.manifest import file_sha256, load_manifest

    assert quantized["rc"] == 0, quantized["stdout"] + quantized["stderr"]
    report = json.loads(quantized["stdout"].strip().splitlines()[-1])
    out: Path = quantized["out"]
    onnx_file, yaml_file = out / "yolox_nano_416_int8_site.onnx", out / "yolox_nano_416_int8_site.yaml"
    assert (
        onnx_file.is_file()
        and yaml_file.is_file()
        and (out / "yolox_nano_416_int8_site.report.json").is_file()
    )
    m = load_manifest(str(yaml_file))
    assert m.name == "yolox_nano_416_int8_site"
    assert m.file.sha256 == file_sha256(onnx_file) == report["sha256"]
    # origin: the float model it came from and the frames it was calibrated on
    float_m = load_manifest("yolox_nano_416")
    assert float_m.file.sha256 in m.file.source and "yolox_nano_416" in m.description
    assert "intel_one-by-one-person-detection.mp4" in m.description
    assert m.input == float_m.input and m.decoder == float_m.decoder and m.labels == float_m.labels
    # QDQ: the graph really is int8
    onnx = pytest.importorskip("onnx")
    ops = {n.op_type for n in onnx.load(str(onnx_file)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # the parts kept float are float in the graph: YOLOX-Nano's 9 prediction convolutions (cls, reg,
    # obj at 3 strides) and, with the stem, the stem conv and the depthwise conv after it
    graph = onnx.load(str(onnx_file)).graph
    float_w = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    float_convs = [n for n in graph.node if n.op_type == "Conv" and n.input[1] in float_w]
    keep = report["calibration"]["keep_float"]
    assert len(float_convs) == 9 + 2 * ("stem" in keep), keep
    producer = {o: n.op_type for n in graph.node for o in n.output}
    assert producer[graph.output[0].name] != "DequantizeLinear"
    # auto: the choice follows the ladder rule on the fit agreements it recorded
    sel = report["calibration"]["selection"]
    assert [c["keep_float"] for c in sel] == [["head"], ["stem", "head"]][: len(sel)]
    fits = [None if c["fit_agreement"] is None else (c["fit_agreement"], c["fit_mean_iou"]) for c in sel]
    best, _ = ladder_step(fits)
    assert keep == sel[best]["keep_float"]
    assert len(sel) == 2 or fits[0] is None or fits[0][0] == 1.0
    # installed: the same two files, byte for byte
    inst: Path = quantized["inst"]
    assert sorted(p.name for p in inst.iterdir()) == [onnx_file.name, yaml_file.name]
    assert (inst / onnx_file.name).read_bytes() == onnx_file.read_bytes()
    assert report["installed"] == [str(inst / onnx_file.name), str(inst / yaml_file.name)]
    assert report["passed"] is True
    # speed: one entry for the one thread count asked, a ratio of the two medians
    (speed,) = report["speed"]
    assert speed["threads"] == 1 and speed["float_ms"] > 0 and speed["int8_ms"] > 0
    assert speed["speedup"] == pytest.approx(speed["float_ms"] / speed["int8_ms"], rel=1e-2)


@pytest.mark.assets
@pytest.mark.slow
def test_holdout_agreement_matches_an_independent_count(quantized: dict[str, Any]) -> None:
    from edge.config.detector import DetectorConfig
    from edge.vision.detector import OnnxDetector
    from edge.vision.manifest import load_manifest

    assert quantized["rc"] == 0, quantized["stderr"]
    report = json.loads(quantized["stdout"].strip().splitlines()[-1])
    cal, hold = report["calibration"]["frames"], report["holdout"]["frames"]
    assert len(cal) == 32 and len(hold) == 32 and not set(cal) & set(hold)
    assert max(hold) - min(hold) > 1394 * 0.8  # spread over the clip, not one block
    frames = sequential_frames(quantized["clip"], hold)
    cfg = DetectorConfig(threads=1)
    float_det = OnnxDetector(load_manifest("yolox_nano_416"), cfg)
    int8_det = OnnxDetector(load_manifest(str(quantized["out"] / "yolox_nano_416_int8_site.yaml")), cfg)
    fd = [float_det.detect_image(frames[i]) for i in hold]
    qd = [int8_det.detect_image(frames[i]) for i in hold]
    n_f, n_q, matched, mean_iou = independent_agreement(fd, qd)
    agr = report["agreement"]
    assert n_f >= 20, "the clip should give enough person detections for a meaningful figure"
    assert (agr["float_detections"], agr["int8_detections"], agr["matched"]) == (n_f, n_q, matched)
    assert agr["mean_iou"] == pytest.approx(mean_iou, abs=1e-6)
    assert agr["matched_fraction"] == pytest.approx(matched / n_f)
    per_class: dict[str, list[int]] = {}
    for side, dl in enumerate((fd, qd)):
        for d in dl:
            for c in d.class_id.tolist():
                per_class.setdefault(["person", "bicycle", "motorcycle", "car", "bus", "truck"][c], [0, 0])[
                    side
                ] += 1
    assert {k: [v["float"], v["int8"]] for k, v in agr["per_class"].items()} == per_class


@pytest.mark.assets
@pytest.mark.slow
def test_produced_manifest_passes_model_check(
    quantized: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert quantized["rc"] == 0, quantized["stderr"]
    img = require_asset("media/coco_val2017/000000181542.jpg")
    yaml_file = quantized["out"] / "yolox_nano_416_int8_site.yaml"
    rc, out, err = cli(
        ["model", "check", str(yaml_file), "--image", str(img), "--repeats", "2", "--threads", "1"], capsys
    )
    assert rc == 0, out + err
    assert out.rstrip().endswith("PASS") and "sha256" in out and " ok" in out


@pytest.mark.assets
@pytest.mark.slow
def test_impossible_threshold_refuses_and_installs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = require_asset(PERSON_CLIP)
    inst = tmp_path / "installed"
    rc, out, err = cli(
        [
            "model", "quantize", "yolox_nano_416", "--source", str(clip), "--calib", "8", "--holdout", "12",
            "--keep-float", "head", "--out", str(tmp_path / "o"), "--threads", "1", "--repeats", "1",
            "--install", "--install-dir", str(inst), "--min-agreement", "1.01", "--json",
        ],
        capsys,
    )  # fmt: skip
    assert rc == 1, out + err
    assert not inst.exists()
    report = json.loads(out.strip().splitlines()[-1])
    assert report["installed"] == [] and report["passed"] is False
    (only,) = report["calibration"]["selection"]  # --keep-float given: no ladder
    assert only["keep_float"] == ["head"] and only["fit_agreement"] is None
    line = err.strip().splitlines()[-1]
    assert line.startswith("refused to install yolox_nano_416_int8_site:")
    assert "below --min-agreement 101%" in line and "nothing installed" in line
    assert "--keep-float stem,head" in line  # the stem was quantized: the hint offers keeping it float
    assert "% of float detections (" in line and "at IoU >= 0.7 on 12 held-out frames" in line


@pytest.mark.assets
@pytest.mark.slow
def test_bad_calibration_set_is_refused_on_real_frames(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Calibrated on near-black frames (a covered lens), judged on the real clip: refused at 95 %."""
    clip = require_asset(PERSON_CLIP)
    dark = tmp_path / "dark"
    dark.mkdir()
    for i in range(6):
        cv2.imwrite(str(dark / f"d{i}.png"), np.full((432, 768, 3), 6 * i, np.uint8))
    inst = tmp_path / "installed"
    rc, out, err = cli(
        [
            "model", "quantize", "yolox_nano_416", "--images", str(dark), "--test-source", str(clip),
            "--holdout", "24", "--out", str(tmp_path / "o"), "--threads", "1", "--repeats", "1", "--json",
            "--install", "--install-dir", str(inst),
        ],
        capsys,
    )  # fmt: skip
    assert rc == 1, out + err
    assert not inst.exists()
    report = json.loads(out.strip().splitlines()[-1])
    frac = report["agreement"]["matched_fraction"]
    assert report["passed"] is False and report["installed"] == []
    assert frac is not None and frac < 0.95
    assert report["holdout"]["source"] == str(clip) and report["calibration"]["kind"] == "images"
    assert f"{frac:.1%}" in err and "on 24 test frames" in err
